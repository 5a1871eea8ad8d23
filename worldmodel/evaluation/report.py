"""A Markdown report of a demo run: success per task and stage per policy, latencies, loss curves, videos.

    build_report(out_dir, evals={"scripted": path, "dit": path, ...}, runs={"pretrain": run_dir, ...}, notes=...)

It reads the ``eval_info.json`` files of :mod:`worldmodel.evaluation.sim` and the ``metrics.jsonl`` files of the
trainer, writes ``README.md``, ``loss_curves.png`` and ``success.png`` into ``out_dir`` and copies the videos and
training samples next to them, so the folder can be moved or published as it is.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from worldmodel.evaluation.stats import mcnemar_exact  # noqa: E402


def _read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def training_minutes(run_dir: str | Path) -> tuple[int, float] | None:
    """(last step, minutes of optimiser steps) of a run, from the step rates in its ``metrics.jsonl``.

    Each logged row covers the steps since the previous row at its ``steps_per_s``; rows a resumed run logs again
    (steps not past the last counted one) are skipped, so time spent before a kill and redone is not counted twice
    and data loading before the first step, checkpoint writing between rows and evaluation are not counted at all.
    None when the run logged no step rates.
    """
    last, seconds = 0, 0.0
    for row in _read_metrics(Path(run_dir)):
        step, rate = int(row.get("step", 0)), row.get("steps_per_s")
        if step > last and rate:
            seconds += (step - last) / float(rate)
            last = step
    return (last, seconds / 60.0) if last else None


def plot_losses(runs: dict[str, Path], path: Path) -> bool:
    """Loss terms over steps, one panel per training run; returns False when there is nothing to plot."""
    metrics = {name: _read_metrics(Path(d)) for name, d in runs.items()}
    metrics = {k: v for k, v in metrics.items() if v}
    if not metrics:
        return False
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 3.6), squeeze=False)
    for ax, (name, rows) in zip(axes[0], metrics.items(), strict=True):
        steps = [r["step"] for r in rows]
        for key in ("loss/total", "loss/flow", "loss/rep", "progress/mse"):
            if key in rows[0]:
                ax.plot(steps, [r[key] for r in rows], label=key.split("/", 1)[1] if "/" in key else key)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def plot_success(evals: dict[str, dict[str, Any]], path: Path) -> None:
    """Grouped bars: success % per task for every policy, with the 95 % Wilson intervals as error bars."""
    tasks = list(dict.fromkeys(t for info in evals.values() for t in info["per_task"]))
    width = 0.8 / max(1, len(evals))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(tasks)), 3.8))
    for i, (name, info) in enumerate(evals.items()):
        xs, ys, err = [], [], [[], []]
        for j, task in enumerate(tasks):
            if task not in info["per_task"]:
                continue
            t = info["per_task"][task]
            xs.append(j + (i - (len(evals) - 1) / 2) * width)
            ys.append(t["pc_success"])
            err[0].append(max(0.0, t["pc_success"] - t["ci95"][0]))  # rounding can put 100 % a hair past
            err[1].append(max(0.0, t["ci95"][1] - t["pc_success"]))  # its interval's bound
        ax.bar(xs, ys, width, yerr=err, capsize=2, label=name)
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels(tasks, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("success %")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _success_table(evals: dict[str, dict[str, Any]]) -> list[str]:
    names = list(evals)
    tasks = list(dict.fromkeys(t for info in evals.values() for t in info["per_task"]))
    lines = ["| task | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for task in [*tasks, None]:
        cells = []
        for name in names:
            t = evals[name]["overall"] if task is None else evals[name]["per_task"].get(task)
            cells.append("—" if t is None else
                         f"{t['pc_success']:.0f} ({t['ci95'][0]:.0f}–{t['ci95'][1]:.0f}, n={t['n_episodes']})")
        lines.append(f"| {task or '**all**'} | " + " | ".join(cells) + " |")
    return lines


def _stage_table(evals: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["| policy | task | stages reached (%) |", "|---|---|---|"]
    for name, info in evals.items():
        for task, t in info["per_task"].items():
            if len(t["stage_names"]) > 1:
                stages = ", ".join(f"{k} {v:.0f}" for k, v in t["pc_stage_success"].items())
                lines.append(f"| {name} | {task} | {stages} |")
    return lines


def _latency_table(evals: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["| policy | decisions | p50 ms | p95 ms |", "|---|---|---|---|"]
    for name, info in evals.items():
        o = info["overall"]
        if o.get("n_decisions"):
            lines.append(f"| {name} | {o['n_decisions']} | {o['decision_ms_p50']:.0f} | {o['decision_ms_p95']:.0f} |")
    return lines


def _paired_table(evals: dict[str, dict[str, Any]]) -> list[str]:
    # Every evaluation against the first one on the episodes both ran (same task and seed): the discordant
    # episodes and the exact McNemar p-value, which is far more sensitive than comparing two Wilson intervals.
    names = list(evals)
    if len(names) < 2:
        return []
    first = {(e["task"], e["seed"]): bool(e["success"]) for e in evals[names[0]].get("per_episode", [])}
    lines = [f"| policy | shared episodes | solved only by it | solved only by {names[0]} | difference (points) "
             "| McNemar p |", "|---|---|---|---|---|---|"]
    for name in names[1:]:
        other = {(e["task"], e["seed"]): bool(e["success"]) for e in evals[name].get("per_episode", [])}
        shared = [key for key in other if key in first]
        if not shared:
            continue
        wins = sum(other[k] and not first[k] for k in shared)
        losses = sum(first[k] and not other[k] for k in shared)
        lines.append(f"| {name} | {len(shared)} | {wins} | {losses} | {100.0 * (wins - losses) / len(shared):+.1f} "
                     f"| {mcnemar_exact(wins, losses):.3f} |")
    return lines if len(lines) > 2 else []


def _fmt(value: Any, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _ranking_table(evals: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["| policy | task | decisions | Spearman | top-1 % | regret (stages) | PSNR dB | SSIM | action corr |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, info in evals.items():
        label = name
        scorer = (info.get("policy", {}).get("planner") or {}).get("scorer")
        if scorer:
            label = f"{name} ({scorer})"
        for task, t in info["per_task"].items():
            r = t.get("ranking")
            if not r:
                continue
            top1 = None if r["top1_mean"] is None else 100.0 * r["top1_mean"]
            lines.append(f"| {label} | {task} | {r['decisions']} | {_fmt(r['spearman_mean'], '.2f')} "
                         f"| {_fmt(top1, '.0f')} | {_fmt(r['regret_mean'], '.3f')} | {_fmt(r['psnr_mean'], '.1f')} "
                         f"| {_fmt(r['ssim_mean'], '.3f')} | {_fmt(r.get('action_corr_mean'), '.2f')} |")
    return lines


def build_report(out_dir: str | Path, evals: dict[str, str | Path], runs: dict[str, str | Path],
                 notes: list[str] | None = None, title: str = "Demo report") -> Path:
    """Write the report folder and return the path of its ``README.md``.

    Args:
        out_dir: report folder (created).
        evals: policy name → evaluation output dir (holding ``eval_info.json`` and optionally ``videos/``).
        runs: training run name → run dir (holding ``metrics.jsonl`` and ``samples/``).
        notes: extra Markdown lines (commands, machine, wall times) put under the title.
        title: the report's heading.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    infos = {name: json.loads((Path(d) / "eval_info.json").read_text()) for name, d in evals.items()}
    lines = [f"# {title}", "", *(notes or []), "", "## Closed-loop success (%)", "",
             "Success in % with the 95 % Wilson interval and the number of episodes.", "", *_success_table(infos),
             "", "![success](success.png)", "", "## Stages of the multi-stage tasks", "", *_stage_table(infos), ""]
    paired = _paired_table(infos)
    if paired:
        lines += [f"## Paired against {next(iter(infos))}", "",
                  "On the episodes both evaluations ran (same task and seed): how many only one of the two solved, "
                  "and the two-sided exact McNemar p-value of the difference.", "", *paired, ""]
    latency = _latency_table(infos)
    if len(latency) > 2:
        lines += ["## Decision latency", "", *latency, ""]
    ranking = _ranking_table(infos)
    if len(ranking) > 2:
        lines += ["## Ranking quality", "",
                  "Per decision, the planner's scores against the true progress of the same candidates in the true "
                  "simulator (`planner.diagnostics`): Spearman correlation (decisions where either is constant are "
                  "left out), how often the chosen candidate is a true best, the true progress it gives up, and "
                  "PSNR / SSIM of the imagined futures against the true ones (rungs that imagine), and whether the "
                  "candidates' imagined futures differ as their true ones do (action corr: 1 follows the actions, 0 "
                  "ignores them). Means over decisions.", "", *ranking, ""]
    plot_success(infos, out / "success.png")
    timed = {name: training_minutes(d) for name, d in runs.items()}
    if any(timed.values()):
        lines += ["## Training time", "", "Minutes of optimiser steps, from the logged step rates (data loading, "
                  "checkpoints and evaluation not included).", "", "| run | steps | minutes |", "|---|---|---|",
                  *(f"| {name} | {t[0]} | {t[1]:.1f} |" for name, t in timed.items() if t), ""]
    if plot_losses({k: Path(v) for k, v in runs.items()}, out / "loss_curves.png"):
        lines += ["## Training", "", "![loss curves](loss_curves.png)", ""]
    for name, run_dir in runs.items():
        samples = sorted((Path(run_dir) / "samples").glob("*.png"))
        if samples:
            dest = out / f"{name}_{samples[-1].name}"
            shutil.copy(samples[-1], dest)
            lines += [f"{name}: real (top) vs generated (bottom) future of a fixed validation clip, "
                      f"{samples[-1].stem}", "", f"![{name} sample]({dest.name})", ""]
    videos = []
    for name, d in evals.items():
        for video in sorted((Path(d) / "videos").glob("*.mp4")):
            dest = out / "videos" / f"{name}_{video.name}"
            dest.parent.mkdir(exist_ok=True)
            shutil.copy(video, dest)
            videos.append(f"- [{name}: {video.stem}](videos/{dest.name})")
    if videos:
        lines += ["## Videos", "", "Model policies show the real camera (left) beside the imagined future (right).",
                  "", *videos, ""]
    readme = out / "README.md"
    readme.write_text("\n".join(lines))
    return readme
