"""KeyDoor-v0 and FourRooms-v0 as the notes define them."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import sb3_mlsh  # noqa: F401  (registers the envs)
from sb3_mlsh.envs import FourRoomsEnv, KeyDoorEnv


@pytest.mark.parametrize("env_id", ["KeyDoor-v0", "FourRooms-v0"])
def test_checkers_and_spec(env_id):
    gym_check_env(gym.make(env_id, render_mode="rgb_array").unwrapped)
    sb3_check_env(gym.make(env_id))
    assert gym.spec(env_id).max_episode_steps == 100


@pytest.mark.parametrize("env_id", ["KeyDoor-v0", "FourRooms-v0"])
def test_seeded_episodes_are_deterministic(env_id):
    def episode(seed: int) -> list:
        env = gym.make(env_id)
        obs, _ = env.reset(seed=seed)
        env.action_space.seed(seed)
        trace = [np.asarray(obs).tolist()]
        for _ in range(30):
            obs, reward, *_ = env.step(env.action_space.sample())
            trace.append((np.asarray(obs).tolist(), reward))
        return trace

    assert episode(1) == episode(1)
    assert episode(1) != episode(2)


@pytest.mark.parametrize(
    "env_id, bad_task",
    [("KeyDoor-v0", 2), ("FourRooms-v0", (0, 0)), ("FourRooms-v0", FourRoomsEnv.START), ("FourRooms-v0", (1, 1))],
)
def test_unknown_task_raises(env_id, bad_task):
    with pytest.raises(ValueError, match="unknown task"):
        gym.make(env_id).unwrapped.set_task(bad_task)


def key_door_episode(env: gym.Env, goal: int, seed: int, fetch_key: bool) -> float:
    obs, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        action = (
            KeyDoorEnv.greedy_action(obs, goal)
            if fetch_key
            else KeyDoorEnv._walk_towards(obs[:2], obs[2 + 2 * goal : 4 + 2 * goal])
        )
        obs, reward, terminated, truncated, _ = env.step(action)
        total += reward
        done = terminated or truncated
    return total


def test_key_door_pays_only_after_the_key_and_only_at_the_task_goal():
    env = gym.make("KeyDoor-v0")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (9,) and obs[8] == 0.0
    for task in (0, 1):
        env.unwrapped.set_task(task)
        with_key = np.mean([key_door_episode(env, task, seed, fetch_key=True) for seed in range(60)])
        wrong_goal = np.mean([key_door_episode(env, 1 - task, seed, fetch_key=True) for seed in range(60)])
        # straight to the goal: paid only in the episodes where the key happens to lie on the way
        no_key = [key_door_episode(env, task, seed, fetch_key=False) for seed in range(60)]
        assert with_key > 60 and wrong_goal < 15 and np.mean(no_key) < with_key / 3


def test_key_door_flag_turns_on_at_the_key():
    env = gym.make("KeyDoor-v0")
    obs, _ = env.reset(seed=3)
    while obs[8] == 0.0:
        assert np.linalg.norm((obs[:2] - obs[6:8]) * 400) >= 50 - 20
        obs, reward, *_ = env.step(KeyDoorEnv.greedy_action(obs, 0))
        assert reward == 0.0
    assert np.linalg.norm((obs[:2] - obs[6:8]) * 400) < 50


def test_four_rooms_layout_is_the_original_codes():
    env = FourRoomsEnv()
    assert env.observation_space == gym.spaces.Discrete(104)
    # the original numbers the free cells row by row: start state 62, goal states 68, 80, 90, 103
    assert env.index[FourRoomsEnv.START] == 62
    assert [env.index[goal] for goal in env.tasks] == [68, 80, 90, 103]
    obs, _ = env.reset(seed=0)
    assert env.cells[obs] == FourRoomsEnv.START == (7, 9)


def test_four_rooms_whole_grid_variant():
    env = gym.make("FourRooms-v0", goals="all", start=(3, 6)).unwrapped
    assert len(env.tasks) == 103 and (3, 6) not in env.tasks
    obs, _ = env.reset(seed=0)
    assert env.cells[obs] == (3, 6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(goals="some"), "goals='some'; use 'all'"),
        (dict(goals=[(0, 0)]), r"goals: \(0, 0\) is not a free cell"),
        (dict(goals=[]), "at least one free cell"),
        (dict(goals=[FourRoomsEnv.START]), "other than the start"),
        (dict(start=(6, 0)), r"start: \(6, 0\) is not a free cell"),
        (dict(start="a"), "start: 'a' is not a free cell"),
    ],
)
def test_four_rooms_bad_goals_or_start(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FourRoomsEnv(**kwargs)


def test_four_rooms_slips_about_a_third_of_the_time():
    env = FourRoomsEnv()
    env.reset(seed=0)
    moves = slips = 0
    for _ in range(6000):
        before = env._agent
        _, _, _, _, info = env.step(env.np_random.integers(4))
        if env._agent != before or info["slipped"]:
            moves += 1
            slips += info["slipped"]
        if moves and moves % 50 == 0:
            env.reset()
    assert abs(slips / moves - 1 / 3) < 0.03


def test_four_rooms_reward_at_the_goal_and_tasks_vary():
    env = FourRoomsEnv(goals="all", start=(3, 6))
    env.reset(seed=0)
    env.set_task((3, 7))  # next to the start, east
    rewards = []
    for _ in range(200):
        env._agent = (3, 6)
        _, reward, *_ = env.step(3)
        rewards.append(reward)
    # reached unless it slipped away (1/3 of the time, to one of the goal's 4 neighbours... or back)
    assert 0.55 < np.mean(rewards) < 0.85
    draws = {env.sample_task() for _ in range(2000)}
    assert len(draws) > 90


def test_four_rooms_held_out_goals_are_never_sampled():
    held_out = [(1, 1), (11, 11), (10, 6)]
    env = gym.make("FourRooms-v0", goals="all", held_out_tasks=held_out).unwrapped
    env.reset(seed=0)
    assert set(env.held_out_tasks) == set(held_out) and len(env.train_tasks) == 100
    assert not set(held_out) & {env.sample_task() for _ in range(3000)}
    env.set_task((11, 11))  # a held-out goal can still be set, for evaluation
    assert env.task == (11, 11)
    env.set_task([3, 7])  # any sequence of (row, column)
    assert env.task == (3, 7)
    with pytest.raises(ValueError, match="unknown task"):
        FourRoomsEnv(held_out_tasks=[(1, 1)])  # not one of the default goals


@pytest.mark.parametrize("env_id", ["KeyDoor-v0", "FourRooms-v0"])
def test_render_rgb_array_headless(env_id):
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8
    assert (frame == (0, 80, 200)).all(-1).any()  # the agent
