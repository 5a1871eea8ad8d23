"""The offline sentence encoder behind natural_language_embedding."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from worldmodel.language import EMBEDDING_DIM, ENCODER_DIM, embed_instruction


def test_embedding_shape_norm_and_padding():
    e = embed_instruction("pick coke can")
    assert e.shape == (EMBEDDING_DIM,) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e), 1.0, atol=1e-5)
    assert np.all(e[ENCODER_DIM:] == 0) and np.count_nonzero(e[:ENCODER_DIM]) > 300
    e[0] = 42.0  # callers get a copy; the cache is not mutated
    assert embed_instruction("pick coke can")[0] != 42.0


def test_embedding_is_semantic_and_deterministic():
    can, can2 = embed_instruction("pick coke can"), embed_instruction("pick up the coke can")
    drawer = embed_instruction("open top drawer")
    assert float(can @ can2) > float(can @ drawer) + 0.2
    np.testing.assert_array_equal(can, embed_instruction("pick coke can"))


def test_encoder_never_touches_the_network():
    code = (
        "import socket\n"
        "def refuse(*a, **k):\n"
        "    raise RuntimeError('network access attempted')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "socket.getaddrinfo = refuse\n"
        "from worldmodel.language import embed_instruction\n"
        "e = embed_instruction('open top drawer')[:384]\n"
        "print(float(e @ e))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert abs(float(out.stdout.split()[-1]) - 1.0) < 1e-5
