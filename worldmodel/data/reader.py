"""Open RLDS datasets from disk with ``tfds.builder_from_directory`` only, validated and streamed.

``tfds.builder(name)`` is never used: it resolves names through the tfds registry / cloud bucket and fails
offline. Everything here works on a plain local (or mounted) directory ``<dir>/<name>/<version>/``.
``open_rlds`` given several directories returns a :class:`ConcatRLDS`: their episodes one after the other.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from worldmodel.data import schema
from worldmodel.data.tf_compat import import_tensorflow, import_tfds

MAX_SPLIT_PIECES = 128


class DatasetError(ValueError):
    """A dataset directory exists but cannot be used (wrong schema, corrupt shard, bad values)."""


def configure_tensorflow() -> Any:
    """TensorFlow for data reading (see :mod:`worldmodel.data.tf_compat`): CPU only, 1 thread per pool."""
    return import_tensorflow()


def resolve_dataset_dir(path: str | Path, name: str | None = None, version: str | None = None) -> Path:
    """Find the tfds version directory (the one holding ``dataset_info.json``).

    Args:
        path: either the version directory itself or a root such that ``path/name/version`` is one.
        name, version: used when ``path`` is a root.

    Raises:
        FileNotFoundError: naming the path tried and the expected layout.
    """
    root = Path(path).expanduser()
    candidates = [root]
    if name:
        candidates.append(root / name / (version or schema.VERSION))
    for cand in candidates:
        if (cand / "dataset_info.json").is_file():
            return cand
    tried = " or ".join(str(c) for c in candidates)
    if not any(c.exists() for c in candidates):
        raise FileNotFoundError(f"RLDS dataset directory not found: {tried} (expected "
                                "<dir>/<name>/<version>/ holding dataset_info.json, features.json and "
                                "*.tfrecord-* shards)")
    raise FileNotFoundError(f"{tried}: no dataset_info.json, so not a tfds dataset directory "
                            "(point data.dir at the folder that contains <name>/<version>/)")


def verify_tfrecord_shard(path: Path, expected_records: int | None = None) -> None:
    """Walk a tfrecord file's record headers (length + CRC, no payload reads) to detect truncation.

    Record layout: uint64 length, uint32 CRC of length, ``length`` bytes, uint32 CRC of data.

    Raises:
        DatasetError: the file ends inside a record, or holds a different number of records than
            ``dataset_info.json`` says.
    """
    size = path.stat().st_size
    count, pos = 0, 0
    with open(path, "rb") as f:
        while pos < size:
            header = f.read(12)
            if len(header) < 12:
                raise DatasetError(f"{path}: truncated tfrecord shard: record {count} header cut at byte "
                                   f"{pos} of {size}")
            length = int.from_bytes(header[:8], "little")
            end = pos + 12 + length + 4
            if end > size:
                raise DatasetError(f"{path}: truncated tfrecord shard: record {count} needs {end} bytes, "
                                   f"file has {size}")
            f.seek(end)
            pos, count = end, count + 1
    if expected_records is not None and count != expected_records:
        raise DatasetError(f"{path}: holds {count} records, dataset_info.json says {expected_records} "
                           "(incomplete copy?)")


class RLDSDataset:
    """A validated, streaming view of one RLDS dataset directory (split ``train`` unless told otherwise).

    Attributes:
        path: the tfds version directory.
        builder: the ``tfds`` builder from ``builder_from_directory``.
        num_episodes: number of episodes in the split.
    """

    def __init__(self, path: Path, builder: Any, split: str = "train") -> None:
        self.path = path
        self.builder = builder
        self.split = split
        if split not in builder.info.splits:
            raise DatasetError(f"{path}: no split {split!r} (has {sorted(builder.info.splits)})")
        self.num_episodes = int(builder.info.splits[split].num_examples)

    @property
    def name(self) -> str:
        """Dataset name from ``dataset_info.json``."""
        return str(self.builder.info.name)

    @property
    def version(self) -> str:
        """Dataset version string."""
        return str(self.builder.info.version)

    def fingerprint(self) -> dict[str, Any]:
        """Identity of the data for caches: name, version, episode count, bytes, path."""
        return {"path": str(self.path), "name": self.name, "version": self.version,
                "num_episodes": self.num_episodes,
                "num_bytes": int(self.builder.info.splits[self.split].num_bytes)}

    def describe(self, index: int) -> str:
        """``"<path>: episode <index>"``, for error messages."""
        return f"{self.path}: episode {index}"

    def language_dim(self) -> int | None:
        """Length D of ``steps/observation/natural_language_embedding`` per step (None if the dataset has none)."""
        try:
            return int(self.builder.info.features["steps"]["observation"]["natural_language_embedding"].shape[-1])
        except (KeyError, IndexError, TypeError):
            return None

    def shard_files(self) -> list[Path]:
        """The tfrecord shard paths of the split, in order."""
        return [Path(os.fspath(p)) for p in self.builder.info.splits[self.split].filepaths]

    def verify_shards(self) -> None:
        """Check that every shard exists and is complete (header walk, see :func:`verify_tfrecord_shard`)."""
        info = self.builder.info.splits[self.split]
        for path, n in zip(self.shard_files(), info.shard_lengths, strict=True):
            if not path.is_file():
                raise DatasetError(f"{path}: shard listed in dataset_info.json is missing")
            verify_tfrecord_shard(path, int(n))

    def _as_tf(self, ranges: list[tuple[int, int]], decode_images: bool) -> Any:
        tfds = import_tfds()
        skip = {"steps": {"observation": {"image": tfds.decode.SkipDecoding()}}}
        decoders = None if decode_images else skip
        read_config = tfds.ReadConfig(interleave_cycle_length=1, num_parallel_calls_for_decode=1,
                                      num_parallel_calls_for_interleave_files=1, try_autocache=False)
        # "train[a:b]+train[c:d]" reads the pieces in the order given: one pipeline (traced once) per call.
        split = "+".join(f"{self.split}[{a}:{b}]" for a, b in ranges)
        ds = self.builder.as_dataset(split=split, decoders=decoders, shuffle_files=False,
                                     read_config=read_config)
        # One episode = one element with its steps stacked along a leading T axis.
        return ds.map(lambda ep: dict(ep, steps=ep["steps"].batch(1 << 30).get_single_element()))

    def episodes(self, start: int = 0, stop: int | None = None, decode_images: bool = True,
                 check_actions: bool = True) -> Iterator[dict[str, Any]]:
        """Stream episodes ``[start, stop)`` as nested numpy dicts, one at a time.

        Args:
            start, stop: episode index range (``stop=None``: to the end).
            decode_images: decode JPEGs to (T, 256, 320, 3) uint8; otherwise a (T,) array of JPEG bytes.
            check_actions: raise on NaN/inf in the 7 model action dims, or values far outside their physical
                range (``schema.ACTION_BOUNDS``). The language embedding is always checked (finite).

        Yields:
            ``{"aspects", "attributes", "steps", "episode_index"}``; ``steps`` values have a leading T axis
            (e.g. ``steps["action"]["world_vector"]`` is (T, 3), strings are bytes).

        Raises:
            DatasetError: corrupt/truncated shard (names the directory), non-finite or out-of-range actions or a
                non-finite language embedding (names the episode and step).
        """
        stop = self.num_episodes if stop is None else stop
        return self.episodes_in([(start, stop)], decode_images, check_actions)

    def episodes_in(self, ranges: list[tuple[int, int]], decode_images: bool = True,
                    check_actions: bool = True) -> Iterator[dict[str, Any]]:
        """Stream the episodes of several ``[start, stop)`` ranges, in the order given, through one pipeline.

        Same output and errors as :meth:`episodes`.
        """
        merged: list[tuple[int, int]] = []
        for a, b in ranges:
            a, b = max(a, 0), min(b, self.num_episodes)
            if a >= b:
                continue
            if merged and merged[-1][1] == a:  # contiguous pieces read as one
                merged[-1] = (merged[-1][0], b)
            else:
                merged.append((a, b))
        # tfds parses "x+y+..." recursively: bound the pieces per pipeline (each costs one trace, ~0.3 s).
        for i in range(0, len(merged), MAX_SPLIT_PIECES):
            yield from self._episodes_in(merged[i:i + MAX_SPLIT_PIECES], decode_images, check_actions)

    def _episodes_in(self, ranges: list[tuple[int, int]], decode_images: bool,
                     check_actions: bool) -> Iterator[dict[str, Any]]:
        tf, tfds = import_tensorflow(), import_tfds()
        it = iter(tfds.as_numpy(self._as_tf(ranges, decode_images)))
        for index in (i for a, b in ranges for i in range(a, b)):
            try:
                ep = next(it)
            except StopIteration:
                raise DatasetError(f"{self.path}: episode {index} missing (dataset_info.json promises "
                                   f"{self.num_episodes})") from None
            except (tf.errors.DataLossError, tf.errors.InvalidArgumentError,
                    tf.errors.OutOfRangeError) as exc:
                raise DatasetError(f"{self.path}: corrupt or truncated shard while reading episode {index}: "
                                   f"{str(exc).splitlines()[0]}") from exc
            where = self.describe(index)
            if check_actions:
                check_finite_actions(ep["steps"]["action"], where)
            check_language(ep["steps"]["observation"].get("natural_language_embedding"), where)
            ep["episode_index"] = index
            yield ep


def episode_actions(action: dict[str, np.ndarray]) -> np.ndarray:
    """Stack an episode's model actions.

    Args:
        action: ``steps["action"]`` with ``world_vector`` (T, 3), ``rotation_delta`` (T, 3),
            ``gripper_closedness_action`` (T, 1).

    Returns:
        (T, 7) float32 in RT-1 order.
    """
    parts = [np.asarray(action[k], np.float32).reshape(-1, n) for k, n in schema.ACTION_KEYS]
    return np.concatenate(parts, axis=1)


STATE_KEYS: tuple[tuple[str, int], ...] = (("base_pose_tool_reached", 7), ("gripper_closed", 1))
STATE_DIM = 8  # S: end-effector xyz + quaternion, measured gripper closedness


def episode_states(observation: dict[str, np.ndarray]) -> np.ndarray:
    """Stack an episode's robot state (the model's state tokens).

    Args:
        observation: ``steps["observation"]`` with ``base_pose_tool_reached`` (T, 7) and ``gripper_closed`` (T, 1).

    Returns:
        (T, 8) float32.

    Raises:
        DatasetError: a key is missing (e.g. a non-RT-1 dataset read with ``strict=false``).
    """
    missing = [k for k, _ in STATE_KEYS if k not in observation]
    if missing:
        raise DatasetError(f"state tokens need steps/observation/{missing[0]}, which the dataset lacks "
                           "(set model.state_dim=0 to train without robot state)")
    parts = [np.asarray(observation[k], np.float32).reshape(-1, n) for k, n in STATE_KEYS]
    return np.concatenate(parts, axis=1)


def check_finite_actions(action: dict[str, np.ndarray], where: str) -> None:
    """Raise :class:`DatasetError` naming ``where``, the key and the step if any model action is NaN/inf or lies
    beyond ``ACTION_BOUND_MARGIN`` times its physical bound (``schema.ACTION_BOUNDS``)."""
    for key, _ in schema.ACTION_KEYS:
        values = np.asarray(action[key])
        bad = ~np.isfinite(values)
        if bad.any():
            step = int(np.argwhere(bad)[0][0])
            raise DatasetError(f"{where}: non-finite value in steps/action/{key} at step {step}")
        limit = schema.ACTION_BOUNDS[key] * schema.ACTION_BOUND_MARGIN
        far = np.abs(values) > limit
        if far.any():
            step, *rest = np.argwhere(far)[0]
            value = values[(step, *rest)]
            raise DatasetError(f"{where}: steps/action/{key} = {value:.6g} at step {int(step)} is far outside its "
                               f"physical range ±{schema.ACTION_BOUNDS[key]:.4g} (corrupt data? normalisation "
                               "statistics would be ruined)")


def check_language(embedding: np.ndarray | None, where: str) -> None:
    """Raise :class:`DatasetError` naming ``where`` and the step if the (T, D) instruction embedding is NaN/inf."""
    if embedding is None:
        return
    bad = ~np.isfinite(np.asarray(embedding, np.float32))
    if bad.any():
        step = int(np.argwhere(bad)[0][0])
        raise DatasetError(f"{where}: non-finite value in steps/observation/natural_language_embedding at "
                           f"step {step}")


# What the clip loader and the statistics read: the parts of a concatenation must agree on these.
READ_KEYS: tuple[str, ...] = (*schema.LOADER_KEYS, *(f"steps/observation/{k}" for k, _ in STATE_KEYS),
                              "steps/observation/natural_language_instruction")


class ConcatRLDS:
    """Several RLDS datasets read as one: the episodes of ``parts[0]``, then those of ``parts[1]``, and so on.

    Global episode ``i`` is episode ``i - offsets[p]`` of the part ``p`` whose range holds it; it has the same
    interface as :class:`RLDSDataset` for the clip loader and the statistics.

    Attributes:
        parts: the opened datasets, in order.
        path: their version directories (what :func:`open_rlds` reopens the concatenation from).
        offsets: global index of each part's first episode.
        num_episodes: the sum of the parts' episode counts.

    Raises:
        DatasetError: two parts differ in the size of their language embedding, or in the feature type, shape or
            dtype of a key of ``READ_KEYS`` that both carry (image size excepted: the loader resizes); names both.
    """

    def __init__(self, parts: Sequence[RLDSDataset]) -> None:
        if not parts:
            raise ValueError("ConcatRLDS needs at least one dataset")
        self.parts = list(parts)
        first = self.parts[0]
        for other in self.parts[1:]:
            problems = _incompatibilities(first, other)
            if problems:
                raise DatasetError(f"{first.path} and {other.path} cannot be read as one dataset: "
                                   + "; ".join(problems))
        self.path = [part.path for part in self.parts]
        self.offsets = [0]
        for part in self.parts[:-1]:
            self.offsets.append(self.offsets[-1] + part.num_episodes)
        self.num_episodes = self.offsets[-1] + self.parts[-1].num_episodes

    def fingerprint(self) -> dict[str, Any]:
        """The parts' fingerprints in order (cached statistics go stale when any part changes) and the total."""
        return {"parts": [part.fingerprint() for part in self.parts], "num_episodes": self.num_episodes}

    def language_dim(self) -> int | None:
        """The parts' common language-embedding size (checked on construction)."""
        return self.parts[0].language_dim()

    def describe(self, index: int) -> str:
        """``"<part path>: episode <local index>"`` of global episode ``index``, for error messages."""
        p = max(i for i, offset in enumerate(self.offsets) if offset <= index)
        return self.parts[p].describe(index - self.offsets[p])

    def episodes(self, start: int = 0, stop: int | None = None, decode_images: bool = True,
                 check_actions: bool = True) -> Iterator[dict[str, Any]]:
        """Stream global episodes ``[start, stop)``; as :meth:`RLDSDataset.episodes` (``episode_index`` global)."""
        stop = self.num_episodes if stop is None else stop
        return self.episodes_in([(start, stop)], decode_images, check_actions)

    def episodes_in(self, ranges: list[tuple[int, int]], decode_images: bool = True,
                    check_actions: bool = True) -> Iterator[dict[str, Any]]:
        """Stream the global episodes of several ``[start, stop)`` ranges, in the order given.

        Each part reads its share of the ranges through its own pipeline (one per part, not one per switch between
        parts); errors name the part's directory and its own episode index.
        """
        pieces: list[tuple[int, int, int]] = []  # (part, local start, local stop) in the order asked for
        for a, b in ranges:
            for p, (part, offset) in enumerate(zip(self.parts, self.offsets, strict=True)):
                lo, hi = max(a, offset, 0), min(b, offset + part.num_episodes)
                if lo < hi:
                    pieces.append((p, lo - offset, hi - offset))
        streams = [part.episodes_in([(a, b) for q, a, b in pieces if q == p], decode_images, check_actions)
                   for p, part in enumerate(self.parts)]
        for p, a, b in pieces:
            for _ in range(a, b):
                ep = next(streams[p])
                ep["episode_index"] += self.offsets[p]
                yield ep


def _incompatibilities(a: RLDSDataset, b: RLDSDataset) -> list[str]:
    """What keeps two datasets from being read as one (empty: nothing)."""
    problems = []
    if a.language_dim() != b.language_dim():
        problems.append(f"language embeddings of {a.language_dim()} vs {b.language_dim()} dims")
    spec_a, spec_b = schema.flatten_spec(a.builder.info.features), schema.flatten_spec(b.builder.info.features)
    for key in READ_KEYS:
        if key not in spec_a or key not in spec_b or key.endswith("natural_language_embedding"):
            continue
        (kind_a, shape_a, dtype_a), (kind_b, shape_b, dtype_b) = spec_a[key], spec_b[key]
        if kind_a != kind_b:
            problems.append(f"{key}: feature type {kind_a} vs {kind_b}")
        if shape_a != shape_b and kind_a != "image":
            problems.append(f"{key}: shape {shape_a} vs {shape_b}")
        if dtype_a != dtype_b:
            problems.append(f"{key}: dtype {dtype_a} vs {dtype_b}")
    return problems


def open_rlds(path: str | Path | Sequence[str | Path], name: str | None = None, version: str | None = None, *,
              strict: bool = True, verify_shards: bool = True, split: str = "train") -> RLDSDataset | ConcatRLDS:
    """Open and validate an RLDS dataset directory, or several read as one (never contacts the network).

    Args:
        path: the version directory (``.../fractal20220817_data/0.1.0``) or a root holding ``name/version``; or a
            list of such paths, whose episodes are concatenated in order (:class:`ConcatRLDS`; a one-element list
            is the same as its path). ``name``, ``version`` and the other settings apply to every one.
        name, version: dataset name/version when ``path`` is a root.
        strict: require exactly the ``fractal20220817_data`` schema; otherwise only the keys the clip
            loader needs (``schema.LOADER_KEYS``), any image size.
        verify_shards: walk every shard's record headers to catch truncated/missing files up front.
        split: tfds split to read.

    Returns:
        :class:`RLDSDataset`, or :class:`ConcatRLDS` for several paths.

    Raises:
        FileNotFoundError: the directory (or its dataset_info.json) does not exist (names the one missing).
        DatasetError: the features differ from the schema (every difference listed), a shard is bad, or several
            datasets disagree on what the loader reads (see :class:`ConcatRLDS`).
    """
    if not isinstance(path, str | os.PathLike):
        paths = list(path)
        if not paths:
            raise ValueError("open_rlds: empty list of dataset paths")
        parts = [open_rlds(p, name, version, strict=strict, verify_shards=verify_shards, split=split)
                 for p in paths]
        return parts[0] if len(parts) == 1 else ConcatRLDS(parts)
    directory = resolve_dataset_dir(path, name, version)
    tfds = import_tfds()

    try:
        builder = tfds.builder_from_directory(str(directory))
    except Exception as exc:  # tfds raises assorted errors for unreadable metadata
        raise DatasetError(f"{directory}: cannot read tfds metadata: {str(exc).splitlines()[0]}") from exc
    problems = schema.diff_features(builder.info.features,
                                    required=None if strict else schema.LOADER_KEYS)
    if problems:
        raise DatasetError(f"{directory}: dataset does not match the {schema.DATASET_NAME} schema: "
                           + "; ".join(problems))
    dataset = RLDSDataset(directory, builder, split)
    if verify_shards:
        dataset.verify_shards()
    return dataset
