"""
Meta-World's meta-RL benchmarks (ML1, ML10, ML45) as MLSH task distributions.

Needs the ``metaworld`` extra (``pip install "sb3-mlsh[metaworld]"``), best in a fresh environment: Meta-World 3.1
pins ``mujoco==3.3.0``, and a downgrade from MuJoCo 4 leaves its ``mujoco-core`` files behind (docs/envs.md). This
package's own MuJoCo envs build with 3.3.0 too.
"""

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

try:
    import metaworld
except ImportError as error:  # pragma: no cover - the message is the point
    raise ImportError('sb3_mlsh.adapters.metaworld needs Meta-World: pip install "sb3-mlsh[metaworld]"') from error

from sb3_mlsh.common.tasks import TaskSamplerWrapper

BENCHMARKS = ("ML1", "ML10", "ML45")


class _Simulators(gym.Env):
    """One Meta-World simulator per env class of a benchmark; ``set_task`` sets the task on its class's simulator."""

    metadata = {"render_modes": []}

    def __init__(self, classes: dict[str, Any]) -> None:
        self._envs = {name: cls() for name, cls in classes.items()}
        spaces = [env.observation_space for env in self._envs.values()]
        low = np.min([space.low for space in spaces], axis=0)
        high = np.max([space.high for space in spaces], axis=0)
        self.observation_space = gym.spaces.Box(low, high, dtype=spaces[0].dtype)
        self.action_space = next(iter(self._envs.values())).action_space
        self._env: Any = None

    def set_task(self, task: Any) -> None:
        if task.env_name not in self._envs:
            raise ValueError(
                f"MetaWorldTasks: a {task.env_name!r} task is not one of this benchmark's ({sorted(self._envs)})."
            )
        self._env = self._envs[task.env_name]
        self._env.set_task(task)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        obs, info = self._env.reset(seed=seed, options=options)
        return obs.astype(self.observation_space.dtype), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self._env.step(action)
        info["is_success"] = bool(info.get("success", 0.0))
        return obs.astype(self.observation_space.dtype), float(reward), bool(terminated), bool(truncated), info

    def close(self) -> None:
        for env in self._envs.values():
            env.close()


class MetaWorldTasks(TaskSamplerWrapper):
    """
    A Meta-World ML benchmark as one env with MLSH's task protocol (a ``TaskSamplerWrapper``). Its ``train_tasks``
    (the benchmark's training tasks) are what ``sample_task`` draws for meta-training; its ``held_out_tasks`` (the
    benchmark's test tasks) are what ``evaluate_adaptation`` adapts to; until a task is set, the first reset draws
    one, as Meta-World's envs need. A task is Meta-World's own ``Task``, set with Meta-World's own ``set_task`` on a
    simulator of the task's env class (one per class, made once). Episodes last Meta-World's 500 steps.
    ``info["is_success"]`` carries Meta-World's success at every step, so that SB3 logs ``rollout/success_rate``
    and ``evaluate_adaptation`` reports ``success_rates`` beside R.

    :param benchmark: ``"ML1"`` (goal positions of one manipulation task), ``"ML10"`` or ``"ML45"`` (other tasks).
    :param env_name: ML1's task, e.g. ``"reach-v3"`` (``metaworld.ML1.ENV_NAMES``).
    :param seed: Seed of the benchmark's tasks (Meta-World's).
    """

    def __init__(self, benchmark: str = "ML1", env_name: str = "reach-v3", seed: int = 0) -> None:
        if benchmark not in BENCHMARKS:
            raise ValueError(f"MetaWorldTasks: benchmark={benchmark!r}; use one of {BENCHMARKS}.")
        if benchmark == "ML1" and env_name not in metaworld.ML1.ENV_NAMES:
            raise ValueError(f"MetaWorldTasks: env_name={env_name!r} is not one of Meta-World's (metaworld.ML1.ENV_NAMES).")
        tasks = metaworld.ML1(env_name, seed=seed) if benchmark == "ML1" else getattr(metaworld, benchmark)(seed=seed)
        simulators = _Simulators({**tasks.train_classes, **tasks.test_classes})
        super().__init__(simulators, tasks=[*tasks.train_tasks, *tasks.test_tasks], held_out_tasks=tasks.test_tasks)
