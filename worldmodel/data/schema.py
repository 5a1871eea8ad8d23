"""The RT-1 ``fractal20220817_data`` feature spec: the one source of truth for writing and checking datasets.

Checked against the TFDS catalog page of ``fractal20220817_data`` 0.1.0 (111.38 GiB, 87,212 train episodes):
top level ``aspects`` (5 bools), ``attributes`` (6 int64 + 6 string), ``steps`` (a nested ``Dataset`` of
``action`` (6 keys), ``is_first``/``is_last``/``is_terminal``, ``observation`` (14 keys), ``reward``).

:func:`features` builds the tfds ``FeaturesDict`` used by the writer; :func:`diff_features` compares any
``FeaturesDict`` (e.g. ``builder.info.features`` of a directory being read) with it and names every missing or
extra key and every shape, dtype or feature-type mismatch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DATASET_NAME = "fractal20220817_data"
VERSION = "0.1.0"
IMAGE_SHAPE = (256, 320, 3)  # (H, W, C) of steps/observation/image, JPEG-encoded
EMBEDDING_DIM = 512
ACTION_DIM = 7  # world_vector (3) + rotation_delta (3) + gripper_closedness_action (1): what the model sees

# Names and order of the 7 model action dims (docs/architecture.md, "Actions and pixels").
ACTION_KEYS: tuple[tuple[str, int], ...] = (
    ("world_vector", 3),
    ("rotation_delta", 3),
    ("gripper_closedness_action", 1),
)

# Physical range of each model action key (RT-1's action spec: metres / radians per step, gripper command), and
# how far past it a value may lie before the data is called corrupt: RT-1's values stay inside the range, so a
# value beyond twice the bound (e.g. 1e30) is damage, not motion, and would ruin the normalisation quantiles.
ACTION_BOUNDS: dict[str, float] = {"world_vector": 1.0, "rotation_delta": float(np.pi / 2),
                                   "gripper_closedness_action": 1.0}
ACTION_BOUND_MARGIN = 2.0

# Terminate one-hot as in RT-1: index 0 = "terminate", 1 = "continue", 2 = unused.
TERMINATE_RUNNING = np.array([0, 1, 0], dtype=np.int32)
TERMINATE_LAST = np.array([1, 0, 0], dtype=np.int32)

# (shape, dtype, description) of every leaf, in catalog order. ``"image"`` marks the JPEG Image feature and
# ``"scalar"`` the Scalar feature (reward); everything else is a plain Tensor.
_ASPECTS = {k: ((), "bool", "")
            for k in ("already_success", "feasible", "has_aspects", "success", "undesirable")}
_ATTRIBUTES = {
    f"{base}{suffix}": ((), dtype, "")
    for base in ("collection_mode", "data_type", "env", "location", "objects_family", "task_family")
    for suffix, dtype in (("", "int64"), ("_name", "string"))
}
_ACTION = {
    "base_displacement_vector": ((2,), "float32", ""),
    "base_displacement_vertical_rotation": ((1,), "float32", ""),
    "gripper_closedness_action": ((1,), "float32", "continuous gripper position"),
    "rotation_delta": ((3,), "float32", "rpy commanded orientation displacement, in base-relative frame"),
    "terminate_episode": ((3,), "int32", ""),
    "world_vector": ((3,), "float32", "commanded end-effector displacement, in base-relative frame"),
}
_OBSERVATION = {
    "base_pose_tool_reached": ((7,), "float32", "end-effector base-relative position+quaternion pose"),
    "gripper_closed": ((1,), "float32", ""),
    "gripper_closedness_commanded": ((1,), "float32", "continuous gripper position"),
    "height_to_bottom": ((1,), "float32", "height of end-effector from ground"),
    "image": (IMAGE_SHAPE, "image", ""),
    "natural_language_embedding": ((EMBEDDING_DIM,), "float32", ""),
    "natural_language_instruction": ((), "string", ""),
    "orientation_box": ((2, 3), "float32", ""),
    "orientation_start": ((4,), "float32", ""),
    "robot_orientation_positions_box": ((3, 3), "float32", ""),
    "rotation_delta_to_go": ((3,), "float32", "rotational displacement from current orientation to target"),
    "src_rotation": ((4,), "float32", ""),
    "vector_to_go": ((3,), "float32", "displacement from current end-effector position to target"),
    "workspace_bounds": ((3, 3), "float32", ""),
}
OBSERVATION_KEYS = tuple(_OBSERVATION)


def features() -> Any:
    """Build the fractal20220817_data feature spec.

    Returns:
        ``tfds.features.FeaturesDict`` with keys ``aspects``, ``attributes``, ``steps``, as the release.
    """
    from worldmodel.data.tf_compat import import_tensorflow, import_tfds

    tf, tfds = import_tensorflow(), import_tfds()
    tf_dtype = {"bool": tf.bool, "int64": tf.int64, "int32": tf.int32, "float32": tf.float32,
                "string": tf.string}

    def leaf(spec: tuple[tuple[int, ...], str, str]) -> Any:
        shape, dtype, doc = spec
        if dtype == "image":
            return tfds.features.Image(shape=shape, dtype=np.uint8, encoding_format="jpeg")
        return tfds.features.Tensor(shape=shape, dtype=tf_dtype[dtype], doc=doc or None)

    def group(specs: dict[str, tuple[tuple[int, ...], str, str]], doc: str | None = None) -> Any:
        return tfds.features.FeaturesDict({k: leaf(v) for k, v in specs.items()}, doc=doc)

    step = tfds.features.FeaturesDict({
        "action": group(_ACTION),
        "is_first": tfds.features.Tensor(shape=(), dtype=tf.bool),
        "is_last": tfds.features.Tensor(shape=(), dtype=tf.bool),
        "is_terminal": tfds.features.Tensor(shape=(), dtype=tf.bool),
        "observation": group(_OBSERVATION),
        "reward": tfds.features.Scalar(dtype=tf.float32),
    })
    return tfds.features.FeaturesDict({
        "aspects": group(_ASPECTS, doc="Session Aspects for crowdcompute ratings"),
        "attributes": group(_ATTRIBUTES),
        "steps": tfds.features.Dataset(step),
    })


def flatten_spec(feature: Any, prefix: str = "") -> dict[str, tuple[str, tuple, str]]:
    """Flatten a tfds feature tree to ``{"steps/observation/image": (kind, shape, dtype)}``.

    ``kind`` is ``"image"`` for Image features, ``"tensor"`` otherwise (Tensor, Scalar and Text all store a
    plain tensor); ``steps`` is descended into without adding a sequence dimension.
    """
    from worldmodel.data.tf_compat import import_tfds

    tfds = import_tfds()
    out: dict[str, tuple[str, tuple, str]] = {}
    if isinstance(feature, tfds.features.FeaturesDict):
        for key, sub in feature.items():
            out.update(flatten_spec(sub, f"{prefix}{key}/"))
        return out
    if isinstance(feature, tfds.features.Dataset | tfds.features.Sequence):
        return flatten_spec(feature.feature, prefix)
    name = prefix.rstrip("/")
    kind = "image" if isinstance(feature, tfds.features.Image) else "tensor"
    dtype = np.dtype(feature.np_dtype).name if kind == "image" else _dtype_name(feature)
    out[name] = (kind, tuple(int(d) if d is not None else -1 for d in feature.shape), dtype)
    return out


def _dtype_name(feature: Any) -> str:
    dtype = feature.np_dtype
    if dtype is object or np.dtype(dtype).kind in "OSU":
        return "string"
    return np.dtype(dtype).name


def expected_spec() -> dict[str, tuple[str, tuple, str]]:
    """The flattened spec of :func:`features`, without building TF objects twice per call site."""
    return flatten_spec(features())


def diff_features(actual: Any, expected: dict[str, tuple[str, tuple, str]] | None = None,
                  required: tuple[str, ...] | None = None) -> list[str]:
    """Compare a feature tree with the fractal spec.

    Args:
        actual: a tfds ``FeaturesDict`` (e.g. ``builder.info.features``).
        expected: flattened spec to compare with (default: :func:`expected_spec`).
        required: if given, only these flattened keys must exist and match; extra keys are allowed
            (for reading other RLDS datasets that carry at least what the loader needs).

    Returns:
        One line per problem (``"missing key steps/observation/image"``, ``"extra key ..."``,
        ``"steps/action/world_vector: shape (4,) != expected (3,)"``); empty if the trees match.
    """
    expected = expected_spec() if expected is None else expected
    got = flatten_spec(actual)
    keys = list(expected) if required is None else [k for k in expected if k in required]
    problems = [f"missing key {k}" for k in keys if k not in got]
    if required is None:
        problems += [f"extra key {k}" for k in got if k not in expected]
    for k in keys:
        if k not in got:
            continue
        (ek, es, ed), (gk, gs, gd) = expected[k], got[k]
        if ek != gk:
            problems.append(f"{k}: feature type {gk} != expected {ek}")
        if es != gs and not (required is not None and ek == "image"):  # the loader resizes any image size
            problems.append(f"{k}: shape {gs} != expected {es}")
        if ed != gd:
            problems.append(f"{k}: dtype {gd} != expected {ed}")
    return problems


# What the clip loader needs from any RLDS dataset (non-strict mode, e.g. other OXE datasets).
LOADER_KEYS: tuple[str, ...] = (
    "steps/observation/image",
    "steps/observation/natural_language_embedding",
    *(f"steps/action/{k}" for k, _ in ACTION_KEYS),
)
