"""
Task groups and the truncation bootstrap, measured: MLSH with G = 1 and G = 4 task groups, each with the
time-limit bootstrap on and off, at the same number of environment steps and the same seeds.

    python -m benchmarks.task_groups [--experiments movement_bandits:0,1 four_rooms_held_out:0] [--groups 1 4]
                                     [--bootstrap on off] [--timesteps 1600000 2000000] [--render]

``--experiments`` takes ``name:seeds`` (comma-separated seeds) for each experiment. Every run is saved
in ``<out>/task_groups.json`` as soon as it ends; runs already there are not run again, so a stopped benchmark
continues where it stopped and several invocations add to one page, ``<out>/task_groups.md``, written from all saved
runs (``--render``: only rewrite it; ``--out``: ``results`` unless given, the project's page: ``--out
docs/benchmarks``).

Each run meta-trains with its experiment's settings from ``hyperparams/mlsh.yml`` (only
``n_task_groups`` and ``bootstrap_truncation`` change), then measures the paper's R with
``evaluate_adaptation`` on the experiment's evaluation tasks (as ``benchmarks.reproduce`` does).
It also reports, over meta-training: the share of the reward that was bootstrapped value
(``rollout/bootstrap_fraction``), the share of iterations in which the sub-policies were updated, and
the sub-policy divergence. Runs go two at a time, one torch thread each.
"""

import argparse
import datetime
import json
import multiprocessing
import pathlib
import platform
import sys
import time
from typing import Any

import numpy as np

from benchmarks.experiments import (
    EXPERIMENTS,
    adaptation_r,
    add_out_argument,
    references,
    runnable,
    subpolicies_separate,
    subpolicy_paths,
)


def run(config: tuple[str, int, bool, int, int]) -> dict[str, Any]:
    """One (experiment, G, bootstrap, seed): meta-train, then adapt a fresh master to every evaluation task."""
    import torch as th
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_mlsh import MLSH

    name, n_groups, bootstrap, seed, timesteps = config
    spec = EXPERIMENTS[name]
    n_envs, hyperparams = spec.hyperparams()
    hyperparams.update(n_task_groups=n_groups, bootstrap_truncation=bootstrap)
    th.set_num_threads(1)
    start = time.process_time()

    class Diagnostics(BaseCallback):
        """Per iteration: the bootstrapped share of the reward, whether the sub-policies are updated."""

        def __init__(self) -> None:
            super().__init__()
            self.bootstrap: list[float] = []
            self.joint: list[bool] = []

        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            self.bootstrap.append(self.logger.name_to_value["rollout/bootstrap_fraction"])
            self.joint.append(any(group.phase == "joint" for group in self.model.task_groups))

    def make_env(env_seed: int) -> Any:
        return make_vec_env(spec.env_id, n_envs=n_envs, seed=env_seed, env_kwargs=spec.env_kwargs)

    model = MLSH("MlpPolicy", make_env(seed), seed=seed, **hyperparams)
    diagnostics = Diagnostics()
    model.learn(timesteps, callback=diagnostics)
    result, r_per_episode = adaptation_r(model, spec, n_envs, seed)
    return dict(
        experiment=name,
        groups=n_groups,
        bootstrap=bootstrap,
        seed=seed,
        timesteps=model.num_timesteps,
        r_per_episode=r_per_episode,
        divergence=result.divergence,
        separate=subpolicies_separate(spec, subpolicy_paths(model, spec, seed)),
        bootstrap_fraction=float(np.mean(diagnostics.bootstrap)),
        joint_share=float(np.mean(diagnostics.joint)),
        cpu_minutes=(time.process_time() - start) / 60,
    )


def table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| experiment | G | bootstrap | seed | steps | R per episode | sub-policy divergence | sub-policies separate "
        "| bootstrapped share of reward | iterations updating the sub-policies | CPU min |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        separate = "-" if r["separate"] is None else ("yes" if r["separate"] else "no")
        lines.append(
            f"| {r['experiment']} | {r['groups']} | {'on' if r['bootstrap'] else 'off'} | {r['seed']} | {r['timesteps']:,} "
            f"| {r['r_per_episode']:.2f} | {r['divergence']:.3f} | {separate} | {r['bootstrap_fraction']:.1%} "
            f"| {r['joint_share']:.0%} | {r['cpu_minutes']:.1f} |"
        )
    return lines


def summary(rows: list[dict[str, Any]]) -> list[str]:
    """Mean and per-seed R for each (experiment, G, bootstrap), next to the experiment's scripted references."""
    lines = ["| experiment | G | bootstrap | mean R per episode | per seed | references |", "|---|---|---|---|---|---|"]
    keys = sorted({(r["experiment"], r["groups"], r["bootstrap"]) for r in rows}, key=lambda k: (k[0], k[1], not k[2]))
    for name, groups, bootstrap in keys:
        values = [
            r["r_per_episode"] for r in rows if (r["experiment"], r["groups"], r["bootstrap"]) == (name, groups, bootstrap)
        ]
        spec = EXPERIMENTS[name]
        refs = "; ".join(f"{label} {value:.1f}" for label, value in references(spec).items())
        per_seed = ", ".join(f"{v:.2f}" for v in values)
        lines.append(f"| {name} | {groups} | {'on' if bootstrap else 'off'} | {np.mean(values):.2f} | {per_seed} | {refs} |")
    return lines


def key(row: dict[str, Any]) -> tuple[str, int, bool, int, int]:
    return (row["experiment"], row["groups"], row["bootstrap"], row["seed"], row["timesteps"])


def render(rows: list[dict[str, Any]], output: pathlib.Path) -> None:
    """Write the page from every saved run, with the commands that produced them."""
    import torch as th

    commands = sorted({runnable(row["command"]) for row in rows})
    minutes = sum(row["cpu_minutes"] for row in rows)
    episodes = ", ".join(
        f"{name}: {EXPERIMENTS[name].episode_steps} steps" for name in sorted({r["experiment"] for r in rows})
    )
    lines = [
        "# Task groups: one group against four, bootstrap on and off",
        "",
        f"Measured on {rows[-1]['date']}: {platform.machine()}, {multiprocessing.cpu_count()} cores, torch {th.__version__}, "
        f"one torch thread per run, two runs at a time; {minutes:.0f} CPU minutes in all. The runs are kept in "
        "`task_groups.json` beside this page; `--render` rewrites this page from them.",
        "",
        "```bash",
        *commands,
        "```",
        "",
        "R per episode: reward a fresh master collects during its first T steps on each evaluation task, "
        f"sub-policies frozen (the paper's figure of merit), per episode ({episodes}).",
        "",
        *summary(rows),
        "",
        *table(rows),
    ]
    output.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--experiments", nargs="+", default=["movement_bandits:0,1", "four_rooms_held_out:0"], help="name:seeds"
    )
    parser.add_argument("--groups", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--bootstrap", nargs="+", default=["on", "off"], choices=["on", "off"])
    parser.add_argument(
        "--timesteps", type=int, nargs="+", default=None, help="meta-training steps per experiment (default: each one's)"
    )
    parser.add_argument("--render", action="store_true", help="only rewrite the page from the saved runs")
    add_out_argument(parser, "docs/benchmarks")
    args = parser.parse_args()
    runs = args.out / "task_groups.json"
    rows = json.loads(runs.read_text()) if runs.is_file() else []
    if not args.render:
        seeds = {}
        for item in args.experiments:
            name, _, seed_list = item.partition(":")
            if name not in EXPERIMENTS or not seed_list:
                parser.error(
                    f"--experiments {item}: use name:seeds, e.g. movement_bandits:0,1 (names: {', '.join(EXPERIMENTS)})"
                )
            seeds[name] = [int(seed) for seed in seed_list.split(",")]
        timesteps = args.timesteps or [EXPERIMENTS[name].meta_timesteps for name in seeds]
        if len(timesteps) != len(seeds):
            parser.error("--timesteps needs one value per experiment")
        done = {key(row) for row in rows}
        configs = [
            (name, groups, bootstrap == "on", seed, steps)
            for name, steps in zip(seeds, timesteps, strict=True)
            for groups in args.groups
            for bootstrap in args.bootstrap
            for seed in seeds[name]
            if (name, groups, bootstrap == "on", seed, steps) not in done
        ]
        command = f"python -m benchmarks.task_groups {' '.join(sys.argv[1:])}"
        with multiprocessing.get_context("spawn").Pool(2, maxtasksperchild=1) as pool:
            # each run is saved as soon as it ends, so that a stopped benchmark keeps what it measured
            for row in pool.imap_unordered(run, configs):
                rows.append({**row, "command": command, "date": str(datetime.date.today())})
                runs.parent.mkdir(parents=True, exist_ok=True)
                runs.write_text(json.dumps(rows, indent=1))
    if rows:
        render(sorted(rows, key=key), runs.with_suffix(".md"))


if __name__ == "__main__":
    main()
