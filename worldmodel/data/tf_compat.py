"""Import TensorFlow (for tfds only) so that it can live in one process with MuJoCo's EGL renderer.

Measured here (TF 2.21, Mesa llvmpipe): a plain ``import tensorflow`` loads TF's libraries ``RTLD_GLOBAL``,
and TF exports its own LLVM. Mesa's llvmpipe then binds to TF's LLVM symbols (or TF to Mesa's, if a renderer
exists first) and the process segfaults, in ``mujoco.Renderer`` or in the TF import. Loading TF with
``RTLD_LOCAL | RTLD_DEEPBIND`` keeps the two LLVMs apart, in either import order.

So every TF/tfds import in this package goes through :func:`import_tensorflow`. It only helps if it runs
before anything else imports TensorFlow in the process; it warns when it comes too late.
"""

from __future__ import annotations

import os
import sys
import warnings
from types import ModuleType

_FLAGS_MODULE = "tensorflow.python.pywrap_dlopen_global_flags"
_configured = False


def import_tensorflow() -> ModuleType:
    """Import (once) and configure TensorFlow for data work: CPU only, one thread per op pool, quiet.

    Returns:
        The ``tensorflow`` module (``tensorflow_datasets`` is imported alongside, under the same flags).
    """
    global _configured
    if "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # TF's pywrap uses this module to switch to RTLD_GLOBAL; without it TF keeps the flags set here.
        sys.modules.setdefault(_FLAGS_MODULE, None)  # type: ignore[arg-type]
        flags = sys.getdlopenflags()
        sys.setdlopenflags(os.RTLD_NOW | os.RTLD_LOCAL | getattr(os, "RTLD_DEEPBIND", 0))
        try:
            import tensorflow  # noqa: F401
            import tensorflow_datasets  # noqa: F401
        finally:
            sys.setdlopenflags(flags)
    elif not _configured and sys.modules.get(_FLAGS_MODULE) is not None:
        warnings.warn("tensorflow was imported before worldmodel.data.tf_compat.import_tensorflow(); "
                      "rendering with MuJoCo/EGL in this process may crash", RuntimeWarning, stacklevel=2)
    import tensorflow as tf

    if not _configured:
        _configured = True
        try:  # only possible before the TF runtime starts; later calls keep the earlier settings
            tf.config.set_visible_devices([], "GPU")  # the GPUs belong to torch
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except (RuntimeError, ValueError):
            pass
    return tf


def import_tfds() -> ModuleType:
    """``tensorflow_datasets``, imported through :func:`import_tensorflow`."""
    import_tensorflow()
    import tensorflow_datasets as tfds

    return tfds
