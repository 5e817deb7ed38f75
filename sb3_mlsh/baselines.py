"""The paper's baselines, measured with the same adaptation protocol as MLSH (``run_adaptation``)."""

import pickle
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
from stable_baselines3 import PPO
from stable_baselines3.common.type_aliases import GymEnv
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

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
    vec_normalize: VecNormalize | None = None,
) -> AdaptationResult:
    """
    "Shared policy transfer": a PPO policy trained on the whole task distribution (e.g. on
    ``TaskPerEpisode`` envs) is fine-tuned on each task for ``adaptation_timesteps`` steps; a copy is
    fine-tuned each time, ``model`` is not changed.

    Parameters not listed here are as in ``evaluate_adaptation``.

    :param model: The shared PPO policy.
    :param vec_normalize: The ``VecNormalize`` the shared policy was trained in, if it was: each copy is fine-tuned
        in a copy of it (its observation statistics, updated as the copy learns; it is not changed). The observations
        in ``episode_ends`` and ``final_observations`` are then the normalised ones.
    """
    load_copy = copier(model)
    statistics = None if vec_normalize is None else pickle.dumps(vec_normalize)  # without its envs

    def fine_tune(vec_env: VecEnv, learner_seed: int) -> PPO:
        if statistics is not None:
            normalized: VecNormalize = pickle.loads(statistics)
            normalized.set_venv(vec_env)
            vec_env = normalized
        return load_copy(env=vec_env, seed=learner_seed)

    return run_adaptation(fine_tune, env, n_tasks, adaptation_timesteps, seed, tasks, n_eval_episodes)


def single_policy(
    env: GymEnv | str,
    n_tasks: int,
    adaptation_timesteps: int,
    seed: int | None = None,
    tasks: Sequence[Any] | None = None,
    n_eval_episodes: int = 0,
    normalize_observations: bool = False,
    clip_obs: float = 5.0,
    normalize_rewards: bool = False,
    **ppo_kwargs: Any,
) -> AdaptationResult:
    """
    "Single policy": PPO from scratch on each task for ``adaptation_timesteps`` steps.

    Parameters not listed here are as in ``evaluate_adaptation``.

    :param normalize_observations: Whether PPO learns in a ``VecNormalize`` (observations only, clipped to
        ``clip_obs``; statistics from its own steps), as MLSH normalises its inputs. The observations in
        ``episode_ends`` and ``final_observations`` are then the normalised ones.
    :param clip_obs: Bound of the normalised observations.
    :param normalize_rewards: Whether PPO learns from rewards scaled by ``VecNormalize`` (``norm_reward=True``, with
        PPO's ``gamma``), as MLSH's sub-policies with ``normalize_rewards``; R counts the env's own rewards.
    :param ppo_kwargs: PPO's parameters (``n_steps``, ``batch_size``, ...).
    """

    def from_scratch(vec_env: VecEnv, learner_seed: int) -> PPO:
        if normalize_observations or normalize_rewards:
            vec_env = VecNormalize(
                vec_env, norm_obs=normalize_observations, norm_reward=normalize_rewards, clip_obs=clip_obs,
                gamma=ppo_kwargs.get("gamma", 0.99),
            )  # fmt: skip
        return PPO("MlpPolicy", vec_env, seed=learner_seed, verbose=0, **ppo_kwargs)

    return run_adaptation(from_scratch, env, n_tasks, adaptation_timesteps, seed, tasks, n_eval_episodes)
