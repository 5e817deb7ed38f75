"""MLSH over two processes (gloo on localhost): shared sub-policies, staggered groups, checkpoints, a dead process."""

import datetime
import json
import multiprocessing
import os
import pathlib
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import torch as th
import torch.distributed as dist
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from torch.nn.utils import parameters_to_vector

from sb3_mlsh import MLSH
from sb3_mlsh.distributed import CollectiveError, DistributedMLSH, meta_train
from sb3_mlsh.distributed.run import free_port
from sb3_mlsh.mlsh.task_groups import TaskSchedule

ITERATIONS = 4
# Per process: 4 envs in 2 groups, 50 steps each per iteration; W = U = 1, so groups change phase every iteration
SETTINGS = dict(n_task_groups=2, n_steps=50, warmup_iterations=1, joint_iterations=1, batch_size=50, n_epochs=2, seed=0)


def _vectors(model: MLSH) -> list[th.Tensor]:
    return [parameters_to_vector(subpolicy.parameters()).detach().clone() for subpolicy in model.policy.subpolicies]


class _DieAtIteration(BaseCallback):
    """Kill this process (as a crash would) when its ``iteration``-th rollout starts."""

    def __init__(self, iteration: int) -> None:
        super().__init__()
        self.iteration = iteration
        self.started = 0

    def _on_rollout_start(self) -> None:
        self.started += 1
        if self.started == self.iteration:
            os._exit(3)

    def _on_step(self) -> bool:
        return True


def _worker(rank: int, port: int, folder: str, die: bool, sync: str) -> None:
    """One process of a 2-process run: learn ``ITERATIONS`` iterations, save what the test checks."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    th.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2, timeout=datetime.timedelta(seconds=60))
    result: dict[str, Any] = {}
    try:
        env = make_vec_env("MovementBandits-v0", n_envs=4, seed=10 * rank)
        model = DistributedMLSH("MlpPolicy", env, subpolicy_sync=sync, **SETTINGS)
        result["initial"] = _vectors(model)
        callback = _DieAtIteration(2) if die and rank == 1 else None
        model.learn(ITERATIONS * 4 * 50, callback=callback)
        assert model.task_groups is not None and model.policy.obs_normalizer is not None
        result.update(
            final=_vectors(model),
            offsets=[group.offset for group in model.task_groups],
            phases=[group.phase for group in model.task_groups],
            tasks=[group.task for group in model.task_groups],
            normalizer=[buffer.clone() for buffer in model.policy.obs_normalizer.buffers()],
            seed=model.seed,
        )
        if sync == "average":
            result["adam"] = [model._subpolicy_state(k) for k in range(model.n_subpolicies)]
    except CollectiveError as error:
        result["error"] = str(error)
    finally:
        th.save(result, pathlib.Path(folder) / f"rank_{rank}.pt")
        dist.destroy_process_group()


def _run_two(folder: pathlib.Path, die: bool = False, sync: str = "gather") -> list[dict[str, Any]]:
    context = multiprocessing.get_context("spawn")
    port = free_port()
    processes = [context.Process(target=_worker, args=(rank, port, str(folder), die, sync)) for rank in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=180)
        assert not process.is_alive(), "a process of the run hangs"
    return [th.load(folder / f"rank_{rank}.pt") if (folder / f"rank_{rank}.pt").exists() else {} for rank in range(2)]


@pytest.mark.parametrize("sync", ["gather", "average"])
def test_processes_share_one_set_of_subpolicies(tmp_path: pathlib.Path, sync: str) -> None:
    first, second = _run_two(tmp_path, sync=sync)
    # the same sub-policies from the start (process 0's), updated, and bit-identical after every update
    for k in range(2):
        assert th.equal(first["initial"][k], second["initial"][k])
        assert not th.equal(first["initial"][k], first["final"][k])
        assert th.equal(first["final"][k], second["final"][k])
    for mine, theirs in zip(first["normalizer"], second["normalizer"], strict=True):
        assert th.equal(mine, theirs)
    if sync == "average":  # and the same Adam state (step counts, moments), stepped
        for mine, theirs, final in zip(first["adam"], second["adam"], first["final"], strict=True):
            assert th.equal(mine, theirs) and mine[len(final) :].abs().sum() > 0
    # each process its own seed, masters and tasks; the 4 groups staggered as one process's 4 groups would be
    assert (first["seed"], second["seed"]) == (0, 1)
    assert first["offsets"] + second["offsets"] == [0, 0, 1, 1]
    schedule = TaskSchedule(4, seed=0)
    schedule.configure(8, warmup_iterations=1, joint_iterations=1, train_subpolicies=True)
    for _ in range(ITERATIONS):
        for group in schedule.starting():
            schedule.start_task(group, None)
        schedule.end_iteration()
    assert first["phases"] + second["phases"] == [group.phase for group in schedule]


def test_a_dead_process_stops_the_run(tmp_path: pathlib.Path) -> None:
    first, second = _run_two(tmp_path, die=True)
    assert second == {}  # killed before it saved anything
    assert "another process of the run stopped" in first["error"] and "--resume" in first["error"]


def _launch(save_path: pathlib.Path, timesteps: int, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m"]
    command += ["sb3_mlsh.distributed", "--env", "MovementBandits-v0", "--n-task-groups", "2", "--n-envs", "4"]
    command += ["-n", str(timesteps), "--checkpoint-interval", "1000", "--save-path", str(save_path), "-v", "0", *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.mark.slow
def test_command_checkpoints_refuses_to_overwrite_and_resumes(tmp_path: pathlib.Path) -> None:
    run = tmp_path / "run"
    finished = _launch(run, 1000)
    assert finished.returncode == 0, finished.stderr
    assert json.loads((run / "checkpoints" / "latest.json").read_text())["num_timesteps"] == 1000

    again = _launch(run, 2000)
    assert again.returncode != 0 and "add --resume" in again.stderr
    assert json.loads((run / "checkpoints" / "latest.json").read_text())["num_timesteps"] == 1000

    resumed = _launch(run, 2000, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    latest = json.loads((run / "checkpoints" / "latest.json").read_text())
    assert latest == {"folder": "000000002000", "num_timesteps": 2000, "world_size": 2, "subpolicy_sync": "gather"}
    assert sorted(path.name for path in (run / "checkpoints").iterdir()) == ["000000002000", "latest.json"]

    # process 0's model is an ordinary MLSH: its groups' masters, the run's sub-policies
    model = MLSH.load(run / "model.zip")
    assert (model.n_task_groups, model.num_timesteps) == (1, 1000)
    other = MLSH.load(run / "checkpoints" / "000000002000" / "rank_1.zip")
    for mine, theirs in zip(_vectors(model), _vectors(other), strict=True):
        assert th.equal(mine, theirs)
    observations = make_vec_env("MovementBandits-v0", n_envs=2, seed=0).reset()
    actions, _ = model.predict(observations)
    assert np.shape(actions) == (2,)


@pytest.fixture
def process_group_of_one(tmp_path: pathlib.Path):
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_settings_are_checked_before_anything_runs(tmp_path: pathlib.Path, process_group_of_one: None) -> None:
    with pytest.raises(ValueError, match="--n-envs that is a multiple of --n-task-groups"):
        meta_train("MovementBandits-v0", 1000, tmp_path / "a", n_task_groups=3, n_envs=4)
    with pytest.raises(KeyError, match="no entry"):
        meta_train("CartPole-v1", 1000, tmp_path / "b")
    saved = tmp_path / "c"
    saved.mkdir()
    (saved / "model.zip").write_bytes(b"a user's model")
    with pytest.raises(FileExistsError, match="add --resume"):
        meta_train("MovementBandits-v0", 1000, saved)
    assert (saved / "model.zip").read_bytes() == b"a user's model"
    (saved / "checkpoints").mkdir()
    (saved / "checkpoints" / "latest.json").write_text(json.dumps({"folder": "x", "num_timesteps": 8, "world_size": 2}))
    with pytest.raises(ValueError, match="written by 2 processes"):
        meta_train("MovementBandits-v0", 1000, saved, resume=True)
    with pytest.raises(ValueError, match="--subpolicy-sync sum; use one of"):
        meta_train("MovementBandits-v0", 1000, tmp_path / "d", subpolicy_sync="sum")
    (saved / "checkpoints" / "latest.json").write_text(json.dumps({"folder": "x", "num_timesteps": 8, "world_size": 1}))
    with pytest.raises(ValueError, match="trained with --subpolicy-sync gather; resume it with that"):
        meta_train("MovementBandits-v0", 1000, saved, resume=True, subpolicy_sync="average")


def test_one_process_averaging_its_own_updates_updates_as_gathering_does(process_group_of_one: None) -> None:
    settings = {**SETTINGS, "warmup_iterations": 0}
    vectors = []
    for sync in ("gather", "average"):
        model = DistributedMLSH(
            "MlpPolicy", make_vec_env("MovementBandits-v0", n_envs=4, seed=0), subpolicy_sync=sync, **settings
        )
        initial = _vectors(model)
        model.learn(2 * 4 * 50)
        vectors.append(_vectors(model))
        assert not any(th.equal(before, after) for before, after in zip(initial, vectors[-1], strict=True))
    for gathered, averaged in zip(*vectors, strict=True):
        th.testing.assert_close(averaged, gathered, rtol=0, atol=1e-6)  # x * n / n: rounding only


def test_average_needs_adam(process_group_of_one: None) -> None:
    env = make_vec_env("MovementBandits-v0", n_envs=4)
    with pytest.raises(ValueError, match="optimizer_class Adam or AdamW"):
        DistributedMLSH("MlpPolicy", env, subpolicy_sync="average", policy_kwargs=dict(optimizer_class=th.optim.SGD))
    DistributedMLSH("MlpPolicy", env, subpolicy_sync="gather", policy_kwargs=dict(optimizer_class=th.optim.SGD))


def test_distributed_mlsh_needs_a_process_group() -> None:
    with pytest.raises(RuntimeError, match="init_process_group"):
        DistributedMLSH("MlpPolicy", "MovementBandits-v0")
