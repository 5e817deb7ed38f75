"""Entry points of the MuJoCo environments: one clear error, naming the extra to install, when MuJoCo is missing or too old."""

import importlib.metadata
import importlib.util
import re

MUJOCO_FLOOR = (3, 3, 0)  # MjSpec as these envs build their models (3.2.7 lacks spec.geom); the extras' floor
_INSTALL = 'pip install "sb3-mlsh[mujoco]"'

if importlib.util.find_spec("mujoco") is None:
    raise ModuleNotFoundError(f"sb3_mlsh's Ant and Humanoid envs need MuJoCo, which is not installed: {_INSTALL}")
_found = importlib.metadata.version("mujoco")
if tuple(int(part) for part in re.findall(r"\d+", _found)[:3]) < MUJOCO_FLOOR:
    raise ImportError(
        f"sb3_mlsh's Ant and Humanoid envs need mujoco>={'.'.join(map(str, MUJOCO_FLOOR))}, found {_found}: "
        f"{_INSTALL} --upgrade"
    )

from sb3_mlsh.envs.ant import AntMazeEnv, AntObstacleEnv, AntTwoWalkEnv  # noqa: E402
from sb3_mlsh.envs.humanoid import HumanoidCourseEnv, HumanoidWalkCrawlEnv  # noqa: E402

__all__ = ["AntMazeEnv", "AntObstacleEnv", "AntTwoWalkEnv", "HumanoidCourseEnv", "HumanoidWalkCrawlEnv"]
