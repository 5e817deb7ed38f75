"""Small deterministic environments for the tests."""

from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces


class CountingEnv(gym.Env):
    """
    Observation: the step count; reward 1 on every step; the episode terminates after ``length`` steps
    (``terminate=True``) or runs until a ``TimeLimit`` truncates it. Task protocol: the task is a
    reward scale in {1, 2}.
    """

    def __init__(self, length: int = 7, terminate: bool = True) -> None:
        self.observation_space = spaces.Box(0.0, 1000.0, shape=(1,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self.length = length
        self.terminate = terminate
        self.task = 1
        self.t = 0

    def sample_task(self, rng: np.random.Generator | None = None) -> int:
        return int((self.np_random if rng is None else rng).integers(1, 3))

    def set_task(self, task: int) -> None:
        self.task = task

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], dtype=np.float32), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        return np.array([self.t], dtype=np.float32), float(self.task), self.terminate and self.t >= self.length, False, {}


def parameters(module: th.nn.Module) -> list[th.Tensor]:
    """:return: Copies of the module's parameters."""
    return [p.detach().clone() for p in module.parameters()]


def same(a: list[th.Tensor], b: list[th.Tensor]) -> bool:
    """:return: Whether two parameter lists are equal, tensor by tensor."""
    return all(th.equal(x, y) for x, y in zip(a, b, strict=True))
