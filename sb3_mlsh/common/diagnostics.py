"""Sub-policy collapse diagnostics: do the sub-policies act differently on the same states, and go different places?"""

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.distributions import kl_divergence
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.utils import obs_as_tensor

from sb3_mlsh.common.observations import apply, n_rows

if TYPE_CHECKING:
    from sb3_mlsh.mlsh.policies import MLSHPolicy


def subpolicy_divergence(policy: "MLSHPolicy", observations: np.ndarray | dict[str, np.ndarray]) -> float:
    """
    Mean KL divergence between the action distributions of every ordered pair of sub-policies,
    averaged over ``observations``. Near 0 means the sub-policies act alike (collapse).

    :param policy: The hierarchy.
    :param observations: A batch of the networks' inputs (e.g. states visited during training; with observation
        normalisation, ``policy.normalize_observation(obs)``), a dict of them for Dict spaces.
    :return: The mean divergence (0 with a single sub-policy).
    """
    if policy.n_subpolicies < 2 or n_rows(observations) == 0:
        return 0.0
    obs = obs_as_tensor(apply(np.asarray, observations), policy.device)
    with th.no_grad():
        subpolicies = cast(list[ActorCriticPolicy], list(policy.subpolicies))
        distributions = [subpolicy.get_distribution(obs) for subpolicy in subpolicies]
        divergences = []
        for first, second in itertools.permutations(distributions, 2):
            kl = kl_divergence(first, second)
            if kl.dim() > 1:  # independent action dimensions (Gaussian, Bernoulli)
                kl = kl.sum(dim=-1)
            divergences.append(kl.mean().item())
    return float(np.mean(divergences))


@dataclass
class SubpolicyBehaviour:
    """
    What one sub-policy does when it acts alone (no master), over a few episodes from the same starts as the others.

    :param subpolicy: Its index k.
    :param mean_return: Mean episode return.
    :param displacement: Mean distance between an episode's first and last position.
    :param distinct_positions: Mean number of distinct positions an episode visits.
    """

    subpolicy: int
    mean_return: float
    displacement: float
    distinct_positions: float


def subpolicy_behaviour(
    model: Any,
    env: gym.Env,
    n_episodes: int = 4,
    position: Callable[[gym.Env, Any], np.ndarray] | None = None,
    deterministic: bool = False,
    seed: int = 0,
) -> list[SubpolicyBehaviour]:
    """
    Run each sub-policy of ``model`` alone (``model.predict(obs, subpolicy=k)``) for ``n_episodes`` episodes of
    ``env``, reset with the seeds ``seed``, ``seed + 1``, ... for every sub-policy, and measure where it takes the
    agent. Unlike ``subpolicy_divergence``, which compares action distributions, this sees sub-policies that act
    differently but go nowhere (e.g. one that only turns in place under egocentric actions).

    :param model: An MLSH model.
    :param env: A single (not vectorized) env, with its task set as wanted.
    :param n_episodes: Episodes per sub-policy.
    :param position: ``position(env, obs)``: where the agent is (e.g. ``lambda env, obs: env.unwrapped.agent_pos``);
        ``None``: the observation itself, which also changes when an agent only turns or a goal moves.
    :param deterministic: Take each sub-policy's most likely action (else sample it, as a master runs it).
    :param seed: Seed of the first episode's reset.
    :return: One ``SubpolicyBehaviour`` per sub-policy.
    """

    def where(obs: Any) -> np.ndarray:
        return np.asarray(position(env, obs) if position is not None else obs, dtype=float).ravel()

    behaviours = []
    for k in range(model.n_subpolicies):
        returns, displacements, distinct = [], [], []
        for episode in range(n_episodes):
            obs, _ = env.reset(seed=seed + episode)
            start = where(obs)
            visited, total, done = {tuple(np.round(start, 6))}, 0.0, False
            while not done:
                action, _ = model.predict(obs, subpolicy=k, deterministic=deterministic)
                obs, reward, terminated, truncated, _ = env.step(action)
                visited.add(tuple(np.round(where(obs), 6)))
                total, done = total + float(reward), terminated or truncated
            returns.append(total)
            displacements.append(float(np.linalg.norm(where(obs) - start)))
            distinct.append(len(visited))
        behaviours.append(
            SubpolicyBehaviour(k, float(np.mean(returns)), float(np.mean(displacements)), float(np.mean(distinct)))
        )
    return behaviours
