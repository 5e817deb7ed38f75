"""
Meta-train MLSH on MovementBandits, then adapt a fresh master to each task with the sub-policies frozen.

    python examples/meta_train_bandits.py [--timesteps 1600000] [--adaptation-timesteps 20000]

The settings are the packaged RL Zoo entry's (hyperparams/mlsh.yml), read from it: the paper's K = 2, N = 10,
W = 9, U = 1, with its learning rate (a linear decay from 2e-3) and without observation normalisation.
"""

import argparse

import torch
from stable_baselines3.common.env_util import make_vec_env

from sb3_mlsh import MLSH, evaluate_adaptation
from sb3_mlsh.zoo import mlsh_settings, with_schedules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timesteps", type=int, default=1_600_000)
    parser.add_argument("--adaptation-timesteps", type=int, default=20_000)
    parser.add_argument("--save-path", default="mlsh_bandits_example.zip")
    args = parser.parse_args()
    torch.set_num_threads(1)

    n_envs, settings = mlsh_settings("MovementBandits-v0")  # the packaged entry, as the RL Zoo reads it
    env = make_vec_env("MovementBandits-v0", n_envs=n_envs, seed=0)
    model = MLSH("MlpPolicy", env, seed=0, **with_schedules(settings))
    model.learn(args.timesteps, progress_bar=True)
    model.save(args.save_path)

    # The paper's figure of merit: reward a fresh master earns during its first T steps, sub-policies frozen
    test_env = make_vec_env("MovementBandits-v0", n_envs=16, seed=1)
    result = evaluate_adaptation(model, test_env, n_tasks=2, adaptation_timesteps=args.adaptation_timesteps, seed=1)
    for task, total, per_episode in zip(result.tasks, result.total_rewards, result.per_episode_rewards, strict=True):
        steps = args.adaptation_timesteps
        print(f"task {task}: reward during the first {steps} steps: {total:.0f} in all, {per_episode:.1f} per episode")
    print(f"sub-policy use per task: {result.usage.round(2).tolist()}, divergence {result.divergence:.2f}")


if __name__ == "__main__":
    main()
