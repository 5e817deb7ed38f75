"""Sub-policy collapse diagnostics: do the sub-policies act differently on the same states?"""

import itertools
from typing import TYPE_CHECKING, cast

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
