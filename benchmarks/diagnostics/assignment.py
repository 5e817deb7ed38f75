"""
Which sub-policy does each task get during meta-training, and does it walk there? Ant TwoWalk's masters' assignment
of sub-policies to tasks, against a scripted master that gives task k's steps to sub-policy k (the ceiling of the
assignment: sub-policy learning alone, with MLSH's schedule and budget).

    python -m benchmarks.diagnostics.assignment --seeds 0 1 --timesteps 3000000 --master learned scripted

Each run meta-trains MLSH with the ``hyperparams/mlsh.yml`` entry of AntTwoWalk-v0 (``--set KEY=VALUE`` changes a
setting, ``--env KEY=VALUE`` one of the env's) and records, per iteration and task group, the group's task, phase,
the share of its steps that each sub-policy acted and the two terms of the reward those steps earned (upright bonus
and progress: what the masters compare); every ``--every`` steps, where each sub-policy alone (most likely actions,
one episode from the same start) ends, as ``reproduce.py`` measures it. ``--master scripted``: each group's choice
is its task's index (the master's own choice is overwritten and its learning rate is 0), so the sub-policies get
exactly the steps of their own task, in the joint iterations as MLSH's.

The page shows per run the worse sub-policy end from distinct targets over meta-training and, per quarter of the
run, the map task -> sub-policy of the joint iterations (the share of task j's joint steps that sub-policy k acted)
and how decisive the masters were: per task cycle of a group, the share of its joint steps that its most used
sub-policy acted (1: one sub-policy throughout; 0.5: an even mix of two), averaged over the cycles that ended in the
quarter, and how often that sub-policy changed from the group's previous cycle on the same task; and per task and
sub-policy the upright bonus and the progress its steps earned per macro transition.

Runs are kept in docs/benchmarks/assignment.json as they end; the page docs/benchmarks/assignment.md is written
from all of them (``--render``: only that). Runs go ``--jobs`` at a time, one torch thread each.
"""

import argparse
import json
import pathlib
import time
from typing import Any

import numpy as np

from benchmarks.experiments import (
    EXPERIMENTS,
    alone_episode,
    key_values,
    page_header,
    run_and_keep,
    subpolicy_paths,
)
from benchmarks.reproduce import worse_end

ROOT = pathlib.Path(__file__).resolve().parents[2]
RUNS = ROOT / "docs" / "benchmarks" / "assignment.json"
PAGE = RUNS.with_suffix(".md")
EXPERIMENT = "ant_two_walk"
SAMPLED = 3  # episodes per sub-policy alone with sampled actions, at each measurement
MASTERS = {"learned": "MLSH's masters", "scripted": "scripted: task k -> sub-policy k"}


def scripted_mlsh() -> type:
    """:return: MLSH whose every decision is the deciding env's task index (the master's choice overwritten)."""
    from sb3_mlsh import MLSH

    class ScriptedMLSH(MLSH):
        def _decide(self, obs: Any, env_indices: np.ndarray, episode_start: np.ndarray) -> None:
            super()._decide(obs, env_indices, episode_start)
            assert self._macro_state is not None and self.env is not None
            tasks = self.env.env_method("get_wrapper_attr", "task", indices=list(env_indices))
            self._macro_state.active[env_indices] = tasks

    return ScriptedMLSH


def run(config: dict[str, Any]) -> dict[str, Any]:
    """
    One meta-training run with its assignment record.

    :param config: ``seed``, ``timesteps``, ``every``, ``master``, ``settings`` (MLSH's keyword arguments changed)
        and ``env`` (the env's keyword arguments changed; none in runs kept before it existed).
    :return: ``config`` with ``iterations`` (per iteration: steps, then per group ``[task, phase, shares, terms]``,
        ``terms`` per sub-policy the mean upright bonus and progress reward of its steps or ``None``), ``ends``
        (``[steps, worse end, ends]``: each sub-policy alone, most likely actions, from the one start ``reproduce.py``
        uses), ``sampled_ends`` (``[steps, worse end]`` with each sub-policy's ends averaged over ``SAMPLED``
        episodes with sampled actions, as the master runs them), ``training_distances`` (``[steps, per task the mean
        distance to the target at the end of the training episodes since the last measurement]``) and
        ``cpu_minutes``. The final model is saved in ``results/assignment/``.
    """
    import gymnasium as gym
    import torch as th
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_mlsh import MLSH

    th.set_num_threads(1)
    start = time.process_time()
    spec = EXPERIMENTS[EXPERIMENT]
    n_envs, hyperparams = spec.hyperparams()
    settings = {**hyperparams, **config["settings"]}
    algorithm = MLSH
    if config["master"] == "scripted":
        algorithm, settings["master_learning_rate"] = scripted_mlsh(), 0.0
    env_kwargs = {**spec.env_kwargs, **config["env"]}
    env = make_vec_env(spec.env_id, n_envs=n_envs, seed=config["seed"], env_kwargs=env_kwargs)
    model = algorithm("MlpPolicy", env, seed=config["seed"], **settings)
    iterations: list[list[Any]] = []
    ends: list[list[Any]] = []
    sampled_ends: list[list[Any]] = []
    training_distances: list[list[Any]] = []
    ended: dict[int, list[float]] = {}  # per task, the distances at the end of this window's training episodes
    every = config["every"]
    alone_env = gym.make(spec.env_id, **env_kwargs)

    def measure_ends() -> None:
        paths = subpolicy_paths(model, spec, config["seed"])
        targets = [np.asarray(center) for label, center, _ in paths["marks"] if label.startswith("target")]
        last = [list(path[-1]) for path in paths["paths"]]
        ends.append([model.num_timesteps, worse_end(last, targets), last])
        sampled = [
            np.mean([end(k, config["seed"] + 1 + i) for i in range(SAMPLED)], axis=0) for k in range(model.n_subpolicies)
        ]
        sampled_ends.append([model.num_timesteps, worse_end(sampled, targets)])
        means = {task: float(np.mean(distances)) for task, distances in sorted(ended.items())}
        training_distances.append([model.num_timesteps, means])
        ended.clear()

    def end(k: int, seed: int) -> list[float]:
        """:return: Where sub-policy ``k`` alone, actions sampled, takes the torso in an episode from ``seed``'s start."""
        for _ in alone_episode(model, alone_env, k, seed, deterministic=False):
            pass
        return alone_env.unwrapped.xy.tolist()  # type: ignore[attr-defined]

    upright_reward = float(alone_env.unwrapped.upright_reward)  # type: ignore[attr-defined]
    seen: list[np.ndarray] = []  # per step of the iteration: per env, [upright bonus, progress reward]

    class Record(BaseCallback):
        def _on_step(self) -> bool:
            bonus = upright_reward * np.array([info["upright"] for info in self.locals["infos"]])
            seen.append(np.stack([bonus, self.locals["rewards"] - bonus], axis=1))
            for info in self.locals["infos"]:
                if "episode" in info:
                    ended.setdefault(int(info["task"]), []).append(float(info["distance_to_target"]))
            return True

        def _on_rollout_start(self) -> None:  # the last iteration's update done
            if model.num_timesteps // every > len(ends) - 1:
                measure_ends()

        def _on_rollout_end(self) -> None:
            tags = model.rollout_buffer.subpolicies
            terms = np.stack(seen)  # (steps, envs, 2)
            seen.clear()
            groups = []
            for group in model.task_groups:
                acted = tags[:, list(group.envs)].ravel()
                shares = np.bincount(acted, minlength=model.n_subpolicies) / acted.size
                group_terms = terms[:, list(group.envs)].reshape(-1, 2)
                means = [
                    [round(float(x), 4) for x in group_terms[acted == k].mean(axis=0)] if np.any(acted == k) else None
                    for k in range(model.n_subpolicies)
                ]
                groups.append([int(group.task), group.phase, [round(float(share), 4) for share in shares], means])
            iterations.append([model.num_timesteps, groups])

    model.learn(config["timesteps"], callback=Record())
    if ends[-1][0] != model.num_timesteps:
        measure_ends()
    model.save(ROOT / "results" / "assignment" / f"{config['master']}_seed{config['seed']}_{config['timesteps']}.zip")
    env.close()
    measured = dict(iterations=iterations, ends=ends, sampled_ends=sampled_ends, training_distances=training_distances)
    return {**config, **measured, "cpu_minutes": (time.process_time() - start) / 60}


def changes(row: dict[str, Any]) -> dict[str, Any]:
    """:return: What a run changed from the packaged settings: MLSH's, and the env's prefixed with ``env``."""
    return {**row["settings"], **{f"env {key}": value for key, value in row.get("env", {}).items()}}


def case(row: dict[str, Any]) -> tuple[str, str, int, int]:
    """:return: What a run measures: its master, settings, budget and seed (a later run of the same replaces it)."""
    return row["master"], json.dumps(changes(row), sort_keys=True), row["timesteps"], row["seed"]


def cycles(row: dict[str, Any]) -> list[tuple[int, int, int, np.ndarray]]:
    """
    :return: Per task cycle of a group that reached its joint iterations: the steps at its last joint iteration, the
        group, the task and the summed sub-policy shares of its joint iterations (normalised to 1).
    """
    found, current = [], {}  # current: group -> (task, shares so far, steps)
    for steps, groups in row["iterations"]:
        for g, (task, phase, shares, *_) in enumerate(groups):
            if phase == "warmup" and g in current:
                found.append((g, *current.pop(g)))
            if phase == "joint":
                _, total, _ = current.get(g, (task, np.zeros(len(shares)), steps))
                current[g] = (task, total + np.asarray(shares), steps)
    found += [(g, *cycle) for g, cycle in current.items()]
    return sorted(((steps, g, task, total / total.sum()) for g, task, total, steps in found), key=lambda c: c[:3])


def quarters(row: dict[str, Any]) -> list[str]:
    """:return: Per quarter of the run: the joint map task -> sub-policy, decisiveness and changes of majority."""
    n_tasks = len(EXPERIMENTS[EXPERIMENT].evaluation_tasks())
    every_cycle = cycles(row)
    cells, previous = [], {}
    for q in range(4):
        low, high = row["timesteps"] * q / 4, row["timesteps"] * (q + 1) / 4
        in_quarter = [cycle for cycle in every_cycle if low < cycle[0] <= high]
        table = np.zeros((n_tasks, len(in_quarter[0][3]) if in_quarter else 2))
        majority, changes, repeats = [], 0, 0
        for _, _, task, shares in in_quarter:
            table[task] += shares
            majority.append(shares.max())
            top = int(np.argmax(shares))
            if task in previous:
                repeats += 1
                changes += previous[task] != top
            previous[task] = top
        table = table / np.maximum(table.sum(axis=1, keepdims=True), 1e-9)
        task_map = "; ".join(f"{j}: " + "/".join(f"{share:.2f}" for share in table[j]) for j in range(n_tasks))
        decisive = f"{np.mean(majority):.2f}" if majority else "-"
        cells.append(f"{task_map} ({decisive}; {changes} of {repeats} changed)")
    return cells


def updates_seen(row: dict[str, Any]) -> list[str]:
    """
    :return: Per quarter of the run, per sub-policy: the iterations that updated it (it acted in a joint group), how
        many of those updates read mostly steps of a task other than its own (the task whose joint steps it acted on
        most in the run's second half) and the median number of steps those updates read.
    """
    n_envs, hyperparams = EXPERIMENTS[EXPERIMENT].hyperparams()
    settings = {**hyperparams, **row["settings"]}
    group_steps = n_envs // settings.get("n_task_groups", 1) * settings["n_steps"]
    n_tasks = len(EXPERIMENTS[EXPERIMENT].evaluation_tasks())
    steps = np.zeros((len(row["iterations"]), len(row["ends"][-1][2]), n_tasks))  # iteration, sub-policy, task
    for i, (_, groups) in enumerate(row["iterations"]):
        for task, phase, shares, *_ in groups:
            if phase == "joint":
                steps[i, :, task] += np.asarray(shares) * group_steps
    own = steps[len(steps) // 2 :].sum(axis=0).argmax(axis=1)
    cells = []
    for q in range(4):
        low, high = row["timesteps"] * q / 4, row["timesteps"] * (q + 1) / 4
        quarter = steps[[low < at <= high for at, _ in row["iterations"]]]
        parts = []
        for k, task in enumerate(own):
            read = quarter[:, k].sum(axis=1)
            other = (read - quarter[:, k, task] > read / 2) & (read > 0)
            median = f"{np.median(read[other]):.0f}" if other.any() else "-"
            parts.append(f"k{k}: {other.sum()} of {(read > 0).sum()} ({median})")
        cells.append("; ".join(parts))
    return cells


def rewards_seen(row: dict[str, Any]) -> list[str]:
    """
    :return: Per quarter of the run, per task and sub-policy, the two terms of the reward its steps earned (all
        phases), per macro transition: the upright bonus and the progress toward the target (what the masters
        compare; "-" where the sub-policy did not act on the task).
    """
    n_tasks = len(EXPERIMENTS[EXPERIMENT].evaluation_tasks())
    macro_duration = EXPERIMENTS[EXPERIMENT].hyperparams()[1].get("macro_duration", 1)
    macro_duration = row["settings"].get("macro_duration", macro_duration)
    cells = []
    for q in range(4):
        low, high = row["timesteps"] * q / 4, row["timesteps"] * (q + 1) / 4
        totals: dict[tuple[int, int], np.ndarray] = {}  # (task, k) -> [steps, upright bonus, progress] summed
        for steps, groups in row["iterations"]:
            if not low < steps <= high:
                continue
            for task, _, shares, *means in groups:
                for k, terms in enumerate(means[0] if means else []):
                    if terms is not None:
                        totals[task, k] = totals.get((task, k), np.zeros(3)) + shares[k] * np.array([1.0, *terms])
        parts = []
        for j in range(n_tasks):
            per_k = []
            for k in range(len(row["ends"][-1][2])):
                if (j, k) not in totals or totals[j, k][0] == 0:
                    per_k.append("-")
                    continue
                weight, upright, progress = totals[j, k]
                per_k.append(f"({upright / weight * macro_duration:.0f}, {progress / weight * macro_duration:+.1f})")
            parts.append(f"{j}: " + " / ".join(per_k))
        cells.append("; ".join(parts))
    return cells


def render(rows: list[dict[str, Any]]) -> None:
    """Write the page from every saved run."""
    lines = [
        *page_header("Which sub-policy each task gets during meta-training", "assignment.py", rows, RUNS),
        "AntTwoWalk-v0 meta-trained with its `hyperparams/mlsh.yml` entry (the row's settings changed). "
        f"*{MASTERS['learned']}*: MLSH as packaged; *{MASTERS['scripted']}*: each decision is the task's index and "
        "the masters never learn, so each sub-policy trains on its own task's joint steps only (the ceiling of the"
        " masters' assignment). *Worse end*: each sub-policy acting alone (most likely actions) for an episode "
        "from the same start, the larger distance of an end from a distinct target (the issue's bar: 1.0). *Joint "
        "map per quarter*: for task j, the share of its joint-iteration steps each sub-policy acted (j: k0/k1), "
        "over the task cycles that ended in the quarter; in brackets, the mean share of a cycle's joint steps "
        "taken by its most used sub-policy (1: one throughout, 0.5: an even mix) and how many cycles' most used "
        "sub-policy differed from the previous cycle's on the same task (in any group). *Reward per macro "
        "transition* (runs that recorded it): over the quarter's iterations, warm-up and joint, the upright bonus and "
        "the progress toward the task's target that a sub-policy's steps on the task earned, per macro transition: "
        "what the masters' choices compare. *Updates mostly on another task's steps*: per sub-policy k, the iterations "
        "whose update of k read more steps of another task than of its own (the task whose joint steps it acted on "
        "most in the run's second half); SB3's update averages the loss over a minibatch, so such an update of a few "
        "hundred steps moves k as far per gradient step as a full minibatch of its own task.",
        "",
    ]
    for row in sorted(rows, key=case):
        settings = ", ".join(f"{key}={value}" for key, value in sorted(changes(row).items())) or "as packaged"
        ends = ", ".join(f"{steps / 1e6:.2f}M: {worse:.2f}" for steps, worse, _ in row["ends"])
        final = row["ends"][-1]
        extra = []
        if "sampled_ends" in row:
            sampled = ", ".join(f"{steps / 1e6:.2f}M: {worse:.2f}" for steps, worse in row["sampled_ends"])
            training = ", ".join(
                f"{steps / 1e6:.2f}M: " + " / ".join(f"{distance:.2f}" for _, distance in sorted(means.items()))
                for steps, means in row["training_distances"]
                if means
            )
            extra = [
                f"Worse end with sampled actions (each sub-policy's end averaged over {SAMPLED} episodes): {sampled}.",
                "",
                f"Training episodes' distance to the target at their end, per task (0 / 1), per window: {training}.",
                "",
            ]
        seen = []
        if any(len(group) > 3 for _, groups in row["iterations"] for group in groups):
            seen = [
                "| quarter | reward per macro transition by task and sub-policy: (upright bonus, progress) (j: k0 / k1) |",
                "|---|---|",
                *(f"| {q + 1} | {cell} |" for q, cell in enumerate(rewards_seen(row))),
                "",
            ]
        lines += [
            f"## {MASTERS[row['master']]}, {settings}, seed {row['seed']}, {row['timesteps']:,} steps",
            "",
            f"CPU minutes: {row['cpu_minutes']:.1f}. Worse end over meta-training: {ends}. At the end the sub-policies "
            "end at " + ", ".join(f"({x:.1f}, {y:.1f})" for x, y in final[2]) + ".",
            "",
            *extra,
            "| quarter | joint map task -> sub-policy (decisiveness; majority changes) | sub-policy updates mostly on "
            "another task's steps, of all its updates (median steps of those) |",
            "|---|---|---|",
            *(
                f"| {q + 1} | {cell} | {other} |"
                for q, (cell, other) in enumerate(zip(quarters(row), updates_seen(row), strict=True))
            ),
            "",
            *seen,
        ]
    PAGE.write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--timesteps", type=int, default=3_000_000)
    parser.add_argument("--every", type=int, default=250_000, help="steps between measurements of the sub-policies' ends")
    parser.add_argument("--master", nargs="+", choices=sorted(MASTERS), default=list(MASTERS))
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="MLSH settings changed")
    parser.add_argument("--env", nargs="*", default=[], metavar="KEY=VALUE", help="the env's keyword arguments changed")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time, one process each")
    parser.add_argument("--render", action="store_true", help="only rewrite the page from the saved runs")
    args = parser.parse_args()
    if not args.render:
        settings, env = key_values(args.set, "assignment.py"), key_values(args.env, "assignment.py")
        configs = [
            dict(seed=seed, timesteps=args.timesteps, every=args.every, master=master, settings=settings, env=env)
            for seed in args.seeds
            for master in args.master
        ]
        run_and_keep(
            run, configs, args.jobs, RUNS, case, "assignment.py",
            lambda row: f"{row['master']} seed {row['seed']}: worse ends {[round(e[1], 2) for e in row['ends']]}",
        )  # fmt: skip
    if RUNS.is_file():
        render(json.loads(RUNS.read_text()))


if __name__ == "__main__":
    main()
