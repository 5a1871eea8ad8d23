"""Self-Flow vs flow matching: pool the runs of ``scripts/compare_objectives.py`` into a summary, a Markdown
table and a plot.

The script trains and evaluates (it only wires commands); this module reads what the runs wrote: the offline
measures per run and the ``eval_info.json`` of each closed-loop evaluation, whose ``n_success`` counts are pooled
over seeds per objective and task (older files without counts fall back to ``pc_success · n_episodes``).
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from worldmodel.evaluation.stats import wilson_interval

LABELS = {"selfflow": "Self-Flow", "fm": "flow matching"}
COLORS = {"selfflow": "tab:blue", "fm": "tab:orange"}
POLICIES = ("dit", "planner")


def _all_tasks() -> list[str]:
    from envs.tasks import TASK_CLASSES  # the one task list

    return list(TASK_CLASSES)


@dataclass
class CompareSettings:
    """What a comparison ran (for the summary's text; the script's command-line options).

    Attributes:
        objectives: compared objectives (``selfflow``, ``fm``).
        seeds: training seeds per objective.
        model: model preset.
        steps: fine-tuning steps per run.
        episodes: training episodes; val_episodes: held-out episodes.
        horizon: future steps imagined for PSNR / SSIM.
        tasks: evaluated tasks.
    """

    objectives: list[str] = field(default_factory=lambda: ["selfflow", "fm"])
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    model: str = "demo"
    steps: int = 2500
    episodes: int = 120
    val_episodes: int = 24
    horizon: int = 4
    tasks: list[str] = field(default_factory=_all_tasks)

    @classmethod
    def from_options(cls, options: Any) -> CompareSettings:
        """From an object with these attributes (e.g. the script's ``argparse`` namespace); others are ignored."""
        return cls(**{k: getattr(options, k) for k in cls.__dataclass_fields__ if hasattr(options, k)})


def run_name(objective: str, seed: int) -> str:
    """Name (and folder) of one training run."""
    return f"{objective}_seed{seed}"


def successes(info: dict[str, Any], task: str) -> tuple[int, int]:
    """(successes, episodes) of one task in an ``eval_info.json``."""
    t = info["per_task"][task]
    wins = t["n_success"] if "n_success" in t else round(t["pc_success"] * t["n_episodes"] / 100)
    return int(wins), int(t["n_episodes"])

def summarize(args: CompareSettings, offline: dict[str, dict[str, Any]], evals: dict[str, dict[str, Path]],
              minutes: dict[str, float]) -> dict[str, Any]:
    """Per objective: the final validation flow losses, PSNR / SSIM per seed, and closed-loop success pooled over
    seeds (overall with a 95 % Wilson interval, and per task).

    Args:
        args: the comparison's settings.
        offline: run name → ``{"objective", "seed", "curve", "n_val_clips", "imagination"}``.
        evals: run name → policy → folder holding ``eval_info.json``.
        minutes: stage name → minutes it took.
    """
    per_objective: dict[str, Any] = {}
    for objective in args.objectives:
        names = [run_name(objective, s) for s in args.seeds]
        final = {verb: [offline[n]["curve"][-1][verb]["flow"] for n in names] for verb in ("dynamics", "policy")}
        row: dict[str, Any] = {
            "val_flow_dynamics": final["dynamics"], "val_flow_policy": final["policy"],
            "psnr": [offline[n]["imagination"]["psnr"] for n in names],
            "ssim": [offline[n]["imagination"]["ssim"] for n in names],
        }
        for policy in POLICIES:
            infos = [json.loads((evals[n][policy] / "eval_info.json").read_text()) for n in names
                     if policy in evals[n]]
            if not infos:
                continue
            per_task = {}
            for task in args.tasks:
                counts = [successes(i, task) for i in infos]
                per_task[task] = {"successes": sum(c[0] for c in counts), "episodes": sum(c[1] for c in counts)}
            wins = sum(t["successes"] for t in per_task.values())
            n = sum(t["episodes"] for t in per_task.values())
            low, high = wilson_interval(wins, n)
            row[policy] = {"successes": wins, "episodes": n, "pc_success": 100 * wins / n,
                           "ci95": [100 * low, 100 * high], "per_task": per_task,
                           "decision_ms_p50": float(np.median([i["overall"]["decision_ms_p50"] for i in infos]))}
        per_objective[objective] = row
    return {"per_objective": per_objective, "runs": offline, "train_minutes": minutes,
            "settings": asdict(args),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}"}


def mean_std(values: list[float], fmt: str) -> str:
    """``mean ± std`` over seeds (the value alone for one seed)."""
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(float(np.mean(values)), fmt)} ± {format(float(np.std(values, ddof=1)), fmt)}"


def write_table(summary: dict[str, Any], args: CompareSettings, out: Path, command: str) -> Path:
    """Write ``<out>/results.md``: the summary table, success per task, and one row per run."""
    lines = [
        "# Self-Flow vs flow matching", "",
        f"`{command}`", "",
        f"Model `{args.model}`, {args.steps} fine-tuning steps from scratch, batch 16, seeds {args.seeds} "
        f"(mean ± std over seeds); {args.episodes} training episodes, held-out: {args.val_episodes} episodes "
        f"({summary['runs'][run_name(args.objectives[0], args.seeds[0])]['n_val_clips']} clips). "
        f"Machine: {summary['machine']}.", "",
        "| objective | val flow loss, dynamics | val flow loss, policy | PSNR dB (dynamics, "
        f"{args.horizon} steps) | SSIM | dit success | planner success |",
        "|---|---|---|---|---|---|---|",
    ]
    for objective, row in summary["per_objective"].items():
        cells = [LABELS.get(objective, objective), mean_std(row["val_flow_dynamics"], ".4f"),
                 mean_std(row["val_flow_policy"], ".4f"), mean_std(row["psnr"], ".2f"), mean_std(row["ssim"], ".3f")]
        for policy in POLICIES:
            p = row.get(policy)
            cells.append("—" if p is None else
                         f"{p['successes']}/{p['episodes']} = {p['pc_success']:.1f} % "
                         f"[{p['ci95'][0]:.1f}, {p['ci95'][1]:.1f}]")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Success per task (successes / episodes, pooled over seeds):", "",
              "| objective | policy | " + " | ".join(args.tasks) + " |", "|---|---|" + "---|" * len(args.tasks)]
    for objective, row in summary["per_objective"].items():
        for policy in POLICIES:
            if policy in row:
                t = row[policy]["per_task"]
                lines.append(f"| {LABELS.get(objective, objective)} | {policy} | "
                             + " | ".join(f"{t[k]['successes']}/{t[k]['episodes']}" for k in args.tasks) + " |")
    lines += ["", "Per run (final checkpoint):", "",
              "| run | val flow dynamics | val flow policy | PSNR | SSIM | train minutes |",
              "|---|---|---|---|---|---|"]
    for name, run in summary["runs"].items():
        last = run["curve"][-1]
        minutes = summary["train_minutes"].get(f"train {name}")
        lines.append(f"| {name} | {last['dynamics']['flow']:.4f} | {last['policy']['flow']:.4f} | "
                     f"{run['imagination']['psnr']:.2f} | {run['imagination']['ssim']:.3f} | "
                     f"{'—' if minutes is None else f'{minutes:.1f}'} |")
    lines += ["", "![Self-Flow vs flow matching](compare_objectives.png)", ""]
    path = out / "results.md"
    path.write_text("\n".join(lines))
    return path


def plot(summary: dict[str, Any], args: CompareSettings, out: Path) -> Path:
    """Write ``<out>/compare_objectives.png``: held-out flow loss over steps (two verbs), PSNR per imagined step,
    and closed-loop success with 95 % intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    for run in summary["runs"].values():
        objective = run["objective"]
        steps = [row["step"] for row in run["curve"]]
        for ax, verb in zip(axes[:2], ("dynamics", "policy"), strict=True):
            ax.plot(steps, [row[verb]["flow"] for row in run["curve"]], color=COLORS.get(objective), marker="o",
                    ms=3, label=f"{LABELS.get(objective, objective)}, seed {run['seed']}",
                    linestyle="-" if run["seed"] == args.seeds[0] else "--")
        axes[2].plot(range(1, args.horizon + 1), run["imagination"]["psnr_per_step"], color=COLORS.get(objective),
                     marker="o", linestyle="-" if run["seed"] == args.seeds[0] else "--",
                     label=f"{LABELS.get(objective, objective)}, seed {run['seed']}")
    for ax, verb in zip(axes[:2], ("dynamics", "policy"), strict=True):
        ax.set(title=f"held-out flow loss, {verb} verb", xlabel="training step", ylabel="vanilla FM loss")
        ax.legend(fontsize=7)
    axes[2].set(title="imagined vs real (dynamics, open loop)", xlabel="future step", ylabel="PSNR (dB)")
    axes[2].legend(fontsize=7)
    width, x = 0.38, np.arange(2)
    for i, (objective, row) in enumerate(summary["per_objective"].items()):
        rates, errs = [], [[], []]
        for policy in POLICIES:
            p = row.get(policy, {"pc_success": 0.0, "ci95": [0.0, 0.0]})
            rates.append(p["pc_success"])
            errs[0].append(max(0.0, p["pc_success"] - p["ci95"][0]))
            errs[1].append(max(0.0, p["ci95"][1] - p["pc_success"]))
        axes[3].bar(x + (i - 0.5) * width, rates, width, yerr=errs, capsize=3, color=COLORS.get(objective),
                    label=LABELS.get(objective, objective))
    axes[3].set(title=f"closed-loop success, {len(args.tasks)} tasks (95 % CI)", xticks=x, xticklabels=POLICIES,
                ylabel="success (%)", ylim=(0, 100))
    axes[3].legend(fontsize=7)
    fig.tight_layout()
    path = out / "compare_objectives.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
