"""
Meta-train MLSH on MovementBandits-v0, then measure what the learned sub-policies are worth.

    python -m sb3_mlsh.demo [--timesteps 1600000] [--seed 0] [--save-path mlsh_bandits.zip]

While it meta-trains: a progress bar (steps, time left) and one line per task (the episode return
earned on it, and how often each sub-policy acted). Then one table, measured on fresh episodes:

- each sub-policy acting alone, per task (do the two sub-policies go to different goals?);
- the paper's figure of merit: a fresh master trained for T steps with the sub-policies frozen
  (``evaluate_adaptation``): its return per episode during those T steps, and after them;
- PPO from scratch on the same task for the same T steps (what MLSH's master should beat by far);
- two scripted references: walking to the paying goal, and always walking to goal 0 (what the
  paper's shared policy ends up doing: it earns about half);

and a picture of the adaptation curves next to the saved model (with matplotlib installed).
"""

import argparse
import pathlib
import time
import warnings
from collections.abc import Callable
from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

from sb3_mlsh.baselines import single_policy
from sb3_mlsh.envs.movement_bandits import MovementBanditsEnv
from sb3_mlsh.evaluation import AdaptationResult, evaluate_adaptation
from sb3_mlsh.mlsh import MLSH
from sb3_mlsh.zoo import mlsh_settings

ENV_ID = "MovementBandits-v0"
TASKS = MovementBanditsEnv.tasks
# hyperparams/mlsh.yml's MovementBandits-v0 entry, what `rl_zoo3.train --algo mlsh` uses: the paper's K, N, W, U;
# N_ENVS x n_steps = 2000 steps per iteration, the paper's D; the sub-policies' learning rate a linear decay from
# 2e-3 and master exploration 0.1 (docs/mlsh.md, "Choices")
N_ENVS, SETTINGS = mlsh_settings(ENV_ID)


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
            total = 0.0
            for _ in range(n_episodes // N_ENVS * env.get_attr("spec")[0].max_episode_steps):
                actions, _ = model.predict(cast(np.ndarray, obs), subpolicy=k, deterministic=True)
                obs, rewards, _, _ = env.step(actions)
                total += float(rewards.sum())
            result[k, task] = total / (n_episodes // N_ENVS * N_ENVS)
    env.close()
    return result


class TaskSummary(BaseCallback):
    """Prints one line per finished task: its episode returns and how often each sub-policy acted."""

    def __init__(self) -> None:
        super().__init__()
        self.tasks_sampled, self.task = 0, None
        self.returns: list[float] = []
        self.usage = np.zeros(0)

    def _on_rollout_start(self) -> None:
        model: MLSH = self.model  # type: ignore[assignment]
        if model.tasks_sampled != self.tasks_sampled:  # MLSH has just started the next task
            self._print()
            self.tasks_sampled, self.task = model.tasks_sampled, model.current_task
            self.returns, self.usage = [], np.zeros(model.n_subpolicies)

    def _on_step(self) -> bool:
        self.returns += [info["episode"]["r"] for info in self.locals["infos"] if "episode" in info]
        return True

    def _on_rollout_end(self) -> None:
        model: MLSH = self.model  # type: ignore[assignment]
        self.usage += np.bincount(model.rollout_buffer.subpolicies.ravel(), minlength=model.n_subpolicies)

    def _on_training_end(self) -> None:
        self._print()

    def _print(self) -> None:
        if self.returns and self.usage.sum() > 0:
            use = " / ".join(f"{share:.2f}" for share in self.usage / self.usage.sum())
            mean = np.mean(self.returns)
            print(f"task {self.tasks_sampled:3d} (goal {self.task}): {mean:5.1f} per episode; sub-policies used {use}")


def per_episode(result: AdaptationResult) -> np.ndarray:
    """:return: Per task, the mean return of the episodes that ended during the first T steps."""
    return np.array([np.mean(returns) if len(returns) else np.nan for _, returns in result.curves])


def verdict_table(rows: list[tuple[str, Any]]) -> str:
    """:return: ``rows`` (label, one value per task) as a small text table with a mean column."""
    lines = [f"{'':50s}" + "".join(f"{f'task {task}':>9s}" for task in TASKS) + f"{'mean':>9s}"]
    for label, values in rows:
        values = np.atleast_1d(values).astype(float)
        if len(values) == 1:
            values = np.repeat(values, len(TASKS))
        lines.append(f"{label:50s}" + "".join(f"{value:9.1f}" for value in values) + f"{np.mean(values):9.1f}")
    return "\n".join(lines)


def binned(steps: np.ndarray, returns: np.ndarray, n_bins: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """:return: The mean step and mean return of the episodes that ended in each of ``n_bins`` equal spans of steps."""
    if len(steps) == 0:
        return steps, returns
    bins = np.ceil(steps / (steps.max() / n_bins))  # the episodes that end at one step of the VecEnv share a bin
    used = np.unique(bins)
    return (
        np.array([steps[bins == b].mean() for b in used]),
        np.array([returns[bins == b].mean() for b in used]),
    )


def save_curves(path: pathlib.Path, mlsh: AdaptationResult, ppo: AdaptationResult, references: dict[str, float]) -> bool:
    """
    Plot the adaptation curves (episode return against steps, per task) to ``path``.

    :return: False, without writing, if matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, axes = plt.subplots(1, len(TASKS), figsize=(5 * len(TASKS), 3.5), sharey=True)
    for axis, task, (mlsh_steps, mlsh_returns), (ppo_steps, ppo_returns) in zip(
        axes, TASKS, mlsh.curves, ppo.curves, strict=True
    ):
        axis.plot(*binned(mlsh_steps, mlsh_returns), "o-", label="MLSH: fresh master, sub-policies frozen")
        axis.plot(*binned(ppo_steps, ppo_returns), "s-", label="PPO from scratch")
        for (label, value), style in zip(references.items(), ("--", ":"), strict=True):
            axis.axhline(value, color="gray", linestyle=style, label=label)
        axis.set(title=f"task {task}", xlabel="adaptation steps (T)")
    axes[0].set_ylabel("mean episode return")
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timesteps", type=int, default=1_600_000, help="meta-training environment steps")
    parser.add_argument(
        "--adaptation-timesteps", type=int, default=20_000, help="steps of each learner per meta-test task (T)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-path", default="mlsh_bandits.zip", help="where the meta-trained model is saved")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file at --save-path")
    parser.add_argument("--verbose", type=int, default=0, help="1: also SB3's training tables")
    parser.add_argument("--no-progress-bar", action="store_true", help="one line per task only (e.g. in a log file)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (small networks run fastest on one)")
    args = parser.parse_args(argv)
    th.set_num_threads(args.threads)

    save_path = pathlib.Path(args.save_path)
    if save_path.suffix != ".zip":
        save_path = save_path.with_name(save_path.name + ".zip")
    if save_path.exists() and not args.overwrite:
        parser.error(f"--save-path {save_path} exists; choose another path or pass --overwrite to replace it")

    print(f"Meta-training MLSH on {ENV_ID} for {args.timesteps} steps (K=2, N=10, W=9, U=1; one line per task):")
    env = make_vec_env(ENV_ID, n_envs=N_ENVS, seed=args.seed)
    model = MLSH("MlpPolicy", env, seed=args.seed, verbose=args.verbose, **SETTINGS)
    start = time.time()
    model.learn(args.timesteps, callback=TaskSummary(), log_interval=10, progress_bar=not args.no_progress_bar)
    model.save(save_path)
    print(f"\nMeta-trained for {model.num_timesteps} steps in {time.time() - start:.0f} s; saved to {save_path}")

    T = args.adaptation_timesteps
    print(f"Measuring: each sub-policy alone; a fresh master and PPO from scratch, each {T} steps per task ...")
    alone = subpolicy_returns(model, n_episodes=48, seed=args.seed + 1)
    test_env = make_vec_env(ENV_ID, n_envs=N_ENVS, seed=args.seed + 2)
    mlsh = evaluate_adaptation(model, test_env, len(TASKS), T, seed=args.seed + 2, tasks=TASKS, n_eval_episodes=48)
    with warnings.catch_warnings():  # PPO's note that 64 does not divide n_steps * n_envs = 2000
        warnings.filterwarnings("ignore", message="You have specified a mini-batch size")
        # as benchmarks/reproduce.py's baseline: MLSH's n_steps and GAE lambda, PPO's defaults otherwise
        ppo_kwargs = dict(n_steps=SETTINGS["n_steps"], gae_lambda=0.98)
        ppo = single_policy(test_env, len(TASKS), T, seed=args.seed + 2, tasks=TASKS, n_eval_episodes=48, **ppo_kwargs)
    references = {
        "scripted: walks to the paying goal": scripted_return(lambda task: task, n_episodes=40, seed=args.seed + 10),
        "scripted: always walks to goal 0": scripted_return(lambda task: 0, n_episodes=40, seed=args.seed + 10),
    }
    rows = [(f"sub-policy {k} alone", alone[k]) for k in range(model.n_subpolicies)]
    rows += [
        (f"MLSH fresh master, during the first {T} steps", per_episode(mlsh)),
        ("MLSH fresh master, after them", mlsh.final_returns),
        (f"PPO from scratch, during the first {T} steps", per_episode(ppo)),
        ("PPO from scratch, after them", ppo.final_returns),
        *references.items(),
    ]
    print("\nMean episode return (48 episodes per task; during T: every episode that ended within T)")
    print(verdict_table(rows))

    specialised = len({int(np.argmax(row)) for row in alone}) == len(TASKS)
    ratio = np.nanmean(per_episode(mlsh)) / max(np.nanmean(per_episode(ppo)), 1e-8)
    print(
        f"\nThe sub-policies {'go to different goals' if specialised else 'did not specialise (they go to the same goal)'}; "
        f"during the first {T} steps a fresh master over them earned {ratio:.1f}x what PPO from scratch earned."
    )
    picture = save_path.with_suffix(".png")
    if save_curves(picture, mlsh, ppo, references):
        print(f"Adaptation curves: {picture}")
    else:
        print("For a picture of the adaptation curves: pip install matplotlib, then run again.")


if __name__ == "__main__":
    main()
