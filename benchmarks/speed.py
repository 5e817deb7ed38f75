"""
Wall-clock speed of MLSH against SB3's PPO, side by side in one process, on MovementBandits-v0.

    python benchmarks/speed.py [--timesteps 100000] [--n-envs 8] [--threads 1]

Both algorithms collect the same number of environment steps with the same n_envs, n_steps,
batch size and epochs (MLSH with the paper's moving-bandits K, N, W, U). Prints steps per second
(collection and updates together) and the ratio.
"""

import argparse
import platform
import time

import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

import sb3_mlsh
from sb3_mlsh import MLSH


def steps_per_second(model, timesteps: int) -> float:
    start = time.perf_counter()
    model.learn(timesteps)
    return model.num_timesteps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timesteps", type=int, default=100_000)
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    th.set_num_threads(args.threads)

    n_steps = 2000 // args.n_envs
    shared = dict(n_steps=n_steps, batch_size=64, n_epochs=10, seed=0)
    results = {}
    for name, make in (
        ("PPO", lambda env: PPO("MlpPolicy", env, **shared)),
        ("MLSH", lambda env: MLSH("MlpPolicy", env, macro_duration=10, warmup_iterations=9, joint_iterations=1, **shared)),
    ):
        env = make_vec_env("MovementBandits-v0", n_envs=args.n_envs, seed=0)
        results[name] = steps_per_second(make(env), args.timesteps)

    print(f"machine: {platform.processor() or platform.machine()}, torch {th.__version__}, {args.threads} thread(s)")
    print(f"sb3-mlsh {sb3_mlsh.__version__}; {args.timesteps} steps, n_envs={args.n_envs}, n_steps={n_steps}")
    print("| algorithm | steps/s |")
    print("|---|---|")
    for name, value in results.items():
        print(f"| {name} | {value:.0f} |")
    print(f"MLSH / PPO speed ratio: {results['MLSH'] / results['PPO']:.2f}")
    print(
        "(per iteration, PPO updates its policy on all 2000 steps; MLSH updates its master on the ~200 macro "
        "transitions, and its sub-policies only in joint iterations: 1 in 10 here)"
    )


if __name__ == "__main__":
    main()
