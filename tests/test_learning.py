"""
Learning: MLSH meta-trained on MovementBandits with the zoo entry's settings learns sub-policies that walk to a
goal, and a fresh master over them earns several times what it earns over untrained sub-policies.

What this checks held in every run measured: the yml entry at 1.6M steps on 5 seeds
(docs/benchmarks/bandits_specialisation.md), and this test's seed from two random states: the best sub-policy
alone 35.9-45.2 per episode, a fresh master 19.5-31.1 per episode (a seed with one useful sub-policy earns ~20). The
paper's stronger claim, one sub-policy per goal, holds on some seeds only (1 of 5 at 3.2M steps): it is measured,
with its bar, by ``benchmarks/reproduce.py movement_bandits`` (issue 11), not asserted on one seed here, where
the floating-point details of a machine decide which way a seed goes.
"""

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env

from sb3_mlsh import MLSH, evaluate_adaptation
from sb3_mlsh.demo import N_ENVS, SETTINGS, scripted_return, subpolicy_returns

TIMESTEPS = 1_600_000
T = 20_000


def fresh_master_return(model: MLSH) -> float:
    """:return: Reward per episode a fresh master earns during its first ``T`` steps on each task, sub-policies frozen."""
    # a seeded env: an unseeded one draws its seed from numpy's global state, which the training goes on from
    env = make_vec_env("MovementBandits-v0", n_envs=N_ENVS, seed=2)
    result = evaluate_adaptation(model, env, 2, T, seed=2, tasks=[0, 1])
    return float(np.mean([np.mean(returns) for _, returns in result.curves]))


@pytest.mark.slow
def test_meta_trained_subpolicies_walk_to_a_goal_and_a_fresh_master_uses_them():
    threads = th.get_num_threads()
    th.set_num_threads(1)  # small networks: one thread is faster
    try:
        model = MLSH("MlpPolicy", make_vec_env("MovementBandits-v0", n_envs=N_ENVS, seed=0), seed=0, **SETTINGS)
        untrained = fresh_master_return(model)
        model.learn(TIMESTEPS)  # as `python -m sb3_mlsh.demo` does (same seed, settings and steps)
        alone = subpolicy_returns(model, n_episodes=16, seed=1)
        trained = fresh_master_return(model)
        goal = scripted_return(lambda task: task, n_episodes=40, seed=10)
        print(f"each sub-policy alone per task:\n{alone}\nfresh master: {untrained:.1f} untrained, {trained:.1f} trained")
        assert 40.0 < goal < 48.0  # walking straight to the paying goal (the reference for the numbers below)
        # a sub-policy that walks to a goal earns ~44 on the task that pays it, one that wanders a few
        assert alone.max() >= 30.0, f"no sub-policy walks to a goal:\n{alone}"
        # over untrained sub-policies a fresh master earns ~2 per episode
        assert trained >= 15.0 and trained >= 3 * untrained, f"fresh master {trained:.1f} (untrained {untrained:.1f})"
    finally:
        th.set_num_threads(threads)
