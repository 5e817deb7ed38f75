"""
How much of the time is the Ant on its back, under the random actions that start training?

    python benchmarks/ant_upright.py [--episodes 8]

AntTwoWalk-v0 with and without the joint re-draw every 200 steps, under zero-mean Gaussian torques
(clipped to [-1, 1], as SB3 clips them) with the standard deviation of a fresh policy: 1
(``log_std_init=0``, SB3's default) and exp(-1) (``log_std_init=-1``). Prints the share of steps on
which the torso's up axis points below the horizon, and the mean distance from the start at the end.
"""

import argparse

import gymnasium as gym
import numpy as np

import sb3_mlsh  # noqa: F401  (registers the envs)


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
            w, x, y, _ = ant.data.qpos[3:7]
            down += 1 - 2 * (x * x + y * y) < 0  # the z component of the torso's up axis
            steps += 1
            done = terminated or truncated
        distances.append(float(np.linalg.norm(ant.xy)))
    env.close()
    return down / steps, float(np.mean(distances))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=8)
    args = parser.parse_args()
    print(f"command: python benchmarks/ant_upright.py --episodes {args.episodes}")
    print("| joints re-drawn | log_std_init | steps on its back | distance from the start at the end |")
    print("|---|---|---|---|")
    for redraw_every in (None, 200):
        for log_std in (0.0, -1.0):
            share, distance = upside_down_share(redraw_every, log_std, args.episodes)
            redraw = "every 200 steps" if redraw_every else "never"
            print(f"| {redraw} | {log_std:g} | {share:.0%} | {distance:.2f} |")


if __name__ == "__main__":
    main()
