"""The task protocol over a finite task set, shared by this package's environments."""

from collections.abc import Iterable
from typing import Any

import numpy as np


class TaskSet:
    """
    Mixin for a gymnasium env whose tasks form a finite set ``tasks``: it gives the env the task
    protocol (``task``, ``sample_task(rng=None)``, ``set_task(task)``) and a split into ``train_tasks``, which
    ``sample_task(rng)`` draws from uniformly (with ``rng``, else the env's ``np_random``), and ``held_out_tasks``,
    kept for evaluation (``set_task`` accepts every task).

    A subclass sets ``tasks`` and ``TASK_HELP`` (what a task is, for error messages), calls
    ``_init_tasks`` in its constructor, and applies a new task in ``_apply_task``.
    """

    tasks: tuple[Any, ...]
    TASK_HELP = ""
    np_random: np.random.Generator

    def _init_tasks(self, held_out_tasks: Iterable[Any] | None = None) -> None:
        """
        :param held_out_tasks: Tasks that ``sample_task()`` never draws.
        """
        held_out = {self._check_task(task) for task in held_out_tasks or ()}
        self.held_out_tasks = tuple(task for task in self.tasks if task in held_out)
        self.train_tasks = tuple(task for task in self.tasks if task not in held_out)
        if not self.train_tasks:
            raise ValueError(f"{type(self).__name__}: held_out_tasks holds out every task; keep at least one for training.")
        self._task = self.train_tasks[0]

    def _normalize_task(self, task: Any) -> Any:
        """:return: ``task`` in the form ``tasks`` holds it (e.g. a list as a tuple)."""
        return task

    def _check_task(self, task: Any) -> Any:
        """:return: The element of ``tasks`` equal to ``task``; ``ValueError`` if there is none."""
        try:
            normalized = self._normalize_task(task)
            if normalized in self.tasks:
                return self.tasks[self.tasks.index(normalized)]
        except (TypeError, ValueError):
            pass
        raise ValueError(f"{type(self).__name__}: unknown task {task!r}; {self.TASK_HELP}")

    @property
    def task(self) -> Any:
        """The current task."""
        return self._task

    def sample_task(self, rng: np.random.Generator | None = None) -> Any:
        """
        :param rng: The generator to draw with (``None``: the env's ``np_random``).
        :return: A task drawn uniformly from ``train_tasks`` (not set).
        """
        rng = self.np_random if rng is None else rng
        return self.train_tasks[int(rng.integers(len(self.train_tasks)))]

    def set_task(self, task: Any) -> None:
        """:param task: The task of the following steps and episodes, one of ``tasks``."""
        self._task = self._check_task(task)
        self._apply_task()

    def _apply_task(self) -> None:
        """Make the env follow ``self.task`` (called by ``set_task``)."""
