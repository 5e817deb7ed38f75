"""Shared test set-up: MuJoCo renders off-screen through EGL (no display on CI)."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
