"""Optuna sampler and converter for ``python -m rl_zoo3.train --algo mlsh -optimize``."""

from typing import Any

import optuna

MLSH_KNOBS = ("n_subpolicies", "macro_duration", "warmup_iterations", "joint_iterations", "master_learning_rate")


def convert_mlsh_params(sampled_params: dict[str, Any]) -> dict[str, Any]:
    """
    Turn sampled values into MLSH hyperparameters: PPO's conversion (``gamma``, ``gae_lambda``,
    ``n_steps``, ``batch_size``, ``net_arch``, ``activation_fn``) plus MLSH's own knobs.

    :param sampled_params: The trial's parameters, as sampled by ``sample_mlsh_params``.
    :return: Keyword arguments for ``MLSH``.
    """
    # imported here: importing rl_zoo3 runs sb3-mlsh's import hook, which imports this module
    from rl_zoo3.hyperparams_opt import convert_onpolicy_params

    params = dict(sampled_params)
    mlsh = {name: params.pop(name) for name in MLSH_KNOBS}
    # a decision every N steps needs at least N steps per iteration
    mlsh["macro_duration"] = min(mlsh["macro_duration"], 2 ** params["n_steps_pow"])
    return {**convert_onpolicy_params(params), **mlsh}


def sample_mlsh_params(trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """
    Sample MLSH hyperparameters: K, N, W, U and both learning rates, and PPO's settings.

    :param trial: The optuna trial.
    :param n_actions: Size of the action space (unused).
    :param n_envs: Number of envs (unused).
    :param additional_args: The zoo's extra arguments (unused).
    :return: Keyword arguments for ``MLSH``.
    """
    sampled = {
        "n_subpolicies": trial.suggest_int("n_subpolicies", 2, 4),
        "macro_duration": trial.suggest_categorical("macro_duration", [5, 10, 25, 50, 100, 200]),
        "warmup_iterations": trial.suggest_int("warmup_iterations", 0, 20),
        "joint_iterations": trial.suggest_int("joint_iterations", 1, 40),
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 3e-3, log=True),
        "master_learning_rate": trial.suggest_float("master_learning_rate", 1e-4, 3e-2, log=True),
        "n_steps_pow": trial.suggest_int("n_steps_pow", 7, 11),
        "batch_size_pow": trial.suggest_int("batch_size_pow", 5, 8),
        "one_minus_gamma": trial.suggest_float("one_minus_gamma", 0.0001, 0.03, log=True),
        "one_minus_gae_lambda": trial.suggest_float("one_minus_gae_lambda", 0.0001, 0.1, log=True),
        "ent_coef": trial.suggest_float("ent_coef", 1e-8, 0.1, log=True),
        "clip_range": trial.suggest_categorical("clip_range", [0.1, 0.2, 0.3]),
        "n_epochs": trial.suggest_categorical("n_epochs", [5, 10, 20]),
        "max_grad_norm": trial.suggest_float("max_grad_norm", 0.3, 2.0),
        "net_arch": trial.suggest_categorical("net_arch", ["tiny", "small", "medium"]),
        "activation_fn": trial.suggest_categorical("activation_fn", ["tanh", "relu"]),
    }
    return convert_mlsh_params(sampled)
