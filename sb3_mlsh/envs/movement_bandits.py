"""2-D moving bandits, the first experiment of the MLSH paper."""

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sb3_mlsh.envs.task_set import TaskSet


class MovementBanditsEnv(TaskSet, gym.Env):
    """
    Moving bandits (Frans et al., 2018, section 6.1), as the original code defines it.

    The agent starts at (200, 200) in a plane; at each reset two goals are drawn uniformly in
    [0, 400]^2. Only one of them, the *correct* goal, pays; which one is the task, and it is not observed.

    - **Observation**: ``Box(6)``: agent x, y, goal 0 x, y, goal 1 x, y, all divided by 400.
    - **Action**: ``Discrete(5)``: 0 stay, 1 move +x, 2 move -x, 3 move +y, 4 move -y, by 20 units.
      There are no walls; positions are kept in [-800, 1200], further than 50 steps can reach.
    - **Reward**: 1 on each step that ends within distance 50 of the correct goal, else 0.
    - **Termination**: none; ``MovementBandits-v0`` truncates episodes at 50 steps.
    - **Task**: ``0`` or ``1``, the index of the correct goal. ``sample_task()`` draws one uniformly
      from ``np_random``; ``set_task(task)`` applies it from the next step on.

    A policy that knows the correct goal earns about 44 per episode; one that always heads for the
    same goal index earns about half of that.

    :param render_mode: ``"rgb_array"`` or ``None``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    tasks = (0, 1)
    TASK_HELP = "the tasks are 0 and 1, the index of the goal that pays."
    ARENA = 400.0
    START = (200.0, 200.0)
    STEP = 20.0
    RADIUS = 50.0
    LIMITS = (-800.0, 1200.0)
    MOVES = np.array([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]) * STEP

    def __init__(self, render_mode: str | None = None) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"MovementBanditsEnv: render_mode={render_mode!r}; use 'rgb_array' or None.")
        self.render_mode = render_mode
        low, high = (limit / self.ARENA for limit in self.LIMITS)
        self.observation_space = spaces.Box(
            low=np.array([low, low, 0, 0, 0, 0], dtype=np.float32),
            high=np.array([high, high, 1, 1, 1, 1], dtype=np.float32),
            dtype=np.float32,
        )
        self.action_space = spaces.Discrete(5)
        self._init_tasks()
        self._agent = np.array(self.START)
        self._goals = np.zeros((2, 2))

    @classmethod
    def greedy_action(cls, observation: np.ndarray, goal: int) -> int:
        """
        The scripted policy that walks straight to goal ``goal`` and stays there.

        :param observation: An observation of this env.
        :param goal: Goal index, 0 or 1.
        :return: The action.
        """
        return cls._walk_towards(observation[:2], observation[2 + 2 * goal : 4 + 2 * goal])

    @classmethod
    def _walk_towards(cls, agent: np.ndarray, target: np.ndarray) -> int:
        """The move that most reduces the distance from ``agent`` to ``target`` (both in observation units)."""
        delta = (target - agent) * cls.ARENA
        if np.abs(delta).max() < cls.STEP / 2:
            return 0
        if abs(delta[0]) >= abs(delta[1]):
            return 1 if delta[0] > 0 else 2
        return 3 if delta[1] > 0 else 4

    def _obs(self) -> np.ndarray:
        return (np.concatenate([self._agent, self._goals.ravel()]) / self.ARENA).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._agent = np.array(self.START)
        self._goals = self.np_random.uniform(0.0, self.ARENA, size=(2, 2))
        return self._obs(), {"task": self._task}

    def _reward(self) -> float:
        """1 within distance 50 of the correct goal, else 0."""
        return float(np.linalg.norm(self._agent - self._goals[self._task]) < self.RADIUS)

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self._agent = np.clip(self._agent + self.MOVES[int(action)], *self.LIMITS)
        reward = self._reward()
        return self._obs(), reward, False, False, {"task": self._task}

    def _disc(self, center: np.ndarray, radius: float) -> np.ndarray:
        """Mask of the pixels of the rendered picture within ``radius`` of the point ``center``."""
        size = int(self.ARENA)
        ys, xs = np.mgrid[0:size, 0:size]
        return (xs - center[0]) ** 2 + (size - 1 - ys - center[1]) ** 2 <= radius**2

    def render(self) -> np.ndarray | None:
        """:return: A 400 x 400 RGB picture of the arena: correct goal green, other goal red, agent blue."""
        if self.render_mode != "rgb_array":
            return None
        size = int(self.ARENA)
        image = np.full((size, size, 3), 255, dtype=np.uint8)
        for index, goal in enumerate(self._goals):
            color = (60, 180, 75) if index == self._task else (230, 25, 75)
            image[self._disc(goal, self.RADIUS)] = color
        image[self._disc(self._agent, 8.0)] = (0, 80, 200)
        return image
