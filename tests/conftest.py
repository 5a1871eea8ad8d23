"""Shared test setup: headless rendering, quiet TensorFlow, offline wandb."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("WANDB_MODE", "offline")
