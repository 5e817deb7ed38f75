"""Callbacks for MLSH training."""

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.type_aliases import GymEnv

from sb3_mlsh.evaluation import AdaptationResult, evaluate_adaptation


class AdaptationEvalCallback(BaseCallback):
    """
    Every ``eval_freq`` calls (one per ``env.step`` of the training envs), run the paper's meta-test
    (``evaluate_adaptation``) on a copy of the model, log ``eval/adaptation_return`` (with its
    confidence interval, the sub-policy usage and divergence), and save the best model so far, as
    ``EvalCallback`` does for ``eval/mean_reward``.

    :param eval_env: The evaluation env, with the task protocol.
    :param n_tasks: Tasks per evaluation.
    :param adaptation_timesteps: T, master-only steps per task.
    :param eval_freq: Evaluate every this many calls.
    :param seed: Seed of each evaluation (the same tasks and fresh masters every time).
    :param tasks: Explicit tasks to evaluate on (else held-out or sampled ones, see ``evaluate_adaptation``).
    :param best_model_save_path: Folder where ``best_model.zip`` is saved (``None``: not saved).
    :param master_exploration: The fresh masters' random choice probability (``None``: the model's own).
    :param verbose: Verbosity level.
    """

    def __init__(
        self,
        eval_env: GymEnv | str,
        n_tasks: int = 5,
        adaptation_timesteps: int = 20_000,
        eval_freq: int = 10_000,
        seed: int = 0,
        tasks: Sequence[Any] | None = None,
        best_model_save_path: str | None = None,
        master_exploration: float | None = None,
        verbose: int = 1,
    ) -> None:
        super().__init__(verbose)
        self.eval_env = eval_env
        self.n_tasks = n_tasks
        self.adaptation_timesteps = adaptation_timesteps
        self.eval_freq = eval_freq
        self.seed = seed
        self.tasks = tasks
        self.best_model_save_path = best_model_save_path
        self.master_exploration = master_exploration
        self.best_mean = -np.inf
        self.last_result: AdaptationResult | None = None

    def _on_step(self) -> bool:
        if self.eval_freq <= 0 or self.n_calls % self.eval_freq != 0:
            return True
        result = evaluate_adaptation(
            self.model,  # type: ignore[arg-type]
            self.eval_env,
            self.n_tasks,
            self.adaptation_timesteps,
            seed=self.seed,
            tasks=self.tasks,
            master_exploration=self.master_exploration,
        )
        self.last_result = result
        low, high = result.confidence_interval
        self.logger.record("eval/adaptation_return", result.mean)
        self.logger.record("eval/adaptation_return_low", low)
        self.logger.record("eval/adaptation_return_high", high)
        self.logger.record("eval/adaptation_return_per_episode", result.per_episode)
        self.logger.record("eval/subpolicy_divergence", result.divergence)
        for k, fraction in enumerate(result.usage.mean(axis=0)):
            self.logger.record(f"eval/subpolicy_{k}_usage", float(fraction))
        if self.verbose >= 1:
            print(
                f"Eval num_timesteps={self.num_timesteps}, adaptation_return={result.mean:.2f} [{low:.2f}, {high:.2f}] "
                f"(summed over the first T steps), {result.per_episode:.2f} per episode"
            )
        if result.mean > self.best_mean:
            self.best_mean = result.mean
            if self.best_model_save_path is not None:
                os.makedirs(self.best_model_save_path, exist_ok=True)
                self.model.save(os.path.join(self.best_model_save_path, "best_model"))
                if self.verbose >= 1:
                    print("New best adaptation return!")
        self.logger.dump(self.num_timesteps)
        return True
