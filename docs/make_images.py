"""Render the pictures of docs/envs.md: ``python docs/make_images.py``."""

import os
import pathlib

import gymnasium as gym
import matplotlib.pyplot as plt

import sb3_mlsh  # noqa: F401  (registers the envs)
from sb3_mlsh.envs import KeyDoorEnv, MovementBanditsEnv

OUT = pathlib.Path(__file__).parent / "images"
os.environ.setdefault("MUJOCO_GL", "egl")  # MuJoCo renders off-screen


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
    env.unwrapped.set_task((11, 11))
    env.reset(seed=0)  # at the start, the doorway between the two right-hand rooms
    plt.imsave(OUT / "four_rooms.png", env.render())


def ant_two_walk() -> None:
    env = gym.make("AntTwoWalk-v0", render_mode="rgb_array", width=480, height=360,
                   default_camera_config={"distance": 12.0, "elevation": -35.0, "lookat": [2.5, 2.5, 0.0]})  # fmt: skip
    env.reset(seed=0)
    plt.imsave(OUT / "ant_two_walk.png", env.render())


def ant_maze() -> None:
    env = gym.make("AntMaze-v0", render_mode="rgb_array", width=480, height=480)
    env.unwrapped.set_task(5)  # right, then up
    env.reset(seed=0)
    plt.imsave(OUT / "ant_maze.png", env.render())


def ant_obstacle() -> None:
    env = gym.make("AntObstacle-v0", render_mode="rgb_array", width=480, height=480)
    env.reset(seed=0)
    plt.imsave(OUT / "ant_obstacle.png", env.render())


def humanoid_crawl() -> None:
    camera = {"trackbodyid": -1, "distance": 16.0, "elevation": -3.0, "azimuth": 90.0, "lookat": [-5.0, 0.0, 1.0]}
    env = gym.make("HumanoidWalkCrawl-v0", render_mode="rgb_array", width=480, height=360, default_camera_config=camera)
    env.unwrapped.set_task(0)
    env.reset(seed=0)  # the slab behind the Humanoid, from x = -6.5 back
    plt.imsave(OUT / "humanoid_crawl.png", env.render())


def humanoid_course() -> None:
    camera = {"trackbodyid": 1, "distance": 5.0, "elevation": -10.0, "azimuth": 90.0, "lookat": [0.0, 0.0, 1.0]}
    env = gym.make("HumanoidCourse-v0", render_mode="rgb_array", width=480, height=360, default_camera_config=camera)
    env.reset(seed=0)
    plt.imsave(OUT / "humanoid_course.png", env.render())


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    movement_bandits()
    key_door()
    four_rooms()
    ant_two_walk()
    ant_maze()
    ant_obstacle()
    humanoid_crawl()
    humanoid_course()
