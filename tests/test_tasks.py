"""The task protocol and TaskSamplerWrapper, through Monitor, DummyVecEnv and SubprocVecEnv."""

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

from sb3_mlsh import MLSH, TaskSamplerWrapper
from sb3_mlsh.common.tasks import has_task_protocol, sample_task, set_task


def pendulum_with_gravity_tasks() -> gym.Env:
    return TaskSamplerWrapper(
        gym.make("Pendulum-v1"),
        sample_task=lambda rng: float(rng.uniform(5.0, 15.0)),
        set_task=lambda env, g: setattr(env.unwrapped, "g", g),
    )


def test_wrapper_sets_gravity_and_reports_the_task_in_info():
    env = pendulum_with_gravity_tasks()
    assert env.task is None
    env.set_task(12.5)
    assert env.unwrapped.g == 12.5 and env.task == 12.5
    _, info = env.reset(seed=0)
    assert info["task"] == 12.5
    _, _, _, _, info = env.step(env.action_space.sample())
    assert info["task"] == 12.5


def test_wrapper_changes_the_dynamics():
    def next_obs(g: float) -> np.ndarray:
        env = pendulum_with_gravity_tasks()
        env.set_task(g)
        env.reset(seed=0)
        return env.step(np.zeros(1, dtype=np.float32))[0]

    assert not np.allclose(next_obs(5.0), next_obs(15.0))


def test_wrapper_sampling_is_seeded_by_reset():
    def draws(seed: int) -> list[float]:
        env = pendulum_with_gravity_tasks()
        env.reset(seed=seed)
        return [env.sample_task() for _ in range(5)]

    assert draws(3) == draws(3)
    assert draws(3) != draws(4)
    assert all(5.0 <= g <= 15.0 for g in draws(3))


def test_wrapper_with_a_finite_task_list_draws_uniformly():
    env = TaskSamplerWrapper(gym.make("MovementBandits-v0"), tasks=[1])
    env.reset(seed=0)
    assert {env.sample_task() for _ in range(10)} == {1}
    env.set_task(1)  # delegated to the env's own set_task
    assert env.unwrapped.task == 1 and env.task == 1

    env = TaskSamplerWrapper(gym.make("CartPole-v1"), tasks=["a", "b", "c"], set_task=lambda env, task: None)
    env.reset(seed=0)
    counts = {task: 0 for task in "abc"}
    for _ in range(600):
        counts[env.sample_task()] += 1
    assert all(150 < count < 250 for count in counts.values())


class NeedsTaskEnv(gym.Env):
    """As Meta-World's envs: ``reset`` fails until a task was set."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,))
    action_space = gym.spaces.Box(-1.0, 1.0, (2,))

    def __init__(self) -> None:
        self.goal: np.ndarray | None = None

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        assert self.goal is not None, "set a task before reset"
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action):
        assert self.goal is not None
        return np.zeros(2, dtype=np.float32), -float(np.linalg.norm(action - self.goal)), False, False, {}


def needs_task(**kwargs) -> gym.Env:
    env = gym.wrappers.TimeLimit(NeedsTaskEnv(), max_episode_steps=20)
    return TaskSamplerWrapper(env, set_task=lambda env, goal: setattr(env.unwrapped, "goal", np.asarray(goal)), **kwargs)


def test_an_env_that_needs_a_task_before_its_first_reset_gets_one_drawn_by_the_reset_seed():
    def first_task(seed: int) -> tuple[float, float]:
        env = needs_task(sample_task=lambda rng: tuple(rng.uniform(-1.0, 1.0, 2)))
        assert env.task is None
        _, info = env.reset(seed=seed)
        assert info["task"] == env.task and env.unwrapped.goal is not None
        return env.task

    assert first_task(3) == first_task(3) != first_task(4)
    # SB3 resets the envs before MLSH sets any task
    goals = [(0.5, 0.5), (-0.5, 0.5)]
    model = MLSH("MlpPolicy", make_vec_env(lambda: needs_task(tasks=goals), n_envs=2, seed=0), n_steps=20, seed=0)
    model.learn(80)
    assert model.num_timesteps == 80


def test_held_out_tasks_are_never_drawn_and_are_what_adaptation_evaluates():
    from sb3_mlsh.evaluation import _choose_tasks

    env = needs_task(tasks=[(0.5, 0.5), (-0.5, 0.5), (0.0, -0.5)], held_out_tasks=[(0.0, -0.5)])
    env.reset(seed=0)
    assert env.train_tasks == [(0.5, 0.5), (-0.5, 0.5)]
    assert {env.sample_task() for _ in range(50)} == {(0.5, 0.5), (-0.5, 0.5)}
    vec_env = DummyVecEnv([lambda: env])
    assert _choose_tasks(vec_env, 3, np.random.default_rng(0)) == [(0.0, -0.5)] * 3
    with pytest.raises(ValueError, match="holds out every one of `tasks`"):
        needs_task(tasks=[(0.5, 0.5)], held_out_tasks=[(0.5, 0.5)])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(), "exactly one of `tasks`"),
        (dict(tasks=[1], sample_task=lambda rng: 1), "exactly one of `tasks`"),
        (dict(tasks=[]), "`tasks` is empty"),
        (dict(tasks=[1.0]), "pass `set_task`"),
    ],
)
def test_wrapper_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TaskSamplerWrapper(gym.make("Pendulum-v1"), **kwargs)


@pytest.mark.parametrize("vec_env_cls", [DummyVecEnv, SubprocVecEnv])
def test_protocol_reaches_through_monitor_and_vec_envs(vec_env_cls):
    env = make_vec_env(pendulum_with_gravity_tasks, n_envs=2, seed=0, vec_env_cls=vec_env_cls)
    try:
        assert has_task_protocol(env)
        assert env.env_is_wrapped(Monitor) == [True, True]
        task = sample_task(env)
        assert 5.0 <= task <= 15.0
        set_task(env, task)
        assert env.get_attr("task") == [task, task]
        set_task(env, 7.0, indices=[1])
        assert env.get_attr("task") == [task, 7.0]
        env.reset()
        _, _, _, infos = env.step(np.zeros((2, 1), dtype=np.float32))
        assert [info["task"] for info in infos] == [task, 7.0]
    finally:
        env.close()


def test_mlsh_sets_tasks_in_subprocesses():
    # "module:id" makes each subprocess import sb3_mlsh, which registers the env
    env = make_vec_env("sb3_mlsh:MovementBandits-v0", n_envs=2, seed=0, vec_env_cls=SubprocVecEnv)
    try:
        model = MLSH(
            "MlpPolicy", env, n_steps=10, macro_duration=5, warmup_iterations=1, joint_iterations=1, batch_size=8, seed=0
        )
        model.learn(40)
        assert env.get_attr("task") == [model.current_task] * 2
    finally:
        env.close()


def test_envs_without_the_protocol():
    env = make_vec_env("CartPole-v1", n_envs=1)
    assert not has_task_protocol(env)


def test_an_env_whose_sample_task_takes_no_generator_is_rejected_with_the_fix():
    from helpers import CountingEnv

    class OwnProtocol(CountingEnv):
        def sample_task(self):
            return 1

    with pytest.raises(ValueError, match=r"define it as sample_task\(self, rng=None\)"):
        MLSH("MlpPolicy", DummyVecEnv([OwnProtocol]), n_steps=10, macro_duration=2)


def test_task_labels_are_short_and_the_same_in_every_process():
    from typing import NamedTuple

    from sb3_mlsh.common.tasks import task_label

    class Task(NamedTuple):  # as Meta-World's: an env name and pickled data
        env_name: str
        data: bytes

    task = Task("reach-v3", bytes(range(256)) * 4)
    assert task_label((3, 4)) == "3_4" and task_label(2) == "2" and task_label("a") == "a"
    label = task_label(task)
    assert label.startswith("Task-") and len(label) == 13 and label == task_label(Task("reach-v3", task.data))
    assert task_label(Task("push-v3", task.data)) != label
    assert task_label(np.arange(3)).startswith("ndarray-")


def test_returns_of_a_large_task_set_are_logged_as_their_spread(tmp_path):
    from stable_baselines3.common.logger import configure

    goals = [(0.1 * i, -0.1 * i) for i in range(20)]  # more tasks than are logged one by one
    env = make_vec_env(lambda: needs_task(tasks=goals), n_envs=2, seed=0)
    model = MLSH("MlpPolicy", env, n_steps=20, warmup_iterations=1, joint_iterations=1, seed=0)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(2000)
    header = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    spread = {f"rollout/ep_rew_mean_task_{name}" for name in ("min", "median", "max")} | {"rollout/tasks_with_returns"}
    assert spread <= set(header)
    assert not [key for key in header if key.startswith("rollout/ep_rew_mean_task_0")]
