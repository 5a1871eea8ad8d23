"""`worldmodel data sim` with the real MuJoCo envs and experts: written episodes read back unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from worldmodel.cli import main
from worldmodel.data import open_rlds
from worldmodel.data.sim import rollout

envs = pytest.importorskip("envs")
TASKS = ("PickCan", "OpenDrawer")
MAX_STEPS = 4
JITTER = (0.1, 0.12, 0.05)  # wider than the env's default: the round trip below fails if it were ignored


@pytest.fixture(scope="module")
def sim_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    code = main(["data", "sim", f"out={out}", "episodes=3", f"tasks=[{','.join(TASKS)}]", "seed=7",
                 f"max_steps={MAX_STEPS}", "image_size=[64,80]", "policy.noise=0.05", "progress=false",
                 f"start_jitter=[{','.join(map(str, JITTER))}]"])
    assert code == 0
    return out / "tabletop_sim" / "0.1.0"


def test_sim_round_trip_equals_rollouts(sim_dataset):
    ds = open_rlds(sim_dataset)
    assert ds.num_episodes == 3
    for i, read in enumerate(ds.episodes()):
        task = TASKS[i % len(TASKS)]
        ep = rollout(task, 7 + i, "scripted", 0.05, (64, 80), MAX_STEPS, JITTER)  # seeded: the same episode again
        steps, t = read["steps"], len(ep.images)
        assert len(steps["is_first"]) == t <= MAX_STEPS + 1
        acts = np.concatenate([steps["action"][k] for k in ("world_vector", "rotation_delta",
                                                            "gripper_closedness_action")], 1)
        np.testing.assert_allclose(acts[:-1], ep.actions, atol=1e-6)
        np.testing.assert_array_equal(steps["action"]["terminate_episode"][-1], [1, 0, 0])
        np.testing.assert_allclose(steps["observation"]["base_pose_tool_reached"], ep.base_pose_tool_reached,
                                   atol=1e-6)
        np.testing.assert_array_equal(steps["observation"]["natural_language_embedding"][0], ep.language)
        assert steps["observation"]["natural_language_instruction"][0].decode() == ep.instruction
        assert read["attributes"]["env_name"].decode() == envs.env_id(task)
        assert steps["observation"]["image"].shape == (t, 256, 320, 3)
        err = np.abs(steps["observation"]["image"][:, ::4, ::4].astype(float)
                     - np.asarray(ep.images, float)).mean()
        assert err < 8  # 64x80 → 256x320 → JPEG → every 4th pixel: resampling + JPEG tolerance


def test_bad_config_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["data", "sim", f"out={tmp_path}", "tasks=[NoSuchTask]"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tasks" in err[0] and "NoSuchTask" in err[0]
    assert main(["data", "sim", f"out={tmp_path}", "episodes=0"]) == 2
    capsys.readouterr()
    assert main(["data", "sim", f"out={tmp_path}", "start_jitter=[0.1,0.5,0]"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "start_jitter" in err[0]


def test_tensorflow_and_mujoco_rendering_share_a_process():
    """A plain `import tensorflow` next to an EGL renderer segfaults (LLVM clash); tf_compat avoids it."""
    import subprocess
    import sys

    code = (
        "import envs\n"
        "env = envs.make('PickCan', image_size=(32, 40))\n"
        "env.reset(seed=0)\n"  # renderer (and Mesa's LLVM) first...
        "from worldmodel.data.tf_compat import import_tensorflow\n"
        "tf = import_tensorflow()\n"  # ...then TensorFlow...
        "assert int(tf.constant(1) + 1) == 2\n"
        "env2 = envs.make('OpenDrawer', image_size=(32, 40))\n"
        "print(env2.reset(seed=0)[0]['image'].shape)\n"  # ...then a new renderer
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "(32, 40, 3)" in out.stdout


class _Still:
    """A stand-in driver that never moves the arm and holds the gripper."""

    def reset(self, seed=None):
        self.calls = 0

    def select_action(self, obs):
        self.calls += 1
        return np.zeros(7, np.float32)


def test_dagger_driver_acts_and_the_expert_labels(monkeypatch):
    from worldmodel.data import sim

    still = _Still()
    monkeypatch.setitem(sim._DRIVERS, "still", still)
    driven = rollout("PickCan", 7, "scripted", 0.0, (64, 80), 6, None, driver="still", driver_beta=0.0)
    assert still.calls == 6  # asked every step
    # the driver executes: the arm stays where it started ...
    np.testing.assert_allclose(driven.base_pose_tool_reached, driven.base_pose_tool_reached[:1].repeat(7, 0),
                               atol=2e-3)
    # ... while the recorded actions are the expert's, which keep heading for the can from there
    assert np.all(np.linalg.norm(driven.actions[:, :3], axis=1) > 0.01)
    assert "dit driver still beta=0" in driven.collection_mode
    # beta 1 executes every label: the expert's own episode, step for step
    labelled = rollout("PickCan", 7, "scripted", 0.0, (64, 80), 6, None, driver="still", driver_beta=1.0)
    alone = rollout("PickCan", 7, "scripted", 0.0, (64, 80), 6, None)
    np.testing.assert_array_equal(labelled.actions, alone.actions)
    np.testing.assert_array_equal(labelled.images, alone.images)


def test_dagger_driver_from_a_checkpoint(tmp_path, capsys, write_tiny_checkpoint):
    ckpt = write_tiny_checkpoint(tmp_path / "run")
    out = tmp_path / "data"
    common = [f"out={out}", "episodes=1", "tasks=[PickCan]", "max_steps=3", "image_size=[64,80]", "progress=false"]
    assert main(["data", "sim", *common, f"policy.driver={ckpt}", "policy.driver_beta=0.5"]) == 0
    ds = open_rlds(out / "tabletop_sim" / "0.1.0")
    assert ds.num_episodes == 1
    capsys.readouterr()
    assert main(["data", "sim", *common, "overwrite=true", f"policy.driver={tmp_path / 'nowhere'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nowhere" in err[0]
    assert main(["data", "sim", *common, "overwrite=true", f"policy.driver={ckpt}", "policy.driver_beta=2"]) == 2
    assert "policy.driver_beta" in capsys.readouterr().err
