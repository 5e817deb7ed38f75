"""
Once the sub-policies have specialised on MovementBandits-v0, does meta-training keep them so?

    python -m benchmarks.diagnostics.bandits_stability [--seed 3] [--timesteps 1200000] [--extra 800000]
                                           [--set master_exploration=0.1,0 ...]

Meta-trains one seed with the MovementBandits-v0 entry of ``hyperparams/mlsh.yml`` for ``--timesteps``
steps (the model is kept in ``--model`` and reused), checks that its sub-policies have specialised, then
goes on meta-training copies of it for ``--extra`` steps, one per setting of the ``--set`` grid (applied
with ``MLSH.load(..., **settings)``), measuring every ``--chunk`` steps each sub-policy acting alone
(as ``benchmarks/diagnostics/bandits_specialisation.py`` does). Prints a markdown table and adds it to
docs/benchmarks/bandits_stability.md.
"""

import argparse
import datetime
import itertools
import multiprocessing
import pathlib
import platform
import sys
from typing import Any

import numpy as np

from benchmarks.diagnostics.bandits_specialisation import SPEC, label
from benchmarks.experiments import setting, specialised, subpolicies_alone

PAGE = pathlib.Path(__file__).resolve().parents[2] / "docs" / "benchmarks" / "bandits_stability.md"
HEADER = """# MovementBandits: do specialised sub-policies stay specialised?

Each section is one invocation of `benchmarks/diagnostics/bandits_stability.py` (it adds its section here): a model
meta-trained with the `MovementBandits-v0` entry of `hyperparams/mlsh.yml` until its sub-policies
specialised, then meta-trained further under each setting, measuring every 200k steps what each
sub-policy earns alone on each task (the bar: both tasks >= 40 by different sub-policies).
"""


def meta_train(path: pathlib.Path, seed: int, timesteps: int) -> None:
    import torch as th
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_mlsh import MLSH

    th.set_num_threads(1)
    n_envs, hyperparams = SPEC.hyperparams()
    model = MLSH("MlpPolicy", make_vec_env(SPEC.env_id, n_envs=n_envs, seed=seed), seed=seed, **hyperparams)
    model.learn(timesteps)
    model.save(path)


def go_on(config: tuple[pathlib.Path, dict[str, Any], int, int, int]) -> list[str]:
    """Continue meta-training the saved model with ``settings``; a table row per chunk."""
    import torch as th
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_mlsh import MLSH

    path, settings, seed, extra, chunk = config
    th.set_num_threads(1)
    n_envs, _ = SPEC.hyperparams()
    model = MLSH.load(path, env=make_vec_env(SPEC.env_id, n_envs=n_envs, seed=seed + 7), **settings)
    start, rows = model.num_timesteps, []
    while model.num_timesteps < start + extra:
        model.learn(chunk, reset_num_timesteps=False)
        returns, entropy, _ = subpolicies_alone(model, SPEC, seed + 1)
        cells = " | ".join(" / ".join(f"{value:.1f}" for value in row) for row in returns)
        rows.append(
            f"| {label(settings)} | {model.num_timesteps:,} | {cells} | {', '.join(f'{e:.2f}' for e in entropy)} "
            f"| {'yes' if specialised(returns) else 'no'} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--timesteps", type=int, default=1_200_000)
    parser.add_argument("--extra", type=int, default=800_000)
    parser.add_argument("--chunk", type=int, default=200_000)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=V1,V2", help="settings to go on with")
    parser.add_argument("--model", default=None, help="where the meta-trained model is kept (default: /tmp)")
    args = parser.parse_args()
    axes = [[(name, setting(v)) for v in values.split(",")] for name, _, values in (s.partition("=") for s in args.set)]
    path = pathlib.Path(args.model or f"/tmp/bandits_seed{args.seed}_{args.timesteps}.zip")
    if not path.is_file():
        meta_train(path, args.seed, args.timesteps)
    configs = [(path, dict(combination), args.seed, args.extra, args.chunk) for combination in itertools.product(*axes)]
    with multiprocessing.get_context("spawn").Pool(2, maxtasksperchild=1) as pool:
        results = pool.map(go_on, configs)
    lines = [
        f"## `python -m benchmarks.diagnostics.bandits_stability {' '.join(sys.argv[1:])}`",
        "",
        f"{platform.machine()}, {multiprocessing.cpu_count()} cores, 1 torch thread per run, {datetime.date.today()}. "
        f"Seed {args.seed} after {args.timesteps:,} steps, sub-policies alone (task 0 / task 1): "
        f"{alone_of(path, args.seed)}.",
        "",
        "| settings from here on | steps | sub 0 alone | sub 1 alone | entropy | specialised |",
        "|---|---|---|---|---|---|",
        *(row for rows in results for row in rows),
    ]
    print("\n".join(lines))
    if not PAGE.exists():
        PAGE.write_text(HEADER)
    with PAGE.open("a") as page:
        page.write("\n" + "\n".join(lines) + "\n")


def alone_of(path: pathlib.Path, seed: int) -> str:
    from sb3_mlsh import MLSH

    returns, _, _ = subpolicies_alone(MLSH.load(path), SPEC, seed + 1)
    return "; ".join(" / ".join(f"{value:.1f}" for value in row) for row in np.asarray(returns))


if __name__ == "__main__":
    main()
