"""The task protocol MLSH samples and switches tasks through, and a wrapper that gives it to any env.

An environment takes part in MLSH through three members:

- ``sample_task(rng=None)``: draw a task from the training distribution with the numpy ``Generator``
  ``rng`` (MLSH passes one it owns, so that its task sequence is seeded and resumes after a load;
  without one, the env's seeded ``np_random``);
- ``set_task(task)``: make ``task`` the task of the following episodes;
- ``task``: the current task.
"""

import hashlib
import inspect
import numbers
import pickle
from collections.abc import Callable, Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv

TASK_PROTOCOL = ("sample_task", "set_task", "task")
# Per-task returns are logged task by task for task sets up to this size (above it, their spread over the tasks)
SMALL_TASK_SET = 16
TASK_LABEL_LENGTH = 32  # a task whose text is longer is labelled by its type and a hash


class TaskSamplerWrapper(gym.Wrapper):
    """
    Give any gymnasium env MLSH's task protocol (``sample_task(rng=None)``, ``set_task(task)``, ``task``).

    The current task is also put in ``info["task"]`` at every ``reset`` and ``step``.
    ``sample_task(rng)`` draws with ``rng``, or, without one, with the env's ``np_random`` (so that
    ``reset(seed=...)`` makes it repeatable).

    Example (tasks over Pendulum's gravity)::

        env = TaskSamplerWrapper(
            gym.make("Pendulum-v1"),
            sample_task=lambda rng: float(rng.uniform(5.0, 15.0)),
            set_task=lambda env, g: setattr(env.unwrapped, "g", g),
        )

    :param env: The environment to wrap.
    :param tasks: A finite list of tasks; ``sample_task()`` draws one uniformly.
        Give either ``tasks`` or ``sample_task``.
    :param sample_task: A callable that takes a ``numpy.random.Generator`` and returns a task.
    :param set_task: A callable ``(env, task) -> None`` that puts ``task`` into ``env`` (the wrapped env).
        Not needed when the wrapped env has a ``set_task`` method of its own.
    :param held_out_tasks: Tasks kept for evaluation: ``evaluate_adaptation`` adapts to these when it is given no
        ``tasks``. With ``tasks``, ``sample_task()`` never draws them (it draws from ``train_tasks``); with
        ``sample_task``, that callable should not draw them.

    Until a task is set, the first ``reset`` sets one drawn with ``sample_task`` (with a generator seeded by the
    reset's ``seed``, else the env's ``np_random``), so that an env which needs a task before its first reset (as
    Meta-World's do) can be reset by SB3 before MLSH sets the tasks.
    """

    def __init__(
        self,
        env: gym.Env,
        tasks: Sequence[Any] | None = None,
        sample_task: Callable[[np.random.Generator], Any] | None = None,
        set_task: Callable[[gym.Env, Any], None] | None = None,
        held_out_tasks: Sequence[Any] | None = None,
    ) -> None:
        super().__init__(env)
        if (tasks is None) == (sample_task is None):
            raise ValueError(
                "TaskSamplerWrapper: give exactly one of `tasks` (a list to draw from uniformly) "
                "or `sample_task` (a callable taking a numpy Generator and returning a task)."
            )
        if tasks is not None:
            tasks = list(tasks)
            if len(tasks) == 0:
                raise ValueError("TaskSamplerWrapper: `tasks` is empty; give at least one task.")
        if set_task is None and not env.has_wrapper_attr("set_task"):
            raise ValueError(
                f"TaskSamplerWrapper: {env} has no `set_task` method, so pass `set_task`, "
                "a callable `(env, task) -> None`, e.g. `set_task=lambda env, g: setattr(env.unwrapped, 'g', g)`."
            )
        self.held_out_tasks = list(held_out_tasks or ())
        self.tasks = tasks
        self.train_tasks = None
        if tasks is not None:
            self.train_tasks = [task for task in tasks if not any(same_task(task, held) for held in self.held_out_tasks)]
            if not self.train_tasks:
                raise ValueError(
                    "TaskSamplerWrapper: `held_out_tasks` holds out every one of `tasks`; keep at least one for training."
                )
        self._sample_task = sample_task
        self._set_task = set_task
        self._task = env.get_wrapper_attr("task") if env.has_wrapper_attr("task") else None

    @property
    def task(self) -> Any:
        """The current task (``None`` until a task was set or the first reset, unless the wrapped env has one)."""
        return self._task

    def sample_task(self, rng: np.random.Generator | None = None) -> Any:
        """
        Draw a task from ``train_tasks`` (uniformly: ``tasks`` less ``held_out_tasks``) or from ``sample_task``.

        :param rng: The generator to draw with (``None``: the env's ``np_random``).
        :return: The task (it is not set: call ``set_task``).
        """
        rng = self.np_random if rng is None else rng
        if self.train_tasks is not None:
            return self.train_tasks[int(rng.integers(len(self.train_tasks)))]
        assert self._sample_task is not None
        return self._sample_task(rng)

    def set_task(self, task: Any) -> None:
        """
        Make ``task`` the task of the following episodes.

        :param task: The task.
        """
        if self._set_task is None:
            self.env.get_wrapper_attr("set_task")(task)
        else:
            self._set_task(self.env, task)
        self._task = task

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        if self._task is None:  # no task yet: draw one before the wrapped env's reset, which may need it
            self.set_task(self.sample_task(None if seed is None else np.random.default_rng(seed)))
        obs, info = self.env.reset(seed=seed, options=options)
        info["task"] = self._task
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["task"] = self._task
        return obs, reward, terminated, truncated, info


def same_task(task: Any, other: Any) -> bool:
    """:return: Whether two tasks are equal (arrays compared whole)."""
    try:
        return bool(task == other)
    except ValueError:  # arrays of several elements
        return bool(np.array_equal(task, other))


def task_label(task: Any) -> str:
    """
    :param task: A task.
    :return: A short text for the logger that is the same in every process: a number, or a tuple of them, as it reads
        (``(3, 4)`` -> ``"3_4"``); any other task, or a longer text, as its type and a hash of its pickle (a
        Meta-World ``Task``, whose data is a byte string, -> ``"Task-1a2b3c4d"``).
    """
    parts = task if isinstance(task, (tuple, list)) else (task,)
    if all(isinstance(part, (numbers.Number, str)) for part in parts):
        text = "_".join(str(part) for part in parts)
        if len(text) <= TASK_LABEL_LENGTH:
            return text
    try:
        content = pickle.dumps(task)
    except Exception:  # a task that cannot be pickled: its text
        content = repr(task).encode()
    return f"{type(task).__name__}-{hashlib.sha1(content).hexdigest()[:8]}"


def has_task_protocol(env: VecEnv) -> bool:
    """
    :param env: A vectorized environment.
    :return: Whether every env in ``env`` has ``sample_task``, ``set_task`` and ``task``
        (through any wrappers, including ``Monitor``).
    """
    return all(env.has_attr(name) for name in TASK_PROTOCOL)


def sample_task(env: VecEnv, rng: np.random.Generator | None = None, index: int = 0) -> Any:
    """
    :param env: A vectorized environment with the task protocol.
    :param rng: The generator to draw with (``None``: the env's own ``np_random``).
    :param index: The env whose ``sample_task`` draws the task.
    :return: A task drawn from the training distribution.
    """
    if rng is None:
        return env.env_method("sample_task", indices=[index])[0]
    return env.env_method("sample_task", rng, indices=[index])[0]


def takes_rng(env: gym.Env) -> bool:
    """:return: Whether ``env``'s ``sample_task`` (through its wrappers) accepts a generator argument."""
    try:
        inspect.signature(env.get_wrapper_attr("sample_task")).bind(np.random.default_rng(0))
    except TypeError:
        return False
    return True


def finite_tasks(env: VecEnv) -> Sequence[Any] | None:
    """
    :param env: A vectorized environment with the task protocol.
    :return: The tasks ``sample_task`` draws from, where env 0 lists them (``train_tasks``, else
        ``tasks``); ``None`` for a task distribution that is not a finite list.
    """
    for name in ("train_tasks", "tasks"):
        if env.has_attr(name):
            tasks = env.get_attr(name, indices=[0])[0]
            if tasks is not None:
                return list(tasks)
    return None


def set_task(env: VecEnv, task: Any, indices: Sequence[int] | None = None) -> None:
    """
    Set ``task`` on the envs of ``env`` (all of them by default).

    :param env: A vectorized environment with the task protocol.
    :param task: The task.
    :param indices: The envs to set it on.
    """
    env.env_method("set_task", task, indices=indices)
