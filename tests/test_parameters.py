"""Every MLSH parameter is checked before anything runs: a wrong type or value raises ValueError naming it and the fix."""

import inspect

import gymnasium as gym
import numpy as np
import pytest

from sb3_mlsh import MLSH
from sb3_mlsh.mlsh.parameters import RULES

SMALL = dict(n_steps=30, batch_size=16, master_batch_size=4, macro_duration=3, warmup_iterations=1, joint_iterations=1)
# Not checked by MLSH: the policy and env (checked by SB3 and by the space checks), the device (torch names the choices)
UNCHECKED = {"self", "policy", "env", "device", "_init_setup_model"}

# parameter: (a value of the wrong type, a value of the right type out of range, or None where any such value is valid)
WRONG = {
    "n_subpolicies": ("2", 0),
    "macro_duration": (2.5, 0),
    "warmup_iterations": ("9", -1),
    "joint_iterations": (1.0, -2),
    "n_steps": ("100", 0),
    "n_task_groups": (None, 0),
    "learning_rate": ("3e-4", -1e-3),
    "master_learning_rate": ("1e-2", -1.0),
    "batch_size": (64.0, 1),
    "master_batch_size": ("64", 1),
    "n_epochs": (True, 0),
    "gamma": ("0.99", 1.5),
    "master_gamma": ("0.9", -0.1),
    "gae_lambda": (None, 2.0),
    "clip_range": ("0.2", 0.0),
    "clip_range_vf": ("0.2", -0.2),
    "normalize_advantage": ("yes", None),
    "ent_coef": ("0.01", -0.01),
    "master_ent_coef": ("a", -1.0),
    "vf_coef": ("0.5", -1.0),
    "max_grad_norm": ("x", 0.0),
    "target_kl": ("0.01", -0.1),
    "master_exploration": ("0.1", 1.5),
    "master_skip_rewardless": ("True", None),
    "distinct_group_tasks": ("True", None),
    "scale_subpolicy_lr": ("True", None),
    "train_subpolicies": (1, None),
    "bootstrap_truncation": ("False", None),
    "normalize_observations": ("True", None),
    "clip_obs": ("5", 0.0),
    "normalize_rewards": ("yes", 1),
    "clip_reward": (-1.0, 0),
    "reset_master_on_load": (0, None),
    "stats_window_size": (100.0, 0),
    "tensorboard_log": (3, None),
    "policy_kwargs": ("dict(net_arch=[8])", None),
    "verbose": ("1", -1),
    "seed": ("0", -1),
}


def test_every_parameter_has_a_rule_and_a_test():
    parameters = set(inspect.signature(MLSH.__init__).parameters) - UNCHECKED
    assert parameters == set(RULES) == set(WRONG)


class NeverStep(gym.Wrapper):
    def step(self, action):
        raise AssertionError("the env was stepped")


@pytest.mark.parametrize("kind", [0, 1], ids=["type", "value"])
@pytest.mark.parametrize("name", sorted(WRONG))
def test_wrong_parameter_raises_before_any_step(name, kind):
    value = WRONG[name][kind]
    if value is None and kind == 1:
        pytest.skip("every value of the right type is valid")
    env = NeverStep(gym.make("MovementBandits-v0"))
    with pytest.raises(ValueError, match=f"^MLSH: {name}=.*; use "):
        MLSH("MlpPolicy", env, **{**SMALL, name: value})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(warmup_iterations=0, joint_iterations=0), "warmup_iterations \\+ joint_iterations is 0"),
        (dict(n_steps=2, macro_duration=3), "n_steps=2 is smaller than macro_duration=3"),
        (dict(policy_kwargs=dict(n_subpolicies=3)), "policy_kwargs sets \\['n_subpolicies'\\]"),
        (dict(policy_kwargs=dict(clip_obs=3.0)), "policy_kwargs sets \\['clip_obs'\\]"),
        (dict(n_task_groups=3), "n_task_groups=3 does not divide the 1 envs"),
    ],
)
def test_inconsistent_parameters_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MLSH("MlpPolicy", NeverStep(gym.make("MovementBandits-v0")), **{**SMALL, **kwargs})


def test_schedules_and_numpy_numbers_are_accepted():
    schedules = dict(learning_rate=lambda p: 1e-3 * p, clip_range=lambda p: 0.2)
    numpy_numbers = dict(gamma=np.float32(0.9), n_steps=np.int64(30), ent_coef=np.float64(0.01))
    model = MLSH("MlpPolicy", "MovementBandits-v0", **{**SMALL, **schedules, **numpy_numbers})
    assert model.clip_range(0.5) == 0.2


@pytest.mark.parametrize(
    "typo, match",
    [("n_subpolicy", "did you mean 'n_subpolicies'"), ("macro_durations", "did you mean 'macro_duration'"),
     ("zzz", "see help")],
)  # fmt: skip
def test_a_misspelt_parameter_names_the_closest_one(typo, match):
    with pytest.raises(TypeError, match=f"unexpected keyword argument '{typo}'; {match}"):
        MLSH("MlpPolicy", "MovementBandits-v0", **{typo: 3})
