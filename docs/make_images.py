"""Render the pictures of docs/envs.md: ``python docs/make_images.py``."""

import pathlib

import gymnasium as gym
import matplotlib.pyplot as plt

import sb3_mlsh  # noqa: F401  (registers the envs)
from sb3_mlsh.envs import MovementBanditsEnv

OUT = pathlib.Path(__file__).parent / "images"


def movement_bandits() -> None:
    env = gym.make("MovementBandits-v0", render_mode="rgb_array")
    obs, _ = env.reset(seed=3)
    for _ in range(6):
        obs, *_ = env.step(MovementBanditsEnv.greedy_action(obs, env.unwrapped.task))
    plt.imsave(OUT / "movement_bandits.png", env.render())


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    movement_bandits()
