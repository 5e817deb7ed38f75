"""
Do MLSH's two sub-policies specialise, one per goal, on MovementBandits-v0? Measured during
meta-training, as a function of the sub-policy learning rate and of the master's exploration.

    python benchmarks/bandits_specialisation.py [--learning-rates 3e-4 1e-3] [--master-explorations 0 0.1]
                                                [--seeds 0 1] [--timesteps 1200000]

Runs every (learning rate, exploration, seed) in its own process (two at a time), with the demo's
settings otherwise (the paper's K, N, W, U; 2000 steps per iteration). Every ``--chunk`` steps it measures each sub-policy
acting alone, deterministically, on each task (mean episode reward over 16 episodes), and prints a
markdown table. About 44 means "walks to that task's goal"; a sub-policy per goal is the aim.
"""

import argparse
import multiprocessing
import platform
import sys
import time

import torch as th
from stable_baselines3.common.env_util import make_vec_env


def run(config: tuple[float, float, int, int, int]) -> list[str]:
    import sb3_mlsh  # noqa: F401  (registers the env in this process)
    from sb3_mlsh import MLSH
    from sb3_mlsh.demo import HYPERPARAMS, N_ENVS, subpolicy_returns

    learning_rate, exploration, seed, timesteps, chunk = config
    th.set_num_threads(1)
    env = make_vec_env("MovementBandits-v0", n_envs=N_ENVS, seed=seed)
    model = MLSH(
        "MlpPolicy", env, seed=seed, **{**HYPERPARAMS, "learning_rate": learning_rate, "master_exploration": exploration}
    )
    rows, start = [], time.perf_counter()
    while model.num_timesteps < timesteps:
        model.learn(chunk, reset_num_timesteps=False)
        alone = subpolicy_returns(model, n_episodes=16, seed=seed + 1)
        cells = " | ".join(f"{value:.1f}" for value in alone.ravel())
        rows.append(
            f"| {learning_rate:g} | {exploration:g} | {seed} | {model.num_timesteps} | {cells} "
            f"| {time.perf_counter() - start:.0f} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--learning-rates", type=float, nargs="+", default=[3e-4, 1e-3])
    parser.add_argument("--master-explorations", type=float, nargs="+", default=[0.0, 0.1])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--timesteps", type=int, default=1_200_000)
    parser.add_argument("--chunk", type=int, default=200_000)
    args = parser.parse_args()

    configs = [
        (lr, eps, seed, args.timesteps, args.chunk)
        for lr in args.learning_rates
        for eps in args.master_explorations
        for seed in args.seeds
    ]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.map(run, configs)

    print(f"machine: {platform.machine()}, {multiprocessing.cpu_count()} cores, torch {th.__version__}, 1 thread per run")
    print(f"command: python benchmarks/bandits_specialisation.py {' '.join(sys.argv[1:])}")
    print(
        "| sub-policy lr | master exploration | seed | steps "
        "| sub 0, task 0 | sub 0, task 1 | sub 1, task 0 | sub 1, task 1 | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for rows in results:
        print("\n".join(rows))


if __name__ == "__main__":
    main()
