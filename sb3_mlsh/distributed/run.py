"""Meta-train one run over the processes of a ``torch.distributed`` process group, checkpointed and resumable."""

import math
import pathlib
import socket
from typing import Any

import torch.distributed as dist
from stable_baselines3.common.env_util import make_vec_env

from sb3_mlsh.distributed.mlsh import SUBPOLICY_SYNCS, DistributedMLSH, checkpoint_file, latest_checkpoint
from sb3_mlsh.zoo import packaged_hyperparameters

# Checkpoints per run when no interval is given
_CHECKPOINTS = 20


def free_port() -> int:
    """:return: A TCP port free on this machine now, for a rendezvous of processes on one machine."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def split(total: int, world_size: int, what: str, option: str) -> int:
    """:return: ``total`` divided among ``world_size`` processes; ``ValueError`` naming ``option`` if it does not divide."""
    if total < world_size or total % world_size != 0:
        raise ValueError(
            f"sb3_mlsh.distributed: {option} {total} {what} cannot be shared equally by {world_size} processes; "
            f"use a multiple of {world_size} (or another --nproc-per-node)."
        )
    return total // world_size


def meta_train(
    env_id: str,
    total_timesteps: int,
    save_path: str | pathlib.Path,
    n_task_groups: int | None = None,
    n_envs: int | None = None,
    seed: int = 0,
    resume: bool = False,
    checkpoint_interval: int | None = None,
    hyperparams: dict[str, Any] | None = None,
    device: str = "cpu",
    verbose: int = 1,
    tensorboard_log: str | None = None,
    subpolicy_sync: str = "gather",
) -> DistributedMLSH:
    """
    Meta-train MLSH on ``env_id`` with the settings of the packaged ``hyperparams/mlsh.yml``, the run's envs and
    task groups shared equally by the processes of the default process group (which every process calls this
    in). Checkpoints go to ``save_path`` (see ``DistributedMLSH.save_checkpoint``); its ``model.zip`` is an
    ordinary MLSH model. ``save_path`` must be a folder every process reaches (on a cluster, a shared filesystem).

    :param env_id: A registered env with an entry in ``hyperparams/mlsh.yml``.
    :param total_timesteps: Environment steps of all processes together.
    :param save_path: The run's folder.
    :param n_task_groups: Task groups of all processes together (``None``: the entry's, or 1 per process).
    :param n_envs: Envs of all processes together (``None``: the entry's ``n_envs``, or one per group if more).
    :param seed: The run's seed (process ``r`` seeds its MLSH with ``seed + r`` and its envs from ``seed``).
    :param resume: Continue from the last checkpoint in ``save_path``; without it, a folder holding one is an error.
    :param checkpoint_interval: Environment steps (all processes) between checkpoints (``None``: 20 per run).
    :param hyperparams: Settings that replace the entry's.
    :param device: Torch device of the networks (``"cuda"``: each process uses the GPU of its local rank).
    :param verbose: Verbosity of process 0 (the others print nothing).
    :param tensorboard_log: Process 0's tensorboard folder.
    :param subpolicy_sync: How the processes update the shared sub-policies, ``"gather"`` or ``"average"``
        (see ``DistributedMLSH``); a resumed run keeps the one it started with.
    :return: This process's model, trained.
    """
    rank, world_size = dist.get_rank(), dist.get_world_size()
    if subpolicy_sync not in SUBPOLICY_SYNCS:
        raise ValueError(f"sb3_mlsh.distributed: --subpolicy-sync {subpolicy_sync}; use one of {SUBPOLICY_SYNCS}.")
    entry = {**packaged_hyperparameters(env_id), **(hyperparams or {})}
    groups = n_task_groups if n_task_groups is not None else entry.pop("n_task_groups", world_size)
    envs = n_envs if n_envs is not None else max(entry["n_envs"], groups)
    local_groups = split(groups, world_size, "task groups", "--n-task-groups")
    local_envs = split(envs, world_size, "envs", "--n-envs")
    if local_envs % local_groups != 0:
        raise ValueError(
            f"sb3_mlsh.distributed: each process would have {local_envs} envs for {local_groups} task groups; use an "
            f"--n-envs that is a multiple of --n-task-groups ({groups})."
        )
    for key in ("n_envs", "n_timesteps", "n_task_groups"):
        entry.pop(key, None)
    policy, env_kwargs = entry.pop("policy", "MlpPolicy"), entry.pop("env_kwargs", None)

    save_path = pathlib.Path(save_path)
    checkpoint = latest_checkpoint(save_path)
    if not resume and (checkpoint is not None or (save_path / "model.zip").exists()):
        raise FileExistsError(
            f"sb3_mlsh.distributed: {save_path} already holds a run; add --resume to continue it, or choose another "
            "--save-path (nothing there is overwritten)."
        )
    if checkpoint is not None and checkpoint["world_size"] != world_size:
        raise ValueError(
            f"sb3_mlsh.distributed: the checkpoint in {save_path} was written by {checkpoint['world_size']} processes; "
            f"resume with --nproc-per-node (times --nnodes) = {checkpoint['world_size']}, not {world_size}."
        )
    if checkpoint is not None and checkpoint.get("subpolicy_sync", "gather") != subpolicy_sync:
        raise ValueError(
            f"sb3_mlsh.distributed: the run in {save_path} was trained with --subpolicy-sync "
            f"{checkpoint.get('subpolicy_sync', 'gather')}; resume it with that, not {subpolicy_sync}."
        )
    if device.startswith("cuda"):
        device = f"cuda:{dist.get_node_local_rank(fallback_rank=0)}"
    env = make_vec_env(env_id, n_envs=local_envs, seed=seed + rank * local_envs, env_kwargs=env_kwargs)
    # process 0 alone prints and logs
    quiet: dict[str, Any] = {"verbose": verbose if rank == 0 else 0, "tensorboard_log": tensorboard_log if rank == 0 else None}
    if checkpoint is not None:
        model = DistributedMLSH.load(
            checkpoint_file(save_path, checkpoint, rank), env=env, device=device, subpolicy_sync=subpolicy_sync, **quiet
        )
    else:
        model = DistributedMLSH(
            policy, env, n_task_groups=local_groups, seed=seed, device=device, subpolicy_sync=subpolicy_sync, **quiet, **entry
        )
    iteration = local_envs * model.n_steps
    per_process = math.ceil(total_timesteps / world_size)
    model.schedule_timesteps = per_process
    interval = checkpoint_interval or math.ceil(total_timesteps / _CHECKPOINTS)
    chunk = max(1, math.ceil(interval / world_size / iteration)) * iteration
    while model.num_timesteps < per_process:
        model.learn(min(chunk, per_process - model.num_timesteps), reset_num_timesteps=False, tb_log_name="MLSH")
        model.save_checkpoint(save_path)
    return model
