"""
Which settings let a fresh master learn over frozen sub-policies? Adapt a fresh master to a transfer experiment's task
with each of several settings, side by side, and count per quarter of the budget the episodes that earn any reward.

    python -m benchmarks.diagnostics.master_settings ant_obstacle --seeds 0 2 --timesteps 400000 \\
        --settings "" master_learning_rate=0 n_steps=2000 "n_steps=2000,master_ent_coef=0.01"

The model of each seed is the one ``reproduce.py`` meta-trained for the experiment's source (MLSH's, in
``docs/results/models/``). Each setting (``KEY=VALUE[,KEY=VALUE...]``; ``""``: the model's own, those it was
meta-trained with; ``reproduce.py`` adapts with the experiment's ``hyperparams/mlsh.yml`` entry over them) loads the
model with those MLSH parameters changed, then ``evaluate_adaptation`` trains a fresh master alone, sub-policies
frozen, on the experiment's first evaluation task with the experiment's ``n_envs`` (envs and masters seeded with
``seed + 100``, as ``reproduce.py`` does; ``--repeat R``: ``seed + 100 + 1000 R``, another draw over the same
sub-policies, shown as "seed (repeat R)"); each run records how long that model was meta-trained, and runs over
models trained for different budgets are kept and shown apart. ``master_learning_rate=0`` is a master that never
learns: it keeps its fresh, near-uniform choice (with the model's ``master_exploration``), the reference a learning
master must beat. With the sub-policies frozen only the master trains, so ``n_steps``, ``n_epochs``,
``normalize_advantage``, ``target_kl``, ``gae_lambda`` and ``clip_range`` act on the master alone; ``n_envs`` sets
how many envs it learns on (the experiment's ``n_envs`` unless given).

Runs are kept in docs/benchmarks/master_settings.json as they end (a stopped invocation leaves out those already
there); the page docs/benchmarks/master_settings.md is written from every saved run (``--render``: only that).
Settings go ``--jobs`` at a time, one torch thread each.
"""

import argparse
import json
import multiprocessing
import pathlib
import time
from typing import Any

import numpy as np

from benchmarks.diagnostics.branches import label
from benchmarks.experiments import EXPERIMENTS, invocation, keep_run, key_values, page_header
from benchmarks.reproduce import model_path, saved_timesteps

ROOT = pathlib.Path(__file__).resolve().parents[2]
RUNS = ROOT / "docs" / "benchmarks" / "master_settings.json"
# the transfer entry's settings that shape the fresh master's learning (the page names those reproduce.py uses)
_ADAPTATION = ("n_steps", "master_learning_rate", "master_ent_coef", "master_skip_rewardless", "master_exploration")
PAGE = RUNS.with_suffix(".md")
QUARTERS = 4


def saved_runs() -> list[dict[str, Any]]:
    """:return: The runs kept in ``RUNS`` (none before the first)."""
    return json.loads(RUNS.read_text()) if RUNS.is_file() else []


def source_model(experiment: str, seed: int) -> pathlib.Path:
    """:return: The MLSH model ``reproduce.py`` meta-trained for ``experiment``'s source and ``seed``."""
    source = EXPERIMENTS[experiment].source
    if source is None:
        raise SystemExit(f"master_settings.py: {experiment} is not a transfer experiment (no source to start from).")
    return model_path(str(ROOT / "docs" / "results"), source, "mlsh", seed)


def run(config: dict[str, Any]) -> dict[str, Any]:
    """
    Adapt one fresh master (the model of ``config["seed"]`` with ``config["changes"]``) for ``config["timesteps"]``.

    :return: ``config`` with the return and end step of every episode, the sub-policies' usage and CPU minutes added.
    """
    import torch as th
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_mlsh import MLSH, evaluate_adaptation
    from sb3_mlsh.zoo import with_schedules

    spec = EXPERIMENTS[config["experiment"]]
    changes = dict(config["changes"])
    n_envs = changes.pop("n_envs", spec.hyperparams()[0])
    th.set_num_threads(1)
    start = time.process_time()
    seed = config["seed"] + 100 + 1000 * config.get("repeat", 0)  # repeat 0: reproduce.py's seed
    # keyword arguments, not custom_objects: SB3 applies those only to settings the file holds (not newer ones)
    model = MLSH.load(source_model(config["experiment"], config["seed"]), **with_schedules(changes))
    env = make_vec_env(spec.env_id, n_envs=n_envs, seed=seed, env_kwargs=spec.env_kwargs)
    task = spec.evaluation_tasks()[0]
    result = evaluate_adaptation(model, env, n_tasks=1, adaptation_timesteps=config["timesteps"], seed=seed, tasks=[task])
    steps, returns = result.curves[0]
    return {
        **config, "task": task, "episode_steps": steps.tolist(), "episode_returns": returns.tolist(),
        "usage": result.usage[0].tolist(), "cpu_minutes": (time.process_time() - start) / 60,
    }  # fmt: skip


def key(row: dict[str, Any]) -> tuple[Any, ...]:
    """
    :return: What identifies a run: experiment, seed, settings, budget, the source model's meta-training steps, the
        draw of the adaptation's randomness.
    """
    changes = label(row["changes"], "as saved")
    return row["experiment"], row["seed"], changes, row["timesteps"], row["source_timesteps"], row.get("repeat", 0)


def quarters(row: dict[str, Any]) -> list[np.ndarray]:
    """:return: The returns of the episodes that ended in each quarter of the run's budget."""
    steps, returns = np.asarray(row["episode_steps"]), np.asarray(row["episode_returns"])
    quarter = np.minimum((steps - 1) * QUARTERS // row["timesteps"], QUARTERS - 1)
    return [returns[quarter == q] for q in range(QUARTERS)]


def render(rows: list[dict[str, Any]]) -> None:
    """Write the page: per experiment and budget, one row per setting and seed."""
    transfers = "; ".join(
        f"for {name}, `{label({k: v for k, v in EXPERIMENTS[name].hyperparams()[1].items() if k in _ADAPTATION}, '-')}`"
        for name in sorted({row["experiment"] for row in rows})
    )
    lines = [
        *page_header("Master settings: which let a fresh master learn over frozen sub-policies", "master_settings.py",
                     rows, RUNS),
        "A fresh master adapts alone, sub-policies frozen, with the model's settings changed as the row says ("
        "`as saved`: the model's own, those it was meta-trained with (`reproduce.py` adapts with the experiment's "
        f"`hyperparams/mlsh.yml` entry over them: {transfers}); "
        "`master_learning_rate=0`: a master that never "
        "learns, which keeps its fresh near-uniform choice). *Rewarded episodes*: episodes that earned any reward, "
        "of those that ended, per quarter of the budget. *Return*: the mean episode return per quarter and over the "
        "run. *Usage*: the share of the steps each sub-policy acted, over the whole run.",
        "",
    ]  # fmt: skip
    for experiment, timesteps, source_timesteps in sorted(
        {(row["experiment"], row["timesteps"], row["source_timesteps"]) for row in rows}
    ):
        group = sorted(
            (
                row
                for row in rows
                if (row["experiment"], row["timesteps"], row["source_timesteps"]) == (experiment, timesteps, source_timesteps)
            ),
            key=lambda row: (label(row["changes"], "as saved"), row["seed"], row.get("repeat", 0)),
        )
        lines += [
            f"## {EXPERIMENTS[experiment].env_id} ({experiment}), {timesteps:,} steps, over sub-policies meta-trained "
            f"{source_timesteps:,} steps",
            "",
            "| settings | seed | rewarded episodes per quarter | in all | return per quarter | in all | usage |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in group:
            parts = quarters(row)
            rewarded = [int((part > 0).sum()) for part in parts]
            repeat = f" (repeat {row['repeat']})" if row.get("repeat") else ""
            lines.append(
                f"| {label(row['changes'], 'as saved')} | {row['seed']}{repeat} "
                f"| {' / '.join(f'{n} of {len(part)}' for n, part in zip(rewarded, parts, strict=True))} "
                f"| {sum(rewarded)} of {len(row['episode_returns'])} "
                f"| {' / '.join(f'{part.mean():.1f}' if len(part) else '-' for part in parts)} "
                f"| {np.mean(row['episode_returns']):.1f} "
                f"| {' / '.join(f'{share:.2f}' for share in row['usage'])} |"
            )
        lines.append("")
    PAGE.write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", choices=sorted(name for name, spec in EXPERIMENTS.items() if spec.source))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--timesteps", type=int, default=400_000, help="adaptation steps of each run")
    parser.add_argument("--settings", nargs="*", default=[""], help='"KEY=VALUE[,KEY=VALUE...]" each; "": as saved')
    parser.add_argument(
        "--repeat", type=int, default=0,
        help="another draw of the adaptation's randomness (envs, fresh master; seeded seed + 100 + 1000 * REPEAT), over "
        "the same sub-policies; 0: reproduce.py's",
    )  # fmt: skip
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--render", action="store_true")
    args = parser.parse_args()
    if args.render:
        render(saved_runs())
        return
    missing = [str(path) for seed in args.seeds if not (path := source_model(args.experiment, seed)).is_file()]
    if missing:
        raise SystemExit(
            f"master_settings.py: {', '.join(missing)} missing: run `python -m benchmarks.reproduce "
            f"{EXPERIMENTS[args.experiment].source} --methods mlsh --seeds {' '.join(map(str, args.seeds))}` first."
        )
    base = dict(experiment=args.experiment, timesteps=args.timesteps, repeat=args.repeat, **invocation("master_settings.py"))
    done = {key(row) for row in saved_runs()}
    configs = [
        config
        for text in args.settings
        for seed in args.seeds
        if key(
            config := {
                **base,
                "seed": seed,
                "source_timesteps": saved_timesteps(source_model(args.experiment, seed)),
                "changes": key_values([p for p in text.split(",") if p], "master_settings.py"),
            }
        )
        not in done
    ]

    def save(row: dict[str, Any]) -> None:
        keep_run(RUNS, row, key)
        rewarded = sum(int((part > 0).sum()) for part in quarters(row))
        print(f"{key(row)}: {rewarded} of {len(row['episode_returns'])} episodes rewarded", flush=True)

    with multiprocessing.get_context("spawn").Pool(max(min(args.jobs, len(configs)), 1)) as pool:
        for row in pool.imap_unordered(run, configs):
            save(row)
    render(saved_runs())


if __name__ == "__main__":
    main()
