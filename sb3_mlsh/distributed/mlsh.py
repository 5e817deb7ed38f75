"""MLSH whose task groups are spread over the processes of a ``torch.distributed`` process group."""

import copy
import json
import pathlib
import shutil
from typing import Any, cast

import numpy as np
import torch as th
import torch.distributed as dist
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.running_mean_std import RunningMeanStd
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from sb3_mlsh.common.buffers import SAMPLE_FIELDS, BufferView, TaggedRolloutBuffer
from sb3_mlsh.common.learner import LevelLogger
from sb3_mlsh.common.observations import apply
from sb3_mlsh.common.save_util import atomic_write_json
from sb3_mlsh.mlsh.mlsh import _MIN_UPDATE_ROWS, MLSH

# The rows of the sub-policy buffer an update reads, besides the observations
LATEST = "latest.json"
SUBPOLICY_SYNCS = ("gather", "average")


class CollectiveError(RuntimeError):
    """A collective operation failed: another process of the run stopped (or cannot be reached)."""


class DistributedMLSH(MLSH):
    """
    MLSH with the task groups of one run spread over the processes of the default ``torch.distributed``
    process group (one per CPU core, GPU or machine), as the paper's 10 task groups were over 120 MPI workers.

    Each process owns ``n_task_groups`` task groups, its env (``n_envs``, a multiple of ``n_task_groups``)
    and its groups' masters; the run has ``n_task_groups * world_size`` groups, their warm-ups staggered over
    all of them. Only the sub-policies (and the observation statistics) are shared. Every iteration ends with
    bit-identical sub-policies in every process, updated with SB3's PPO update in one of two ways
    (``subpolicy_sync``):

    - ``"gather"``: each sub-policy ``k`` is updated by one process, ``k % world_size``, on the steps it took
      in every process's groups in their joint phase (gathered there), and its parameters are then broadcast.
      The update is the one a single process holding all groups would make; the processes wait for the one
      whose sub-policies took the most steps (with K = 2 on 2 processes, the busier sub-policy's).
    - ``"average"``: each process updates every sub-policy on its own groups' joint-phase steps, and each
      sub-policy then takes the mean of the processes' changes to its parameters and to its Adam state (step
      count and moments), weighted by their steps. Every process does its share of the updates, but each
      change is made from part of the data. Where only one process's groups are in their joint phase (with
      staggered groups, the usual case) the result is that process's update, as with ``"gather"``.

    Either way, the number of collective operations per iteration does not depend on the data (so
    ``target_kl`` and the data-dependent number of minibatches cannot make them deadlock), and a process whose
    groups are all warming up contributes no steps.

    Every process must call ``learn`` with the same ``total_timesteps`` (and ``save_checkpoint`` at the same
    iterations); a callback that stops training must stop it in every process. Each process is seeded with
    ``seed + rank``; the sub-policies start from process 0's. A collective that fails (another process died,
    or ``timeout`` of the process group passed) raises ``CollectiveError`` in every surviving process.

    Parameters as ``MLSH``'s; ``n_task_groups`` and ``n_envs`` are this process's.

    :param subpolicy_sync: ``"gather"`` or ``"average"``: how the processes update the shared sub-policies (above).
    """

    def __init__(self, *args: Any, subpolicy_sync: str = "gather", **kwargs: Any) -> None:
        if subpolicy_sync not in SUBPOLICY_SYNCS:
            raise ValueError(f"DistributedMLSH: subpolicy_sync={subpolicy_sync!r}; use one of {SUBPOLICY_SYNCS}.")
        self.subpolicy_sync = subpolicy_sync
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError(
                "DistributedMLSH: torch.distributed has no process group; launch with torchrun and call "
                "torch.distributed.init_process_group() first, or use `torchrun ... -m sb3_mlsh.distributed`."
            )
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        # numpy rows travel as pickled objects, which gloo carries on the CPU whatever the default backend
        self._cpu_group = None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")
        if kwargs.get("seed") is not None:
            kwargs["seed"] += self.rank
        super().__init__(*args, **kwargs)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "rank", "world_size", "_cpu_group", "subpolicy_sync"]

    def _setup_model(self) -> None:
        super()._setup_model()
        optimizer = self._optimizer(0)
        if self.subpolicy_sync == "average" and not (
            type(optimizer) in (th.optim.Adam, th.optim.AdamW) and not optimizer.defaults.get("amsgrad")
        ):
            raise ValueError(
                f"DistributedMLSH: subpolicy_sync='average' averages Adam's state, but the sub-policies' optimizer is "
                f"{type(optimizer).__name__}{' with amsgrad' if optimizer.defaults.get('amsgrad') else ''}; use "
                "policy_kwargs' optimizer_class Adam or AdamW (SB3's default) without amsgrad, or subpolicy_sync='gather'."
            )
        self._broadcast_subpolicies(owners=[0] * self.n_subpolicies)
        for normalizer in (self.policy.obs_normalizer, self.policy.reward_normalizer):
            for buffer in normalizer.buffers() if normalizer is not None else ():
                self._collective(dist.broadcast, buffer, src=0)

    def _group_placement(self) -> tuple[int, int]:
        return self.rank * self.n_task_groups, self.world_size * self.n_task_groups

    # ------------------------------------------------------------------ collectives

    def _collective(self, operation: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one ``torch.distributed`` operation; its failure becomes a ``CollectiveError`` that says what to do."""
        try:
            return operation(*args, **kwargs)
        except (RuntimeError, ValueError) as error:  # gloo's errors (DistBackendError is a RuntimeError)
            raise CollectiveError(
                f"DistributedMLSH (rank {self.rank} of {self.world_size}): {operation.__name__} failed, so another "
                "process of the run stopped or cannot be reached; stopping this one too. The last complete "
                f"checkpoint is intact: run the same command with --resume to continue from it. ({error})"
            ) from error

    def owner(self, k: int) -> int:
        """:return: The rank of the process that updates sub-policy ``k``."""
        return k % self.world_size

    def _broadcast_subpolicies(self, owners: list[int]) -> None:
        """Give every process sub-policy ``k``'s parameters from process ``owners[k]``."""
        for k, subpolicy in enumerate(self.policy.subpolicies):
            parameters = list(subpolicy.parameters())
            vector = parameters_to_vector(parameters).detach()
            self._collective(dist.broadcast, vector, src=owners[k])
            with th.no_grad():
                for parameter, values in zip(parameters, vector.split([p.numel() for p in parameters]), strict=True):
                    parameter.copy_(values.view_as(parameter))

    def _train_subpolicies(self, joint_envs: np.ndarray) -> list[int]:
        """
        Update the sub-policies on the joint-phase steps of every process, as ``subpolicy_sync`` says.

        :param joint_envs: Boolean mask over this process's envs: those whose steps train the sub-policies.
        :return: Per sub-policy, the steps (of this process) its update read.
        """
        if self.subpolicy_sync == "average":
            return self._average_updates(joint_envs)
        return self._gather_and_update(joint_envs)

    def _average_updates(self, joint_envs: np.ndarray) -> list[int]:
        """
        Update every sub-policy on this process's steps, then give each the mean of the processes' changes to its
        parameters and Adam state, weighted by the steps each read (one all-reduce per sub-policy).
        """
        before = [self._subpolicy_state(k).clone() for k in range(self.n_subpolicies)]
        rows = super()._train_subpolicies(joint_envs)
        for k in range(self.n_subpolicies):
            change = (self._subpolicy_state(k) - before[k]) * rows[k]
            weighted = th.cat([change, th.tensor([float(rows[k])], device=change.device)])
            self._collective(dist.all_reduce, weighted)
            total = weighted[-1].item()
            mean_change = weighted[:-1] / total if total > 0 else th.zeros_like(change)
            self._set_subpolicy_state(k, before[k] + mean_change)
        return rows

    def _adam_state(self, k: int) -> list[th.Tensor]:
        """
        :return: Sub-policy ``k``'s Adam state, per parameter its step count, first and second moments (created
            as Adam creates them where it has not stepped yet, so that every process has the same layout).
        """
        optimizer = self._optimizer(k)
        tensors = []
        for parameter in cast(ActorCriticPolicy, self.policy.subpolicies[k]).parameters():
            state = optimizer.state[parameter]
            if not state:  # as Adam's first step makes it
                on_device = optimizer.defaults.get("fused") or optimizer.defaults.get("capturable")
                state["step"] = th.zeros((), dtype=th.float32, device=parameter.device if on_device else "cpu")
                state["exp_avg"] = th.zeros_like(parameter, memory_format=th.preserve_format)
                state["exp_avg_sq"] = th.zeros_like(parameter, memory_format=th.preserve_format)
            tensors += [state["step"], state["exp_avg"], state["exp_avg_sq"]]
        return tensors

    def _subpolicy_state(self, k: int) -> th.Tensor:
        """:return: Sub-policy ``k``'s parameters and Adam state, as one vector."""
        parameters = parameters_to_vector(self.policy.subpolicies[k].parameters()).detach()
        adam = [tensor.detach().reshape(-1).to(parameters.device) for tensor in self._adam_state(k)]
        return th.cat([parameters, *adam])

    def _set_subpolicy_state(self, k: int, vector: th.Tensor) -> None:
        """Write ``vector`` (laid out as ``_subpolicy_state``'s) into sub-policy ``k``'s parameters and Adam state."""
        parameters = list(self.policy.subpolicies[k].parameters())
        n = sum(parameter.numel() for parameter in parameters)
        vector_to_parameters(vector[:n], parameters)
        offset = n
        with th.no_grad():
            for tensor in self._adam_state(k):
                tensor.copy_(vector[offset : offset + tensor.numel()].view_as(tensor).to(tensor.device))
                offset += tensor.numel()

    def _gather_and_update(self, joint_envs: np.ndarray) -> list[int]:
        """
        Gather each sub-policy's joint-phase steps from every process at its owner, which updates it
        (all owners at once), then broadcast each sub-policy from its owner.

        :return: Per sub-policy, the steps (of all processes) its update read here (0 where another process owns it).
        """
        updated = [0] * self.n_subpolicies
        self.rollout_buffer.flatten()
        joint_steps = joint_envs[self.rollout_buffer.env_indices]
        owners = [self.owner(k) for k in range(self.n_subpolicies)]
        pooled: dict[int, TaggedRolloutBuffer] = {}
        for k in range(self.n_subpolicies):
            rows = self._rows(joint_steps & (self.rollout_buffer.subpolicies == k))
            gathered: list[Any] | None = [None] * self.world_size if owners[k] == self.rank else None
            self._collective(dist.gather_object, rows, gathered, dst=owners[k], group=self._cpu_group)
            if gathered is not None:
                pooled[k] = self._pool(gathered)
        sub_logger = LevelLogger(self.logger, "sub", average=True)
        for k, buffer in pooled.items():
            learner = self.subpolicy_learners[k]
            view, learner.rollout_buffer = learner.rollout_buffer, BufferView(buffer)
            learner.rollout_buffer.select(np.ones(len(buffer.values), dtype=bool))
            if learner.rollout_buffer.size() >= _MIN_UPDATE_ROWS:
                learner.update(sub_logger, self._current_progress_remaining)
                updated[k] = learner.rollout_buffer.size()
            learner.rollout_buffer = view
        self._broadcast_subpolicies(owners)
        return updated

    def _rows(self, mask: np.ndarray) -> dict[str, Any]:
        """:return: The rows of the flattened sub-policy buffer in ``mask``: what an update reads."""
        buffer = self.rollout_buffer
        rows = {name: getattr(buffer, name)[mask] for name in SAMPLE_FIELDS}
        rows["observations"] = apply(lambda values: values[mask], buffer.observations)
        return rows

    def _pool(self, gathered: list[dict[str, Any]]) -> TaggedRolloutBuffer:
        """:return: A buffer holding the rows of every process, in rank order (as one process's envs would be)."""
        pooled = copy.copy(self.rollout_buffer)
        for name in SAMPLE_FIELDS:
            setattr(pooled, name, np.concatenate([rows[name] for rows in gathered]))
        observations: Any = self.rollout_buffer.observations  # a dict of arrays in the Dict buffers
        if isinstance(observations, dict):
            pooled.observations = {  # type: ignore[assignment]
                key: np.concatenate([rows["observations"][key] for rows in gathered]) for key in observations
            }
        else:
            pooled.observations = np.concatenate([rows["observations"] for rows in gathered])
        return pooled

    def _pooled_stats(self, stats: RunningMeanStd) -> RunningMeanStd:
        """:return: The statistics of every process's observations (or returns) of this iteration, combined in rank order."""
        gathered: list[Any] = [None] * self.world_size
        self._collective(dist.all_gather_object, gathered, (stats.mean, stats.var, stats.count), group=self._cpu_group)
        pooled = RunningMeanStd(epsilon=0.0, shape=stats.mean.shape)
        for mean, var, count in gathered:
            part = RunningMeanStd(epsilon=0.0, shape=stats.mean.shape)
            part.mean, part.var, part.count = mean, var, count
            pooled.combine(part)
        return pooled

    # ------------------------------------------------------------------ checkpoints

    def _optimizer(self, k: int) -> th.optim.Optimizer:
        return cast(ActorCriticPolicy, self.policy.subpolicies[k]).optimizer

    def _gather_subpolicy_optimizers(self) -> None:
        """Give process 0 the optimizer state of every sub-policy (each is stepped by its owner only)."""
        owned = {k: self._optimizer(k).state_dict() for k in range(self.n_subpolicies) if self.owner(k) == self.rank}
        gathered: list[Any] | None = [None] * self.world_size if self.rank == 0 else None
        self._collective(dist.gather_object, owned, gathered, dst=0, group=self._cpu_group)
        for states in gathered or []:
            for k, state in states.items():
                self._optimizer(k).load_state_dict(state)

    def save_checkpoint(self, save_path: str | pathlib.Path) -> None:
        """
        Save the run (a collective: every process calls it at the same iteration). Each process saves its own
        model (its groups, masters and task draws) in ``checkpoints/<steps>/rank_<r>.zip``; then process 0 saves
        ``model.zip``, an ordinary ``MLSH`` file (the shared sub-policies, its own groups' masters) that
        ``MLSH.load`` reads, and points ``checkpoints/latest.json`` at the new checkpoint, which makes it the
        one to resume from. Only then is the previous checkpoint deleted, so a run stopped at any moment
        leaves one complete checkpoint. With ``subpolicy_sync="gather"`` each sub-policy's optimizer state is
        first gathered at process 0 from its owner; with ``"average"`` every process holds the same.

        :param save_path: The run's folder.
        """
        if self.subpolicy_sync == "gather":
            self._gather_subpolicy_optimizers()
        root = pathlib.Path(save_path)
        steps = self.num_timesteps * self.world_size
        folder = root / "checkpoints" / f"{steps:012d}"
        self.save(folder / f"rank_{self.rank}.zip")
        self._collective(dist.barrier, group=self._cpu_group)
        if self.rank != 0:
            return
        self.save(root / "model.zip")
        previous = latest_checkpoint(root)
        atomic_write_json(
            root / "checkpoints" / LATEST,
            {
                "folder": folder.name,
                "num_timesteps": steps,
                "world_size": self.world_size,
                "subpolicy_sync": self.subpolicy_sync,
            },
        )
        if previous is not None and previous["folder"] != folder.name:
            shutil.rmtree(root / "checkpoints" / previous["folder"], ignore_errors=True)


def latest_checkpoint(save_path: str | pathlib.Path) -> dict[str, Any] | None:
    """
    :param save_path: A run's folder.
    :return: Its last complete checkpoint (``folder``, ``num_timesteps`` of all processes, ``world_size``,
        ``subpolicy_sync``: absent in runs saved before it was recorded, which gathered), or ``None``.
    """
    path = pathlib.Path(save_path) / "checkpoints" / LATEST
    return json.loads(path.read_text()) if path.is_file() else None


def checkpoint_file(save_path: str | pathlib.Path, checkpoint: dict[str, Any], rank: int) -> pathlib.Path:
    """:return: Process ``rank``'s model file in ``checkpoint`` (as ``latest_checkpoint`` returns it)."""
    return pathlib.Path(save_path) / "checkpoints" / checkpoint["folder"] / f"rank_{rank}.zip"
