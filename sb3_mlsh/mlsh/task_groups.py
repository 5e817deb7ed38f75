"""MLSH's task groups: which envs, which task and where in the warm-up / joint schedule each group is.

The paper runs several task groups at once: each has its own task and its own master, only the
sub-policies are shared, and the groups' warm-ups are staggered so that at most iterations some
group is in its joint phase and the sub-policies learn from several tasks at a time.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

# The phases, in the order their numeric codes (for tensorboard) follow
PHASES = ("warmup", "joint", "master_only")


@dataclass
class TaskGroup:
    """
    One task group: a contiguous block of envs sharing a task and a master.

    :param index: The group's index g (also the index of its master in ``MLSHPolicy.masters``).
    :param offset: Extra warm-up iterations of the group's first task, which stagger the groups.
    :param envs: The group's env indices.
    :param task: The current task (``None`` before the first one, or without the task protocol).
    :param tasks_sampled: Tasks started so far.
    :param iteration_in_task: Iterations completed on the current task.
    :param phase: ``"warmup"``, ``"joint"`` or ``"master_only"`` for the coming iteration.
    """

    index: int
    offset: int
    envs: range = range(0)
    task: Any = None
    tasks_sampled: int = 0
    iteration_in_task: int = 0
    phase: str = "warmup"

    @property
    def warmup_left(self) -> int:
        """Extra warm-up iterations still owed to the stagger: the offset, during the first task only."""
        return self.offset if self.tasks_sampled <= 1 else 0


class TaskSchedule:
    """
    The task groups and the random generator that draws their tasks (both saved with the model).

    Group g's first task has ``offset_g = g * (W + U) // G`` extra warm-up iterations; every later
    task lasts W + U iterations, so the groups' phases stay staggered by ``offset_g`` iterations.
    Groups are started and advanced by ``MLSH``; ``configure`` applies its current settings.

    When the groups of one run are spread over several processes, each process's schedule holds a
    contiguous slice of them: g then counts from ``first_group`` and G is ``total_groups``.

    :param n_groups: Number of groups in this schedule.
    :param seed: Seed of the task generator.
    :param first_group: Index, among all the run's groups, of this schedule's first group.
    :param total_groups: Number of groups G of the whole run (``None``: ``n_groups``).
    """

    def __init__(self, n_groups: int, seed: int | None, first_group: int = 0, total_groups: int | None = None) -> None:
        self.groups = [TaskGroup(index=g, offset=0) for g in range(n_groups)]
        self.first_group = first_group
        self.total_groups = n_groups if total_groups is None else total_groups
        self.rng = np.random.default_rng(seed)
        self.warmup_iterations = 0
        self.joint_iterations = 0
        self.train_subpolicies = True
        # The group index of each env, set by ``configure``
        self.group_of_env = np.zeros(0, dtype=np.int64)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Files saved before a run's groups could be spread over processes hold all of them
        state.setdefault("first_group", 0)
        state.setdefault("total_groups", len(state["groups"]))
        self.__dict__.update(state)

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, index: int) -> TaskGroup:
        return self.groups[index]

    def __iter__(self) -> Iterator[TaskGroup]:
        return iter(self.groups)

    def configure(self, n_envs: int, warmup_iterations: int, joint_iterations: int, train_subpolicies: bool) -> None:
        """
        Apply MLSH's settings (at set-up and after a load that may change them): the groups' envs,
        their offsets and phases.

        :param n_envs: Number of envs, a multiple of the number of groups.
        :param warmup_iterations: W.
        :param joint_iterations: U.
        :param train_subpolicies: ``False``: every group is ``"master_only"``.
        """
        self.warmup_iterations = warmup_iterations
        self.joint_iterations = joint_iterations
        self.train_subpolicies = train_subpolicies
        period, size = warmup_iterations + joint_iterations, n_envs // len(self.groups)
        # A stagger only matters when tasks have both phases
        stagger = warmup_iterations > 0 and joint_iterations > 0
        for group in self.groups:
            group.envs = range(group.index * size, (group.index + 1) * size)
            group.offset = (self.first_group + group.index) * period // self.total_groups if stagger else 0
            group.phase = self._phase(group)
        self.group_of_env = np.repeat(np.arange(len(self.groups)), size)

    def _phase(self, group: TaskGroup) -> str:
        if not self.train_subpolicies:
            return "master_only"
        return "warmup" if group.iteration_in_task < self.warmup_iterations + group.warmup_left else "joint"

    def starting(self) -> list[TaskGroup]:
        """:return: The groups whose next task starts with the coming iteration (none with frozen sub-policies)."""
        if not self.train_subpolicies:
            return []
        return [group for group in self.groups if group.iteration_in_task == 0]

    def start_task(self, group: TaskGroup, task: Any) -> None:
        """:param task: The task ``group`` starts now (``None`` for an env without the task protocol)."""
        group.task = task
        group.tasks_sampled += 1
        group.phase = self._phase(group)

    def task_rng(self) -> np.random.Generator:
        """
        :return: A generator for one task draw, seeded from the schedule's own generator, so that the
            draws depend only on MLSH's seed and resume exactly after save and load (also when the
            env lives in a subprocess, where a generator passed by value would not advance here).
        """
        return np.random.default_rng(int(self.rng.integers(2**63)))

    def end_iteration(self) -> None:
        """Advance every group by one iteration; a group whose task is complete starts a new one next."""
        if not self.train_subpolicies:
            return
        for group in self.groups:
            group.iteration_in_task += 1
            if group.iteration_in_task >= self.warmup_iterations + self.joint_iterations + group.warmup_left:
                group.iteration_in_task = 0
            group.phase = self._phase(group)

    def joint_envs(self) -> np.ndarray:
        """:return: Boolean mask over the envs: those of the groups in their joint phase."""
        return np.array([group.phase == "joint" for group in self.groups])[self.group_of_env]
