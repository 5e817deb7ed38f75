"""
Raw environment steps per second of sb3-mlsh's MuJoCo tasks against gymnasium's Ant-v5 and Humanoid-v5, measured
in the same run with random actions (no learning), interleaved in rounds.

    python -m benchmarks.env_speed [--steps 5000] [--rounds 3]

Prints steps/s (median over rounds) and each task's ratio to its reference (target: >= 0.8).
"""

import argparse
import platform
import statistics
import time

import gymnasium as gym
import mujoco

import sb3_mlsh  # noqa: F401  (registers the envs)

REFERENCE = {
    "AntTwoWalk-v0": "Ant-v5",
    "AntMaze-v0": "Ant-v5",
    "AntObstacle-v0": "Ant-v5",
    "HumanoidWalkCrawl-v0": "Humanoid-v5",
    "HumanoidCourse-v0": "Humanoid-v5",
}


def steps_per_second(env_id: str, steps: int, seed: int) -> float:
    env = gym.make(env_id)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(steps)]
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    env_ids = sorted(set(REFERENCE) | set(REFERENCE.values()))
    samples: dict[str, list[float]] = {env_id: [] for env_id in env_ids}
    for round_index in range(args.rounds):
        for env_id in env_ids:
            samples[env_id].append(steps_per_second(env_id, args.steps, seed=round_index))
    speed = {env_id: statistics.median(values) for env_id, values in samples.items()}
    print(f"machine: {platform.machine()}, mujoco {mujoco.__version__}, gymnasium {gym.__version__}")
    print(f"command: python -m benchmarks.env_speed --steps {args.steps} --rounds {args.rounds}")
    print("| env | steps/s | reference | reference steps/s | ratio |\n|---|---|---|---|---|")
    for env_id, reference in REFERENCE.items():
        ratio = speed[env_id] / speed[reference]
        print(f"| {env_id} | {speed[env_id]:.0f} | {reference} | {speed[reference]:.0f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
