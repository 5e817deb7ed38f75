"""The master's action distribution when its choices are sometimes replaced by random ones."""

import torch as th
from stable_baselines3.common.distributions import CategoricalDistribution
from torch.distributions import Categorical


class EpsilonCategoricalDistribution(CategoricalDistribution):
    """
    Categorical distribution whose sample is replaced, with probability ``epsilon``,
    by a uniformly random category: ``p = (1 - epsilon) * softmax(logits) + epsilon / n``.

    Sampling, ``log_prob`` and ``entropy`` are those of this mixture, so PPO's ratio uses the
    probability of the distribution that actually chose. ``mode()`` is the argmax of the logits.

    :param action_dim: Number of categories.
    :param epsilon: Probability of a uniformly random category, in [0, 1].
    """

    def __init__(self, action_dim: int, epsilon: float = 0.0) -> None:
        super().__init__(action_dim)
        self.epsilon = epsilon

    def proba_distribution(self, action_logits: th.Tensor) -> "EpsilonCategoricalDistribution":
        if self.epsilon == 0.0:
            super().proba_distribution(action_logits)
            return self
        probs = (1.0 - self.epsilon) * th.softmax(action_logits, dim=-1) + self.epsilon / self.action_dim
        self.distribution = Categorical(probs=probs)
        return self
