"""Learning: MLSH on MovementBandits finds one sub-policy per goal, so a fresh master earns well above half."""

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env

from sb3_mlsh import MLSH, evaluate_adaptation
from sb3_mlsh.demo import HYPERPARAMS, N_ENVS, scripted_return, subpolicy_returns

CHUNK = 100_000
MAX_TIMESTEPS = 2_000_000


def specialised(alone: np.ndarray, threshold: float) -> bool:
    """Whether two different sub-policies each earn ``threshold`` on a different task."""
    return bool(max(alone[0, 0] + alone[1, 1], alone[0, 1] + alone[1, 0]) >= 2 * threshold and (alone >= threshold).sum() >= 2)


@pytest.mark.slow
def test_fresh_master_over_learned_subpolicies_beats_a_one_goal_policy():
    threads = th.get_num_threads()
    th.set_num_threads(1)  # small networks: one thread is faster
    try:
        env = make_vec_env("MovementBandits-v0", n_envs=N_ENVS, seed=0)
        model = MLSH("MlpPolicy", env, seed=0, **HYPERPARAMS)
        # meta-train in chunks until the two sub-policies go to different goals, within a bounded budget
        while model.num_timesteps < MAX_TIMESTEPS:
            model.learn(CHUNK, reset_num_timesteps=False)
            alone = subpolicy_returns(model, n_episodes=16, seed=1)
            if specialised(alone, threshold=35.0):
                break
        print(f"meta-trained {model.num_timesteps} steps; each sub-policy alone per task:\n{alone}")
        assert specialised(alone, threshold=35.0), f"no specialisation after {model.num_timesteps} steps:\n{alone}"

        adaptation = evaluate_adaptation(
            model, make_vec_env("MovementBandits-v0", n_envs=N_ENVS), 2, 20_000, seed=2, tasks=[0, 1], n_eval_episodes=48
        )
        scores = adaptation.final_returns
        during = np.mean([np.mean(returns) for _, returns in adaptation.curves])
        one_goal = scripted_return(lambda task: 0, n_episodes=40, seed=10)
        print(f"fresh master per task: {scores} after, {during:.1f} per episode during adaptation")
        print(f"always goal 0: {one_goal:.1f}")
        # the paper: a shared policy goes to one goal and gets about half; MLSH's fresh master far more
        assert 15.0 < one_goal < 30.0
        assert np.mean(scores) >= 1.5 * one_goal
        assert during > one_goal  # even while the fresh master is still learning
    finally:
        th.set_num_threads(threads)
