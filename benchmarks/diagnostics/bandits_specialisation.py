"""
Do MLSH's sub-policies specialise on the bandits (MovementBandits-v0, KeyDoor-v0), one per goal, and which
settings make them?

    python -m benchmarks.diagnostics.bandits_specialisation [--experiment key_door] [--seeds 0 1 2 3 4]
                                                [--set ent_coef=0,0.01 ...] [--timesteps 3200000]
                                                [--chunk 400000] [--jobs 2] [--render]

Every run meta-trains with the env's entry of ``hyperparams/mlsh.yml``, changed by ``--set KEY=V1,V2``
(repeatable; values read as YAML, commas inside brackets kept: ``policy_kwargs={optimizer_kwargs: {eps:
1.0e-5, fused: true}}`` is one value; every combination runs on every seed; ``task_per_episode=true``, a
diagnostic, draws a new task at every reset over MLSH's own task choice). Every ``--chunk`` steps it
measures each sub-policy acting alone on each task, with its most likely action (16 episodes) and with its
actions sampled as the master runs it (64 episodes): the mean episode reward (on MovementBandits about 44
means "walks to that task's goal", on KeyDoor about 84 "fetches the key, then walks to the goal"), the mean
entropy of its action distribution on the states it visits and, on KeyDoor, the share of those episodes in which
it reached the key. At the end it measures the paper's
R: the reward a fresh master collects in its first T steps on each task, sub-policies frozen
(``evaluate_adaptation``).

A run has *specialised* when each task has its own sub-policy that alone earns >= 40 on it (the
reproduction issue's bar on MovementBandits), counted for both ways of acting. Every run is saved in
``docs/benchmarks/<study>.json`` (``bandits_specialisation``, ``key_door_specialisation``) as it ends and
is not run again; the page beside it is written from all saved runs. Runs go ``--jobs`` at a time
(default 2), one process and one torch thread each.
"""

import argparse
import datetime
import functools
import itertools
import json
import multiprocessing
import pathlib
import platform
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import yaml

from benchmarks.experiments import (
    EXPERIMENTS,
    SPECIALISED,
    Experiment,
    adaptation_r,
    runnable,
    setting,
    specialised,
    subpolicies_alone,
    update_json,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Study:
    """
    The specialisation study of one experiment: where its runs and page are kept and what its numbers mean.

    :param experiment: The name in ``experiments.EXPERIMENTS``.
    :param stem: The runs are kept in ``docs/benchmarks/<stem>.json``, the page is ``<stem>.md``.
    :param title: The page's title.
    :param scale: What a sub-policy alone and R per episode compare with, for the page.
    """

    experiment: str
    stem: str
    title: str
    scale: str

    @property
    def spec(self) -> Experiment:
        return EXPERIMENTS[self.experiment]

    @property
    def runs(self) -> pathlib.Path:
        return ROOT / "docs" / "benchmarks" / f"{self.stem}.json"

    @property
    def page(self) -> pathlib.Path:
        return ROOT / "docs" / "benchmarks" / f"{self.stem}.md"


STUDIES = {
    "movement_bandits": Study(
        "movement_bandits",
        "bandits_specialisation",
        "MovementBandits: do the sub-policies specialise?",
        "a sub-policy that walks to the paying goal earns about 44; for R, the always-goal-0 scripted reference "
        "earns about 23",
    ),
    "key_door": Study(
        "key_door",
        "key_door_specialisation",
        "KeyDoor: do the sub-policies fetch the key and specialise?",
        "the scripted policy that fetches the key and walks to the paying goal earns about 84 per episode, "
        "always goal 0 about 44 (docs/results/key_door.md)",
    ),
}
SPEC = STUDIES["movement_bandits"].spec


def split_values(text: str) -> list[str]:
    """:return: The values of ``--set KEY=V1,V2``: ``text`` split at the commas outside brackets (``{a: 1, b: 2}``)."""
    values, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += (char in "{[(") - (char in "}])")
        if char == "," and depth == 0:
            values.append(text[start:index])
            start = index + 1
    return [*values, text[start:]]


def run(config: tuple[Study, dict[str, Any], int, int, int]) -> dict[str, Any]:
    """One (settings, seed): meta-train, measuring the sub-policies alone every chunk; then the paper's R."""
    import torch as th
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_mlsh import MLSH
    from sb3_mlsh.baselines import TaskPerEpisode
    from sb3_mlsh.zoo import with_schedules

    study, settings, seed, timesteps, chunk = config
    spec = study.spec
    n_envs, hyperparams = spec.hyperparams()
    th.set_num_threads(1)
    start = time.process_time()
    mlsh_settings = dict(settings)
    # task_per_episode=true: a new task at every reset, over MLSH's own task choice (a diagnostic: the
    # sub-policies then see the whole task distribution in every update, as the shared policy does)
    wrapper = TaskPerEpisode if mlsh_settings.pop("task_per_episode", False) else None
    env = make_vec_env(spec.env_id, n_envs=n_envs, seed=seed, wrapper_class=wrapper)
    model = MLSH("MlpPolicy", env, seed=seed, **with_schedules({**hyperparams, **mlsh_settings}))
    model.schedule_timesteps = timesteps  # schedules span the chunks
    chunks = []
    while model.num_timesteps < timesteps:
        model.learn(min(chunk, timesteps - model.num_timesteps), reset_num_timesteps=False)
        returns, entropy, keys = subpolicies_alone(model, spec, seed + 1)
        sampled, _, sampled_keys = subpolicies_alone(model, spec, seed + 1, deterministic=False)
        chunk_row = dict(
            steps=model.num_timesteps, alone=returns.tolist(), alone_sampled=sampled.tolist(), entropy=entropy.tolist()
        )
        if spec.key_index is not None:
            chunk_row.update(keys=keys.tolist(), keys_sampled=sampled_keys.tolist())
        chunks.append(chunk_row)
    result, r_per_episode = adaptation_r(model, spec, n_envs, seed)
    keys = {} if spec.key_index is None else {"late_keys": spec.late_key_shares(result, spec.adaptation_timesteps)}
    return dict(
        **keys,
        settings=settings,
        base=yml_entry(spec.env_id),
        seed=seed,
        timesteps=timesteps,
        chunks=chunks,
        r_per_episode=r_per_episode,
        specialised=specialised(np.array(chunks[-1]["alone"])),
        specialised_sampled=specialised(np.array(chunks[-1]["alone_sampled"])),
        cpu_minutes=(time.process_time() - start) / 60,
    )


@functools.cache
def yml_entry(env_id: str = SPEC.env_id) -> dict[str, Any]:
    """:return: MLSH's settings in ``env_id``'s entry of ``mlsh.yml``, as written there (``lin_2e-3``)."""
    from sb3_mlsh.zoo import hyperparams_path

    entry = yaml.safe_load(hyperparams_path().read_text())[env_id]
    return {k: v for k, v in entry.items() if k not in ("n_envs", "n_timesteps", "policy")}


def label(settings: dict[str, Any], base: dict[str, Any] | None = None, env_id: str = SPEC.env_id) -> str:
    """:return: What ``settings`` over ``base`` (default: today's entry) change from today's entry of ``env_id``."""
    today = yml_entry(env_id)
    effective = {**(today if base is None else base), **settings}
    return ", ".join(f"{k}={v}" for k, v in sorted(effective.items()) if today.get(k) != v) or "mlsh.yml"


def key(row: dict[str, Any], env_id: str = SPEC.env_id) -> tuple[str, int, int]:
    return (label(row["settings"], row["base"], env_id), row["timesteps"], row["seed"])


def machine(row: dict[str, Any]) -> str:
    """:return: Where ``row`` ran (runs before this was recorded: the 2-core development machine, 2 at a time)."""
    return row.get("machine", "x86_64, 2 cores, up to 2 runs at a time")


def per_subpolicy(values: list[list[float]] | None, form: str) -> str:
    """:return: ``values[k][task]`` as a table cell: the tasks separated by /, the sub-policies by ;  (``-``: none)."""
    if values is None:
        return "-"
    return "; ".join(" / ".join(form.format(value) for value in per_task) for per_task in values)


def render(study: Study, rows: list[dict[str, Any]]) -> None:
    """Write ``study``'s page from every saved run: a summary per setting, then every run's measurements."""
    import torch as th

    spec = study.spec
    entry = yml_entry(spec.env_id)
    row_key = functools.partial(key, env_id=spec.env_id)
    written = ", ".join(f"{k}={v}" for k, v in sorted(entry.items()))
    lines = [
        f"# {study.title}",
        "",
        "Measured by `benchmarks/diagnostics/bandits_specialisation.py` "
        f"({'; '.join(sorted({machine(row) for row in rows}))}; "
        f"one torch thread per run; {sum(r['cpu_minutes'] for r in rows):.0f} CPU minutes in all; "
        f"last run {max(row['date'] for row in rows)}; page written with torch {th.__version__}). "
        f"The runs are kept in `{study.runs.relative_to(ROOT)}`; "
        "`--render` rewrites this page from them.",
        "",
        "```bash",
        *sorted({runnable(row["command"]) for row in rows}),
        "```",
        "",
        f"Settings: hyperparams/mlsh.yml's {spec.env_id} entry today (`{written}`), changed as the first "
        "column says (runs of an earlier entry show how it differed from today's). "
        f"*Specialised*: each task has its own sub-policy that alone earns >= {SPECIALISED:.0f} per episode on it "
        f"({study.scale}), with its most likely action; *sampled*: with its actions sampled, as the master runs it "
        "(runs before this was measured: -). R: reward per episode of a fresh master over its "
        f"first {spec.adaptation_timesteps:,} steps on each task, sub-policies frozen, mean of the tasks."
        + (
            " *Key at the end*: the share of the episodes the master ran in the last quarter of those steps "
            "(actions sampled) that ended holding the key, mean of the tasks and per seed (reproduce.py's key "
            "measure; the aim is 80 %; runs before it was measured: -)."
            if spec.key_index is not None
            else ""
        ),
        "",
        "| settings | steps | seeds | specialised | sampled | mean R per episode | R per seed |"
        + (" key at the end, late adaptation episodes |" if spec.key_index is not None else ""),
        "|---|---|---|---|---|---|---|" + ("---|" if spec.key_index is not None else ""),
    ]
    groups = sorted({row_key(row)[:2] for row in rows})
    for name, steps in groups:
        runs = [row for row in rows if row_key(row)[:2] == (name, steps)]
        per_seed = ", ".join(f"{row['seed']}: {row['r_per_episode']:.1f}" for row in runs)
        sampled = [row["specialised_sampled"] for row in runs if "specialised_sampled" in row]
        sampled_count = f"{sum(sampled)} of {len(sampled)}" if sampled else "-"
        late = [row for row in runs if "late_keys" in row]
        late_cell = (
            f" {np.mean([row['late_keys'] for row in late]):.0%} ("
            + ", ".join(f"{row['seed']}: {np.mean(row['late_keys']):.0%}" for row in late)
            + ") |"
            if late
            else " - |"
        )
        lines.append(
            f"| {name} | {steps:,} | {len(runs)} | {sum(row['specialised'] for row in runs)} of {len(runs)} "
            f"| {sampled_count} | {np.mean([row['r_per_episode'] for row in runs]):.2f} | {per_seed} |"
            + (late_cell if spec.key_index is not None else "")
        )
    keys = spec.key_index is not None
    lines += [
        "",
        "Each sub-policy alone during meta-training: mean episode reward on each task (separated by /)"
        + (", the share of its episodes that reached the key" if keys else "")
        + ", with its most likely action and with sampled actions (-: not measured then),"
        + " and its action entropy (the uniform distribution over the 5 actions has 1.61).",
        "",
        "| settings | seed | steps | alone, per sub-policy | sampled |"
        + (" key reached, per sub-policy | sampled |" if keys else "")
        + " entropy, per sub-policy |",
        "|---|---|---|---|---|---|" + ("---|---|" if keys else ""),
    ]
    for row in rows:
        for chunk in row["chunks"]:
            cells = [
                per_subpolicy(chunk.get("alone"), "{:.1f}"),
                per_subpolicy(chunk.get("alone_sampled"), "{:.1f}"),
                *([per_subpolicy(chunk.get(name), "{:.0%}") for name in ("keys", "keys_sampled")] if keys else []),
                ", ".join(f"{e:.2f}" for e in chunk["entropy"]),
            ]
            lines.append(f"| {row_key(row)[0]} | {row['seed']} | {chunk['steps']:,} | {' | '.join(cells)} |")
    study.page.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[: 13 + len(groups)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", choices=sorted(STUDIES), default="movement_bandits")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=V1,V2", help="settings to try")
    parser.add_argument("--timesteps", type=int, default=None, help="default: the experiment's meta-training budget")
    parser.add_argument("--chunk", type=int, default=400_000, help="steps between measurements of the sub-policies")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time, one process each")
    parser.add_argument("--render", action="store_true", help="only rewrite the page from the saved runs")
    args = parser.parse_args()
    study = STUDIES[args.experiment]
    env_id = study.spec.env_id
    timesteps = args.timesteps or study.spec.meta_timesteps
    rows = json.loads(study.runs.read_text()) if study.runs.is_file() else []
    if not args.render:
        axes = []
        for item in args.set:
            name, sep, values = item.partition("=")
            if not sep or not values:
                parser.error(f"--set {item}: use KEY=V1,V2, e.g. --set ent_coef=0,0.01")
            axes.append([(name, setting(value)) for value in split_values(values)])
        done = {key(row, env_id) for row in rows}
        configs = [
            (study, dict(combination), seed, timesteps, args.chunk)
            for combination in itertools.product(*axes)
            for seed in args.seeds
            if (label(dict(combination), env_id=env_id), timesteps, seed) not in done
        ]
        command = f"python -m benchmarks.diagnostics.bandits_specialisation {' '.join(sys.argv[1:])}"
        machine = f"{platform.machine()}, {multiprocessing.cpu_count()} cores, {args.jobs} runs at a time"
        with multiprocessing.get_context("spawn").Pool(args.jobs, maxtasksperchild=1) as pool:
            # each run is saved as soon as it ends, so that a stopped benchmark keeps what it measured
            for row in pool.imap_unordered(run, configs):
                saved = {**row, "command": command, "date": str(datetime.date.today()), "machine": machine}
                rows = update_json(study.runs, [], lambda runs, saved=saved: runs.append(saved))
                last = row["chunks"][-1]
                print(
                    f"{key(row, env_id)[0]}, seed {row['seed']}: R {row['r_per_episode']:.2f}, "
                    f"specialised {row['specialised']} / sampled {row['specialised_sampled']}, "
                    f"alone {np.round(last['alone'], 1).tolist()} / sampled {np.round(last['alone_sampled'], 1).tolist()}",
                    flush=True,
                )
    if rows:
        render(study, sorted(rows, key=functools.partial(key, env_id=env_id)))


if __name__ == "__main__":
    main()
