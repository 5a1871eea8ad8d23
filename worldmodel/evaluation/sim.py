"""``worldmodel eval sim``: run a policy closed-loop on the tabletop tasks and write ``eval_info.json``.

The output follows LeRobot's ``eval_info.json`` shape: ``per_episode`` records and ``per_task.<Task>`` aggregates
(``pc_success``, ``n_success``, ``n_episodes``, a 95 % Wilson interval and per-stage success rates), plus ``overall``.
"""

from __future__ import annotations

import json
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from worldmodel.evaluation.config import EvalConfig
from worldmodel.evaluation.stats import wilson_interval
from worldmodel.validation import check_writable_dir


@dataclass
class EpisodeResult:
    """One evaluated episode."""

    task: str
    seed: int
    instruction: str
    success: bool
    stages_completed: int
    num_stages: int
    steps: int
    wall_time_s: float
    truncation_reason: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def run_episode(task: str, seed: int, policy_cfg: dict[str, Any], image_size: tuple[int, int],
                video_path: str | None = None) -> EpisodeResult:
    """Roll out one episode of ``task`` from ``seed`` with the policy described by ``policy_cfg``."""
    import envs
    from policies import make_policy

    env = envs.make(task, image_size=image_size)
    kwargs = {k: v for k, v in policy_cfg.items() if k != "name"}
    policy = make_policy(policy_cfg["name"], env=env, **kwargs)
    frames: list[np.ndarray] = []
    start = time.perf_counter()
    obs, info = env.reset(seed=seed)
    policy.reset(seed=seed)
    steps, done = 0, False
    while not done:
        if video_path is not None:
            frames.append(_video_frame(policy, obs))
        obs, _, terminated, truncated, info = env.step(policy.select_action(obs))
        steps += 1
        done = terminated or truncated
    if video_path is not None:
        frames.append(_video_frame(policy, obs))
        _write_video(video_path, frames)
    env.close()
    extras = policy.episode_stats() if hasattr(policy, "episode_stats") else {}
    return EpisodeResult(task=task, seed=seed, instruction=info["instruction"], success=bool(info["is_success"]),
                         stages_completed=int(info["stages_completed"]), num_stages=int(info["num_stages"]),
                         steps=steps, wall_time_s=time.perf_counter() - start,
                         truncation_reason=info.get("truncation_reason"), extras=extras)


def _video_frame(policy: Any, obs: dict[str, Any]) -> np.ndarray:
    # Policies that imagine (the planner) show the real camera beside their imagined future.
    if hasattr(policy, "video_frame"):
        return policy.video_frame(obs)
    return obs["image"]


def _write_video(path: str, frames: list[np.ndarray]) -> None:
    import imageio.v2 as imageio

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{path}.tmp.mp4"
    imageio.mimsave(tmp, frames, fps=3, macro_block_size=1)
    os.replace(tmp, path)


def _run_job(job: tuple) -> EpisodeResult:
    return run_episode(*job)


def aggregate(results: list[EpisodeResult], stage_names: dict[str, list[str]]) -> dict[str, Any]:
    """Per-task and overall success counts (``n_success`` of ``n_episodes``) and rates with 95 % Wilson intervals
    (percentages), plus decision latency
    p50 / p95 (ms) over all decisions when the policy reports them (``episode_stats()["decision_ms"]``), and the
    planner's ranking quality (``ranking``: mean Spearman, top-1, regret, PSNR, SSIM, action correlation over all
    decisions) when it recorded one (``planner.diagnostics``)."""
    per_task: dict[str, Any] = {}
    for task in dict.fromkeys(r.task for r in results):
        rs = [r for r in results if r.task == task]
        n, k = len(rs), sum(r.success for r in rs)
        lo, hi = wilson_interval(k, n)
        names = stage_names[task]
        per_task[task] = {
            "pc_success": 100.0 * k / n,
            "n_success": k,
            "n_episodes": n,
            "ci95": [100.0 * lo, 100.0 * hi],
            "stage_names": names,
            "pc_stage_success": {name: 100.0 * sum(r.stages_completed > i for r in rs) / n
                                 for i, name in enumerate(names)},
            "avg_steps": float(np.mean([r.steps for r in rs])),
            "avg_wall_time_s": float(np.mean([r.wall_time_s for r in rs])),
            **_latency(rs),
            **_ranking(rs),
        }
    n, k = len(results), sum(r.success for r in results)
    lo, hi = wilson_interval(k, n)
    return {"per_task": per_task, "overall": {"pc_success": 100.0 * k / n, "n_success": k, "n_episodes": n,
                                              "ci95": [100.0 * lo, 100.0 * hi], **_latency(results),
                                              **_ranking(results)}}


def _latency(results: list[EpisodeResult]) -> dict[str, Any]:
    # Policies that decide with a model report per-decision latencies (ms) in their episode extras.
    ms = [x for r in results for x in r.extras.get("decision_ms", [])]
    if not ms:
        return {}
    return {"decision_ms_p50": float(np.percentile(ms, 50)), "decision_ms_p95": float(np.percentile(ms, 95)),
            "n_decisions": len(ms)}


def _ranking(results: list[EpisodeResult]) -> dict[str, Any]:
    # The planner with `planner.diagnostics` ranks its candidates against the true simulator at every decision
    # (extras["ranking"], worldmodel.planner.ranking): means over all decisions.
    from worldmodel.planner.ranking import pool

    pooled = pool([r.extras.get("ranking") or {} for r in results])
    return {"ranking": pooled} if pooled else {}


EPISODE_LOG = "episodes.jsonl"


def _log_header(policy_cfg: dict[str, Any], cfg: EvalConfig) -> dict[str, Any]:
    # What makes two runs' episodes interchangeable: the policy and what it sees. Tasks, seeds and episode counts
    # may differ (a resumed run may ask for more episodes); the (task, seed) of every line says which job it was.
    return {"policy": policy_cfg, "image_size": list(cfg.image_size)}


def _read_episode_log(path: Path, header: dict[str, Any]) -> dict[tuple[str, int], EpisodeResult]:
    """The finished episodes of an earlier run of the same evaluation, by (task, seed).

    A last line cut short (the run was killed while writing it) is dropped; any other unreadable line, or a header
    from other policy settings, is an error naming the file.
    """
    text = path.read_text()
    lines = text.splitlines()
    if not lines:
        return {}
    try:
        first = json.loads(lines[0])["header"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: first line is not an episode-log header; delete the file or choose another "
                         "eval.out") from exc
    if first != header:
        differ = sorted(k for k in {*first, *header} if first.get(k) != header.get(k))
        if "policy" in differ:
            pf, ph = first.get("policy") or {}, header["policy"]
            differ += [f"policy.{k}" for k in sorted({*pf, *ph}) if pf.get(k) != ph.get(k)]
        raise ValueError(f"{path} holds episodes of other settings ({', '.join(differ)}): eval.resume=true continues "
                         "only the same evaluation; choose another eval.out or eval.resume=false")
    done: dict[tuple[str, int], EpisodeResult] = {}
    for i, line in enumerate(lines[1:], start=2):
        try:
            result = EpisodeResult(**json.loads(line))
        except (ValueError, TypeError) as exc:
            if i == len(lines):  # cut short by a kill mid-write: that episode runs again
                lines.pop()
                break
            raise ValueError(f"{path}, line {i}: not an episode record ({exc})") from exc
        done[(result.task, result.seed)] = result
    if not text.endswith("\n"):  # drop the cut line (or end the last one) before anything is appended
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in lines))
        os.replace(tmp, path)
    return done


def _append_line(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def evaluate(cfg: EvalConfig, policy_cfg: dict[str, Any], show_progress: bool = True) -> dict[str, Any]:
    """Evaluate a policy on every task in ``cfg`` and write ``<out>/eval_info.json``; returns its content.

    ``out`` is checked for writability first and created only by the first file written into it, so an
    evaluation that fails before its first episode (a missing checkpoint, a bad policy setting) leaves nothing.
    Every finished episode is appended to ``<out>/episodes.jsonl`` at once, so a stopped evaluation loses only its
    running episodes: ``eval.resume=true`` runs the rest (the records, and so ``eval_info.json``, are the same as
    those of an uninterrupted run, except wall times).
    """
    from envs.tasks import TASK_CLASSES

    out = check_writable_dir(cfg.out, "eval.out")
    log, header = out / EPISODE_LOG, _log_header(policy_cfg, cfg)
    done = _read_episode_log(log, header) if cfg.resume and log.is_file() else {}
    jobs, keys = [], []
    for task in cfg.tasks:
        for i in range(cfg.episodes):
            seed = cfg.seed + i
            keys.append((task, seed))
            if (task, seed) in done:
                continue
            video = str(out / "videos" / f"{task}_seed{seed}.mp4") if cfg.videos else None
            jobs.append((task, seed, policy_cfg, cfg.image_size, video))
    start = time.perf_counter()
    results = {key: done[key] for key in keys if key in done}
    bar = tqdm(total=len(keys), initial=len(results), desc=f"eval {policy_cfg['name']}", unit="ep",
               disable=not show_progress)
    with ExitStack() as stack:
        stack.callback(bar.close)  # also on errors, so that the error message starts a line of its own
        if cfg.workers == 1 or len(jobs) <= 1:
            episodes = map(_run_job, jobs)
        else:  # in the order they finish, so that a stop loses only the running ones
            pool = stack.enter_context(ProcessPoolExecutor(cfg.workers, mp_context=get_context("spawn")))
            episodes = (f.result() for f in as_completed([pool.submit(_run_job, job) for job in jobs]))
        for result in episodes:
            if not results:  # a fresh log, begun with the first episode so that a run failing before it leaves nothing
                log.unlink(missing_ok=True)
                _append_line(log, {"header": header})
            _append_line(log, asdict(result))
            results[(result.task, result.seed)] = result
            bar.update()
            bar.set_postfix(success=f"{np.mean([r.success for r in results.values()]):.2f}")
    ordered = [results[key] for key in keys]
    stage_names = {t: list(TASK_CLASSES[t].stage_names) for t in cfg.tasks}
    info = {
        "policy": policy_cfg,
        "eval": asdict(cfg),
        **aggregate(ordered, stage_names),
        "per_episode": [asdict(r) for r in ordered],
        "wall_time_s": time.perf_counter() - start,
        "resumed_episodes": len(keys) - len(jobs),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count()},
    }
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "eval_info.json.tmp"
    tmp.write_text(json.dumps(info, indent=2))
    os.replace(tmp, out / "eval_info.json")
    return info


def format_table(info: dict[str, Any]) -> str:
    """A markdown table of per-task success (with 95 % intervals and stages)."""
    lines = ["| task | success % | 95 % CI | stages (% reached) | episodes |", "|---|---|---|---|---|"]
    for task, t in info["per_task"].items():
        stages = ", ".join(f"{k} {v:.0f}" for k, v in t["pc_stage_success"].items())
        lines.append(f"| {task} | {t['pc_success']:.1f} | {t['ci95'][0]:.1f}–{t['ci95'][1]:.1f} | {stages} "
                     f"| {t['n_episodes']} |")
    o = info["overall"]
    lines.append(f"| **all** | {o['pc_success']:.1f} | {o['ci95'][0]:.1f}–{o['ci95'][1]:.1f} | | {o['n_episodes']} |")
    return "\n".join(lines)


def run(cfg: DictConfig) -> int:
    """CLI entry point of ``worldmodel eval sim``."""
    eval_cfg = EvalConfig(**OmegaConf.to_container(cfg.eval, resolve=True))
    # Model policies read the top-level `checkpoint` through their own yaml (`${oc.select:checkpoint,null}`).
    policy_cfg = OmegaConf.to_container(cfg.policy, resolve=True)
    if policy_cfg["name"] == "planner" and "planner" in cfg:  # the search settings are their own group
        policy_cfg["planner"] = OmegaConf.to_container(cfg.planner, resolve=True)
    info = evaluate(eval_cfg, policy_cfg)
    print(format_table(info))
    print(f"wrote {Path(eval_cfg.out) / 'eval_info.json'}")
    return 0
