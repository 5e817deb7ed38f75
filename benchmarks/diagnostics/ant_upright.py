"""
How much of the time is the Ant on its back, under the random actions that start training, or under each
sub-policy of trained MLSH models?

    python -m benchmarks.diagnostics.ant_upright [--episodes 8]
    python -m benchmarks.diagnostics.ant_upright --models MODEL.zip [MODEL.zip ...] [--episodes 8]

AntTwoWalk-v0 with and without the joint re-draw every 200 steps, under zero-mean Gaussian torques
(clipped to [-1, 1], as SB3 clips them) with the standard deviation of a fresh policy: 1
(``log_std_init=0``, SB3's default) and exp(-1) (``log_std_init=-1``). Prints the share of steps on
which the torso's up axis points below the horizon, and the mean distance from the start at the end.
With ``--models``, each sub-policy of each model acts alone on AntTwoWalk-v0 (its actions sampled, as the master
runs it; observations normalised as the model does): the share of steps on its back in each quarter of the
200 steps between two joint re-draws (a policy that dives after each re-draw lies on its back in the later
quarters), and where it ends.
"""

import argparse
from itertools import islice
from typing import Any

import gymnasium as gym
import numpy as np

import sb3_mlsh  # noqa: F401  (registers the envs)
from benchmarks.experiments import alone_episode


def upside_down_share(redraw_every: int | None, log_std: float, episodes: int, seed: int = 0) -> tuple[float, float]:
    """:return: The share of steps upside down and the mean final distance from the start."""
    env = gym.make("AntTwoWalk-v0", redraw_every=redraw_every)
    ant = env.unwrapped
    rng = np.random.default_rng(seed)
    down, steps, distances = 0, 0, []
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        done = False
        while not done:
            action = np.clip(rng.normal(0.0, np.exp(log_std), 8), -1.0, 1.0)
            _, _, terminated, truncated, _ = env.step(action)
            down += not ant.upright
            steps += 1
            done = terminated or truncated
        distances.append(float(np.linalg.norm(ant.xy)))
    env.close()
    return down / steps, float(np.mean(distances))


def subpolicy_on_its_back(model: Any, k: int, episodes: int, seed: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    """
    :return: Sub-policy ``k`` of the MLSH ``model`` acting alone (``alone_episode``, actions sampled): the share of
        steps on its back in each quarter of the re-draw period, and the torso's x, y at the end of each episode.
    """
    import torch as th

    env = gym.make("AntTwoWalk-v0")
    ant = env.unwrapped
    th.manual_seed(seed)
    down, steps, ends = np.zeros(4), np.zeros(4), []
    for episode in range(episodes):
        stepped = islice(alone_episode(model, env, k, seed + episode, deterministic=False), 1, None)
        for t, _ in enumerate(stepped):
            quarter = (t % 200) // 50
            down[quarter] += not ant.upright
            steps[quarter] += 1
        ends.append(ant.xy)
    env.close()
    return down / steps, ends


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--models", nargs="+", default=[], help="MLSH models (.zip) whose sub-policies to measure")
    args = parser.parse_args()
    models = f" --models {' '.join(args.models)}" if args.models else ""
    print(f"command: python -m benchmarks.diagnostics.ant_upright --episodes {args.episodes}{models}")
    if args.models:
        print("| model | sub-policy | on its back, steps 0-50 / 50-100 / 100-150 / 150-200 after a re-draw | ends at |")
        print("|---|---|---|---|")
        from sb3_mlsh import MLSH

        for path in args.models:
            model = MLSH.load(path, device="cpu")
            for k in range(model.n_subpolicies):
                shares, ends = subpolicy_on_its_back(model, k, args.episodes)
                where = ", ".join(f"({x:.1f}, {y:.1f})" for x, y in ends)
                print(f"| {path} | {k} | {' / '.join(f'{share:.0%}' for share in shares)} | {where} |")
        return
    print("| joints re-drawn | log_std_init | steps on its back | distance from the start at the end |")
    print("|---|---|---|---|")
    for redraw_every in (None, 200):
        for log_std in (0.0, -1.0):
            share, distance = upside_down_share(redraw_every, log_std, args.episodes)
            redraw = "every 200 steps" if redraw_every else "never"
            print(f"| {redraw} | {log_std:g} | {share:.0%} | {distance:.2f} |")


if __name__ == "__main__":
    main()
