"""HumanoidWalkCrawl-v0 and HumanoidCourse-v0: gymnasium's Humanoid with the original code's slab and crawl reward."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import sb3_mlsh  # noqa: F401  (registers the envs)

pytest.importorskip("mujoco")
IDS = ("HumanoidWalkCrawl-v0", "HumanoidCourse-v0")


@pytest.mark.parametrize("env_id, steps", [("HumanoidWalkCrawl-v0", 1000), ("HumanoidCourse-v0", 3000)])
def test_checkers_spec_and_shared_observation_layout(env_id, steps):
    gym_check_env(gym.make(env_id).unwrapped, skip_render_check=True)
    sb3_check_env(gym.make(env_id))
    env = gym.make(env_id)
    assert env.spec.max_episode_steps == steps
    assert env.observation_space.shape == (350,) and env.action_space.shape == (17,)


@pytest.mark.parametrize("env_id", IDS)
def test_seeded_episodes_are_deterministic(env_id):
    def episode(seed: int) -> np.ndarray:
        env = gym.make(env_id)
        env.reset(seed=seed)
        env.action_space.seed(seed)
        return np.array([np.append(*env.step(env.action_space.sample())[:2]) for _ in range(30)])

    assert np.array_equal(episode(0), episode(0)) and not np.array_equal(episode(0), episode(1))


def run(env, steps: int, action=None) -> tuple[list[float], list[bool]]:
    rewards, terminations = [], []
    for _ in range(steps):
        _, reward, terminated, _, _ = env.step(np.zeros(17) if action is None else action)
        rewards.append(reward)
        terminations.append(terminated)
    return rewards, terminations


def slab(env) -> tuple[float, float, float]:
    """:return: The ceiling's x extent and its underside's height."""
    ceiling = env.model.geom("ceiling")
    (x, _, z), (half_x, _, half_z) = env.model.geom_pos[ceiling.id], env.model.geom_size[ceiling.id]
    return x - half_x, x + half_x, z - half_z


def test_walking_terminates_on_a_fall_and_crawling_never_does():
    env = gym.make("HumanoidWalkCrawl-v0").unwrapped
    env.set_task(1)
    env.reset(seed=0)
    assert not env.ceiling
    _, terminations = run(env, 200)  # no torque: it falls
    assert any(terminations) and env.data.qpos[2] < 1.0

    env.set_task(0)
    env.reset(seed=0)
    assert env.ceiling and slab(env) == pytest.approx((-29.5, -6.5, 1.0))  # the original's: 6.5 behind the start
    _, terminations = run(env, 200)
    assert not any(terminations)
    with pytest.raises(ValueError, match="unknown task"):
        env.set_task(2)
    assert {env.sample_task() for _ in range(50)} == {0, 1}


def test_walk_pays_forward_motion_and_the_alive_bonus_crawl_pays_backward_motion():
    env = gym.make("HumanoidWalkCrawl-v0").unwrapped

    def reward_moving(direction: float) -> float:
        qvel = np.zeros(env.model.nv)
        qvel[0] = direction
        env.set_state(settled_qpos, qvel)
        return env.step(np.zeros(17))[1]

    env.set_task(1)
    env.reset(seed=0)
    settled_qpos = env.data.qpos.copy()
    assert reward_moving(1.0) > reward_moving(0.0) > reward_moving(-1.0) and reward_moving(0.0) > 4.0  # alive bonus 5
    walk_gain = reward_moving(1.0) - reward_moving(0.0)

    env.set_task(0)
    env.reset(seed=0)
    run(env, 100)  # fallen
    settled_qpos = env.data.qpos.copy()
    assert reward_moving(-1.0) > reward_moving(0.0) > reward_moving(1.0) and reward_moving(0.0) < 1.0  # no alive bonus
    # the original's crawl weight: 1.5 per unit of x per physics step, six times the walk's 0.25
    assert (reward_moving(-1.0) - reward_moving(0.0)) / walk_gain == pytest.approx(6.0, rel=0.15)


def test_course_walks_then_the_ceiling_comes_down_past_x_25_and_crawling_pays():
    env = gym.make("HumanoidCourse-v0").unwrapped
    env.reset(seed=0)
    assert not env.ceiling and env.tasks == (0,)
    _, _, _, _, info = env.step(np.zeros(17))
    assert info["mode"] == "walk"
    qpos = env.data.qpos.copy()
    qpos[0] = 25.5
    env.set_state(qpos, np.zeros(env.model.nv))
    rewards, terminations = run(env, 100)
    assert env.ceiling and not any(terminations)
    assert slab(env) == pytest.approx((-5.5, 17.5, 1.0))  # the original's: behind the Humanoid, which must crawl back
    assert env.step(np.zeros(17))[4]["mode"] == "crawl"
    env.reset(seed=1)
    assert not env.ceiling


@pytest.mark.parametrize("env_id", IDS)
def test_render_rgb_array_headless(env_id):
    env = gym.make(env_id, render_mode="rgb_array", width=96, height=96)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (96, 96, 3) and frame.dtype == np.uint8 and frame.std() > 0
