"""
MLSH on a task distribution nobody here wrote: a MiniGrid room whose task is a hidden goal cell.

    pip install "sb3-mlsh[minigrid]"
    python examples/minigrid_goal_cells.py [--timesteps 400000] [--adaptation-timesteps 20000]

Meta-trains on most of the room's cells as goals, then adapts a fresh master, sub-policies frozen, to goals held
out of meta-training, and shows where each sub-policy alone takes the agent. The settings are a starting point for
your own runs, not tuned ones; the default budget is an illustration, not a result.
"""

import argparse

import gymnasium as gym
import torch
from stable_baselines3.common.env_util import make_vec_env

from sb3_mlsh import MLSH, evaluate_adaptation
from sb3_mlsh.adapters.minigrid import agent_position, goal_cell_tasks
from sb3_mlsh.common.diagnostics import subpolicy_behaviour

HELD_OUT = [(6, 6), (1, 6), (6, 1)]  # corners of the 6 x 6 room (the agent starts in the fourth, (1, 1))


def make_env() -> gym.Env:
    return goal_cell_tasks("MiniGrid-Empty-8x8-v0", held_out_tasks=HELD_OUT, max_steps=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timesteps", type=int, default=400_000)
    parser.add_argument("--adaptation-timesteps", type=int, default=20_000)
    args = parser.parse_args()
    torch.set_num_threads(1)

    env = make_vec_env(make_env, n_envs=8, seed=0)
    model = MLSH(
        "MlpPolicy", env, n_subpolicies=4, macro_duration=10, warmup_iterations=10, joint_iterations=10, n_steps=100,
        master_exploration=0.1, bootstrap_truncation=False, seed=0,
    )  # fmt: skip
    model.learn(args.timesteps, progress_bar=True)

    # the paper's figure of merit on the held-out goals (the env's held_out_tasks)
    test_env = make_vec_env(make_env, n_envs=8, seed=1)
    result = evaluate_adaptation(
        model, test_env, n_tasks=len(HELD_OUT), adaptation_timesteps=args.adaptation_timesteps, seed=1
    )
    for goal, per_episode in zip(result.tasks, result.per_episode_rewards, strict=True):
        print(f"held-out goal {goal}: R {per_episode:.3f} per episode during the first {args.adaptation_timesteps} steps")
    for behaviour in subpolicy_behaviour(model, make_env(), n_episodes=4, position=agent_position):
        print(
            f"sub-policy {behaviour.subpolicy} alone: moves the agent {behaviour.displacement:.1f} cells, "
            f"visits {behaviour.distinct_positions:.1f} cells per episode"
        )


if __name__ == "__main__":
    main()
