"""
Transfer: keep a meta-trained model's sub-policies, frozen, and train only a fresh master on a new task.

    python examples/transfer_frozen_subpolicies.py mlsh_bandits_example.zip [--task 1] [--timesteps 20000]

This is the paper's transfer setting (and its meta-test): ``reset_master_on_load=True`` starts a fresh
master in place of the saved one, ``train_subpolicies=False`` freezes the sub-policies, and the env's
own task is kept (no task sampling).
"""

import argparse

import torch
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_mlsh import MLSH


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a model meta-trained on MovementBandits, e.g. by meta_train_bandits.py")
    parser.add_argument("--task", type=int, default=1, help="the goal that pays")
    parser.add_argument("--timesteps", type=int, default=20_000)
    args = parser.parse_args()
    torch.set_num_threads(1)

    env = make_vec_env("MovementBandits-v0", n_envs=16, seed=2)
    env.env_method("set_task", args.task)
    model = MLSH.load(args.model, env=env, train_subpolicies=False, reset_master_on_load=True, n_task_groups=1)
    subpolicies = [p.detach().clone() for p in model.policy.subpolicies.parameters()]
    model.learn(args.timesteps)
    assert all((a == b).all() for a, b in zip(subpolicies, model.policy.subpolicies.parameters(), strict=True))
    mean, std = evaluate_policy(model, env, n_eval_episodes=32, deterministic=True)
    print(f"task {args.task}: the fresh master over frozen sub-policies returns {mean:.1f} +- {std:.1f} per episode")


if __name__ == "__main__":
    main()
