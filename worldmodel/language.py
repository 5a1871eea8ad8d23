"""The instruction encoder of the RT-1 ``natural_language_embedding``: :mod:`envs.language`, re-exported.

It lives in ``envs/`` because the simulated tasks put the embedding in every observation and ``envs/`` imports
nothing from ``worldmodel`` (docs/architecture.md, "Layers"); the data writer and tests use it from here.
"""

from envs.language import EMBEDDING_DIM, ENCODER_DIM, ENCODER_PACKAGE, embed_instruction

__all__ = ["EMBEDDING_DIM", "ENCODER_DIM", "ENCODER_PACKAGE", "embed_instruction"]
