"""Warnings that point at the user's line rather than at library code."""

import os
import sys
import warnings

import stable_baselines3

import sb3_mlsh

_LIBRARIES = (os.path.dirname(sb3_mlsh.__file__) + os.sep, os.path.dirname(stable_baselines3.__file__) + os.sep)


def warn_at_caller(message: str, category: type[Warning] = UserWarning) -> None:
    """
    ``warnings.warn`` attributed to the first frame outside sb3_mlsh and stable_baselines3: the line of
    the user's code that led here (e.g. ``MLSH(...)`` or ``model.set_env(...)``).

    :param message: The warning's text.
    :param category: The warning's class.
    """
    frame = sys._getframe(1)
    level = 2  # stacklevel 2: the function that called warn_at_caller
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_LIBRARIES):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
