"""The MiniGrid adapter, run when the minigrid extra is installed (.ci/run installs it)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from stable_baselines3.common.env_util import make_vec_env

from sb3_mlsh import MLSH, evaluate_adaptation

pytest.importorskip("minigrid")

from sb3_mlsh.adapters.minigrid import agent_position, goal_cell_tasks  # noqa: E402

EXAMPLES = Path(__file__).parents[1] / "examples"


def test_minigrid_goal_is_where_the_task_says_hidden_and_pays():
    env = goal_cell_tasks("MiniGrid-Empty-8x8-v0")
    assert len(env.tasks) == 35 and (1, 1) not in env.tasks  # the room's free cells but the start
    env.set_task((3, 1))
    obs, info = env.reset(seed=0)
    assert info["task"] == (3, 1) and tuple(agent_position(env)) == (1.0, 1.0)
    assert not (obs.reshape(8, 8, 3)[..., 0] == 8).any()  # no goal in the observation
    rewards = [env.step(2)[1:3] for _ in range(2)]  # forward twice, east: onto the goal
    assert rewards[0] == (0.0, False) and rewards[1][0] > 0.9 and rewards[1][1]
    env.set_task((6, 6))
    env.reset(seed=0)
    assert env.step(2)[1:3] == (0.0, False)  # the goal moved with the task


def test_minigrid_held_out_goals_are_never_drawn_and_bad_goals_are_named():
    env = goal_cell_tasks("MiniGrid-Empty-8x8-v0", held_out_tasks=[(6, 6), (1, 6)])
    env.reset(seed=0)
    drawn = {env.sample_task() for _ in range(500)}
    assert drawn == set(env.train_tasks) and not drawn & {(6, 6), (1, 6)}
    env.set_task((0, 0))  # a wall
    with pytest.raises(ValueError, match=r"goal \(0, 0\) is not a free cell"):
        env.reset(seed=0)


@pytest.mark.filterwarnings("ignore:You have specified a mini-batch size")
def test_mlsh_meta_trains_and_adapts_to_held_out_minigrid_goals():
    def make():
        return goal_cell_tasks("MiniGrid-Empty-8x8-v0", held_out_tasks=[(6, 6)], max_steps=20)

    model = MLSH("MlpPolicy", make_vec_env(make, n_envs=2, seed=0), n_steps=20, macro_duration=5, warmup_iterations=1,
                 joint_iterations=1, batch_size=16, seed=0)  # fmt: skip
    model.learn(160)
    result = evaluate_adaptation(model, make_vec_env(make, n_envs=2, seed=1), n_tasks=1, adaptation_timesteps=80, seed=0)
    assert result.tasks == [(6, 6)] and np.isfinite(result.per_episode)


def test_minigrid_example_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "minigrid_goal_cells.py"), "--timesteps", "3200", "--adaptation-timesteps", "800"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert result.stdout.count("held-out goal") == 3 and result.stdout.count("alone: moves the agent") == 4
