"""Environments of the MLSH paper, registered with gymnasium on ``import sb3_mlsh``."""

import gymnasium as gym

from sb3_mlsh.envs.four_rooms import FourRoomsEnv
from sb3_mlsh.envs.key_door import KeyDoorEnv
from sb3_mlsh.envs.movement_bandits import MovementBanditsEnv

# id: (entry point, episode length); the MuJoCo envs import mujoco only when made (extra "mujoco"), through
# mujoco_envs, which says what to install if it is missing
_SPECS = {
    "MovementBandits-v0": ("sb3_mlsh.envs.movement_bandits:MovementBanditsEnv", 50),
    "KeyDoor-v0": ("sb3_mlsh.envs.key_door:KeyDoorEnv", 100),
    "FourRooms-v0": ("sb3_mlsh.envs.four_rooms:FourRoomsEnv", 100),
    "AntTwoWalk-v0": ("sb3_mlsh.envs.mujoco_envs:AntTwoWalkEnv", 1000),
    "AntMaze-v0": ("sb3_mlsh.envs.mujoco_envs:AntMazeEnv", 1000),
    "AntObstacle-v0": ("sb3_mlsh.envs.mujoco_envs:AntObstacleEnv", 2000),
    "HumanoidWalkCrawl-v0": ("sb3_mlsh.envs.mujoco_envs:HumanoidWalkCrawlEnv", 1000),
    "HumanoidCourse-v0": ("sb3_mlsh.envs.mujoco_envs:HumanoidCourseEnv", 3000),
}
ENV_IDS = tuple(_SPECS)
MUJOCO_ENV_IDS = ("AntTwoWalk-v0", "AntMaze-v0", "AntObstacle-v0", "HumanoidWalkCrawl-v0", "HumanoidCourse-v0")


def register_envs() -> None:
    """Register this package's environments with gymnasium (once per process)."""
    for env_id, (entry_point, max_episode_steps) in _SPECS.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=entry_point, max_episode_steps=max_episode_steps)


__all__ = ["ENV_IDS", "MUJOCO_ENV_IDS", "FourRoomsEnv", "KeyDoorEnv", "MovementBanditsEnv", "register_envs"]
