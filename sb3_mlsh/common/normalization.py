"""Observation and reward normalisation inside the hierarchy: running statistics saved with the policy."""

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.running_mean_std import RunningMeanStd
from torch import nn


def normalizable(observation_space: spaces.Space) -> bool:
    """:return: Whether observations of this space are normalised: a ``Box`` that is not an image."""
    return isinstance(observation_space, spaces.Box) and not is_image_space(observation_space)


class _RunningStatistics(nn.Module):
    """
    Running mean, variance and count of some quantity as float64 buffers, so that they are saved and loaded with the
    policy's state dict; folded in a batch at a time as SB3's ``RunningMeanStd`` combines them.

    :param shape: The quantity's shape (``()``: a scalar).
    """

    EPSILON = 1e-8

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        fresh = RunningMeanStd(shape=shape)
        self.mean: th.Tensor
        self.var: th.Tensor
        self.count: th.Tensor
        self.register_buffer("mean", th.as_tensor(fresh.mean))
        self.register_buffer("var", th.as_tensor(fresh.var))
        self.register_buffer("count", th.tensor(fresh.count, dtype=th.float64))

    def update(self, batch: RunningMeanStd) -> None:
        """:param batch: Statistics of new values, folded into the running ones."""
        running = RunningMeanStd(shape=tuple(self.mean.shape))
        running.mean, running.var, running.count = self.mean.cpu().numpy(), self.var.cpu().numpy(), float(self.count)
        running.combine(batch)
        with th.no_grad():
            self.mean.copy_(th.as_tensor(running.mean))
            self.var.copy_(th.as_tensor(running.var))
            self.count.fill_(running.count)


class ObservationNormalizer(_RunningStatistics):
    """
    Running mean and variance of the observations and the normalisation they define,
    ``clip((obs - mean) / sqrt(var + 1e-8), -clip_obs, clip_obs)``, as SB3's ``VecNormalize`` computes it.

    :param shape: The observation shape.
    :param clip_obs: Bound of the normalised observations.
    """

    def __init__(self, shape: tuple[int, ...], clip_obs: float = 5.0) -> None:
        super().__init__(shape)
        self.clip_obs = clip_obs

    def normalize(self, observation: np.ndarray) -> np.ndarray:
        """:return: ``observation`` (one or a batch) normalised by the current statistics, as float32."""
        mean, var = self.mean.cpu().numpy(), self.var.cpu().numpy()
        normalized = (np.asarray(observation, dtype=np.float64) - mean) / np.sqrt(var + self.EPSILON)
        return np.clip(normalized, -self.clip_obs, self.clip_obs).astype(np.float32)

    def extra_repr(self) -> str:
        return f"shape={tuple(self.mean.shape)}, clip_obs={self.clip_obs}"


class RewardNormalizer(_RunningStatistics):
    """
    Running variance of the discounted return and the reward scaling it defines,
    ``clip(reward / sqrt(var + 1e-8), -clip_reward, clip_reward)``, as SB3's ``VecNormalize`` computes it with
    ``norm_reward=True`` (the rewards are not centred).

    :param clip_reward: Bound of the scaled rewards.
    """

    def __init__(self, clip_reward: float = 10.0) -> None:
        super().__init__(())
        self.clip_reward = clip_reward

    def normalize(self, rewards: np.ndarray) -> np.ndarray:
        """:return: ``rewards`` scaled by the current statistics, as float32."""
        scaled = np.asarray(rewards, dtype=np.float64) / np.sqrt(float(self.var) + self.EPSILON)
        return np.clip(scaled, -self.clip_reward, self.clip_reward).astype(np.float32)

    def extra_repr(self) -> str:
        return f"clip_reward={self.clip_reward}"
