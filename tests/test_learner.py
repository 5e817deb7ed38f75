"""The part of SB3's ``PPO.train`` contract that MLSH relies on: given a ``BufferView`` over the same rows, its
``PPOLearner`` makes exactly the update that SB3's PPO makes from its own ``RolloutBuffer`` (``stable-baselines3 < 3``
is allowed, so a release that changes what ``train`` reads fails here first)."""

import copy

import numpy as np
import pytest
import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

from sb3_mlsh.common.buffers import BufferView
from sb3_mlsh.common.learner import LevelLogger, PPOLearner


# 64 rows in minibatches of 24: the last is shorter, as a sub-policy's share of the steps makes it
@pytest.mark.filterwarnings("ignore:You have specified a mini-batch size")
@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
@pytest.mark.parametrize("target_kl", [None, 1e-4], ids=["all-epochs", "kl-stop"])
def test_learner_on_a_buffer_view_updates_as_sb3_ppo_does(env_id, target_kl):
    settings = dict(batch_size=24, n_epochs=3, clip_range=0.2, clip_range_vf=0.3, ent_coef=0.01, vf_coef=0.5,
                    max_grad_norm=0.5, target_kl=target_kl, normalize_advantage=True)  # fmt: skip
    env = make_vec_env(env_id, n_envs=2, seed=0)
    ppo = PPO("MlpPolicy", env, n_steps=32, seed=0, learning_rate=1e-3, **settings)
    _, callback = ppo._setup_learn(64, callback=None)
    ppo.collect_rollouts(ppo.env, callback, ppo.rollout_buffer, n_rollout_steps=ppo.n_steps)

    # the same rows, flattened as SB3's get() flattens them, behind a BufferView that selects all of them
    buffer = copy.deepcopy(ppo.rollout_buffer)
    state = np.random.get_state()
    next(buffer.get(settings["batch_size"]))
    np.random.set_state(state)
    view = BufferView(buffer)  # type: ignore[arg-type]
    view.select(np.ones(ppo.n_steps * ppo.n_envs, dtype=bool))
    policy = copy.deepcopy(ppo.policy)  # its optimizer (and Adam's state) with it
    learner = PPOLearner(policy, view, learning_rate=ppo.lr_schedule, **settings)

    np.random.seed(1), th.manual_seed(1)
    ppo.train()
    np.random.seed(1), th.manual_seed(1)
    learner.update(LevelLogger(ppo.logger, "sub", average=False), ppo._current_progress_remaining)

    assert learner._n_updates == ppo._n_updates > 0
    for (name, expected), actual in zip(ppo.policy.state_dict().items(), policy.state_dict().values(), strict=True):
        assert th.equal(expected, actual), name


@pytest.mark.parametrize("scale", [False, True])
def test_scale_subpolicy_lr_scales_each_update_by_the_share_of_a_minibatch_its_steps_fill(scale):
    from sb3_mlsh import MLSH

    env = make_vec_env("MovementBandits-v0", n_envs=2, seed=0)
    settings = dict(warmup_iterations=0, joint_iterations=1, macro_duration=3, n_steps=30, n_epochs=1)
    model = MLSH("MlpPolicy", env, batch_size=64, learning_rate=1e-3, scale_subpolicy_lr=scale, seed=0, **settings)
    model.learn(60)
    sizes = [learner.rollout_buffer.size() for learner in model.subpolicy_learners]
    assert sum(sizes) == 60 and all(0 < size < 64 for size in sizes)  # both acted, neither filled a minibatch
    for size, subpolicy in zip(sizes, model.policy.subpolicies, strict=True):
        expected = 1e-3 * size / 64 if scale else 1e-3
        assert subpolicy.optimizer.param_groups[0]["lr"] == pytest.approx(expected)
