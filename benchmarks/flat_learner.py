"""
MLSH with one sub-policy against SB3's PPO: does MLSH's learner learn as PPO does?

    python -m benchmarks.flat_learner --experiment key_door --tasks episode --seeds 0 1 [--timesteps 1500000]
    python -m benchmarks.flat_learner --experiment key_door --tasks fixed --timesteps 600000

With K = 1, W = 0 (the sub-policy updated every iteration) and time limits bootstrapped, MLSH's hierarchy is
one flat policy trained by SB3's PPO update on every step, so it should learn as SB3's PPO does with the same
settings: the env's ``hyperparams/mlsh.yml`` entry (n_envs, n_steps, learning rate, ``policy_kwargs``,
``normalize_observations``: MLSH's own running mean/std, for PPO a ``VecNormalize`` of the observations only,
clipped as MLSH's), GAE lambda 0.98 (as the reproduction's PPO baselines), batch 64, 10 epochs. ``--tasks
fixed`` trains both on one task (``--task``, default the experiment's first evaluation task); ``--tasks
episode`` draws a new task at every reset (``TaskPerEpisode``: the shared policy's training distribution).
Each run records the mean return of the training episodes that ended in each ``--every`` steps; on the Ant's
TwoWalk also where those episodes ended (``Gait``: how far past the target along its direction, how far to its side),
the share of the sampled action components outside the action bounds (which the env's clipping hides from the
policy) and the policy's mean log standard deviation, to tell a learner that walks past its target from one that
veers or one that stops exploring.
``--normalize-reward`` also scales the rewards by a running estimate of the return's standard deviation, as the RL Zoo
does on MuJoCo: PPO's by ``VecNormalize``, MLSH's by its own ``normalize_rewards`` (the same estimate, updated once
per iteration instead of every step). ``--outer-normalize`` puts MLSH inside the same ``VecNormalize`` as PPO
(observations, and rewards with ``--normalize-reward``), its own normalisers off: with it, the two learners differ in
nothing but the learner, and against the run without it, it measures what MLSH's once-per-iteration statistics cost
(no distances alone then: the trained model expects observations normalised by the ``VecNormalize``);
``--outer-normalize observations`` (or ``rewards``) hands only those to the ``VecNormalize``, to tell which costs. ``--env
KEY=VALUE`` (repeatable) changes the env's keyword arguments, for both algorithms (e.g. ``--env reward=progress`` on
the Ant: the velocity toward the target instead of the distance); ``--set KEY=VALUE`` (repeatable) changes a learner
setting of both algorithms (PPO's keyword arguments, e.g. ``--set gamma=0.995``; a schedule as the RL Zoo writes it,
``learning_rate=lin_3e-4``).

Every run is saved in ``<out>/flat_learner.json`` as it ends and is not run again; the page
``<out>/flat_learner.md`` is written from all saved runs (``--out``: ``results`` unless given; the project's page:
``--out docs/benchmarks``). Runs go ``--jobs`` at a time (default 2),
one process and one torch thread each.
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
import yaml
from stable_baselines3.common.callbacks import BaseCallback

from benchmarks.experiments import (
    EXPERIMENTS,
    EpisodeWindows,
    add_out_argument,
    alone_episode,
    code_version,
    counted,
    package_versions,
    page_header,
    past_and_aside,
    setting,
    update_json,
)

RUNS = "flat_learner.json"  # in --out, beside the page flat_learner.md
ALGORITHMS = {"ppo": "PPO", "mlsh": "MLSH, K = 1"}  # name: label on the page


class Gait(BaseCallback):
    """
    Every ``every`` training steps on the Ant's TwoWalk (one target per run), appends to ``windows`` the window's
    ``past`` (the mean of the ended episodes' last x, y along the target's direction less the target's distance:
    positive past it), ``aside`` (their mean distance from the line through the start and the target), ``clipped``
    (the share of the action components sampled in the window outside the action bounds) and ``log_std`` (the mean of
    the policy's log standard deviations at its end).

    :param every: Steps per window.
    :param target: The run's target (x, y).
    """

    def __init__(self, every: int, target: tuple[float, float]) -> None:
        super().__init__()
        self.every, self.done, self.target = every, 0, np.asarray(target)
        self.windows: dict[str, list[float]] = {"past": [], "aside": [], "clipped": [], "log_std": []}
        self.ends: list[np.ndarray] = []
        self.clipped = [0, 0]  # components outside the bounds, components

    def _on_step(self) -> bool:
        self.ends += [np.array([info["x_position"], info["y_position"]]) for info in self.locals["infos"] if "episode" in info]
        actions = self.locals["actions"]
        space = self.model.action_space
        self.clipped[0] += int(((actions < space.low) | (actions > space.high)).sum())
        self.clipped[1] += actions.size
        if self.num_timesteps // self.every > self.done:
            self.done += 1
            ends = np.asarray(self.ends).reshape(-1, 2)
            past, aside = past_and_aside(ends, self.target)
            nan = float("nan")
            self.windows["past"].append(float(np.mean(past)) if len(ends) else nan)
            self.windows["aside"].append(float(np.mean(aside)) if len(ends) else nan)
            self.windows["clipped"].append(self.clipped[0] / max(self.clipped[1], 1))
            log_stds = [p.detach().mean().item() for n, p in self.model.policy.named_parameters() if "log_std" in n]
            self.windows["log_std"].append(float(np.mean(log_stds)) if log_stds else nan)
            self.ends, self.clipped = [], [0, 0]
        return True


def run(config: dict[str, Any]) -> dict[str, Any]:
    """
    One run: train, keeping the mean training return every ``every`` steps.

    :param config: ``experiment``, ``tasks`` (the mode), ``task``, ``algorithm``, ``seed``, ``timesteps``, ``every``.
    :return: ``config`` with the returns and CPU minutes added.
    """
    import gymnasium as gym
    import torch as th
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    from sb3_mlsh import MLSH, TaskSamplerWrapper
    from sb3_mlsh.baselines import TaskPerEpisode
    from sb3_mlsh.zoo import with_schedules

    tasks, task, seed, every = config["tasks"], config["task"], config["seed"], config["every"]
    spec = EXPERIMENTS[config["experiment"]]
    n_envs, hyperparams = spec.hyperparams()
    th.set_num_threads(1)
    start = time.process_time()

    def wrapper(env: gym.Env) -> gym.Env:
        # both algorithms see the same envs: one task drawn afresh at each reset, from {task} or from the env's tasks
        return TaskPerEpisode(TaskSamplerWrapper(env, tasks=[task]) if tasks == "fixed" else env)

    env_kwargs = {**spec.env_kwargs, **config.get("env_kwargs", {})}
    env = make_vec_env(spec.env_id, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs, wrapper_class=wrapper)
    common: dict[str, Any] = dict(
        n_steps=hyperparams["n_steps"], learning_rate=hyperparams.get("learning_rate", 3e-4), gae_lambda=0.98, seed=seed,
        policy_kwargs=hyperparams.get("policy_kwargs"),
    )  # fmt: skip
    common = with_schedules({**common, **config.get("learner_kwargs", {})})  # --set learning_rate=lin_3e-4
    normalize = hyperparams.get("normalize_observations", True)  # MLSH's default
    norm_reward = config.get("normalize_reward", False)
    outer = "both" if config["algorithm"] == "ppo" else outer_normalize(config)  # what VecNormalize normalises
    outer_obs, outer_reward = normalize and outer in ("both", "observations"), norm_reward and outer in ("both", "rewards")
    if outer_obs or outer_reward:
        clip_obs = hyperparams.get("clip_obs", 5.0)
        gamma = common.get("gamma", 0.99)
        env = VecNormalize(env, norm_obs=outer_obs, norm_reward=outer_reward, clip_obs=clip_obs, gamma=gamma)
    if config["algorithm"] == "ppo":
        model: Any = PPO("MlpPolicy", env, **common)
    else:
        flat = dict(
            n_subpolicies=1, warmup_iterations=0, joint_iterations=10, macro_duration=hyperparams["macro_duration"],
            bootstrap_truncation=True, normalize_observations=normalize and not outer_obs,
            normalize_rewards=norm_reward and not outer_reward,
        )  # fmt: skip
        model = MLSH("MlpPolicy", env, **{**flat, **common})  # --set may change these too (e.g. bootstrap_truncation)
    returns: list[float] = []
    distances: list[float] = []  # where the env reports it (the Ant's TwoWalk), the distance to the target at the end

    def on_window(steps: int, mean: float | None, distance: float | None) -> None:
        returns.append(float("nan") if mean is None else mean)
        distances.append(float("nan") if distance is None else distance)

    gait = Gait(every, env.get_attr("targets")[0][task]) if spec.has_targets else None
    windows = EpisodeWindows(every, 0, on_window)
    model.learn(config["timesteps"], callback=[windows] if gait is None else [windows, gait])
    measured: dict[str, Any] = {"final_distances": distances} if not np.isnan(distances).all() else {}
    if gait is not None:
        measured["gait"] = gait.windows
    if spec.has_targets and config["algorithm"] == "mlsh" and not outer_obs:  # alone, as reproduce.py judges a sub-policy
        measured["alone_distances"] = alone_distances(model, spec, task, seed)
    return {**config, "returns": returns, **measured, "cpu_minutes": (time.process_time() - start) / 60}


ALONE_SAMPLED = 3  # episodes with sampled actions


def alone_distances(model: Any, spec: Any, task: Any, seed: int) -> dict[str, float]:
    """
    :return: How far from ``task``'s target the trained learner (K = 1) ends an episode from the start
        ``reproduce.py`` uses, acting on its most likely actions (``deterministic``), and the mean over
        ``ALONE_SAMPLED`` episodes from other starts with its actions sampled (``sampled``).
    """
    import gymnasium as gym

    env = gym.make(spec.env_id, **spec.env_kwargs)
    env.unwrapped.set_task(task)

    def end(start: int, deterministic: bool) -> float:
        for _ in alone_episode(model, env, 0, start, deterministic=deterministic):
            pass
        return float(np.linalg.norm(env.unwrapped.xy - np.asarray(env.unwrapped.targets[task])))

    distances = {
        "deterministic": end(seed, True),
        "sampled": float(np.mean([end(seed + 1 + i, False) for i in range(ALONE_SAMPLED)])),
    }
    env.close()
    return distances


def last_quarter(returns: list[float]) -> float:
    """:return: The mean return over the last quarter of a run's windows."""
    return float(np.nanmean(np.array(returns, dtype=float)[-max(len(returns) // 4, 1) :]))


def case(row: dict[str, Any]) -> tuple[str, str, str, int, int, bool, str]:
    """
    :return: What a run compares: experiment, task mode, task, budget, window, rewards normalised, env and learner
        changes.
    """
    env, learner = (
        ", ".join(f"{key}={value}" for key, value in sorted(row.get(field, {}).items()))
        for field in ("env_kwargs", "learner_kwargs")
    )
    changes = env + (f"; learner: {learner}" if learner else "")
    return (
        row["experiment"], row["tasks"], str(row["task"]), row["timesteps"], row["every"],
        row.get("normalize_reward", False), changes,
    )  # fmt: skip


GAIT = (
    ("past", "past the target at the end (+: beyond it)", "{:+.1f}"),
    ("aside", "to the side of the target's line at the end", "{:.1f}"),
    ("clipped", "share of action components sampled outside the bounds", "{:.3f}"),
    ("log_std", "mean log std of the policy", "{:+.2f}"),
)


def label(row: dict[str, Any]) -> str:
    """:return: The run's learner as the page names it."""
    outer = {
        "both": ", in VecNormalize",
        "observations": ", observations in VecNormalize",
        "rewards": ", rewards in VecNormalize",
    }
    return ALGORITHMS[row["algorithm"]] + outer.get(outer_normalize(row), "")


def outer_normalize(row: dict[str, Any]) -> str:
    """:return: What an MLSH run left to a ``VecNormalize`` around it: "both", "observations", "rewards" or ""."""
    value = row.get("outer_normalize", "")
    return "both" if value is True else value


def measures(row: dict[str, Any]) -> list[tuple[str, list[float] | None, str]]:
    """:return: A run's measures over its windows, as (the page's suffix to the algorithm, values, format)."""
    gait = row.get("gait", {})
    return [
        ("", row["returns"], "{:.1f}"),
        (": distance to the target at the end", row.get("final_distances"), "{:.2f}"),
        *((f": {name}", gait.get(key), form) for key, name, form in GAIT),
    ]


def render(rows: list[dict[str, Any]], out: pathlib.Path) -> None:
    """Write the page: per case and seed, PPO's and MLSH's training returns at a few points and over the last quarter."""
    lines = [
        *page_header("MLSH with one sub-policy against SB3's PPO", "flat_learner.py", rows, out / RUNS),
        "MLSH with K = 1, W = 0 and time limits bootstrapped trains one flat policy with SB3's PPO update on every "
        "step; PPO is SB3's, with the same settings (the env's `hyperparams/mlsh.yml` entry: n_envs, n_steps, "
        "learning rate, `policy_kwargs` and observation normalisation, MLSH's own or, for PPO, a `VecNormalize` of the "
        "observations, clipped alike; none on KeyDoor; GAE lambda 0.98, batch 64, 10 epochs; where the title says so, "
        "rewards scaled by the return's standard deviation, MLSH's own `normalize_rewards` or the `VecNormalize`'s). "
        "*In VecNormalize*: MLSH inside the same `VecNormalize` as PPO, its own normalisers off. *fixed*: one task "
        "throughout; *episode*: a new task at every reset. Mean return of the training episodes that ended in the "
        "window before each point; *last quarter*: the mean over the last quarter of the windows; *CPU minutes*: the "
        "run's, training included, one torch thread (runs sharing the cores with other jobs take longer). Cases run with "
        "`--algorithms ppo` measure PPO alone (the Ant's reward diagnostics; the title names the reward and scaling).",
        "",
    ]
    for key in sorted({case(row) for row in rows}):
        name, tasks, task, timesteps, every, norm_reward, changes = key
        runs = sorted((row for row in rows if case(row) == key), key=lambda row: (row["seed"], label(row)))
        points = [timesteps * q // 4 for q in (1, 2, 3, 4)]
        title = f"{EXPERIMENTS[name].env_id}, tasks: {tasks}" + (f" (task {task})" if tasks == "fixed" else "")
        title += (", rewards normalised" if norm_reward else "") + (f", env: {changes}" if changes else "")
        lines += [
            f"## {title}, {timesteps:,} steps",
            "",
            "| seed | algorithm | " + " | ".join(f"{p:,}" for p in points) + " | last quarter | CPU minutes |",
            "|---|---|" + "---|" * (len(points) + 2),
        ]
        for row in runs:
            for suffix, values, form in measures(row):
                if values is not None:
                    cells = " | ".join(form.format(values[min(p // every, len(values)) - 1]) for p in points)
                    minutes = f"{row['cpu_minutes']:.1f}" if not suffix else ""
                    lines.append(
                        f"| {row['seed']} | {label(row)}{suffix} | {cells} | {form.format(last_quarter(values))} | {minutes} |"
                    )
        alone = [row for row in runs if "alone_distances" in row]
        if alone:
            lines.append(
                "\nThe trained learner alone, distance from the target at the end of an episode (most likely actions, "
                f"reproduce.py's start; actions sampled, the mean of {ALONE_SAMPLED} episodes): "
                + "; ".join(
                    f"seed {row['seed']}: {row['alone_distances']['deterministic']:.2f}, "
                    f"{row['alone_distances']['sampled']:.2f}"
                    for row in alone
                )
                + "."
            )
        for learner in sorted({label(row) for row in runs}):
            lasts = [last_quarter(r["returns"]) for r in runs if label(r) == learner]
            lines.append(f"\n{learner}: last quarter {np.mean(lasts):.1f} on average over {counted(len(lasts), 'seed')}.")
        lines.append("")
    (out / RUNS).with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", choices=sorted(EXPERIMENTS), default="key_door")
    parser.add_argument("--tasks", choices=["fixed", "episode"], default="episode")
    parser.add_argument("--task", type=int, default=None, help="index into the experiment's evaluation tasks (fixed)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--timesteps", type=int, default=1_500_000)
    parser.add_argument("--every", type=int, default=50_000, help="steps per measurement window")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time, one process each")
    parser.add_argument("--algorithms", nargs="+", choices=sorted(ALGORITHMS), default=list(ALGORITHMS))
    parser.add_argument("--normalize-reward", action="store_true", help="scale the rewards by the return's std too")
    parser.add_argument(
        "--outer-normalize", nargs="?", const="both", choices=["both", "observations", "rewards"],
        help="MLSH inside VecNormalize, as PPO (both, or only observations or rewards)",
    )  # fmt: skip
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="an env keyword argument")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a learner setting")
    parser.add_argument("--render", action="store_true", help="only rewrite the page from the saved runs")
    add_out_argument(parser, "docs/benchmarks")
    args = parser.parse_args()
    if args.timesteps < args.every:
        parser.error(f"--timesteps {args.timesteps} is shorter than one window (--every {args.every})")
    if args.outer_normalize and "mlsh" not in args.algorithms:
        parser.error("--outer-normalize changes MLSH's normalisers (PPO's are VecNormalize's): add mlsh to --algorithms")
    env_kwargs, learner_kwargs = {}, {}
    for option, item in [("--env", item) for item in args.env] + [("--set", item) for item in args.set]:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"{option} {item}: use KEY=VALUE, e.g. --env reward=progress or --set gamma=0.995")
        if option == "--env":
            env_kwargs[name] = yaml.safe_load(value)
        else:
            learner_kwargs[name] = setting(value)
    runs = args.out / RUNS
    rows = json.loads(runs.read_text()) if runs.is_file() else []
    if not args.render:
        task = EXPERIMENTS[args.experiment].evaluation_tasks()[args.task or 0] if args.tasks == "fixed" else None
        done = {(case(row), label(row), row["seed"]) for row in rows}
        configs = [
            dict(experiment=args.experiment, tasks=args.tasks, task=task, algorithm=algorithm, seed=seed,
                 timesteps=args.timesteps, every=args.every, normalize_reward=args.normalize_reward,
                 env_kwargs=env_kwargs, learner_kwargs=learner_kwargs)
            | ({"outer_normalize": args.outer_normalize} if args.outer_normalize and algorithm == "mlsh" else {})
            for seed in args.seeds
            for algorithm in args.algorithms
        ]  # fmt: skip
        configs = [config for config in configs if (case(config), label(config), config["seed"]) not in done]
        command = f"python -m benchmarks.flat_learner {' '.join(sys.argv[1:])}"
        machine = f"{platform.machine()}, {multiprocessing.cpu_count()} cores, {counted(args.jobs, 'run')} at a time"
        commit = code_version()  # as the command started: a commit made while the runs go does not relabel them
        kept = dict(command=command, date=str(datetime.date.today()), machine=machine, commit=commit,
                    packages=package_versions())  # fmt: skip
        with multiprocessing.get_context("spawn").Pool(args.jobs, maxtasksperchild=1) as pool:
            for row in pool.imap_unordered(run, configs):
                saved = {**row, **kept}
                rows = update_json(runs, [], lambda kept, saved=saved: kept.append(saved))
                print(f"{case(row)} {row['algorithm']} seed {row['seed']}: {np.round(row['returns'], 1)}", flush=True)
    if rows:
        render(rows, args.out)


if __name__ == "__main__":
    main()
