"""
Do MLSH's two sub-policies specialise on MovementBandits-v0, one per goal, and which settings make them?

    python benchmarks/bandits_specialisation.py [--seeds 0 1 2 3 4] [--set ent_coef=0,0.01 ...]
                                                [--timesteps 3200000] [--chunk 400000] [--render]

Every run meta-trains with the MovementBandits-v0 entry of ``hyperparams/mlsh.yml``, changed by ``--set
KEY=V1,V2`` (repeatable; values read as YAML; every combination runs on every seed). Every ``--chunk``
steps it measures each sub-policy acting alone, deterministically, on each task (mean episode reward
over 16 episodes; about 44 means "walks to that task's goal") and the mean entropy of its action
distribution on the states it visits. At the end it measures the paper's R: the reward a fresh master
collects in its first T = 20k steps on each task, sub-policies frozen (``evaluate_adaptation``).

A run has *specialised* when each task has its own sub-policy that alone earns >= 40 on it (the
reproduction issue's bar). Every run is saved in docs/benchmarks/bandits_specialisation.json as it
ends and is not run again; docs/benchmarks/bandits_specialisation.md is written from all saved runs.
Runs go ``--jobs`` at a time (default 2), one process and one torch thread each.
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
from typing import Any

import numpy as np
import yaml
from experiments import EXPERIMENTS, adaptation_r, update_json

ROOT = pathlib.Path(__file__).resolve().parent.parent
RUNS = ROOT / "docs" / "benchmarks" / "bandits_specialisation.json"
PAGE = ROOT / "docs" / "benchmarks" / "bandits_specialisation.md"
SPEC = EXPERIMENTS["movement_bandits"]
ALONE_EPISODES = 16
SPECIALISED = 40.0


def alone(model: Any, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """
    :return: ``returns[k, task]``, the mean episode reward of sub-policy ``k`` acting alone
        (deterministic) on ``task``, and ``entropy[k]``, its mean action entropy on the states it visits.
    """
    import torch as th
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env(SPEC.env_id, n_envs=ALONE_EPISODES, seed=seed)
    returns = np.zeros((model.n_subpolicies, len(SPEC.tasks)))
    entropy = np.zeros(model.n_subpolicies)
    for k, subpolicy in enumerate(model.policy.subpolicies):
        for j, task in enumerate(SPEC.tasks):
            env.env_method("set_task", task)
            obs = env.reset()
            for _ in range(SPEC.episode_steps):
                with th.no_grad():
                    distribution = subpolicy.get_distribution(
                        model.policy.obs_to_tensor(model.policy.normalize_observation(obs))[0]
                    )
                entropy[k] += distribution.entropy().mean().item() / (SPEC.episode_steps * len(SPEC.tasks))
                obs, rewards, _, _ = env.step(distribution.mode().numpy())
                returns[k, j] += rewards.sum() / ALONE_EPISODES
    env.close()
    return returns, entropy


def setting(text: str) -> Any:
    """
    :return: A ``--set`` value as YAML reads it, and ``3e-4`` as a number (YAML 1.1 wants ``3.0e-4``); a schedule
        string (``lin_1e-3``) stays a string, made a schedule when the model is built.
    """
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def specialised(returns: np.ndarray) -> bool:
    """:return: Whether each task has its own sub-policy earning >= ``SPECIALISED`` alone on it."""
    n_subpolicies, n_tasks = returns.shape
    return any(
        all(returns[k, j] >= SPECIALISED for j, k in enumerate(assignment))
        for assignment in itertools.permutations(range(n_subpolicies), n_tasks)
    )


def run(config: tuple[dict[str, Any], int, int, int]) -> dict[str, Any]:
    """One (settings, seed): meta-train, measuring the sub-policies alone every chunk; then the paper's R."""
    import torch as th
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_mlsh import MLSH
    from sb3_mlsh.zoo import with_schedules

    settings, seed, timesteps, chunk = config
    n_envs, hyperparams = SPEC.hyperparams()
    th.set_num_threads(1)
    start = time.process_time()
    env = make_vec_env(SPEC.env_id, n_envs=n_envs, seed=seed)
    model = MLSH("MlpPolicy", env, seed=seed, **with_schedules({**hyperparams, **settings}))
    model.schedule_timesteps = timesteps  # schedules span the chunks
    chunks = []
    while model.num_timesteps < timesteps:
        model.learn(min(chunk, timesteps - model.num_timesteps), reset_num_timesteps=False)
        returns, entropy = alone(model, seed + 1)
        chunks.append(dict(steps=model.num_timesteps, alone=returns.tolist(), entropy=entropy.tolist()))
    _, r_per_episode = adaptation_r(model, SPEC, n_envs, seed)
    return dict(
        settings=settings,
        base=yml_entry(),
        seed=seed,
        timesteps=timesteps,
        chunks=chunks,
        r_per_episode=r_per_episode,
        specialised=specialised(np.array(chunks[-1]["alone"])),
        cpu_minutes=(time.process_time() - start) / 60,
    )


@functools.cache
def yml_entry() -> dict[str, Any]:
    """:return: MLSH's settings in the MovementBandits-v0 entry of ``mlsh.yml``, as written there (``lin_2e-3``)."""
    from sb3_mlsh.zoo import hyperparams_path

    entry = yaml.safe_load(hyperparams_path().read_text())[SPEC.env_id]
    return {k: v for k, v in entry.items() if k not in ("n_envs", "n_timesteps", "policy")}


def label(settings: dict[str, Any], base: dict[str, Any] | None = None) -> str:
    """:return: What ``settings`` over ``base`` (default: today's entry) change from today's entry."""
    today = yml_entry()
    effective = {**(today if base is None else base), **settings}
    return ", ".join(f"{k}={v}" for k, v in sorted(effective.items()) if today.get(k) != v) or "mlsh.yml"


def key(row: dict[str, Any]) -> tuple[str, int, int]:
    return (label(row["settings"], row["base"]), row["timesteps"], row["seed"])


def render(rows: list[dict[str, Any]]) -> None:
    """Write the page from every saved run: a summary per setting, then every run's measurements."""
    import torch as th

    entry = yml_entry()
    written = ", ".join(f"{k}={v}" for k, v in sorted(entry.items()))
    lines = [
        "# MovementBandits: do the sub-policies specialise?",
        "",
        f"Measured by `benchmarks/bandits_specialisation.py` ({platform.machine()}, {multiprocessing.cpu_count()} cores, "
        f"torch {th.__version__}, one torch thread per run, up to two runs at a time; "
        f"{sum(r['cpu_minutes'] for r in rows):.0f} CPU minutes in all; last run {rows[-1]['date']}). "
        f"The runs are kept in `{RUNS.relative_to(ROOT)}`; "
        "`--render` rewrites this page from them.",
        "",
        "```bash",
        *sorted({row["command"] for row in rows}),
        "```",
        "",
        f"Settings: hyperparams/mlsh.yml's MovementBandits-v0 entry today (`{written}`), changed as the first "
        "column says (runs of an earlier entry show how it differed from today's). "
        f"*Specialised*: each task has its own sub-policy that alone earns >= {SPECIALISED:.0f} per episode on it "
        "(a sub-policy that walks to the paying goal earns about 44). R: reward per episode of a fresh master over its "
        f"first {SPEC.adaptation_timesteps:,} steps on each task, sub-policies frozen, mean of the two tasks "
        "(the always-goal-0 scripted reference earns about 23).",
        "",
        "| settings | steps | seeds | specialised | mean R per episode | R per seed |",
        "|---|---|---|---|---|---|",
    ]
    groups = sorted({key(row)[:2] for row in rows})
    for name, steps in groups:
        runs = [row for row in rows if key(row)[:2] == (name, steps)]
        per_seed = ", ".join(f"{row['seed']}: {row['r_per_episode']:.1f}" for row in runs)
        lines.append(
            f"| {name} | {steps:,} | {len(runs)} | {sum(row['specialised'] for row in runs)} of {len(runs)} "
            f"| {np.mean([row['r_per_episode'] for row in runs]):.2f} | {per_seed} |"
        )
    lines += [
        "",
        "Each sub-policy alone during meta-training: mean episode reward on task 0 / task 1, and its action entropy "
        "(the uniform distribution over the 5 actions has 1.61).",
        "",
        "| settings | seed | steps | sub 0 alone | sub 1 alone | entropy sub 0, sub 1 |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        for chunk in row["chunks"]:
            (a, b), (c, d) = chunk["alone"][:2]
            lines.append(
                f"| {key(row)[0]} | {row['seed']} | {chunk['steps']:,} | {a:.1f} / {b:.1f} | {c:.1f} / {d:.1f} "
                f"| {chunk['entropy'][0]:.2f}, {chunk['entropy'][1]:.2f} |"
            )
    PAGE.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[: 13 + len(groups)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=V1,V2", help="settings to try")
    parser.add_argument("--timesteps", type=int, default=SPEC.meta_timesteps)
    parser.add_argument("--chunk", type=int, default=400_000, help="steps between measurements of the sub-policies")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time, one process each")
    parser.add_argument("--render", action="store_true", help="only rewrite the page from the saved runs")
    args = parser.parse_args()
    rows = json.loads(RUNS.read_text()) if RUNS.is_file() else []
    if not args.render:
        axes = []
        for item in args.set:
            name, sep, values = item.partition("=")
            if not sep or not values:
                parser.error(f"--set {item}: use KEY=V1,V2, e.g. --set ent_coef=0,0.01")
            axes.append([(name, setting(value)) for value in values.split(",")])
        done = {key(row) for row in rows}
        configs = [
            (dict(combination), seed, args.timesteps, args.chunk)
            for combination in itertools.product(*axes)
            for seed in args.seeds
            if (label(dict(combination)), args.timesteps, seed) not in done
        ]
        command = f"python benchmarks/bandits_specialisation.py {' '.join(sys.argv[1:])}"
        with multiprocessing.get_context("spawn").Pool(args.jobs, maxtasksperchild=1) as pool:
            # each run is saved as soon as it ends, so that a stopped benchmark keeps what it measured
            for row in pool.imap_unordered(run, configs):
                saved = {**row, "command": command, "date": str(datetime.date.today())}
                rows = update_json(RUNS, [], lambda runs, saved=saved: runs.append(saved))
                alone_returns = np.round(row["chunks"][-1]["alone"], 1).tolist()
                print(
                    f"{key(row)[0]}, seed {row['seed']}: R {row['r_per_episode']:.2f}, "
                    f"specialised {row['specialised']}, alone {alone_returns}",
                    flush=True,
                )
    if rows:
        render(sorted(rows, key=key))


if __name__ == "__main__":
    main()
