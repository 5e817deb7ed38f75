"""Rollout buffers of the two levels: sub-policy steps tagged with the active sub-policy, and macro transitions."""

from collections.abc import Generator
from typing import cast

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer
from stable_baselines3.common.type_aliases import RolloutBufferSamples

from sb3_mlsh.common.observations import Observations, apply

SAMPLE_FIELDS = ("actions", "values", "log_probs", "advantages", "returns")


def _minibatches(
    buffer: RolloutBuffer, indices: np.ndarray, batch_size: int | None
) -> Generator[RolloutBufferSamples, None, None]:
    """Yield ``buffer._get_samples`` over a random permutation of ``indices``, ``batch_size`` at a time."""
    indices = np.random.permutation(indices)
    if batch_size is None:
        batch_size = len(indices)
    for start in range(0, len(indices), batch_size):
        yield buffer._get_samples(indices[start : start + batch_size])


class TaggedRolloutBuffer(RolloutBuffer):
    """
    ``RolloutBuffer`` of environment steps, each tagged with the sub-policy that acted.

    Returns and advantages are SB3's GAE over the flat trajectory, with the value of the sub-policy
    active at each step. After ``flatten()``, ``subpolicies`` and ``env_indices`` give each row's
    sub-policy and env, and ``BufferView`` selects rows (e.g. one sub-policy's steps in some envs).

    :param buffer_size: Steps per env.
    :param observation_space: Observation space.
    :param action_space: Action space of the sub-policies.
    :param device: PyTorch device.
    :param gae_lambda: GAE lambda.
    :param gamma: Discount factor.
    :param n_envs: Number of parallel environments.
    """

    subpolicies: np.ndarray
    env_indices: np.ndarray

    def reset(self) -> None:
        self.subpolicies = np.zeros((self.buffer_size, self.n_envs), dtype=np.int64)
        super().reset()

    def add(  # type: ignore[override]
        self,
        obs: Observations,
        action: np.ndarray,
        reward: np.ndarray,
        episode_start: np.ndarray,
        value: th.Tensor,
        log_prob: th.Tensor,
        subpolicy: np.ndarray,
    ) -> None:
        """
        :param subpolicy: Index of the sub-policy that chose ``action``, per env.
        Other parameters as in ``RolloutBuffer.add``.
        """
        self.subpolicies[self.pos] = subpolicy
        # RolloutBuffer.add, or DictRolloutBuffer.add in TaggedDictRolloutBuffer (dict observations)
        super().add(obs, action, reward, episode_start, value, log_prob)  # type: ignore[arg-type]

    def flatten(self) -> None:
        """Put the full buffer in the one-row-per-step layout that ``get`` samples from (env-major, as SB3's)."""
        assert self.full, "The buffer is not full yet"
        if not self.generator_ready:
            self.observations = apply(self.swap_and_flatten, self.observations)
            for name in (*SAMPLE_FIELDS, "subpolicies"):
                self.__dict__[name] = self.swap_and_flatten(self.__dict__[name])
            self.subpolicies = self.subpolicies.flatten()
            self.env_indices = np.repeat(np.arange(self.n_envs), self.buffer_size)
            self.generator_ready = True

    def get(self, batch_size: int | None = None) -> Generator[RolloutBufferSamples, None, None]:
        """:param batch_size: Minibatch size (``None``: one batch)."""
        self.flatten()
        yield from _minibatches(self, np.arange(self.buffer_size * self.n_envs), batch_size)


class BufferView:
    """
    Some rows of a flattened buffer, with the members ``PPO.train`` reads (``get``, ``values``,
    ``returns``), so that SB3's PPO update trains on those rows alone: one sub-policy's steps in
    the task groups of the joint phase, or one task group's macro transitions.

    :param buffer: The buffer (``TaggedRolloutBuffer`` or ``MacroRolloutBuffer``).
    """

    def __init__(self, buffer: "TaggedRolloutBuffer | MacroRolloutBuffer") -> None:
        self.buffer = buffer
        self.indices = np.zeros(0, dtype=np.int64)

    def select(self, mask: np.ndarray) -> None:
        """:param mask: Boolean mask over the flattened buffer's rows: the rows of the next update."""
        self.indices = np.flatnonzero(mask)

    def size(self) -> int:
        """:return: Number of selected rows."""
        return len(self.indices)

    def get(self, batch_size: int | None = None) -> Generator[RolloutBufferSamples, None, None]:
        yield from _minibatches(self.buffer, self.indices, batch_size)

    @property
    def values(self) -> np.ndarray:
        return self.buffer.values[self.indices]

    @property
    def returns(self) -> np.ndarray:
        return self.buffer.returns[self.indices]


class MacroRolloutBuffer(RolloutBuffer):
    """
    Master-level buffer of macro transitions: observation at a decision, the chosen sub-policy,
    the summed reward until the next decision, value and log-probability at the decision.

    Episodes may end inside a macro step, so each env fills its own column at its own pace
    (``env_pos``); ``buffer_size`` is a capacity. Returns and advantages are GAE over each env's
    sequence of macro transitions, one discount per macro step.

    :param buffer_size: Capacity per env (at most one macro transition per environment step).
    :param observation_space: Observation space.
    :param action_space: The master's action space, ``Discrete(n_subpolicies)``.
    :param device: PyTorch device.
    :param gae_lambda: GAE lambda.
    :param gamma: Discount factor per macro step.
    :param n_envs: Number of parallel environments.
    """

    env_pos: np.ndarray
    env_indices: np.ndarray

    def reset(self) -> None:
        self.env_pos = np.zeros(self.n_envs, dtype=np.int64)
        super().reset()

    def size(self) -> int:
        return int(self.env_pos.sum())

    def add(  # type: ignore[override]
        self,
        obs: Observations,
        action: np.ndarray,
        reward: np.ndarray,
        episode_start: np.ndarray,
        value: np.ndarray,
        log_prob: np.ndarray,
        env_indices: np.ndarray,
    ) -> None:
        """
        Add one macro transition for each env in ``env_indices``; every other argument has one row per such env.

        :param obs: Observations at the decisions.
        :param action: Chosen sub-policies.
        :param reward: Rewards summed over the macro steps (plus the value bootstrap on truncation).
        :param episode_start: Whether each decision was at an episode start.
        :param value: The master's values at the decisions.
        :param log_prob: Log-probabilities of the choices.
        :param env_indices: The envs these transitions belong to.
        """
        rows = self.env_pos[env_indices]
        if np.any(rows >= self.buffer_size):
            raise RuntimeError("MacroRolloutBuffer is full: more macro transitions than its capacity")
        if isinstance(self.observation_space, spaces.Dict):
            for key, shape in self.obs_shape.items():  # type: ignore[attr-defined]
                self.observations[key][rows, env_indices] = np.reshape(obs[key], (len(env_indices), *shape))
        else:
            self.observations[rows, env_indices] = np.reshape(cast(np.ndarray, obs), (len(env_indices), *self.obs_shape))
        self.actions[rows, env_indices] = np.asarray(action).reshape((len(env_indices), self.action_dim))
        self.rewards[rows, env_indices] = reward
        self.episode_starts[rows, env_indices] = episode_start
        self.values[rows, env_indices] = value
        self.log_probs[rows, env_indices] = log_prob
        self.env_pos[env_indices] += 1
        self.pos = int(self.env_pos.max())

    def compute_returns_and_advantage(self, last_values: th.Tensor, dones: np.ndarray) -> None:
        """
        GAE(lambda) over each env's own sequence of macro transitions.

        :param last_values: The master's value at each env's pending decision.
        :param dones: Whether each env's pending decision is at an episode start.
        """
        last_values_np = last_values.clone().cpu().numpy().flatten()
        last_gae_lam = np.zeros(self.n_envs, dtype=np.float32)
        for step in reversed(range(self.pos)):
            filled = step < self.env_pos
            is_last = step == self.env_pos - 1
            following = min(step + 1, self.buffer_size - 1)
            next_values = np.where(is_last, last_values_np, self.values[following])
            next_non_terminal = np.where(is_last, 1.0 - dones.astype(np.float32), 1.0 - self.episode_starts[following])
            delta = self.rewards[step] + self.gamma * next_values * next_non_terminal - self.values[step]
            last_gae_lam = np.where(filled, delta + self.gamma * self.gae_lambda * next_non_terminal * last_gae_lam, 0.0)
            self.advantages[step] = last_gae_lam
        self.returns = self.advantages + self.values

    def flatten(self) -> None:
        """Keep only the filled entries, one row per macro transition; ``env_indices`` gives each row's env."""
        if not self.generator_ready:
            filled = np.arange(self.buffer_size)[:, None] < self.env_pos[None, :]
            self.observations = apply(lambda values: values[filled], self.observations)
            for name in SAMPLE_FIELDS:
                self.__dict__[name] = self.__dict__[name][filled]
            self.env_indices = np.broadcast_to(np.arange(self.n_envs), filled.shape)[filled]
            self.generator_ready = True

    def get(self, batch_size: int | None = None) -> Generator[RolloutBufferSamples, None, None]:
        self.flatten()
        yield from _minibatches(self, np.arange(len(self.values)), batch_size)


# The tagged add() takes a sub-policy index DictRolloutBuffer.add() does not know: as SB3's own buffers, an
# intended override (the type checker cannot tell it from a mistake in a class with two such bases)
class TaggedDictRolloutBuffer(TaggedRolloutBuffer, DictRolloutBuffer):  # type: ignore[misc]
    """``TaggedRolloutBuffer`` for ``Dict`` observations (stored per key, as in SB3's ``DictRolloutBuffer``)."""


class MacroDictRolloutBuffer(MacroRolloutBuffer, DictRolloutBuffer):  # type: ignore[misc]
    """``MacroRolloutBuffer`` for ``Dict`` observations (stored per key, as in SB3's ``DictRolloutBuffer``)."""
