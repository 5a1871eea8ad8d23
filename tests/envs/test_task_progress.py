"""Dense task progress ``info["progress"]``: bounded by the stages, rising along the expert's successful episodes."""

from __future__ import annotations

import numpy as np
import pytest

import envs
from policies import make_policy

SMALL = (16, 20)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    def ranks(v: np.ndarray) -> np.ndarray:
        order = np.argsort(v, kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(len(v), dtype=float)
        for value in np.unique(v):  # ties share their mean rank
            tied = v == value
            r[tied] = r[tied].mean()
        return r

    return float(np.corrcoef(ranks(np.asarray(x, float)), ranks(np.asarray(y, float)))[0, 1])


def expert_episode(task: str, seed: int) -> list[dict]:
    env = envs.make(task, image_size=SMALL)
    policy = make_policy("scripted", env=env)
    obs, info = env.reset(seed=seed)
    policy.reset(seed=seed)
    infos, done = [info], False
    while not done:
        obs, _, terminated, truncated, info = env.step(policy.select_action(obs))
        infos.append(info)
        done = terminated or truncated
    return infos


@pytest.mark.parametrize("task", envs.TASKS)
def test_progress_rises_along_the_experts_successful_episode(task):
    infos = expert_episode(task, seed=11)
    progress = np.array([i["progress"] for i in infos])
    stages = np.array([i["stages_completed"] for i in infos])
    n = infos[-1]["num_stages"]
    assert infos[-1]["is_success"]
    assert progress[-1] == n  # exactly num_stages at success
    assert progress[-1] > progress[0]
    assert spearman(np.arange(len(progress)), progress) > 0.5
    # Bounded by the stage count: stages <= progress < stages + 1 until success.
    assert np.all(progress >= stages) and np.all(progress[:-1] < stages[:-1] + 1)
    assert np.all((progress >= 0) & (progress <= n))
    # Completing a stage never lowers it.
    advanced = np.diff(stages) > 0
    assert advanced.any()
    assert np.all(np.diff(progress)[advanced] > 0)


def test_progress_follows_the_state():
    env = envs.make("MoveNear", image_size=SMALL)
    _, info = env.reset(seed=0)
    u = env.unwrapped
    src, tgt = u.task.params["source"], u.task.params["target"]
    before = u.progress()
    assert before == info["progress"] and 0.0 <= before < 1.0
    # Halfway towards the target (not yet near) is more progress than at reset.
    s, t = u.object_pos(src), u.object_pos(tgt)
    u.set_object_position(src, np.array([*(s[:2] + 0.5 * (t[:2] - s[:2])), s[2]]))
    assert before < u.progress() < 1.0

    for task, openings in (("OpenDrawer", (0.0, 0.05, 0.10)), ("CloseDrawer", (0.20, 0.12, 0.06))):
        env = envs.make(task, image_size=SMALL)
        env.reset(seed=1)
        u = env.unwrapped
        values = []
        for opening in openings:
            u.set_drawer_opening(u.task.params["drawer"], opening)
            values.append(u.progress())
        assert values == sorted(values) and values[0] < values[-1] < 1.0, (task, values)


def test_progress_counts_the_stages_completed():
    env = envs.make("StoreApple", image_size=SMALL)
    env.reset(seed=1)
    u = env.unwrapped
    drawer = u.task.params["drawer"]
    u.set_drawer_opening(drawer, 0.20)
    _, _, _, _, info = env.step(np.zeros(7, dtype=np.float32))
    assert info["stages_completed"] == 1 and 1.0 <= info["progress"] < 2.0
    u.set_object_position("apple", u.drawer_pos(drawer) + [0.10, 0.0, 0.05])
    _, _, _, _, info = env.step(np.zeros(7, dtype=np.float32))
    assert info["stages_completed"] == 2 and 2.0 <= info["progress"] < 3.0
