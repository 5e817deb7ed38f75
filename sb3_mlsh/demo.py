"""
Meta-train MLSH on MovementBandits-v0, then measure what the learned sub-policies are worth.

    python -m sb3_mlsh.demo [--timesteps 1600000] [--seed 0] [--save-path mlsh_bandits.zip]

After meta-training it prints, measured on fresh episodes:

- each sub-policy acting alone, per task (do the two sub-policies go to different goals?);
- the paper's figure of merit: per task, a fresh master trained with the sub-policies frozen
  (``evaluate_adaptation``): its return while it learned, and in a deterministic evaluation after;
- two scripted references: walking to the paying goal, and always walking to goal 0 (what the
  paper's shared policy ends up doing: it earns about half).
"""

import argparse
import pathlib
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.env_util import make_vec_env

from sb3_mlsh.envs.movement_bandits import MovementBanditsEnv
from sb3_mlsh.evaluation import evaluate_adaptation
from sb3_mlsh.mlsh import MLSH

ENV_ID = "MovementBandits-v0"
TASKS = MovementBanditsEnv.tasks
# The paper's moving-bandits settings (K, N, W, U); N_ENVS x n_steps = 2000 steps per iteration, the paper's D.
# learning_rate 1e-3 (paper: 3e-4) and master_exploration 0.1 (the original code's): see docs/mlsh.md, "Choices".
HYPERPARAMS = dict(
    n_subpolicies=2,
    macro_duration=10,
    warmup_iterations=9,
    joint_iterations=1,
    n_steps=125,
    learning_rate=1e-3,
    master_exploration=0.1,
)
N_ENVS = 16


def scripted_return(goal: Callable[[int], int], n_episodes: int, seed: int) -> float:
    """
    Mean episode reward of ``MovementBanditsEnv.greedy_action`` walking to ``goal(task)``, over both tasks.

    :param goal: The goal index to walk to, given the task.
    :param n_episodes: Episodes per task.
    :param seed: Seed of the first episode.
    """
    env = gym.make(ENV_ID)
    returns = []
    for task in TASKS:
        env.unwrapped.set_task(task)  # type: ignore[attr-defined]
        for episode in range(n_episodes):
            obs, _ = env.reset(seed=seed + episode)
            total, done = 0.0, False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(MovementBanditsEnv.greedy_action(obs, goal(task)))
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
    return float(np.mean(returns))


def subpolicy_returns(model: MLSH, n_episodes: int, seed: int) -> np.ndarray:
    """
    :param model: A trained model.
    :param n_episodes: Episodes per sub-policy and task (a multiple of ``N_ENVS``).
    :param seed: Seed of the evaluation envs.
    :return: ``[k, task]``: mean episode reward of sub-policy ``k`` acting alone (deterministic) on ``task``.
    """
    env = make_vec_env(ENV_ID, n_envs=N_ENVS, seed=seed)
    result = np.zeros((model.n_subpolicies, len(TASKS)))
    for k in range(model.n_subpolicies):
        for task in TASKS:
            env.env_method("set_task", task)
            obs = env.reset()
            state = (np.full(N_ENVS, k), np.full(N_ENVS, np.iinfo(np.int64).max))  # no decision is ever due
            total = 0.0
            for _ in range(n_episodes // N_ENVS * env.get_attr("spec")[0].max_episode_steps):
                actions, state = model.predict(obs, state=state, deterministic=True)
                obs, rewards, _, _ = env.step(actions)
                total += float(rewards.sum())
            result[k, task] = total / (n_episodes // N_ENVS * N_ENVS)
    env.close()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timesteps", type=int, default=1_600_000, help="meta-training environment steps")
    parser.add_argument("--adaptation-timesteps", type=int, default=20_000, help="master-only steps per meta-test task")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-path", default="mlsh_bandits.zip", help="where the meta-trained model is saved")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file at --save-path")
    parser.add_argument("--verbose", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (small networks run fastest on one)")
    args = parser.parse_args(argv)
    th.set_num_threads(args.threads)

    save_path = pathlib.Path(args.save_path)
    if save_path.suffix != ".zip":
        save_path = save_path.with_name(save_path.name + ".zip")
    if save_path.exists() and not args.overwrite:
        parser.error(f"--save-path {save_path} exists; choose another path or pass --overwrite to replace it")

    env = make_vec_env(ENV_ID, n_envs=N_ENVS, seed=args.seed)
    model = MLSH("MlpPolicy", env, seed=args.seed, verbose=args.verbose, **HYPERPARAMS)  # type: ignore[arg-type]
    start = time.time()
    model.learn(args.timesteps, log_interval=10)
    model.save(save_path)
    print(f"\nMeta-trained for {model.num_timesteps} steps in {time.time() - start:.0f} s; saved to {save_path}")

    print("\nEach sub-policy alone (mean episode reward, 48 episodes per task):")
    alone = subpolicy_returns(model, n_episodes=48, seed=args.seed + 1)
    for k, row in enumerate(alone):
        print(f"  sub-policy {k}: " + ", ".join(f"task {task}: {value:5.1f}" for task, value in zip(TASKS, row, strict=True)))

    print(f"\nFresh master, sub-policies frozen, {args.adaptation_timesteps} steps of master training per task:")
    env = make_vec_env(ENV_ID, n_envs=N_ENVS, seed=args.seed + 2)
    adaptation = evaluate_adaptation(
        model, env, n_tasks=len(TASKS), adaptation_timesteps=args.adaptation_timesteps, seed=args.seed + 2, tasks=TASKS,
        n_eval_episodes=48,
    )  # fmt: skip
    assert adaptation.final_returns is not None
    for task, (_, returns), final in zip(TASKS, adaptation.curves, adaptation.final_returns, strict=True):
        print(f"  task {task}: {np.mean(returns):5.1f} per episode while the master learned; {final:5.1f} after (48 episodes)")
    scores = adaptation.final_returns
    oracle = scripted_return(lambda task: task, n_episodes=40, seed=args.seed + 10)
    one_goal = scripted_return(lambda task: 0, n_episodes=40, seed=args.seed + 10)
    print(f"\nMLSH fresh master after adaptation (mean over tasks): {np.mean(scores):5.1f}")
    print(f"Scripted, walks to the paying goal:  {oracle:5.1f}")
    print(f"Scripted, always walks to goal 0:    {one_goal:5.1f}  (a policy that cannot tell the tasks apart)")


if __name__ == "__main__":
    main()
