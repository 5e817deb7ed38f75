"""
MLSH on Meta-World's ML1 benchmark: meta-train on a manipulation task's training goals, adapt to its test goals.

    pip install "sb3-mlsh[metaworld]"     # Meta-World pins mujoco==3.3.0
    python examples/metaworld_ml1.py [--env-name reach-v3] [--timesteps 2000000] [--adaptation-timesteps 50000]

The goal is not in the observation: a fresh master, sub-policies frozen, must find from the reward which sub-policy
reaches this goal. The settings are a starting point for your own runs, not tuned ones; the default budget is an
illustration, not a result.
"""

import argparse

import gymnasium as gym
import torch
from stable_baselines3.common.env_util import make_vec_env

from sb3_mlsh import MLSH, evaluate_adaptation
from sb3_mlsh.adapters.metaworld import MetaWorldTasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-name", default="reach-v3")
    parser.add_argument("--timesteps", type=int, default=2_000_000)
    parser.add_argument("--adaptation-timesteps", type=int, default=50_000)
    parser.add_argument("--n-tasks", type=int, default=5, help="held-out goals to adapt to")
    args = parser.parse_args()
    torch.set_num_threads(1)

    def make_env() -> gym.Env:
        return MetaWorldTasks("ML1", args.env_name, seed=0)

    # Meta-World's episodes last 500 steps: a master decision every 50, 1000 steps per env and iteration
    env = make_vec_env(make_env, n_envs=4, seed=0)
    model = MLSH(
        "MlpPolicy", env, n_subpolicies=4, macro_duration=50, warmup_iterations=10, joint_iterations=20, n_steps=1000,
        batch_size=1000, master_exploration=0.1, bootstrap_truncation=False, seed=0,
    )  # fmt: skip
    model.learn(args.timesteps, progress_bar=True)

    # the paper's figure of merit on the benchmark's test goals (the env's held_out_tasks)
    test_env = make_vec_env(make_env, n_envs=4, seed=1)
    steps = args.adaptation_timesteps
    result = evaluate_adaptation(model, test_env, n_tasks=args.n_tasks, adaptation_timesteps=steps, seed=1)
    successes = result.success_rates if result.success_rates is not None else [float("nan")] * len(result.tasks)
    for index, (per_episode, success) in enumerate(zip(result.per_episode_rewards, successes, strict=True)):
        print(f"held-out goal {index}: R {per_episode:.1f} per episode during the first {steps} steps, success {success:.2f}")


if __name__ == "__main__":
    main()
