"""KeyDoor: moving bandits with a key to fetch first (a companion of the bandits in the original MLSH code)."""

from typing import Any

import numpy as np
from gymnasium import spaces

from sb3_mlsh.envs.movement_bandits import MovementBanditsEnv


class KeyDoorEnv(MovementBanditsEnv):
    """
    Moving bandits with a key, as the original MLSH code defines it.

    As ``MovementBanditsEnv`` (start at (200, 200), two goals uniform in [0, 400]^2 at each reset,
    20-unit moves), plus a key at a third uniform point. The correct goal pays only once the agent
    has been within distance 50 of the key.

    - **Observation**: ``Box(9)``: agent x, y, goal 0 x, y, goal 1 x, y, key x, y (all divided by 400),
      and a has-key flag (0 or 1).
    - **Action**: ``Discrete(5)``: stay, +x, -x, +y, -y. No walls; positions are kept in [-1800, 2200].
    - **Reward**: 1 on each step that ends within distance 50 of the correct goal, once the key was reached; else 0.
    - **Termination**: none; ``KeyDoor-v0`` truncates episodes at 100 steps.
    - **Task**: ``0`` or ``1``, the index of the correct goal (not observed).

    :param render_mode: ``"rgb_array"`` or ``None``.
    """

    LIMITS = (-1800.0, 2200.0)

    def __init__(self, render_mode: str | None = None) -> None:
        super().__init__(render_mode)
        low, high = (limit / self.ARENA for limit in self.LIMITS)
        self.observation_space = spaces.Box(
            low=np.array([low, low, 0, 0, 0, 0, 0, 0, 0], dtype=np.float32),
            high=np.array([high, high, 1, 1, 1, 1, 1, 1, 1], dtype=np.float32),
            dtype=np.float32,
        )
        self._key = np.zeros(2)
        self._has_key = False

    @classmethod
    def greedy_action(cls, observation: np.ndarray, goal: int) -> int:
        """
        The scripted policy that walks straight to the key, then to goal ``goal``, and stays there.

        :param observation: An observation of this env.
        :param goal: Goal index, 0 or 1.
        :return: The action.
        """
        if observation[8] < 0.5:
            return cls._walk_towards(observation[:2], observation[6:8])
        return super().greedy_action(observation, goal)

    def _obs(self) -> np.ndarray:
        positions = np.concatenate([self._agent, self._goals.ravel(), self._key]) / self.ARENA
        return np.append(positions, float(self._has_key)).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._key = self.np_random.uniform(0.0, self.ARENA, size=2)
        self._has_key = False
        return self._obs(), {"task": self._task}

    def _reward(self) -> float:
        self._has_key = self._has_key or bool(np.linalg.norm(self._agent - self._key) < self.RADIUS)
        return super()._reward() if self._has_key else 0.0

    def render(self) -> np.ndarray | None:
        """:return: The arena as ``MovementBanditsEnv`` draws it, with the key in gold (grey once taken)."""
        image = super().render()
        if image is not None:
            color = (150, 150, 150) if self._has_key else (230, 170, 0)
            image[self._disc(self._key, 14.0)] = color
            image[self._disc(self._agent, 8.0)] = (0, 80, 200)
        return image
