"""The instruction encoder of the RT-1 ``natural_language_embedding``: :mod:`envs.language`, re-exported.

It lives in ``envs/`` because the simulated tasks put the embedding in every observation and ``envs/`` imports
nothing from ``worldmodel`` (docs/architecture.md, "Layers"); the data writer and tests use it from here.

The model's instruction tokens (:func:`instruction_tokens`) come from the same encoder's per-wordpiece states;
only the model needs them, so they live here.
"""

from __future__ import annotations

import functools

import numpy as np

from envs.language import _LOCK, EMBEDDING_DIM, ENCODER_DIM, ENCODER_PACKAGE, _encoder, embed_instruction

__all__ = ["EMBEDDING_DIM", "ENCODER_DIM", "ENCODER_PACKAGE", "INSTRUCTION_TOKENS", "embed_instruction",
           "instruction_tokens"]


INSTRUCTION_TOKENS = 16  # L: wordpieces kept per instruction, [CLS] and [SEP] included (RT-1's are shorter)


@functools.lru_cache(maxsize=4096)
def _token_states_cached(text: str) -> bytes:
    import torch

    with _LOCK, torch.no_grad():
        states = _encoder().encode([text], output_value="token_embeddings", convert_to_numpy=False)[0]
    states = np.asarray(states.float().cpu().numpy(), dtype=np.float32)  # (wordpieces, 384)
    if states.ndim != 2 or states.shape[1] != ENCODER_DIM:
        raise ValueError(f"sentence encoder returned token states of shape {states.shape}")
    return states.tobytes()


def instruction_tokens(text: str, max_tokens: int = INSTRUCTION_TOKENS) -> np.ndarray:
    """Per-wordpiece states of an instruction from the offline MiniLM encoder, for the model's instruction tokens.

    Unlike the pooled sentence embedding (whose vectors for different tasks are nearly parallel), the token
    states keep word order and the object / drawer names apart: "move apple near sponge" and "move sponge near
    apple" give the same pooled vector to 0.99 cosine but different sequences here. Cached per string.

    Args:
        text: the instruction, e.g. ``"open top drawer"`` (RT-1's ``natural_language_instruction``).
        max_tokens: L; longer instructions are cut (keeping [CLS] and the first L - 1 wordpieces), shorter
            ones padded with zero rows, which the model treats as padding.

    Returns:
        float32 (L, 384).
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if not isinstance(text, str):
        raise ValueError(f"instruction must be a str, got {type(text).__name__}")
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    states = np.frombuffer(_token_states_cached(text), dtype=np.float32).reshape(-1, ENCODER_DIM)
    out = np.zeros((max_tokens, ENCODER_DIM), dtype=np.float32)
    n = min(len(states), max_tokens)
    out[:n] = states[:n]
    return out
