"""MovementBandits-v0 as the notes define it."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import sb3_mlsh  # noqa: F401  (registers the env)
from sb3_mlsh.envs import MovementBanditsEnv


def greedy_episode(env: gym.Env, goal: int, seed: int) -> float:
    """Walk straight to goal ``goal`` and stay; return the episode reward."""
    obs, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        action = MovementBanditsEnv.greedy_action(obs, goal)
        obs, reward, terminated, truncated, _ = env.step(action)
        total += reward
        done = terminated or truncated
    return total


def test_checkers():
    gym_check_env(gym.make("MovementBandits-v0", render_mode="rgb_array").unwrapped)
    sb3_check_env(gym.make("MovementBandits-v0"))


def test_layout_and_spaces():
    env = gym.make("MovementBandits-v0")
    assert env.spec.max_episode_steps == 50
    obs, info = env.reset(seed=0)
    assert env.action_space == gym.spaces.Discrete(5)
    assert obs.shape == (6,) and np.allclose(obs[:2], 0.5) and info["task"] == 0
    assert ((obs[2:] >= 0) & (obs[2:] <= 1)).all()
    obs, *_ = env.step(1)
    assert np.allclose(obs[:2] * 400, [220, 200])
    obs, *_ = env.step(4)
    assert np.allclose(obs[:2] * 400, [220, 180])


def test_seeded_resets_are_deterministic_and_goals_vary():
    env = gym.make("MovementBandits-v0")
    first, _ = env.reset(seed=5)
    again, _ = env.reset(seed=5)
    other, _ = env.reset(seed=6)
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert env.unwrapped.sample_task() in (0, 1)


def test_the_task_decides_which_goal_pays():
    env = gym.make("MovementBandits-v0")
    for task in (0, 1):
        env.unwrapped.set_task(task)
        right = np.mean([greedy_episode(env, task, seed) for seed in range(100)])
        wrong = np.mean([greedy_episode(env, 1 - task, seed) for seed in range(100)])
        # the notes: about 44 for the right goal; the wrong goal pays only where the goals overlap
        assert 40 < right < 48
        assert wrong < 10


def test_tasks_are_sampled_uniformly():
    env = MovementBanditsEnv()
    env.reset(seed=0)
    draws = [env.sample_task() for _ in range(1000)]
    assert 400 < sum(draws) < 600


def test_unknown_task_raises():
    with pytest.raises(ValueError, match="unknown task 2"):
        MovementBanditsEnv().set_task(2)


def test_render_rgb_array_headless():
    env = gym.make("MovementBandits-v0", render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (400, 400, 3) and frame.dtype == np.uint8
    assert (frame == (60, 180, 75)).all(-1).any() and (frame == (0, 80, 200)).all(-1).any()
