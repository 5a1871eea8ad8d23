"""The fractal20220817_data spec and the validator that names every difference."""

from __future__ import annotations

import numpy as np

from worldmodel.data import schema
from worldmodel.data.tf_compat import import_tfds


def test_spec_matches_the_catalog_structure():
    spec = schema.expected_spec()
    obs = sorted(k.split("/")[-1] for k in spec if k.startswith("steps/observation/"))
    assert len(obs) == 14 and obs == sorted(schema.OBSERVATION_KEYS)
    assert sorted(k for k in spec if k.startswith("aspects/")) == [
        f"aspects/{k}" for k in ("already_success", "feasible", "has_aspects", "success", "undesirable")]
    assert len([k for k in spec if k.startswith("attributes/")]) == 12
    assert spec["steps/observation/image"] == ("image", (256, 320, 3), "uint8")
    assert spec["steps/action/terminate_episode"] == ("tensor", (3,), "int32")
    assert spec["steps/observation/orientation_box"] == ("tensor", (2, 3), "float32")
    assert spec["steps/observation/natural_language_instruction"] == ("tensor", (), "string")
    assert spec["steps/reward"] == ("tensor", (), "float32")
    assert spec["attributes/task_family"] == ("tensor", (), "int64")
    assert len(spec) == 5 + 12 + 6 + 3 + 14 + 1


def _modified_features():
    tfds = import_tfds()
    feats = schema.features()
    steps = dict(feats["steps"].feature)
    obs = dict(steps["observation"])
    del obs["gripper_closed"]
    obs["extra_camera"] = tfds.features.Tensor(shape=(2,), dtype=np.float32)
    obs["vector_to_go"] = tfds.features.Tensor(shape=(4,), dtype=np.float32)
    obs["height_to_bottom"] = tfds.features.Tensor(shape=(1,), dtype=np.float64)
    steps["observation"] = tfds.features.FeaturesDict(obs)
    return tfds.features.FeaturesDict({**dict(feats), "steps": tfds.features.Dataset(steps)})


def test_diff_names_every_problem():
    problems = schema.diff_features(_modified_features())
    assert "missing key steps/observation/gripper_closed" in problems
    assert "extra key steps/observation/extra_camera" in problems
    assert "steps/observation/vector_to_go: shape (4,) != expected (3,)" in problems
    assert "steps/observation/height_to_bottom: dtype float64 != expected float32" in problems
    assert len(problems) == 4
    assert schema.diff_features(schema.features()) == []


def test_non_strict_mode_only_checks_loader_keys():
    assert schema.diff_features(_modified_features(), required=schema.LOADER_KEYS) == []
