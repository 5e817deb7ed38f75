"""Render the pictures of docs/envs.md: ``python docs/make_images.py``."""

import pathlib

import gymnasium as gym
import matplotlib.pyplot as plt

import sb3_mlsh  # noqa: F401  (registers the envs)
from sb3_mlsh.envs import KeyDoorEnv, MovementBanditsEnv

OUT = pathlib.Path(__file__).parent / "images"


def movement_bandits() -> None:
    env = gym.make("MovementBandits-v0", render_mode="rgb_array")
    obs, _ = env.reset(seed=3)
    for _ in range(6):
        obs, *_ = env.step(MovementBanditsEnv.greedy_action(obs, env.unwrapped.task))
    plt.imsave(OUT / "movement_bandits.png", env.render())


def key_door() -> None:
    env = gym.make("KeyDoor-v0", render_mode="rgb_array")
    obs, _ = env.reset(seed=4)
    for _ in range(5):
        obs, *_ = env.step(KeyDoorEnv.greedy_action(obs, env.unwrapped.task))
    plt.imsave(OUT / "key_door.png", env.render())


def four_rooms() -> None:
    env = gym.make("FourRooms-v0", render_mode="rgb_array")
    env.unwrapped.set_task((9, 2))
    env.reset(seed=0)
    for action in (1, 1, 2):
        env.step(action)
    plt.imsave(OUT / "four_rooms.png", env.render())


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    movement_bandits()
    key_door()
    four_rooms()
