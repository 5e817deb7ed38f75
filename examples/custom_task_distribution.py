"""
Any gymnasium env as a task distribution: MLSH over Pendulum with the gravity drawn per task.

    python examples/custom_task_distribution.py [--timesteps 400000]

``TaskSamplerWrapper`` gives the env MLSH's task protocol: ``sample_task(rng)`` draws a gravity,
``set_task(env, g)`` puts it into the env. MLSH samples a task, re-initialises the master, runs
W warm-up and U joint iterations on it, and moves on to the next.
"""

import argparse

import gymnasium as gym
import torch
from stable_baselines3.common.env_util import make_vec_env

from sb3_mlsh import MLSH, TaskSamplerWrapper


def make_env() -> gym.Env:
    return TaskSamplerWrapper(
        gym.make("Pendulum-v1"),
        sample_task=lambda rng: float(rng.uniform(5.0, 15.0)),  # the gravity g
        set_task=lambda env, g: setattr(env.unwrapped, "g", g),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timesteps", type=int, default=400_000)
    args = parser.parse_args()
    torch.set_num_threads(1)

    env = make_vec_env(make_env, n_envs=4, seed=0)
    model = MLSH(
        "MlpPolicy", env, n_subpolicies=3, macro_duration=20, warmup_iterations=4, joint_iterations=2, n_steps=500,
        seed=0, verbose=1,
    )  # fmt: skip
    model.learn(args.timesteps, log_interval=6)
    print(f"tasks sampled: {model.tasks_sampled}; the last: g = {model.current_task:.2f}")


if __name__ == "__main__":
    main()
