"""Errors a user meets first name the way forward: NaN from the env, MuJoCo missing or too old."""

import importlib.metadata
import importlib.util
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from helpers import CountingEnv

from sb3_mlsh import MLSH

SMALL = dict(n_steps=12, batch_size=4, master_batch_size=2, macro_duration=3, warmup_iterations=1, joint_iterations=1)


class NaNAfter(gym.Wrapper):
    """Puts NaN in the observation (or the reward) from the ``step``-th step of the wrapped env on."""

    def __init__(self, env: gym.Env, step: int, where: str) -> None:
        super().__init__(env)
        self.at, self.where, self.steps = step, where, 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        if self.steps >= self.at:
            if self.where == "observation":
                obs = np.full_like(obs, np.nan)
            else:
                reward = float("inf")
        return obs, reward, terminated, truncated, info


@pytest.mark.parametrize("where", ["observation", "reward"])
def test_nan_from_the_env_names_it_and_vec_check_nan(where):
    model = MLSH("MlpPolicy", NaNAfter(CountingEnv(length=50), step=5, where=where), **SMALL)
    with pytest.raises(ValueError, match=f"env 0 returned a NaN or infinite {where} \\(at step 5 .*VecCheckNan"):
        model.learn(100)


@pytest.fixture
def mujoco_envs_unloaded(monkeypatch):
    """Make the MuJoCo envs' modules import again, as in a fresh process."""
    for name in [name for name in sys.modules if name.startswith(("sb3_mlsh.envs.mujoco_envs", "sb3_mlsh.envs.ant"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.delitem(sys.modules, "sb3_mlsh.envs.humanoid", raising=False)


def test_missing_mujoco_names_the_extra(monkeypatch, mujoco_envs_unloaded):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "mujoco" else find_spec(name, *args))
    with pytest.raises(ModuleNotFoundError, match='need MuJoCo, which is not installed: pip install "sb3-mlsh\\[mujoco\\]"'):
        gym.make("AntTwoWalk-v0")


def test_old_mujoco_names_the_floor(monkeypatch, mujoco_envs_unloaded):
    version = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "3.2.7" if name == "mujoco" else version(name))
    with pytest.raises(ImportError, match="need mujoco>=3.3.0, found 3.2.7"):
        gym.make("HumanoidWalkCrawl-v0")


@pytest.mark.parametrize("env", ["discrete", "box"])
def test_a_diverged_network_names_the_settings_and_argument_checks_stay_on(env):
    validate_args = th.distributions.Distribution._validate_args
    model = MLSH("MlpPolicy", "Pendulum-v1" if env == "box" else CountingEnv(length=50), **SMALL)
    with th.no_grad():
        model.policy.subpolicies[0].action_net.bias.fill_(float("nan"))
        model.policy.subpolicies[1].action_net.bias.fill_(float("nan"))
    with pytest.raises(ValueError, match="NaN or infinite action parameter.*lower learning_rate"):
        model.learn(100)
    # collection skips torch's argument checks inside its own calls only
    assert th.distributions.Distribution._validate_args == validate_args
