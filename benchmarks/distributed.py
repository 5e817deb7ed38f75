"""
MLSH over several processes (``torchrun``, gloo) against one process holding the same envs and task groups.

    python -m benchmarks.distributed speed [--env AntTwoWalk-v0] [--groups 4] [--envs 4] [--iterations 10] [--rounds 3]
        [--sync gather]
    python -m benchmarks.distributed learning [--seeds 0 1 2] [--timesteps 1600000]
        [--layouts "1 x 4" "2 x 2" "2 x 2 averaged"]
    python -m benchmarks.distributed render

``speed``: steps per second (wall clock) of plain ``MLSH`` in one process with ``--envs`` envs in ``--groups``
task groups, and of ``torchrun --nproc-per-node=2`` with half of them in each process (``DistributedMLSH``
with ``subpolicy_sync=--sync``), one torch thread per process, each timed over ``--iterations`` iterations
after one untimed iteration, the two taking turns ``--rounds`` times. Two schedules: every iteration updates
the sub-policies (W = 0, U = 1: the most work, as in the joint phase) and none does (the warm-up phase); a run
of the paper's schedule lies between.

``learning``: the paper's R on MovementBandits-v0 (its ``hyperparams/mlsh.yml`` entry, 16 envs in 4 task
groups) after ``--timesteps`` steps, for 1 process x 4 groups (plain ``MLSH``) and 2 processes x 2 groups
(``python -m sb3_mlsh.distributed`` under torchrun; *averaged*: with ``--subpolicy-sync average``), per seed.
R is measured as ``benchmarks.reproduce`` does (``evaluate_adaptation``, a fresh master per task,
sub-policies frozen).

Every measurement is kept in ``<out>/distributed.json`` as soon as it is made (runs already there are not run
again) and ``<out>/distributed.md`` is written from all of them; ``--out`` is ``results`` unless given (the project's
page: ``--out docs/benchmarks``).
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
SCHEDULES = {
    "joint": dict(warmup_iterations=0, joint_iterations=1),
    "warmup": dict(warmup_iterations=10**6, joint_iterations=1),
}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]


def load(out: pathlib.Path) -> dict[str, Any]:
    """:return: The runs saved in the folder ``out``."""
    runs = out / "distributed.json"
    return json.loads(runs.read_text()) if runs.is_file() else {"speed": [], "learning": []}


def keep(out: pathlib.Path, kind: str, record: dict[str, Any]) -> None:
    """Add ``record`` to the saved runs (under a lock: several invocations may run at once)."""
    from benchmarks.experiments import update_json

    update_json(out / "distributed.json", {"speed": [], "learning": []}, lambda runs: runs[kind].append(record))


# ------------------------------------------------------------------ speed


def time_worker(args: argparse.Namespace) -> None:
    """One process of a speed measurement (alone: plain MLSH; under torchrun: DistributedMLSH)."""
    import torch as th
    import torch.distributed as dist
    from stable_baselines3.common.env_util import make_vec_env

    import sb3_mlsh  # noqa: F401
    from sb3_mlsh import MLSH
    from sb3_mlsh.distributed import DistributedMLSH
    from sb3_mlsh.zoo import mlsh_settings

    th.set_num_threads(1)
    distributed = "RANK" in os.environ
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    _, entry = mlsh_settings(args.env)
    entry.update(SCHEDULES[args.schedule], n_task_groups=args.groups // world_size)
    env = make_vec_env(args.env, n_envs=args.envs // world_size, seed=0)
    if distributed:
        dist.init_process_group("gloo")
        model: MLSH = DistributedMLSH("MlpPolicy", env, seed=0, subpolicy_sync=args.sync, **entry)
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


# How the envs and groups run: one process; two processes of one run; two independent runs with half of them each
LAYOUTS = ("1", "2", "2 apart")
# How the learning comparison's 4 groups run: one process; two, gathering; two, averaging the sub-policy updates
LEARNING_LAYOUTS = ("1 x 4", "2 x 2", "2 x 2 averaged")
# runs of "2 x 2 averaged" made before the sub-policies' Adam state was averaged with their parameters
PARAMETERS_ONLY = "2 x 2 averaged (parameters only)"


def measure(args: argparse.Namespace, schedule: str, layout: str) -> float:
    """:return: Steps per second of one timed run (``"2 apart"``: the sum of two runs at once, each with half the envs)."""
    worker = [__file__, "time-worker", "--env", args.env, "--iterations", str(args.iterations), "--schedule", schedule]
    worker += ["--sync", args.sync]
    halves = ["--groups", str(args.groups // 2), "--envs", str(args.envs // 2)]
    commands = {
        "1": [[sys.executable, *worker, "--groups", str(args.groups), "--envs", str(args.envs)]],
        "2": [[*TORCHRUN, *worker, "--groups", str(args.groups), "--envs", str(args.envs)]],
        "2 apart": [[sys.executable, *worker, *halves]] * 2,
    }[layout]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    running = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
        for command in commands
    ]
    rate = 0.0
    for process in running:
        stdout, stderr = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"the timed run failed: {process.args}\n{stderr[-3000:]}")
        result = json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1])
        rate += result["steps"] / result["seconds"]
    return rate


def speed(args: argparse.Namespace) -> None:
    for schedule in SCHEDULES:
        rates: dict[str, list[float]] = {layout: [] for layout in LAYOUTS}
        for _ in range(args.rounds):
            for layout in LAYOUTS:
                rates[layout].append(measure(args, schedule, layout))
                print(f"{schedule}, {layout}: {rates[layout][-1]:.0f} steps/s", flush=True)
        keep(
            args.out,
            "speed",
            {
                "env": args.env,
                "groups": args.groups,
                "envs": args.envs,
                "iterations": args.iterations,
                "schedule": schedule,
                "sync": args.sync,
                **({"adam_averaged": True} if args.sync == "average" else {}),
                "steps_per_second": rates,
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "date": datetime.date.today().isoformat(),
            },
        )
    render(args.out)


# ------------------------------------------------------------------ learning


def learning(args: argparse.Namespace) -> None:
    import yaml

    from benchmarks.experiments import EXPERIMENTS, adaptation_r, code_version
    from sb3_mlsh import MLSH
    from sb3_mlsh.zoo import hyperparams_path

    experiment = EXPERIMENTS["movement_bandits"]
    commit = code_version()  # as the command started: a commit made while the runs go does not relabel them
    settings = yaml.safe_load(hyperparams_path().read_text())[experiment.env_id]
    done = {
        (label(run), run["seed"])
        for run in load(args.out)["learning"]
        if run["timesteps"] == args.timesteps and run.get("settings") == settings
    }
    for seed in args.seeds:
        for layout in args.layouts:
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
                    command += ["--subpolicy-sync", "average" if layout.endswith("averaged") else "gather"]
                    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
                _, r = adaptation_r(MLSH.load(path / "model.zip"), experiment, n_envs=16, seed=seed)
            keep(
                args.out,
                "learning",
                {
                    "layout": layout,
                    "seed": seed,
                    "timesteps": args.timesteps,
                    "R": r,
                    "wall_s": time.time() - start,
                    "settings": settings,
                    "commit": commit,
                    **({"adam_averaged": True} if layout.endswith("averaged") else {}),
                },
            )
            print(f"{layout}, seed {seed}: R {r:.1f}", flush=True)
    render(args.out)


def meta_train_alone(seed: int, timesteps: int, path: pathlib.Path) -> None:
    """Plain MLSH in this process: the MovementBandits-v0 entry with its 16 envs in 4 task groups."""
    import torch as th
    from stable_baselines3.common.env_util import make_vec_env

    from benchmarks.experiments import EXPERIMENTS
    from sb3_mlsh import MLSH

    th.set_num_threads(1)
    n_envs, entry = EXPERIMENTS["movement_bandits"].hyperparams()
    env = make_vec_env("MovementBandits-v0", n_envs=n_envs, seed=seed)
    model = MLSH("MlpPolicy", env, seed=seed, n_task_groups=4, **entry)
    model.learn(timesteps)
    model.save(path / "model.zip")


# ------------------------------------------------------------------ page


def render(out: pathlib.Path) -> None:
    """Write the page ``distributed.md`` in ``out`` from the runs saved there."""
    runs = load(out)
    lines = [
        "# MLSH over several processes",
        "",
        "Written by `python -m benchmarks.distributed` from docs/benchmarks/distributed.json (see its docstring).",
        "",
        "## Speed: `torchrun --nproc-per-node=2` against one process, the same envs and task groups",
        "",
        "| env | envs | task groups | sub-policy updates | sub-policy sync | 1 process | 2 processes | ratio "
        "| 2 runs apart (ceiling) | ratio | machine | date |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    names = {"joint": "every iteration (W = 0)", "warmup": "none (warm-up)"}
    for run in runs["speed"]:
        rates = run["steps_per_second"]
        if "2 apart" not in rates:
            continue  # measured before the ceiling was
        one, two, apart = (statistics.median(rates[layout]) for layout in LAYOUTS)
        lines.append(
            f"| {run['env']} | {run['envs']} | {run['groups']} | {names[run['schedule']]} | {sync_label(run)} "
            f"| {one:.0f} | {two:.0f} "
            f"| {two / one:.2f}x | {apart:.0f} | {apart / one:.2f}x | {run['machine']} | {run['date']} |"
        )
    lines += [
        "",
        "Steps per second, medians of the rounds; each run timed over its iterations after an untimed one, one torch "
        "thread per process. *2 runs apart*: two independent one-process runs at once, each with half the envs and "
        "groups and no communication: what any split of this work over two processes can reach on this machine. "
        "*Sub-policy sync*: `gather` updates each sub-policy once, in the process that owns it, on both processes' "
        "steps (the other process waits when one sub-policy took more steps); `average` updates both in each "
        "process on its own steps and averages the changes (docs/distributed.md).",
        "",
        "## Learning: 2 processes x 2 task groups against 1 process x 4 task groups (MovementBandits-v0)",
        "",
        "*averaged*: `--subpolicy-sync average` (*parameters only*: made before the Adam state was averaged "
        "too). Runs are compared only with runs of the same settings (the "
        "env's `hyperparams/mlsh.yml` entry when they ran).",
    ]
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in runs["learning"]:
        groups.setdefault(json.dumps(run.get("settings"), sort_keys=True), []).append(run)
    for key, group in groups.items():
        settings = json.loads(key)
        described = (
            ", ".join(f"{name} {value}" for name, value in settings.items())
            if settings
            else "made before the settings were recorded"
        )
        lines += [
            "",
            f"### Settings: {described}",
            "",
            "| layout | seed | steps | R per episode | code |",
            "|---|---|---|---|---|",
        ]
        for run in sorted(group, key=lambda run: (label(run), run["seed"])):
            code = run.get("commit") or "-"
            lines.append(f"| {label(run)} | {run['seed']} | {run['timesteps']:,} | {run['R']:.1f} | {code} |")
        for layout in [*LEARNING_LAYOUTS, PARAMETERS_ONLY]:
            values = [run["R"] for run in group if label(run) == layout]
            if values:
                spread = f", spread {min(values):.1f} to {max(values):.1f}" if len(values) > 1 else ""
                lines.append(f"\n{layout}: mean R {statistics.mean(values):.1f} over {len(values)} seeds{spread}.")
    out.mkdir(parents=True, exist_ok=True)
    (out / "distributed.md").write_text("\n".join(lines) + "\n")


def parameters_only(run: dict[str, Any]) -> bool:
    """:return: Whether ``run`` (speed or learning) averaged the sub-policies' parameters but not their Adam state."""
    averaged = run.get("sync") == "average" or run.get("layout", "").endswith("averaged")
    return averaged and not run.get("adam_averaged")


def sync_label(run: dict[str, Any]) -> str:
    """:return: A speed run's sub-policy sync, ``average`` runs made before the Adam state was averaged told apart."""
    sync = run.get("sync", "gather")
    return f"{sync} (parameters only)" if parameters_only(run) else sync


def label(run: dict[str, Any]) -> str:
    """:return: A learning run's layout, averaged runs made before the Adam state was averaged told apart."""
    return PARAMETERS_ONLY if parameters_only(run) else run["layout"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    from benchmarks.experiments import add_out_argument

    parser.add_argument("part", choices=["speed", "learning", "render", "time-worker"])
    parser.add_argument("--env", default="AntTwoWalk-v0")
    parser.add_argument("--groups", type=int, default=4)
    parser.add_argument("--envs", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--schedule", choices=list(SCHEDULES), default="joint")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--timesteps", type=int, default=1_600_000)
    parser.add_argument("--layouts", nargs="+", choices=LEARNING_LAYOUTS, default=list(LEARNING_LAYOUTS))
    parser.add_argument("--sync", choices=["gather", "average"], default="gather")
    add_out_argument(parser, "docs/benchmarks")
    args = parser.parse_args()
    {"speed": speed, "learning": learning, "render": lambda args: render(args.out), "time-worker": time_worker}[args.part](
        args
    )


if __name__ == "__main__":
    main()
