"""The Meta-World adapter, run when the metaworld extra is installed (.ci/run installs it last: it pins mujoco 3.3.0)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from stable_baselines3.common.env_util import make_vec_env

from sb3_mlsh import MLSH, evaluate_adaptation

pytest.importorskip("metaworld")

from sb3_mlsh.adapters.metaworld import MetaWorldTasks  # noqa: E402

EXAMPLES = Path(__file__).parents[1] / "examples"


def test_ml1_trains_on_its_train_goals_and_holds_out_its_test_goals():
    env = MetaWorldTasks("ML1", "reach-v3", seed=0)
    assert len(env.train_tasks) == len(env.held_out_tasks) == 50
    obs, _ = env.reset(seed=3)  # Meta-World's envs need a task before their first reset: one is drawn
    assert env.task in env.train_tasks and env.observation_space.contains(obs)
    env.reset(seed=0)
    drawn = [env.sample_task() for _ in range(200)]
    assert all(task in env.train_tasks for task in drawn) and not any(task in env.held_out_tasks for task in drawn)
    env.set_task(env.held_out_tasks[0])
    env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert isinstance(info["is_success"], bool) and np.isfinite(reward) and not (terminated or truncated)


def test_ml10_switches_the_simulator_with_the_task_and_names_foreign_tasks():
    env = MetaWorldTasks("ML10", seed=0)
    names = {task.env_name for task in env.held_out_tasks}
    assert len(names) == 5 and not names & {task.env_name for task in env.train_tasks}
    for task in (env.train_tasks[0], env.held_out_tasks[0]):
        env.set_task(task)
        obs, _ = env.reset(seed=0)
        assert obs.shape == env.observation_space.shape
    with pytest.raises(ValueError, match="is not one of this benchmark's"):
        MetaWorldTasks("ML1", "reach-v3").set_task(env.held_out_tasks[0])
    with pytest.raises(ValueError, match="benchmark='ML2'"):
        MetaWorldTasks("ML2")


def test_mlsh_adapts_to_held_out_goals_and_reports_the_success_rate():
    def make():
        return MetaWorldTasks("ML1", "reach-v3", seed=0)

    model = MLSH("MlpPolicy", make_vec_env(make, n_envs=1, seed=0), n_steps=100, macro_duration=50,
                 warmup_iterations=1, joint_iterations=1, batch_size=50, seed=0)  # fmt: skip
    model.learn(400)
    result = evaluate_adaptation(model, make_vec_env(make, n_envs=1, seed=1), n_tasks=1, adaptation_timesteps=600, seed=0)
    assert result.tasks[0] in make().held_out_tasks
    assert result.success_rates is not None and 0.0 <= result.success_rates[0] <= 1.0


def test_metaworld_example_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "metaworld_ml1.py"), "--timesteps", "2000", "--adaptation-timesteps", "1000",
         "--n-tasks", "1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "held-out goal 0: R" in result.stdout and "success" in result.stdout
