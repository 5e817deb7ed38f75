"""
``python -m sb3_mlsh.distributed``: meta-train MLSH with its task groups spread over processes and machines.

Launched by ``torchrun`` (or Slurm's ``srun`` setting torchrun's variables), one process per core, GPU or
machine; run alone, it is one process. See docs/distributed.md.
"""

import argparse
import datetime
import os
import sys

import torch as th
import torch.distributed as dist

import sb3_mlsh  # noqa: F401  (registers the environments)
from sb3_mlsh.distributed.mlsh import SUBPOLICY_SYNCS, CollectiveError
from sb3_mlsh.distributed.run import free_port, meta_train
from sb3_mlsh.zoo import packaged_hyperparameters


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sb3_mlsh.distributed", description=__doc__)
    parser.add_argument("--env", required=True, help="env id with an entry in hyperparams/mlsh.yml")
    parser.add_argument("-n", "--n-timesteps", type=int, default=None, help="steps of all processes (default: the entry's)")
    parser.add_argument(
        "--n-task-groups", type=int, default=None, help="task groups of all processes (default: 1 per process)"
    )
    parser.add_argument(
        "--n-envs", type=int, default=None, help="envs of all processes (default: the entry's, or 1 per group)"
    )
    parser.add_argument("--save-path", required=True, help="the run's folder (shared by all machines)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --save-path from its last checkpoint")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--checkpoint-interval", type=int, default=None, help="steps between checkpoints (default: 20 per run)"
    )
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (one GPU per process; NCCL carries the parameters)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds a process waits for the others before it stops")
    parser.add_argument(
        "--subpolicy-sync",
        choices=SUBPOLICY_SYNCS,
        default="gather",
        help="gather: each sub-policy updated once on every process's steps (as one process would); average: each "
        "process updates every sub-policy on its own steps and the changes are averaged (faster when the "
        "sub-policies' shares of the steps differ; see docs/distributed.md)",
    )
    parser.add_argument("--tensorboard-log", default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("-v", "--verbose", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    th.set_num_threads(args.threads)
    if "RANK" not in os.environ:  # not launched by torchrun: a run of one process
        os.environ.update(RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    backend = "nccl" if args.device.startswith("cuda") else "gloo"
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=args.timeout))
    try:
        meta_train(
            args.env,
            args.n_timesteps or int(float(packaged_hyperparameters(args.env)["n_timesteps"])),
            args.save_path,
            n_task_groups=args.n_task_groups,
            n_envs=args.n_envs,
            seed=args.seed,
            resume=args.resume,
            checkpoint_interval=args.checkpoint_interval,
            device=args.device,
            verbose=args.verbose,
            tensorboard_log=args.tensorboard_log,
            subpolicy_sync=args.subpolicy_sync,
        )
    except (CollectiveError, FileExistsError, KeyError, ValueError) as error:
        if dist.get_rank() == 0 or isinstance(error, CollectiveError):  # the others' settings errors are the same
            print(error.args[0] if isinstance(error, KeyError) else error, file=sys.stderr)
        return 1
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
