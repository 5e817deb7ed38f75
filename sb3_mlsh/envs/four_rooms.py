"""Four Rooms (Sutton, Precup and Singh, 1999), as MLSH's experiments use it."""

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sb3_mlsh.envs.task_set import TaskSet

LAYOUT = """\
wwwwwwwwwwwww
w     w     w
w     w     w
w           w
w     w     w
w     w     w
ww wwww     w
w     www www
w     w     w
w     w     w
w           w
w     w     w
wwwwwwwwwwwww
"""


class FourRoomsEnv(TaskSet, gym.Env):
    """
    Four Rooms: a 13 x 13 grid of four rooms joined by doorways, 104 free cells.

    - **Observation**: ``Discrete(104)``, the agent's cell (numbered row by row over the free cells;
      SB3 one-hot encodes it).
    - **Action**: ``Discrete(4)``: up, down, left, right. A move into a wall leaves the agent in place;
      after a successful move, with probability 1/3 the agent slips on to a random free neighbour
      (drawn from the env's seeded ``np_random``).
    - **Start**: ``start``; by default the original code's: the doorway between the two right-hand rooms
      (row 7, column 9).
    - **Reward**: 1 on each step that ends in the goal cell, else 0; the episode goes on.
    - **Termination**: none; ``FourRooms-v0`` truncates episodes at 100 steps.
    - **Task**: the goal cell, as ``(row, column)``; ``tasks`` lists ``goals``: by default the original
      code's four cells of the bottom-right room. ``sample_task()`` draws uniformly from ``train_tasks``: all
      of them, unless ``held_out_tasks`` keeps some for evaluation.

    ``goals="all", start=(3, 6)`` gives the whole-grid variant: any free cell but the start can be the goal,
    the agent starting in the doorway between the two upper rooms (docs/envs.md says why sub-policies that do
    not see the goal cannot serve most of those goals).

    :param goals: The goal cells, ``(row, column)`` each, or ``"all"``: every free cell but the start.
    :param start: The start cell ``(row, column)``, a free cell.
    :param held_out_tasks: Goal cells that ``sample_task()`` never draws (to evaluate on unseen goals).
    :param render_mode: ``"rgb_array"`` or ``None``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 8}
    SLIP_PROBABILITY = 1 / 3
    START = (7, 9)  # the original code's state 62
    GOALS = ((8, 7), (9, 9), (10, 8), (11, 11))  # the original code's states 68, 80, 90 and 103
    MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))
    CELL_PIXELS = 24

    def __init__(
        self,
        goals: Sequence[Sequence[int]] | str = GOALS,
        start: Sequence[int] = START,
        held_out_tasks: Sequence[Sequence[int]] | None = None,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"FourRoomsEnv: render_mode={render_mode!r}; use 'rgb_array' or None.")
        self.render_mode = render_mode
        self.walls = np.array([[char == "w" for char in row] for row in LAYOUT.splitlines()])
        self.cells: list[tuple[int, int]] = [(int(r), int(c)) for r, c in zip(*np.nonzero(~self.walls), strict=True)]
        self.index = {cell: i for i, cell in enumerate(self.cells)}
        self.start = self._free_cell(start, "start")
        if isinstance(goals, str):
            if goals != "all":
                raise ValueError(f"FourRoomsEnv: goals={goals!r}; use 'all' or a list of (row, column) cells.")
            self.tasks: tuple[tuple[int, int], ...] = tuple(cell for cell in self.cells if cell != self.start)
        else:
            self.tasks = tuple(dict.fromkeys(self._free_cell(goal, "goals") for goal in goals))
            if not self.tasks or self.start in self.tasks:
                raise ValueError(
                    f"FourRoomsEnv: goals={goals!r}; give at least one free cell other than the start {self.start}."
                )
        self.TASK_HELP = f"a task is a goal cell (row, column) of env.tasks, e.g. {self.tasks[0]}."
        self._init_tasks(held_out_tasks)
        self.observation_space = spaces.Discrete(len(self.cells))
        self.action_space = spaces.Discrete(len(self.MOVES))
        self._agent = self.start

    def _free_cell(self, cell: Any, name: str) -> tuple[int, int]:
        """:return: ``cell`` as a ``(row, column)`` tuple; ``ValueError`` naming ``name`` unless it is a free cell."""
        try:
            row, column = (int(x) for x in cell)
        except (TypeError, ValueError):
            row = column = -1
        if (row, column) not in self.index:
            raise ValueError(f"FourRoomsEnv: {name}: {cell!r} is not a free cell (row, column); see env.cells.")
        return (row, column)

    def _normalize_task(self, task: Sequence[int]) -> tuple[int, ...]:
        return tuple(int(x) for x in task)

    def _free_neighbours(self, cell: tuple[int, int]) -> list[tuple[int, int]]:
        return [(cell[0] + dr, cell[1] + dc) for dr, dc in self.MOVES if not self.walls[cell[0] + dr, cell[1] + dc]]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        super().reset(seed=seed)
        self._agent = self.start
        return self.index[self._agent], {"task": self._task}

    def step(self, action: int) -> tuple[int, float, bool, bool, dict[str, Any]]:
        dr, dc = self.MOVES[int(action)]
        target = (self._agent[0] + dr, self._agent[1] + dc)
        slipped = False
        if not self.walls[target]:
            self._agent = target
            if self.np_random.random() < self.SLIP_PROBABILITY:
                neighbours = self._free_neighbours(self._agent)
                self._agent = neighbours[int(self.np_random.integers(len(neighbours)))]
                slipped = True
        reward = float(self._agent == self._task)
        return self.index[self._agent], reward, False, False, {"task": self._task, "slipped": slipped}

    def render(self) -> np.ndarray | None:
        """:return: An RGB picture of the grid: walls dark, goal green, agent blue."""
        if self.render_mode != "rgb_array":
            return None
        colors = np.where(self.walls[..., None], np.uint8(60), np.uint8(245)).repeat(3, axis=-1)
        colors[self._task] = (60, 180, 75)
        colors[self._agent] = (0, 80, 200)
        return colors.repeat(self.CELL_PIXELS, axis=0).repeat(self.CELL_PIXELS, axis=1)
