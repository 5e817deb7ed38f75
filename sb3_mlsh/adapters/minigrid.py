"""
MiniGrid rooms as MLSH task distributions: the task is the cell of the goal, hidden from the observation.

Needs the ``minigrid`` extra (``pip install "sb3-mlsh[minigrid]"``). As in the paper's Four Rooms, the agent sees
the room and where it is, but not the goal: only the reward tells the tasks apart, so a fresh master must find
which of the shared sub-policies leads to this task's goal.
"""

from collections.abc import Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

try:
    from minigrid.core.constants import OBJECT_TO_IDX
    from minigrid.core.world_object import Goal
    from minigrid.wrappers import FullyObsWrapper, ImgObsWrapper
except ImportError as error:  # pragma: no cover - the message is the point
    raise ImportError('sb3_mlsh.adapters.minigrid needs MiniGrid: pip install "sb3-mlsh[minigrid]"') from error

from sb3_mlsh.common.tasks import TaskSamplerWrapper

Cell = tuple[int, int]
_GOAL = OBJECT_TO_IDX["goal"]
_EMPTY = OBJECT_TO_IDX["empty"]


class GoalCell(gym.Wrapper):
    """
    Puts a MiniGrid env's goal on ``goal`` (a cell) at every reset, removing the goal the env placed, and hides it
    from the observation's ``image`` (its cell reads as empty). Reaching it pays and ends the episode, as MiniGrid's
    own goal does.

    :param env: A MiniGrid env whose ``image`` observation encodes objects (``FullyObsWrapper`` or the agent's view).
    :param goal: The goal's first cell (``None``: where the env puts it, until ``set_goal``).
    """

    def __init__(self, env: gym.Env, goal: Cell | None = None) -> None:
        super().__init__(env)
        self.goal = goal

    def set_goal(self, goal: Cell) -> None:
        """:param goal: The goal's cell from the next reset on; it must be inside the walls."""
        self.goal = (int(goal[0]), int(goal[1]))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        if self.goal is not None:
            grid = self.env.unwrapped.grid  # type: ignore[attr-defined]
            for x in range(grid.width):
                for y in range(grid.height):
                    if isinstance(grid.get(x, y), Goal):
                        grid.set(x, y, None)
            if grid.get(*self.goal) is not None or tuple(self.env.unwrapped.agent_pos) == self.goal:  # type: ignore[attr-defined]
                raise ValueError(f"GoalCell: goal {self.goal} is not a free cell of this grid; choose an empty one.")
            grid.set(*self.goal, Goal())
            obs = self.env.unwrapped.gen_obs()  # type: ignore[attr-defined]
            obs = self.env.observation(obs) if isinstance(self.env, gym.ObservationWrapper) else obs
        return self._hidden(obs), info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._hidden(obs), reward, terminated, truncated, info

    @staticmethod
    def _hidden(obs: dict[str, Any]) -> dict[str, Any]:
        image = obs["image"].copy()
        goal = image[..., 0] == _GOAL
        image[goal] = (_EMPTY, 0, 0)
        return {**obs, "image": image}


def free_cells(env: gym.Env) -> list[Cell]:
    """:return: The cells of ``env``'s grid (after a reset) that hold nothing and not the agent, goals aside."""
    unwrapped: Any = env.unwrapped
    grid, agent = unwrapped.grid, tuple(unwrapped.agent_pos)
    return [
        (x, y)
        for y in range(grid.height)
        for x in range(grid.width)
        if (grid.get(x, y) is None or isinstance(grid.get(x, y), Goal)) and (x, y) != agent
    ]


def goal_cell_tasks(
    env_id: str = "MiniGrid-Empty-8x8-v0",
    goals: Sequence[Cell] | None = None,
    held_out_tasks: Sequence[Cell] | None = None,
    **kwargs: Any,
) -> gym.Env:
    """
    A MiniGrid room as an MLSH task distribution: each task is a goal cell, hidden from the observation.

    The observation is the whole grid, as ``FullyObsWrapper`` encodes it (so the agent knows where it is), with the
    goal's cell shown as empty, flattened to a vector for ``MlpPolicy``. For rooms whose layout MiniGrid draws again
    at each reset, give ``goals`` that are free in every layout.

    :param env_id: A MiniGrid env id (its layout and start; its own goal is removed).
    :param goals: The tasks, goal cells ``(x, y)``; ``None``: every free cell of the first layout but the start.
    :param held_out_tasks: Goals kept for evaluation (``evaluate_adaptation`` adapts to them), never drawn in training.
    :param kwargs: Passed to ``gym.make`` (e.g. ``max_steps``).
    :return: The env, with MLSH's task protocol (``TaskSamplerWrapper``).
    """
    goal_env = GoalCell(FullyObsWrapper(gym.make(env_id, **kwargs)))
    if goals is None:
        goal_env.reset(seed=0)
        goals = free_cells(goal_env)
    env = gym.wrappers.FlattenObservation(ImgObsWrapper(goal_env))
    return TaskSamplerWrapper(
        env,
        tasks=[(int(x), int(y)) for x, y in goals],
        set_task=lambda _, goal: goal_env.set_goal(goal),
        held_out_tasks=[(int(x), int(y)) for x, y in held_out_tasks or ()],
    )


def agent_position(env: gym.Env, obs: Any = None) -> np.ndarray:
    """:return: Where the agent is, for ``subpolicy_behaviour(..., position=agent_position)``."""
    return np.asarray(env.unwrapped.agent_pos, dtype=float)  # type: ignore[attr-defined]
