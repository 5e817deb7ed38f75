"""Building this package's MuJoCo models from gymnasium's model files with ``mujoco.MjSpec``."""

import mujoco


def load_spec(path: str, floor_half_size: float) -> mujoco.MjSpec:
    """
    :param path: A model file (gymnasium's ``ant.xml`` or ``humanoid.xml``).
    :param floor_half_size: Half-size of the (square) floor plane named ``floor``, enlarged to hold an arena.
    :return: The file's spec, to add an arena to.
    """
    spec = mujoco.MjSpec.from_file(path)
    floor = spec.geom("floor")
    floor.size = [floor_half_size, floor_half_size, floor.size[2]]
    return spec


def compile_spec(spec: mujoco.MjSpec, width: int, height: int) -> tuple[mujoco.MjModel, mujoco.MjData]:
    """
    Compile ``spec``, growing (never shrinking) the off-screen framebuffer to the render size, as
    gymnasium's ``MujocoEnv`` does for model files.

    :return: The model and its data.
    """
    model = spec.compile()
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
    model.vis.global_.offheight = max(model.vis.global_.offheight, height)
    return model, mujoco.MjData(model)
