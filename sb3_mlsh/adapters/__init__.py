"""
Task distributions over other libraries' environments, each behind its own extra so that the core needs none of them:
``sb3_mlsh.adapters.minigrid`` (``pip install "sb3-mlsh[minigrid]"``) and ``sb3_mlsh.adapters.metaworld``
(``pip install "sb3-mlsh[metaworld]"``, in an environment of its own: it pins ``mujoco==3.3.0``).
"""
