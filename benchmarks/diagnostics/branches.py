"""
Which setting keeps MLSH's meta-training on course? Meta-train a trunk, then continue it along branches that each
change some settings, and measure where each ends.

    python -m benchmarks.diagnostics.branches ant_two_walk --seed 1 --trunk-set target_kl=null --branch-at 2000000 \\
        --timesteps 3000000 --branches "" target_kl=0.03 learning_rate=1e-4

The trunk meta-trains with the experiment's ``hyperparams/mlsh.yml`` entry, changed by ``--trunk-set KEY=VALUE``
(repeatable), for ``--branch-at`` steps. Each branch (``KEY=VALUE[,KEY=VALUE...]``; ``""``: no change) loads the
trunk's model with those settings changed (``n_envs`` cannot change) and continues it to ``--timesteps``. For the
trunk and every branch: the paper's R per task at its end (a fresh master for T steps on each evaluation task,
``adaptation_r``), the sub-policies' mean approximate KL per update and action std over its last iterations, and,
on a plane or the Ant, where each sub-policy acting alone (most likely action) ends from three starts.

Runs are kept in docs/benchmarks/branches.json as they end, models in docs/benchmarks/branches/ (the trunk's is
what the branches load: a stopped invocation continues where it stopped); the page docs/benchmarks/branches.md is
written from every saved run (``--render``: only that). Branches go ``--jobs`` at a time, one torch thread each.
"""

import argparse
import json
import multiprocessing
import pathlib
import time
from typing import Any

import numpy as np

from benchmarks.experiments import EXPERIMENTS, adaptation_r, invocation, keep_run, key_values, page_header, subpolicy_paths

ROOT = pathlib.Path(__file__).resolve().parents[2]
RUNS = ROOT / "docs" / "benchmarks" / "branches.json"
PAGE = RUNS.with_suffix(".md")
MODELS = RUNS.with_suffix("")
ALONE_STARTS = 3  # starts from which each sub-policy acts alone
LAST_ITERATIONS = 50  # iterations over which the KL and std are averaged


def saved_runs() -> list[dict[str, Any]]:
    """:return: The runs kept in ``RUNS`` (none before the first)."""
    return json.loads(RUNS.read_text()) if RUNS.is_file() else []


def settings(pairs: list[str]) -> dict[str, Any]:
    """:return: ``KEY=VALUE`` strings as MLSH keyword arguments (``key_values``), ``n_envs`` not among them."""
    parsed = key_values(pairs, "branches.py")
    if "n_envs" in parsed:
        raise SystemExit("branches.py: n_envs cannot change here; change it in the experiment's yml entry.")
    return parsed


def label(changes: dict[str, Any], unchanged: str = "as the trunk") -> str:
    """:return: The changes as the page names them (``unchanged`` for none)."""
    return ", ".join(f"{key}={value}" for key, value in sorted(changes.items())) or unchanged


def trunk_path(config: dict[str, Any]) -> pathlib.Path:
    """:return: Where the trunk of ``config`` is kept: experiment, seed, trunk changes and length in the name."""
    changes = "_".join(f"{key}-{value}" for key, value in sorted(config["trunk_set"].items())) or "entry"
    return MODELS / f"{config['experiment']}_seed{config['seed']}_{changes}_{config['branch_at']}.zip"


def run(config: dict[str, Any]) -> dict[str, Any]:
    """
    Meta-train one leg (the trunk when ``config["branch"]`` is ``None``, else that branch from the trunk's model) and
    measure its end.

    :return: ``config`` with R per task, the KL and std, the sub-policies' ends and CPU minutes added.
    """
    import torch as th
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_mlsh import MLSH
    from sb3_mlsh.zoo import with_schedules

    spec = EXPERIMENTS[config["experiment"]]
    n_envs, hyperparams = spec.hyperparams()
    th.set_num_threads(1)
    start = time.process_time()
    env = make_vec_env(spec.env_id, n_envs=n_envs, seed=config["seed"], env_kwargs=spec.env_kwargs)
    trunk = trunk_path(config)
    if config["branch"] is None:
        model = MLSH("MlpPolicy", env, seed=config["seed"], **with_schedules({**hyperparams, **config["trunk_set"]}))
        timesteps = config["branch_at"]
    else:
        model = MLSH.load(trunk, env=env, **with_schedules(config["branch"]))  # as master_settings.py: any setting
        timesteps = config["timesteps"]
    kl: list[float] = []
    std: list[float] = []

    class Updates(BaseCallback):
        """The previous iteration's sub-policy update, read as the next rollout starts (before the logger is dumped)."""

        def _on_rollout_start(self) -> None:
            values = self.model.logger.name_to_value
            if "train/sub/approx_kl" in values:
                kl.append(float(values["train/sub/approx_kl"]))
            if "train/sub/std" in values:  # a Gaussian policy's
                std.append(float(values["train/sub/std"]))

        def _on_step(self) -> bool:
            return True

    model.learn(timesteps - model.num_timesteps, reset_num_timesteps=False, callback=Updates())
    if config["branch"] is None:
        MODELS.mkdir(parents=True, exist_ok=True)
        partial = trunk.with_name(f".{trunk.name}.part")  # renamed over the last: a stopped save keeps none half-written
        model.save(partial)
        partial.replace(trunk)
    result, r = adaptation_r(model, spec, n_envs, config["seed"])
    per_task = (result.total_rewards * spec.episode_steps / spec.adaptation_timesteps).tolist()
    ends = None
    if spec.kind in ("plane", "ant"):
        paths = [subpolicy_paths(model, spec, config["seed"] + offset)["paths"] for offset in range(ALONE_STARTS)]
        ends = [[list(map(float, starts[k][-1])) for starts in paths] for k in range(model.n_subpolicies)]
    return {
        **config, "r": r, "r_per_task": per_task, "kl": float(np.mean(kl[-LAST_ITERATIONS:])) if kl else None,
        "std": float(np.mean(std[-LAST_ITERATIONS:])) if std else None, "ends": ends,
        "cpu_minutes": (time.process_time() - start) / 60,
    }  # fmt: skip


def key(row: dict[str, Any]) -> tuple[Any, ...]:
    """:return: What identifies a leg: experiment, seed, trunk changes, branch point, branch changes, length."""
    branch = None if row["branch"] is None else label(row["branch"])
    length = row["branch_at"] if row["branch"] is None else row["timesteps"]
    return row["experiment"], row["seed"], label(row["trunk_set"]), row["branch_at"], branch, length


def render(rows: list[dict[str, Any]]) -> None:
    """Write the page: per trunk, the trunk's end and every branch's end."""
    lines = [
        *page_header("Branches: which setting keeps meta-training on course", "branches.py", rows, RUNS),
        "A trunk meta-trains with the experiment's `hyperparams/mlsh.yml` entry (changed as its title says); each branch "
        "continues the trunk's model with some settings changed. R: the paper's figure of merit at the leg's end (a "
        "fresh master for T steps on each evaluation task, sub-policies frozen), per episode. KL and std: the "
        f"sub-policies' mean approximate KL per update and action std over the leg's last {LAST_ITERATIONS} "
        f"iterations. Ends: where each sub-policy acting alone (most likely action) ends, from {ALONE_STARTS} starts.",
        "",
    ]
    trunks = sorted({key(row)[:4] for row in rows}, key=str)
    for name, seed, trunk_label, branch_at in trunks:
        legs = sorted((row for row in rows if key(row)[:4] == (name, seed, trunk_label, branch_at)), key=key_order)
        lines += [
            f"## {EXPERIMENTS[name].env_id}, seed {seed}, trunk: {trunk_label}, branches at {branch_at:,} steps",
            "",
            "| leg | steps | R per episode | R per task | KL per update | std | sub-policies alone end at |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in legs:
            leg = "trunk" if row["branch"] is None else f"branch: {label(row['branch'])}"
            steps = row["branch_at"] if row["branch"] is None else row["timesteps"]
            ends = "; ".join(
                f"{k}: " + ", ".join(f"({x:.1f}, {y:.1f})" for x, y in starts) for k, starts in enumerate(row["ends"])
            ) if row["ends"] else ""  # fmt: skip
            measures = [f"{row[field]:.3f}" if row[field] is not None else "" for field in ("kl", "std")]
            lines.append(
                f"| {leg} | {steps:,} | {row['r']:.1f} | {' / '.join(f'{v:.1f}' for v in row['r_per_task'])} "
                f"| {' | '.join(measures)} | {ends} |"
            )
        lines.append("")
    PAGE.write_text("\n".join(lines))
    print("\n".join(lines))


def key_order(row: dict[str, Any]) -> tuple[int, str]:
    """The trunk first, then the branches by name."""
    return (0, "") if row["branch"] is None else (1, label(row["branch"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", choices=sorted(EXPERIMENTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trunk-set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--branch-at", type=int, default=2_000_000)
    parser.add_argument("--timesteps", type=int, default=3_000_000, help="where every branch ends")
    parser.add_argument("--branches", nargs="*", default=[""], help='"KEY=VALUE[,KEY=VALUE...]" each; "": no change')
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--render", action="store_true")
    args = parser.parse_args()
    if args.render:
        render(saved_runs())
        return
    if args.timesteps <= args.branch_at:
        raise SystemExit(f"branches.py: --timesteps {args.timesteps} must be past --branch-at {args.branch_at}.")
    base = dict(
        experiment=args.experiment, seed=args.seed, trunk_set=settings(args.trunk_set), branch_at=args.branch_at,
        timesteps=args.timesteps, **invocation("branches.py"),
    )  # fmt: skip
    configs = [{**base, "branch": None}] + [
        {**base, "branch": settings([pair for pair in text.split(",") if pair])} for text in args.branches
    ]
    done = {key(row) for row in saved_runs()}
    if not trunk_path(base).is_file():  # the branches need the trunk's model: meta-train it again
        done.discard(key(configs[0]))
    configs = [config for config in configs if key(config) not in done]

    def save(row: dict[str, Any]) -> None:
        keep_run(RUNS, row, key)
        print(f"{key(row)}: R {row['r']:.1f}", flush=True)

    if configs and configs[0]["branch"] is None:  # the branches start from the trunk's model
        save(run(configs.pop(0)))
    with multiprocessing.get_context("spawn").Pool(max(min(args.jobs, len(configs)), 1)) as pool:
        for row in pool.imap_unordered(run, configs):
            save(row)
    render(saved_runs())


if __name__ == "__main__":
    main()
