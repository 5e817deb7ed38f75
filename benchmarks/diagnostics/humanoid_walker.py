"""
Humanoid walk / crawl: does the walk sub-policy learn under MLSH's schedule as a flat learner learns to walk?

    python -m benchmarks.diagnostics.humanoid_walker --master scripted --seeds 0 --timesteps 5000000 [--set KEY=VALUE]

Each run meta-trains MLSH with the ``HumanoidWalkCrawl-v0`` entry of ``hyperparams/mlsh.yml`` (``--set KEY=VALUE``
changes a setting) under MLSH's masters (``learned``) or a scripted one (``scripted``: each decision is the task's
index, walk -> sub-policy 1 and crawl -> sub-policy 0, and the masters never learn: each sub-policy trains on its own
task's steps of the joint iterations alone, the ceiling of the masters' assignment with MLSH's schedule and settings).
Every ``--every`` steps it records, per task, the mean return and length of the training episodes that ended in the
window, and per sub-policy and task the steps it has trained on so far (its steps in joint iterations); at the end,
each sub-policy acting alone on each task as ``reproduce.py`` measures it (``humanoid_alone``). The page sets the walk
episodes' training returns beside SB3's PPO on walk alone with the entry's settings (the PPO runs of
``docs/benchmarks/flat_learner.json`` with rewards normalised), read at the same number of walk steps trained on: what
the schedule costs the walker, step for step, against what the hierarchy's budget spends on it.

Runs are kept in docs/benchmarks/humanoid_walker.json as they end; the page docs/benchmarks/humanoid_walker.md is
written from all of them (``--render``: only that). Runs go ``--jobs`` at a time, one torch thread each.
"""

import argparse
import json
import pathlib
import time
from typing import Any

import numpy as np

from benchmarks.diagnostics.assignment import scripted_mlsh
from benchmarks.experiments import (
    EXPERIMENTS,
    HUMANOID_ALONE_EPISODES,
    humanoid_alone,
    key_values,
    page_header,
    run_and_keep,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]
RUNS = ROOT / "docs" / "benchmarks" / "humanoid_walker.json"
PAGE = RUNS.with_suffix(".md")
FLAT_RUNS = ROOT / "docs" / "benchmarks" / "flat_learner.json"
EXPERIMENT = "humanoid_walk_crawl"
WALK, CRAWL = 1, 0  # the env's tasks; the scripted master gives task k to sub-policy k
MASTERS = {"learned": "MLSH's masters", "scripted": "scripted: walk -> sub-policy 1, crawl -> sub-policy 0"}


def run(config: dict[str, Any]) -> dict[str, Any]:
    """
    One meta-training run with its record.

    :param config: ``seed``, ``timesteps``, ``every``, ``master`` and ``settings`` (MLSH's keyword arguments changed).
    :return: ``config`` with ``windows`` (per window: ``[steps, {task: [mean return, mean length, episodes]},
        trained]``, ``trained[k][task]`` the steps sub-policy k has trained on so far), ``alone`` (``humanoid_alone``
        at the end: ``[k][task] -> [mean return, mean steps, mean x moved]``) and ``cpu_minutes``.
    """
    import torch as th
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_mlsh import MLSH

    th.set_num_threads(1)
    start = time.process_time()
    spec = EXPERIMENTS[EXPERIMENT]
    n_envs, hyperparams = spec.hyperparams()
    settings = {**hyperparams, **config["settings"]}
    algorithm: type = MLSH
    if config["master"] == "scripted":
        algorithm, settings["master_learning_rate"] = scripted_mlsh(), 0.0
    env = make_vec_env(spec.env_id, n_envs=n_envs, seed=config["seed"], env_kwargs=spec.env_kwargs)
    model = algorithm("MlpPolicy", env, seed=config["seed"], **settings)
    n_tasks = len(spec.evaluation_tasks())
    trained = np.zeros((model.n_subpolicies, n_tasks), dtype=np.int64)
    windows: list[list[Any]] = []
    ended: dict[int, list[tuple[float, int]]] = {}  # per task, this window's training episodes: (return, length)
    tasks_at_step: list[np.ndarray] = []  # per step of the iteration, each env's task
    every = config["every"]

    class Record(BaseCallback):
        def _on_step(self) -> bool:
            infos = self.locals["infos"]
            tasks_at_step.append(np.array([int(info["task"]) for info in infos]))
            for info in infos:
                if "episode" in info:
                    ended.setdefault(int(info["task"]), []).append((info["episode"]["r"], info["episode"]["l"]))
            return True

        def _on_rollout_end(self) -> None:
            tags, tasks = model.rollout_buffer.subpolicies, np.stack(tasks_at_step)
            tasks_at_step.clear()
            assert model.task_groups is not None
            joint = model.task_groups.joint_envs()
            np.add.at(trained, (tags[:, joint].ravel(), tasks[:, joint].ravel()), 1)
            if model.num_timesteps // every > len(windows):
                means = {
                    task: [float(np.mean([r for r, _ in episodes])), float(np.mean([n for _, n in episodes])), len(episodes)]
                    for task, episodes in sorted(ended.items())
                }
                windows.append([model.num_timesteps, means, trained.tolist()])
                ended.clear()

    model.learn(config["timesteps"], callback=Record())
    alone = humanoid_alone(model, spec, config["seed"])
    env.close()
    return {**config, "windows": windows, "alone": alone, "cpu_minutes": (time.process_time() - start) / 60}


def case(row: dict[str, Any]) -> tuple[str, str, int, int]:
    """:return: What a run measures: its master, settings, budget and seed (a later run of the same replaces it)."""
    return row["master"], json.dumps(row["settings"], sort_keys=True), row["timesteps"], row["seed"]


def flat_walk_curves() -> tuple[int, list[np.ndarray]]:
    """
    :return: The window of SB3's PPO runs on walk alone with the entry's settings and rewards normalised
        (flat_learner.json), and each run's training returns per window (empty if none is kept).
    """
    rows = json.loads(FLAT_RUNS.read_text()) if FLAT_RUNS.is_file() else []
    runs = [
        row
        for row in rows
        if row["experiment"] == EXPERIMENT and row["algorithm"] == "ppo" and row.get("normalize_reward")
        and str(row["task"]) == str(WALK) and not row.get("env_kwargs")
    ]  # fmt: skip
    every = runs[0]["every"] if runs else 0
    return every, [np.asarray(row["returns"]) for row in runs if row["every"] == every]


def flat_at(steps: int, every: int, curves: list[np.ndarray]) -> str:
    """:return: The flat PPO runs' mean training return (range) at ``steps`` walk steps, "-" beyond their budget."""
    index = steps // every - 1 if every else -1
    values = [curve[index] for curve in curves if 0 <= index < len(curve)]
    return f"{np.mean(values):.0f} ({min(values):.0f}-{max(values):.0f})" if values else "-"


def render(rows: list[dict[str, Any]]) -> None:
    """Write the page from every saved run."""
    every, curves = flat_walk_curves()
    lines = [
        *page_header("The Humanoid's walk sub-policy under MLSH's schedule", "humanoid_walker.py", rows, RUNS),
        "HumanoidWalkCrawl-v0 meta-trained with its `hyperparams/mlsh.yml` entry (the row's settings changed). "
        f"*{MASTERS['learned']}*: MLSH as packaged; *{MASTERS['scripted']}*: the masters never learn, so each "
        "sub-policy trains on its own task's joint steps only. Per window: the mean return and length of the training "
        "episodes of each task that ended in it; *walk steps trained*: the steps of the walk task on which the walker "
        "(sub-policy 1 under the scripted master; under MLSH's, the sub-policy that acted most on walk) was updated so "
        "far; *flat PPO*: SB3's PPO on walk alone with the entry's settings and rewards normalised (flat_learner.json, "
        f"{len(curves)} seeds), its training return after as many walk steps (mean, range over seeds; '-' past their "
        f"budget). *Alone*: each sub-policy acting alone at the end ({HUMANOID_ALONE_EPISODES} episodes per task, actions "
        "sampled, as reproduce.py): mean return, steps, x moved (a walker stays up 1000 steps; a crawler ends under the "
        "slab, x < -6.5).",
        "",
    ]
    names = ["walk" if task == WALK else "crawl" for task in EXPERIMENTS[EXPERIMENT].evaluation_tasks()]
    for row in sorted(rows, key=case):
        settings = ", ".join(f"{key}={value}" for key, value in sorted(row["settings"].items())) or "as packaged"
        final = np.asarray(row["windows"][-1][2])
        walker = WALK if row["master"] == "scripted" else int(final[:, WALK].argmax())
        lines += [
            f"## {MASTERS[row['master']]}, {settings}, seed {row['seed']}, {row['timesteps']:,} steps",
            "",
            f"CPU minutes: {row['cpu_minutes']:.1f}. Walker: sub-policy {walker}.",
            "",
            "| steps | walk: return, length (episodes) | crawl: return | walk steps trained by the walker | flat PPO "
            "after as many walk steps |",
            "|---|---|---|---|---|",
        ]
        for steps, means, trained in row["windows"]:
            walk, crawl = means.get(str(WALK)), means.get(str(CRAWL))
            walk_cell = f"{walk[0]:.0f}, {walk[1]:.0f} ({walk[2]})" if walk else "-"
            crawl_cell = f"{crawl[0]:.0f}" if crawl else "-"
            walk_trained = trained[walker][WALK]
            lines.append(
                f"| {steps:,} | {walk_cell} | {crawl_cell} | {walk_trained:,} | {flat_at(walk_trained, every, curves)} |"
            )
        alone = "; ".join(
            f"sub-policy {k}: "
            + ", ".join(
                f"{name} {r:.0f} / {n:.0f} steps / x {x:+.1f}" for name, (r, n, x) in zip(names, per_task, strict=True)
            )
            for k, per_task in enumerate(row["alone"])
        )
        lines += ["", f"Alone at the end: {alone}.", ""]
    PAGE.write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--timesteps", type=int, default=5_000_000)
    parser.add_argument("--every", type=int, default=250_000, help="steps per window")
    parser.add_argument("--master", nargs="+", choices=sorted(MASTERS), default=["scripted"])
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="MLSH settings changed")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time, one process each")
    parser.add_argument("--render", action="store_true", help="only rewrite the page from the saved runs")
    args = parser.parse_args()
    if not args.render:
        settings = key_values(args.set, "humanoid_walker.py")
        configs = [
            dict(seed=seed, timesteps=args.timesteps, every=args.every, master=master, settings=settings)
            for seed in args.seeds
            for master in args.master
        ]
        run_and_keep(
            run, configs, args.jobs, RUNS, case, "humanoid_walker.py",
            lambda row: f"{row['master']} seed {row['seed']}: {row['windows'][-1]}",
        )  # fmt: skip
    if RUNS.is_file():
        render(json.loads(RUNS.read_text()))


if __name__ == "__main__":
    main()
