"""Environments of the MLSH paper, registered with gymnasium on ``import sb3_mlsh``."""

import gymnasium as gym

from sb3_mlsh.envs.movement_bandits import MovementBanditsEnv

ENV_IDS = ("MovementBandits-v0",)


def register_envs() -> None:
    """Register this package's environments with gymnasium (once per process)."""
    if "MovementBandits-v0" not in gym.registry:
        gym.register(
            "MovementBandits-v0", entry_point="sb3_mlsh.envs.movement_bandits:MovementBanditsEnv", max_episode_steps=50
        )


__all__ = ["ENV_IDS", "MovementBanditsEnv", "register_envs"]
