"""MLSH's constructor parameters checked before anything runs: one rule per parameter, each naming the fix."""

import numbers
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

# Set by MLSH itself, so not accepted in policy_kwargs
MLSH_POLICY_PARAMETERS = (
    "n_subpolicies",
    "macro_duration",
    "master_exploration",
    "n_masters",
    "lr_schedule",
    "master_lr_schedule",
    "normalize_observations",
    "clip_obs",
    "normalize_rewards",
    "clip_reward",
)


def _integer(minimum: int) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, (int, np.integer)) and not isinstance(value, bool) and bool(value >= minimum)


def _number(minimum: float, strict: bool = False, maximum: float = np.inf) -> Callable[[Any], bool]:
    """A real number (not a bool) in [minimum, maximum], or (minimum, maximum] if ``strict``."""

    def check(value: Any) -> bool:
        if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
            return False
        number = float(value)
        return (number > minimum if strict else number >= minimum) and number <= maximum

    return check


def _or_schedule(rule: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: callable(value) or rule(value)


def _or_none(rule: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or rule(value)


def _boolean(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


_FRACTION = _number(0.0, maximum=1.0)

# name: (rule, what to use instead)
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "n_subpolicies": (_integer(1), "an integer >= 1"),
    "macro_duration": (_integer(1), "an integer >= 1"),
    "warmup_iterations": (_integer(0), "an integer >= 0"),
    "joint_iterations": (_integer(0), "an integer >= 0"),
    "n_steps": (_integer(1), "an integer >= macro_duration"),
    "n_task_groups": (_integer(1), "an integer >= 1 that divides n_envs"),
    "distinct_group_tasks": (_boolean, "True or False"),
    # 0 freezes a level (rl_zoo3.enjoy loads models with learning_rate=0.0)
    "learning_rate": (_or_schedule(_number(0.0)), "a float >= 0 or a schedule"),
    "master_learning_rate": (_or_schedule(_number(0.0)), "a float >= 0 or a schedule"),
    "batch_size": (_integer(2), "an integer >= 2 (advantages are normalized per minibatch)"),
    "master_batch_size": (_integer(2), "an integer >= 2"),
    "n_epochs": (_integer(1), "an integer >= 1"),
    "gamma": (_FRACTION, "a number in [0, 1]"),
    "master_gamma": (_or_none(_FRACTION), "a number in [0, 1] or None"),
    "gae_lambda": (_FRACTION, "a number in [0, 1]"),
    "clip_range": (_or_schedule(_number(0.0, strict=True)), "a float > 0 or a schedule"),
    "clip_range_vf": (_or_none(_or_schedule(_number(0.0, strict=True))), "a float > 0, a schedule or None"),
    "normalize_advantage": (_boolean, "True or False"),
    "ent_coef": (_number(0.0), "a float >= 0"),
    "master_ent_coef": (_or_none(_number(0.0)), "a float >= 0 or None"),
    "vf_coef": (_number(0.0), "a float >= 0"),
    "max_grad_norm": (_number(0.0, strict=True), "a float > 0"),
    "target_kl": (_or_none(_number(0.0, strict=True)), "a float > 0 or None"),
    "scale_subpolicy_lr": (_boolean, "True or False"),
    "master_exploration": (_FRACTION, "a probability in [0, 1]"),
    "master_skip_rewardless": (_boolean, "True or False"),
    "train_subpolicies": (_boolean, "True or False"),
    "bootstrap_truncation": (_boolean, "True or False"),
    "normalize_observations": (_boolean, "True or False"),
    "clip_obs": (_number(0.0, strict=True), "a float > 0"),
    "normalize_rewards": (_boolean, "True or False"),
    "clip_reward": (_number(0.0, strict=True), "a float > 0"),
    "reset_master_on_load": (_boolean, "True or False"),
    "stats_window_size": (_integer(1), "an integer >= 1"),
    "tensorboard_log": (lambda value: value is None or isinstance(value, (str, os.PathLike)), "a folder path or None"),
    "policy_kwargs": (lambda value: value is None or isinstance(value, dict), "a dict or None"),
    "verbose": (_integer(0), "0, 1 or 2"),
    "seed": (_or_none(_integer(0)), "an integer >= 0 or None"),
}


def check_parameters(values: Mapping[str, Any]) -> None:
    """
    Raise ``ValueError``, naming the parameter and the fix, for the first invalid setting in ``values``.

    :param values: MLSH's constructor parameters by name (those absent are not checked).
    """
    for name, (rule, fix) in RULES.items():
        if name in values and not rule(values[name]):
            raise ValueError(f"MLSH: {name}={values[name]!r}; use {fix}.")
    if values.get("warmup_iterations") == 0 and values.get("joint_iterations") == 0:
        raise ValueError(
            "MLSH: warmup_iterations + joint_iterations is 0, so a task would last no iteration; "
            "make at least one of them >= 1."
        )
    if "n_steps" in values and "macro_duration" in values and values["n_steps"] < values["macro_duration"]:
        raise ValueError(
            f"MLSH: n_steps={values['n_steps']!r} is smaller than macro_duration={values['macro_duration']}; "
            "use n_steps >= macro_duration so that every iteration completes master decisions."
        )
    clashes = sorted(set(values.get("policy_kwargs") or {}) & set(MLSH_POLICY_PARAMETERS))
    if clashes:
        raise ValueError(f"MLSH: policy_kwargs sets {clashes}; pass these to MLSH itself (e.g. MLSH(..., n_subpolicies=3)).")
