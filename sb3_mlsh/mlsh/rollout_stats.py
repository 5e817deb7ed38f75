"""What MLSH logs of each iteration's rollout: the schedule, sub-policy usage, per-task returns and divergence."""

from collections import deque
from typing import Any

import numpy as np
from stable_baselines3.common.logger import Logger

from sb3_mlsh.common.buffers import TaggedRolloutBuffer
from sb3_mlsh.common.diagnostics import subpolicy_divergence
from sb3_mlsh.common.observations import apply, n_rows, take
from sb3_mlsh.common.tasks import SMALL_TASK_SET, task_label
from sb3_mlsh.mlsh.policies import MLSHPolicy
from sb3_mlsh.mlsh.task_groups import PHASES, TaskSchedule


def keep_task_returns(
    task_returns: dict[Any, deque[float]], infos: list[dict[str, Any]], tasks: list[Any], window: int
) -> None:
    """
    Keep the returns of the episodes that ended, per task (the last ``window`` of each).

    :param task_returns: Returns per task label, updated in place.
    :param infos: The step's infos, one per env (an ended episode's has ``"episode"``).
    :param tasks: Each env's task.
    :param window: Returns kept per task.
    """
    for info, task in zip(infos, tasks, strict=True):
        if "episode" in info:
            task_returns.setdefault(task_label(task), deque(maxlen=window)).append(float(info["episode"]["r"]))


def record_rollout(
    logger: Logger,
    task_groups: TaskSchedule,
    usage: np.ndarray,
    task_returns: dict[Any, deque[float]],
    task_set_size: int | None,
) -> None:
    """
    Record the schedule (group 0's task and phase as ``mlsh/*``, each group's under ``mlsh/group_<g>/``), each
    sub-policy's share of the iteration's steps and the mean return per task: each task's up to ``SMALL_TASK_SET``
    tasks, their minimum, median and maximum above.

    :param usage: Steps each sub-policy acted in the iteration.
    :param task_returns: Returns per task label (``keep_task_returns``).
    :param task_set_size: Number of tasks of a finite task set, else ``None``.
    """
    group0 = task_groups[0]
    logger.record("mlsh/task", loggable(group0.task))
    logger.record("mlsh/phase", group0.phase)
    logger.record("mlsh/tasks_sampled", group0.tasks_sampled)
    logger.record("mlsh/iteration_in_task", group0.iteration_in_task)
    for group in task_groups:
        logger.record(f"mlsh/group_{group.index}/task", loggable(group.task))
        logger.record(f"mlsh/group_{group.index}/phase", group.phase, exclude="tensorboard")
        logger.record(f"mlsh/group_{group.index}/phase_id", PHASES.index(group.phase))
    logger.record("mlsh/groups_in_joint", sum(group.phase == "joint" for group in task_groups))
    for k, fraction in enumerate(usage / max(usage.sum(), 1)):
        logger.record(f"rollout/subpolicy_{k}_usage", float(fraction))
    means = {key: float(np.mean(returns)) for key, returns in sorted(task_returns.items())}
    if task_set_size is None or task_set_size <= SMALL_TASK_SET:
        for key, mean in means.items():
            logger.record(f"rollout/ep_rew_mean_task_{key}", mean)
    elif means:  # many tasks (Meta-World's 50): how the mean return spreads over them
        values = list(means.values())
        logger.record("rollout/tasks_with_returns", len(values))
        for name, value in (("min", np.min(values)), ("median", np.median(values)), ("max", np.max(values))):
            logger.record(f"rollout/ep_rew_mean_task_{name}", float(value))


def rollout_divergence(policy: MLSHPolicy, rollout_buffer: TaggedRolloutBuffer, n_samples: int = 256) -> float:
    """:return: Sub-policy divergence on up to ``n_samples`` of the iteration's observations, evenly spaced."""
    observations = apply(lambda values: values.reshape((-1, *values.shape[2:])), rollout_buffer.observations)
    n_observations = n_rows(observations)
    rows = np.linspace(0, n_observations - 1, min(n_samples, n_observations)).astype(int)
    return subpolicy_divergence(policy, take(observations, rows))


def loggable(task: Any) -> Any:
    """A task as the logger can record it: a number as it is, anything else as its short label (``task_label``)."""
    if isinstance(task, (int, float, np.integer, np.floating)) and not isinstance(task, bool):
        return task
    return task_label(task)
