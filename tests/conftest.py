"""Shared test set-up: MuJoCo renders off-screen through EGL (no display on CI); torch runs on one thread."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import torch as th  # noqa: E402

# The tests' networks are tiny: a second thread only adds synchronisation, and on a busy 2-core machine
# (another job on the other core) it made a CnnPolicy test 15x slower.
th.set_num_threads(1)
