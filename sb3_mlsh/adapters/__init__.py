"""
Task distributions over other libraries' environments, each behind its own extra so that the core needs none of them:
``sb3_mlsh.adapters.minigrid`` (``pip install "sb3-mlsh[minigrid]"``).
"""
