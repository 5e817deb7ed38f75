"""The paper's baselines, measured with the same adaptation protocol as MLSH (``run_adaptation``)."""

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
from stable_baselines3 import PPO
from stable_baselines3.common.type_aliases import GymEnv
from stable_baselines3.common.vec_env import VecEnv

from sb3_mlsh.evaluation import AdaptationResult, copier, run_adaptation


class TaskPerEpisode(gym.Wrapper):
    """
    Draws a new task, with the env's ``sample_task()``, at every reset: the whole task distribution
    as one environment, on which a single "shared" policy can be trained.

    :param env: An env with the task protocol.
    """

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        if seed is not None:
            self.env.reset(seed=seed)  # seed the generator that draws the task
        self.env.get_wrapper_attr("set_task")(self.env.get_wrapper_attr("sample_task")())
        return self.env.reset(options=options)


def shared_policy_transfer(
    model: PPO,
    env: GymEnv | str,
    n_tasks: int,
    adaptation_timesteps: int,
    seed: int | None = None,
    tasks: Sequence[Any] | None = None,
    n_eval_episodes: int = 0,
) -> AdaptationResult:
    """
    "Shared policy transfer": a PPO policy trained on the whole task distribution (e.g. on
    ``TaskPerEpisode`` envs) is fine-tuned on each task for ``adaptation_timesteps`` steps; a copy is
    fine-tuned each time, ``model`` is not changed.

    Parameters not listed here are as in ``evaluate_adaptation``.

    :param model: The shared PPO policy.
    """
    load_copy = copier(model)

    def fine_tune(vec_env: VecEnv, learner_seed: int) -> PPO:
        return load_copy(env=vec_env, seed=learner_seed)

    return run_adaptation(fine_tune, env, n_tasks, adaptation_timesteps, seed, tasks, n_eval_episodes)


def single_policy(
    env: GymEnv | str,
    n_tasks: int,
    adaptation_timesteps: int,
    seed: int | None = None,
    tasks: Sequence[Any] | None = None,
    n_eval_episodes: int = 0,
    **ppo_kwargs: Any,
) -> AdaptationResult:
    """
    "Single policy": PPO from scratch on each task for ``adaptation_timesteps`` steps.

    Parameters not listed here are as in ``evaluate_adaptation``.

    :param ppo_kwargs: PPO's parameters (``n_steps``, ``batch_size``, ...).
    """

    def from_scratch(vec_env: VecEnv, learner_seed: int) -> PPO:
        return PPO("MlpPolicy", vec_env, seed=learner_seed, verbose=0, **ppo_kwargs)

    return run_adaptation(from_scratch, env, n_tasks, adaptation_timesteps, seed, tasks, n_eval_episodes)
