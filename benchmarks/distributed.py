"""
MLSH over several processes (``torchrun``, gloo) against one process holding the same envs and task groups.

    python benchmarks/distributed.py speed [--env AntTwoWalk-v0] [--groups 4] [--envs 4] [--iterations 10] [--rounds 3]
    python benchmarks/distributed.py learning [--seeds 0 1 2] [--timesteps 1600000]
    python benchmarks/distributed.py render

``speed``: steps per second (wall clock) of plain ``MLSH`` in one process with ``--envs`` envs in ``--groups``
task groups, and of ``torchrun --nproc-per-node=2`` with half of them in each process (``DistributedMLSH``),
one torch thread per process, each timed over ``--iterations`` iterations after one untimed iteration, the two
taking turns ``--rounds`` times. Two schedules: every iteration updates the sub-policies (W = 0, U = 1: the
most work, as in the joint phase) and none does (the warm-up phase); a run of the paper's schedule lies between.

``learning``: the paper's R on MovementBandits-v0 (its ``hyperparams/mlsh.yml`` entry, 16 envs in 4 task
groups) after ``--timesteps`` steps, for 1 process x 4 groups (plain ``MLSH``) and 2 processes x 2 groups
(``python -m sb3_mlsh.distributed`` under torchrun), per seed. R is measured as ``benchmarks/reproduce.py``
does (``evaluate_adaptation``, a fresh master per task, sub-policies frozen).

Every measurement is kept in docs/benchmarks/distributed.json as soon as it is made (runs already there are
not run again) and docs/benchmarks/distributed.md is written from all of them.
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
RUNS = ROOT / "docs" / "benchmarks" / "distributed.json"
PAGE = ROOT / "docs" / "benchmarks" / "distributed.md"
SCHEDULES = {"joint": dict(warmup_iterations=0, joint_iterations=1), "warmup": dict(warmup_iterations=10**6, joint_iterations=1)}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]


def load() -> dict[str, Any]:
    return json.loads(RUNS.read_text()) if RUNS.is_file() else {"speed": [], "learning": []}


def keep(kind: str, record: dict[str, Any]) -> None:
    runs = load()
    runs[kind].append(record)
    RUNS.write_text(json.dumps(runs, indent=1) + "\n")


# ------------------------------------------------------------------ speed


def time_worker(args: argparse.Namespace) -> None:
    """One process of a speed measurement (alone: plain MLSH; under torchrun: DistributedMLSH)."""
    import torch as th
    import torch.distributed as dist
    from stable_baselines3.common.env_util import make_vec_env

    import sb3_mlsh  # noqa: F401
    from sb3_mlsh import MLSH
    from sb3_mlsh.distributed import DistributedMLSH
    from sb3_mlsh.zoo import packaged_hyperparameters

    th.set_num_threads(1)
    distributed = "RANK" in os.environ
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    entry = packaged_hyperparameters(args.env)
    for key in ("n_envs", "n_timesteps", "policy", "env_kwargs"):
        entry.pop(key, None)
    entry.update(SCHEDULES[args.schedule], n_task_groups=args.groups // world_size)
    env = make_vec_env(args.env, n_envs=args.envs // world_size, seed=0)
    if distributed:
        dist.init_process_group("gloo")
        model: MLSH = DistributedMLSH("MlpPolicy", env, seed=0, **entry)
    else:
        model = MLSH("MlpPolicy", env, seed=0, **entry)
    iteration = env.num_envs * model.n_steps
    model.learn(iteration)  # untimed: first allocations, first resets
    if distributed:
        dist.barrier()
    start = time.perf_counter()
    model.learn(args.iterations * iteration, reset_num_timesteps=False)
    if distributed:
        dist.barrier()
    seconds = time.perf_counter() - start
    if not distributed or dist.get_rank() == 0:
        print(json.dumps({"steps": args.iterations * iteration * world_size, "seconds": seconds}))
    if distributed:
        dist.destroy_process_group()


def measure(args: argparse.Namespace, schedule: str, processes: int) -> float:
    """:return: Steps per second of one timed run."""
    worker = [__file__, "time-worker", "--env", args.env, "--groups", str(args.groups), "--envs", str(args.envs)]
    worker += ["--iterations", str(args.iterations), "--schedule", schedule]
    command = [*TORCHRUN, *worker] if processes == 2 else [sys.executable, *worker]
    output = subprocess.run(command, capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    line = [line for line in output.stdout.splitlines() if line.startswith("{")][-1]
    result = json.loads(line)
    return result["steps"] / result["seconds"]


def speed(args: argparse.Namespace) -> None:
    for schedule in SCHEDULES:
        rates: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(args.rounds):
            for processes in (1, 2):
                rates[processes].append(measure(args, schedule, processes))
                print(f"{schedule}, {processes} process(es): {rates[processes][-1]:.0f} steps/s", flush=True)
        keep(
            "speed",
            {
                "env": args.env,
                "groups": args.groups,
                "envs": args.envs,
                "iterations": args.iterations,
                "schedule": schedule,
                "steps_per_second": {str(p): r for p, r in rates.items()},
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "date": datetime.date.today().isoformat(),
            },
        )
    render()


# ------------------------------------------------------------------ learning


def learning(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from experiments import EXPERIMENTS, adaptation_r

    from sb3_mlsh import MLSH

    experiment = EXPERIMENTS["movement_bandits"]
    done = {(run["layout"], run["seed"]) for run in load()["learning"] if run["timesteps"] == args.timesteps}
    for seed in args.seeds:
        for layout in ("1 x 4", "2 x 2"):
            if (layout, seed) in done:
                continue
            start = time.time()
            with tempfile.TemporaryDirectory() as folder:
                path = pathlib.Path(folder) / "run"
                if layout == "1 x 4":
                    meta_train_alone(seed, args.timesteps, path)
                else:
                    command = [*TORCHRUN, "-m", "sb3_mlsh.distributed", "--env", experiment.env_id, "--n-task-groups", "4"]
                    command += ["-n", str(args.timesteps), "--seed", str(seed), "--save-path", str(path), "-v", "0"]
                    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
                _, r = adaptation_r(MLSH.load(path / "model.zip"), experiment, n_envs=16, seed=seed)
            keep("learning", {"layout": layout, "seed": seed, "timesteps": args.timesteps, "R": r, "wall_s": time.time() - start})
            print(f"{layout}, seed {seed}: R {r:.1f}", flush=True)
    render()


def meta_train_alone(seed: int, timesteps: int, path: pathlib.Path) -> None:
    """Plain MLSH in this process: the MovementBandits-v0 entry with its 16 envs in 4 task groups."""
    import torch as th
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_mlsh import MLSH
    from sb3_mlsh.zoo import packaged_hyperparameters

    th.set_num_threads(1)
    entry = packaged_hyperparameters("MovementBandits-v0")
    n_envs = entry.pop("n_envs")
    for key in ("n_timesteps", "policy", "env_kwargs"):
        entry.pop(key, None)
    model = MLSH("MlpPolicy", make_vec_env("MovementBandits-v0", n_envs=n_envs, seed=seed), seed=seed, n_task_groups=4, **entry)
    model.learn(timesteps)
    model.save(path / "model.zip")


# ------------------------------------------------------------------ page


def render() -> None:
    runs = load()
    lines = [
        "# MLSH over several processes",
        "",
        "Written by `python benchmarks/distributed.py` from docs/benchmarks/distributed.json (see its docstring).",
        "",
        "## Speed: `torchrun --nproc-per-node=2` against one process, the same envs and task groups",
        "",
        "| env | envs | task groups | sub-policy updates | 1 process, steps/s | 2 processes, steps/s | ratio | machine | date |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    names = {"joint": "every iteration (W = 0)", "warmup": "none (warm-up)"}
    for run in runs["speed"]:
        one, two = (statistics.median(run["steps_per_second"][p]) for p in ("1", "2"))
        lines.append(
            f"| {run['env']} | {run['envs']} | {run['groups']} | {names[run['schedule']]} | {one:.0f} | {two:.0f} "
            f"| {two / one:.2f}x | {run['machine']} | {run['date']} |"
        )
    lines += [
        "",
        "Medians of the rounds; each run timed over its iterations after an untimed one, one torch thread per process.",
        "",
        "## Learning: 2 processes x 2 task groups against 1 process x 4 task groups (MovementBandits-v0)",
        "",
        "| layout | seed | steps | R per episode | wall clock (s) |",
        "|---|---|---|---|---|",
    ]
    for run in sorted(runs["learning"], key=lambda run: (run["layout"], run["seed"])):
        lines.append(f"| {run['layout']} | {run['seed']} | {run['timesteps']:,} | {run['R']:.1f} | {run['wall_s']:.0f} |")
    for layout in ("1 x 4", "2 x 2"):
        values = [run["R"] for run in runs["learning"] if run["layout"] == layout]
        if values:
            spread = f", spread {min(values):.1f} to {max(values):.1f}" if len(values) > 1 else ""
            lines.append(f"\n{layout}: mean R {statistics.mean(values):.1f} over {len(values)} seeds{spread}.")
    PAGE.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["speed", "learning", "render", "time-worker"])
    parser.add_argument("--env", default="AntTwoWalk-v0")
    parser.add_argument("--groups", type=int, default=4)
    parser.add_argument("--envs", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--schedule", choices=list(SCHEDULES), default="joint")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--timesteps", type=int, default=1_600_000)
    args = parser.parse_args()
    {"speed": speed, "learning": learning, "render": lambda _: render(), "time-worker": time_worker}[args.part](args)


if __name__ == "__main__":
    main()
