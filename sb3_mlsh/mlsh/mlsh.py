"""Meta Learning Shared Hierarchies (Frans et al., ICLR 2018) as an SB3 algorithm."""

import difflib
import inspect
import io
import math
import os
import pathlib
from collections import deque
from collections.abc import Iterable
from typing import Any, ClassVar, TypeVar, cast

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import FloatSchedule, is_vectorized_observation, obs_as_tensor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper

from sb3_mlsh.common.buffers import (
    BufferView,
    MacroDictRolloutBuffer,
    MacroRolloutBuffer,
    TaggedDictRolloutBuffer,
    TaggedRolloutBuffer,
)
from sb3_mlsh.common.learner import LevelLogger, PPOLearner
from sb3_mlsh.common.normalization import normalizable
from sb3_mlsh.common.observations import Observations, n_rows, non_finite_rows, put, stack, take
from sb3_mlsh.common.save_util import (
    atomic_write,
    legacy_load_defaults,
    policy_name,
    saved_data,
    upgrade_legacy_parameters,
    upgrade_legacy_schedule,
)
from sb3_mlsh.common.tasks import finite_tasks, has_task_protocol, same_task, sample_task, set_task, takes_rng
from sb3_mlsh.common.user_warnings import warn_at_caller
from sb3_mlsh.mlsh.macro import MacroState
from sb3_mlsh.mlsh.parameters import RULES, check_parameters
from sb3_mlsh.mlsh.policies import CnnPolicy, MasterPolicy, MlpPolicy, MLSHPolicy, MultiInputPolicy
from sb3_mlsh.mlsh.rollout_stats import keep_task_returns, record_rollout, rollout_divergence
from sb3_mlsh.mlsh.task_groups import TaskGroup, TaskSchedule

SelfMLSH = TypeVar("SelfMLSH", bound="MLSH")

_SUPPORTED_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
# Sub-policies need two steps in an iteration to be updated (advantages are normalised)
_MIN_UPDATE_ROWS = 2


class MLSH(OnPolicyAlgorithm):
    """
    Meta Learning Shared Hierarchies (MLSH).

    Paper: https://arxiv.org/abs/1710.09767

    ``n_subpolicies`` sub-policies (phi) are shared across a distribution of tasks; a master policy
    (theta) chooses one every ``macro_duration`` steps. Training repeats: sample a task and set it on
    the envs, re-initialise the master, run ``warmup_iterations`` iterations that update the master
    only, then ``joint_iterations`` iterations that update both levels. Each iteration collects
    ``n_steps * n_envs`` steps; both levels are trained with SB3's PPO update.

    With ``n_task_groups=G`` the envs form G groups, each with its own task, master and place in
    that schedule (the groups' warm-ups staggered, see ``TaskSchedule``); the sub-policies are
    updated once per iteration on the pooled steps of the groups in their joint phase.

    With ``train_subpolicies=False`` the sub-policies are frozen and only the master learns, on the
    task the env has (no task sampling, no master reset): the paper's meta-test and transfer setting.

    :param policy: The policy model to use (``"MlpPolicy"``).
    :param env: The environment to learn from (if registered in Gym, can be str). Its envs should have
        the task protocol (``sample_task()``, ``set_task(task)``, ``task``), e.g. through ``TaskSamplerWrapper``;
        without it the env is one task.
    :param n_subpolicies: Number of sub-policies (K).
    :param macro_duration: Environment steps between two decisions of the master (N).
    :param warmup_iterations: Iterations per task that update only the master (W).
    :param joint_iterations: Iterations per task that then update the master and the sub-policies (U).
    :param n_steps: Environment steps per env per iteration (D = ``n_steps * n_envs``).
    :param n_task_groups: Number of task groups G; ``n_envs`` must be a multiple of it.
    :param distinct_group_tasks: Whether a group starting a task draws it uniformly among the tasks that no other
        group of this process holds (all of them when every task is held), from the env's finite task list
        (``train_tasks``, else ``tasks``), instead of from the env's distribution independently of the other groups
        (the paper). With a few groups, independent draws often give every group the same task, and a sub-policy
        that the masters keep for another task is then updated on steps of this one alone.
    :param learning_rate: Learning rate of the sub-policies; a float or a schedule of the progress remaining (1 to 0).
    :param master_learning_rate: Learning rate of the master; a float or a schedule.
    :param batch_size: Minibatch size of the sub-policies' updates.
    :param master_batch_size: Minibatch size of the master's updates.
    :param n_epochs: Epochs of each PPO update, at both levels.
    :param gamma: Discount factor per environment step (sub-policies).
    :param master_gamma: Discount factor per macro step (master); ``None``: ``gamma``.
    :param gae_lambda: GAE lambda, at both levels.
    :param clip_range: PPO clipping parameter (or schedule), at both levels.
    :param clip_range_vf: Value clipping parameter (or schedule), at both levels; ``None``: no value clipping.
    :param normalize_advantage: Whether to normalize advantages (per minibatch).
    :param ent_coef: Entropy coefficient of the sub-policies.
    :param master_ent_coef: Entropy coefficient of the master; ``None``: ``ent_coef``.
    :param vf_coef: Value loss coefficient, at both levels.
    :param max_grad_norm: Gradient clipping norm, at both levels.
    :param target_kl: Approximate KL past which an update stops early, at both levels (``None``: no limit).
    :param scale_subpolicy_lr: Whether a sub-policy's learning rate in an update is scaled by the share of a
        minibatch (``batch_size``) that its steps of the iteration fill, ``min(1, steps / batch_size)``. SB3's update
        averages the loss over each minibatch, so without it a sub-policy that acted on a few hundred steps, often
        another task's (chosen by a master's exploration, or while its own task's group warms up), moves as far per
        gradient step as on a full minibatch of its own task.
    :param master_exploration: Probability that the master's choice is replaced by a uniformly random
        sub-policy (the original code used 0.1). The master's PPO ratio uses that mixture's probability.
    :param master_skip_rewardless: Skip a master's update when no macro transition in its batch earned a reward
        (value bootstraps at time limits aside). Its policy gradient is then only the value baseline's noise,
        which ``normalize_advantage`` scales up to full-size steps; with a sparse reward such updates move a fresh
        master onto one sub-policy before the first reward comes. For sparse rewards (``AntObstacle-v0``).
    :param train_subpolicies: ``False`` freezes the sub-policies and trains only the master.
    :param bootstrap_truncation: Whether an episode cut by a time limit adds the discounted value of its
        final observation to its last reward, at both levels. MLSH's value functions do not see the task,
        so that value carries earlier tasks' returns into the current one; the paper's tasks end at a
        fixed horizon that is part of the task, so they set ``False`` (``hyperparams/mlsh.yml``).
    :param normalize_observations: Whether both levels see the observations normalised by a running mean and
        variance, as the original code's networks did (a ``Box`` observation space that is not an image; other
        spaces are left as they are). The statistics are updated from the training rollouts once per iteration,
        after the update, so that each iteration collects and trains with the same ones; they are frozen when
        ``train_subpolicies=False`` (adaptation, transfer) and saved with the model.
    :param clip_obs: Bound of the normalised observations (the original code: 5).
    :param normalize_rewards: Whether the sub-policies learn from rewards divided by a running estimate of the
        standard deviation of their discounted return (``gamma``), as SB3's PPO does in a ``VecNormalize`` with
        ``norm_reward=True`` (rl-zoo3's MuJoCo entries). Without it the value loss of returns in the hundreds (the
        Humanoid's alive bonus, the Ant's velocity) makes nearly all of the gradient norm that ``max_grad_norm``
        clips. The statistics are updated once per iteration, after the update, from every env's returns; they are
        saved with the model. The masters learn from the env's rewards as they are.
    :param clip_reward: Bound of the scaled rewards.
    :param reset_master_on_load: Only as an argument of ``MLSH.load``: start every task group with a
        fresh master instead of the saved ones (the paper's transfer); the saved number of task groups
        may then differ from ``n_task_groups``. Never saved.
    :param stats_window_size: Window size for the rollout logging (episodes).
    :param tensorboard_log: The log location for tensorboard (if None, no logging).
    :param policy_kwargs: Additional arguments for ``MLSHPolicy`` (``net_arch``, ``master_net_arch``, ...).
    :param verbose: Verbosity level: 0 none, 1 training information, 2 debug.
    :param seed: Seed for the pseudo random generators.
    :param device: Device (cpu, cuda, ...) on which the code should be run.
    :param _init_setup_model: Whether or not to build the network at the creation of the instance.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "CnnPolicy": CnnPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    policy: MLSHPolicy  # type: ignore[assignment]  # a hierarchy of ActorCriticPolicy, not one
    rollout_buffer: TaggedRolloutBuffer

    def __new__(cls, *args: Any, **kwargs: Any) -> "MLSH":
        # a misspelt parameter: name the closest one, as gymnasium does for env ids (Python's own error only says no)
        parameters = inspect.signature(cls.__init__).parameters
        if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters.values()):
            return super().__new__(cls)  # a subclass that passes its keyword arguments on checks them there
        for name in kwargs:
            if name not in parameters:
                close = difflib.get_close_matches(name, [p for p in parameters if not p.startswith("_")], n=1)
                hint = f"; did you mean {close[0]!r}?" if close else "; see help(MLSH) for the parameters."
                raise TypeError(f"{cls.__name__}() got an unexpected keyword argument {name!r}{hint}")
        return super().__new__(cls)

    def __init__(
        self,
        policy: str | type[MLSHPolicy],
        env: GymEnv | str,
        n_subpolicies: int = 2,
        macro_duration: int = 10,
        warmup_iterations: int = 9,
        joint_iterations: int = 1,
        n_steps: int = 2000,
        n_task_groups: int = 1,
        distinct_group_tasks: bool = False,
        learning_rate: float | Schedule = 3e-4,
        master_learning_rate: float | Schedule = 1e-2,
        batch_size: int = 64,
        master_batch_size: int = 64,
        n_epochs: int = 10,
        gamma: float = 0.99,
        master_gamma: float | None = None,
        gae_lambda: float = 0.98,
        clip_range: float | Schedule = 0.2,
        clip_range_vf: float | Schedule | None = None,
        normalize_advantage: bool = True,
        ent_coef: float = 0.0,
        master_ent_coef: float | None = None,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        target_kl: float | None = None,
        scale_subpolicy_lr: bool = False,
        master_exploration: float = 0.0,
        master_skip_rewardless: bool = False,
        train_subpolicies: bool = True,
        bootstrap_truncation: bool = True,
        normalize_observations: bool = True,
        clip_obs: float = 5.0,
        normalize_rewards: bool = False,
        clip_reward: float = 10.0,
        reset_master_on_load: bool = False,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        check_parameters(locals())  # before SB3 uses any of them
        super().__init__(
            policy,  # type: ignore[arg-type]  # an MLSHPolicy (see above)
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            gamma=gamma,
            gae_lambda=gae_lambda,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            use_sde=False,
            sde_sample_freq=-1,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
        )
        self.n_subpolicies = n_subpolicies
        self.macro_duration = macro_duration
        self.warmup_iterations = warmup_iterations
        self.joint_iterations = joint_iterations
        self.master_learning_rate = master_learning_rate
        self.batch_size = batch_size
        self.master_batch_size = master_batch_size
        self.n_epochs = n_epochs
        self.master_gamma = master_gamma
        self.clip_range = clip_range
        self.clip_range_vf = clip_range_vf
        self.normalize_advantage = normalize_advantage
        self.master_ent_coef = master_ent_coef
        self.target_kl = target_kl
        self.master_exploration = master_exploration
        self.master_skip_rewardless = master_skip_rewardless
        self.train_subpolicies = train_subpolicies
        self.n_task_groups = n_task_groups
        self.distinct_group_tasks = distinct_group_tasks
        self.scale_subpolicy_lr = scale_subpolicy_lr
        self.bootstrap_truncation = bootstrap_truncation
        self.normalize_observations = normalize_observations
        self.clip_obs = clip_obs
        self.normalize_rewards = normalize_rewards
        self.clip_reward = clip_reward
        self.reset_master_on_load = reset_master_on_load
        # The task groups' tasks and positions in the schedule, and the task generator (saved with the model)
        self.task_groups: TaskSchedule | None = None
        self._macro_state: MacroState | None = None
        self._task_returns: dict[Any, deque[float]] = {}
        self._warned_single_task = False
        self._new_obs_stats: RunningMeanStd | None = None  # this iteration's observations, for the normaliser
        self._new_return_stats: RunningMeanStd | None = None  # this iteration's discounted returns, likewise
        self._discounted_returns: np.ndarray | None = None  # per env, the return so far (normalize_rewards)
        self._rewarded_masters: np.ndarray | None = None  # per task group: whether its batch earned any reward
        # The steps of a run that goes through several learn(..., reset_num_timesteps=False) calls (checkpoints between
        # them): when set, the schedules' progress is num_timesteps / schedule_timesteps instead of each call's own
        self.schedule_timesteps: int | None = None
        # SB3's start_time and num_timesteps at the start of this process's first learn call of the run (not saved)
        self._run_clock: tuple[float, int] | None = None

        if _init_setup_model:
            self._setup_model()

    # ------------------------------------------------------------------ setup

    def _check_parameters(self) -> None:
        """Raise ``ValueError`` naming the parameter and the fix for every invalid setting, the env's included."""
        values = {name: getattr(self, name) for name in RULES if hasattr(self, name)}
        check_parameters({**values, "stats_window_size": self._stats_window_size})
        if self.n_envs % self.n_task_groups != 0:
            raise ValueError(
                f"MLSH: n_task_groups={self.n_task_groups} does not divide the {self.n_envs} envs; use an n_task_groups "
                "that divides n_envs (e.g. make_vec_env(..., n_envs=16) with n_task_groups=4), or n_task_groups=1."
            )
        if self.n_task_groups > 1 and isinstance(self.env, VecEnvWrapper):
            raise ValueError(
                f"MLSH: n_task_groups={self.n_task_groups} resets each group's envs alone, which {type(self.env).__name__} "
                "cannot do; use a DummyVecEnv or SubprocVecEnv without VecEnv wrappers (wrap each env instead, e.g. "
                "gymnasium.wrappers.NormalizeObservation), or n_task_groups=1."
            )
        observation_spaces = (
            list(self.observation_space.spaces.values())
            if isinstance(self.observation_space, spaces.Dict)
            else [self.observation_space]
        )
        for name, space in [*(("observation", space) for space in observation_spaces), ("action", self.action_space)]:
            if not isinstance(space, _SUPPORTED_SPACES):
                raise ValueError(
                    f"MLSH: env has the {name} space {space}, which MLSH does not support; use an env (or a wrapper) "
                    "with Box, Discrete, MultiDiscrete or MultiBinary spaces (observations may be a Dict of them, "
                    "with policy='MultiInputPolicy')."
                )

    def _setup_model(self) -> None:
        self._check_parameters()
        self._setup_lr_schedule()
        # schedules, as PPO's: model.clip_range(progress_remaining) is the value in use
        self.clip_range = FloatSchedule(self.clip_range)
        if self.clip_range_vf is not None:
            self.clip_range_vf = FloatSchedule(self.clip_range_vf)
        self.set_random_seed(self.seed)
        self._setup_task_groups()

        master_gamma = self.gamma if self.master_gamma is None else self.master_gamma
        dict_obs = isinstance(self.observation_space, spaces.Dict)
        observation_space: Any = self.observation_space  # a Dict exactly where the Dict buffers are used
        self.rollout_buffer = (TaggedDictRolloutBuffer if dict_obs else TaggedRolloutBuffer)(
            self.n_steps,
            observation_space,
            self.action_space,
            device=self.device,
            gamma=self.gamma,
            gae_lambda=self.gae_lambda,
            n_envs=self.n_envs,
        )
        self.master_rollout_buffer = (MacroDictRolloutBuffer if dict_obs else MacroRolloutBuffer)(
            self.n_steps,
            observation_space,
            spaces.Discrete(self.n_subpolicies),
            device=self.device,
            gamma=master_gamma,
            gae_lambda=self.gae_lambda,
            n_envs=self.n_envs,
        )
        self.policy = self.policy_class(  # type: ignore[assignment]
            self.observation_space,
            self.action_space,
            self.lr_schedule,
            master_lr_schedule=FloatSchedule(self.master_learning_rate),
            n_subpolicies=self.n_subpolicies,
            macro_duration=self.macro_duration,
            master_exploration=self.master_exploration,
            n_masters=self.n_task_groups,
            normalize_observations=self.normalize_observations and normalizable(self.observation_space),
            clip_obs=self.clip_obs,
            normalize_rewards=self.normalize_rewards,
            clip_reward=self.clip_reward,
            **self.policy_kwargs,
        )
        self.policy = self.policy.to(self.device)
        self._maybe_recommend_cpu("MLSHPolicy")

        shared = dict(
            n_epochs=self.n_epochs,
            clip_range=self.clip_range,
            clip_range_vf=self.clip_range_vf,
            normalize_advantage=self.normalize_advantage,
            vf_coef=self.vf_coef,
            max_grad_norm=self.max_grad_norm,
            target_kl=self.target_kl,
            verbose=self.verbose,
        )
        self.master_learners = [
            PPOLearner(
                master,  # type: ignore[arg-type]
                BufferView(self.master_rollout_buffer),
                learning_rate=self.master_learning_rate,
                batch_size=self.master_batch_size,
                ent_coef=self.ent_coef if self.master_ent_coef is None else self.master_ent_coef,
                **shared,  # type: ignore[arg-type]
            )
            for master in self.policy.masters
        ]
        self.subpolicy_learners = [
            PPOLearner(
                subpolicy,  # type: ignore[arg-type]
                BufferView(self.rollout_buffer),
                learning_rate=self.learning_rate,
                batch_size=self.batch_size,
                ent_coef=self.ent_coef,
                scale_lr_by_fill=self.scale_subpolicy_lr,
                **shared,  # type: ignore[arg-type]
            )
            for k, subpolicy in enumerate(self.policy.subpolicies)
        ]
        self._check_task_protocol()

    def _setup_task_groups(self) -> None:
        """Make the task groups (unless a loaded model brought its own) and apply the current settings to them."""
        if self.task_groups is None or len(self.task_groups) != self.n_task_groups:
            self.task_groups = TaskSchedule(self.n_task_groups, self.seed)
        upgrade_legacy_schedule(self.__dict__, self.task_groups)  # a file saved before task groups
        self.task_groups.first_group, self.task_groups.total_groups = self._group_placement()
        self.task_groups.configure(self.n_envs, self.warmup_iterations, self.joint_iterations, self.train_subpolicies)

    def _group_placement(self) -> tuple[int, int]:
        """:return: The index of this model's first task group among the run's groups, and the run's number of groups."""
        return 0, self.n_task_groups

    def _check_task_protocol(self) -> None:
        self._env_has_tasks = self.env is not None and has_task_protocol(self.env)
        if self._env_has_tasks and isinstance(self.env, DummyVecEnv) and not takes_rng(self.env.envs[0]):
            raise ValueError(
                "MLSH: the env's sample_task() takes no random generator; MLSH draws tasks with a generator of its own "
                "(seeded, saved with the model), so define it as sample_task(self, rng=None) and draw with rng when given "
                "(or wrap the env in sb3_mlsh.TaskSamplerWrapper)."
            )
        tasks = finite_tasks(self.env) if self._env_has_tasks else None  # type: ignore[arg-type]
        if self.distinct_group_tasks and self._env_has_tasks and tasks is None:
            raise ValueError(
                "MLSH: distinct_group_tasks=True draws each group's task from the env's finite task list, and this env "
                "has none (no train_tasks or tasks attribute); give it one (sb3_mlsh.TaskSamplerWrapper(env, tasks=[...])) "
                "or set distinct_group_tasks=False."
            )
        # a finite task set: each task's returns are kept (logged as their spread above SMALL_TASK_SET tasks)
        self._task_set_size = None if tasks is None else len(tasks)
        if self.env is not None and not self._env_has_tasks and self.train_subpolicies and not self._warned_single_task:
            self._warned_single_task = True  # once per model, also across save and load
            warn_at_caller(
                "MLSH: the env has no task protocol (sample_task(), set_task(task), task), so it is trained as a "
                "single task. Wrap each env in sb3_mlsh.TaskSamplerWrapper(env, tasks=... or sample_task=..., "
                "set_task=...) to meta-train over a task distribution."
            )

    def _excluded_save_params(self) -> list[str]:
        return [
            *super()._excluded_save_params(),
            "master_rollout_buffer",
            "master_learners",
            "subpolicy_learners",
            "_env_has_tasks",
            "_task_set_size",
            "_new_obs_stats",
            "_new_return_stats",
            "_discounted_returns",
            "_rewarded_masters",
            "reset_master_on_load",
            "schedule_timesteps",
            "_run_clock",
        ]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts = ["policy"]
        state_dicts += [f"policy.masters.{g}.optimizer" for g in range(self.n_task_groups)]
        state_dicts += [f"policy.subpolicies.{k}.optimizer" for k in range(self.n_subpolicies)]
        return state_dicts, []

    def set_parameters(
        self,
        load_path_or_dict: str | dict[str, Any],
        exact_match: bool = True,
        device: th.device | str = "auto",
    ) -> None:
        """
        As SB3's, plus: files saved before task groups (one master, ``policy.master.optimizer``) load;
        with ``reset_master_on_load`` the saved masters are replaced by this model's fresh ones.
        A saved number of masters other than ``n_task_groups`` raises ``RuntimeError`` (as PyTorch's
        ``load_state_dict`` does for other mismatches), naming the fix.
        """
        if isinstance(load_path_or_dict, dict):
            params = dict(load_path_or_dict)
        else:
            params = load_from_zip_file(load_path_or_dict, device=device, load_data=False)[1]
        params = upgrade_legacy_parameters(params)
        if "policy" in params:
            policy = params["policy"]
            if self.reset_master_on_load:
                policy = {k: v for k, v in policy.items() if not k.startswith("masters.")}
                policy.update({k: v for k, v in self.policy.state_dict().items() if k.startswith("masters.")})
                params = {k: v for k, v in params.items() if not k.startswith("policy.masters.")}
                masters = cast(list[MasterPolicy], list(self.policy.masters))
                params.update({f"policy.masters.{g}.optimizer": m.optimizer.state_dict() for g, m in enumerate(masters)})
            saved_masters = {k.split(".")[1] for k in policy if k.startswith("masters.")}
            if saved_masters and len(saved_masters) != self.n_task_groups:
                # not a ValueError: BaseAlgorithm.load reads those as an old DQN file
                raise RuntimeError(
                    f"MLSH: the saved model has {len(saved_masters)} masters (task groups), this one n_task_groups="
                    f"{self.n_task_groups}; load with the saved n_task_groups, or with reset_master_on_load=True to start "
                    "fresh masters (the paper's transfer)."
                )
            params["policy"] = policy
        super().set_parameters(params, exact_match=exact_match, device=device)

    def save(
        self,
        path: str | pathlib.Path | io.BufferedIOBase,
        exclude: Iterable[str] | None = None,
        include: Iterable[str] | None = None,
    ) -> None:
        """
        As SB3's ``save``, but a file at ``path`` is replaced only by a complete save: the model is
        written to a temporary file in the same folder, which then atomically takes its name. An
        interrupted save (an error, a full disk, a killed process) leaves an earlier file intact.

        :param path: Where to save (``.zip`` is added if it has no suffix), or a file object.
        :param exclude: Names of parameters not to save, in addition to the default ones.
        :param include: Names of parameters to save that would otherwise be excluded.
        """
        if not isinstance(path, (str, os.PathLike)):
            super().save(path, exclude, include)  # a file object: its owner decides where the bytes go
            return
        target = pathlib.Path(path)
        if target.suffix == "":
            target = target.with_name(target.name + ".zip")  # as SB3's save
        atomic_write(target, lambda file: super(MLSH, self).save(file, exclude, include))

    @classmethod
    def load(
        cls: type[SelfMLSH],
        path: str | pathlib.Path | io.BufferedIOBase,
        env: GymEnv | None = None,
        device: th.device | str = "auto",
        custom_objects: dict[str, Any] | None = None,
        print_system_info: bool = False,
        force_reset: bool = True,
        **kwargs: Any,
    ) -> SelfMLSH:
        """
        As SB3's ``load``; a model saved before observation normalisation existed (sb3-mlsh 0.1.0) loads
        with ``normalize_observations=False``, as it was trained.
        """
        saved = saved_data(path)
        if saved is not None and "n_subpolicies" not in saved:
            raise ValueError(
                f"MLSH.load: {path} is not an MLSH model (it has no sub-policies): its policy is "
                f"{policy_name(saved)}. Load it with the algorithm that saved it, e.g. stable_baselines3.PPO.load(path)."
            )
        kwargs = {**legacy_load_defaults(saved), **kwargs}
        return super().load(path, env, device, custom_objects, print_system_info, force_reset, **kwargs)

    def set_env(self, env: GymEnv, force_reset: bool = True) -> None:
        super().set_env(env, force_reset)
        if force_reset:
            self._decide_afresh()
        self._check_task_protocol()

    # --------------------------------------------------------------- schedule

    @property
    def _group0(self) -> TaskGroup:
        assert self.task_groups is not None
        return self.task_groups[0]

    @property
    def phase(self) -> str:
        """Task group 0's phase: ``"warmup"``, ``"joint"``, or ``"master_only"`` if ``train_subpolicies=False``."""
        return self._group0.phase

    @property
    def current_task(self) -> Any:
        """Task group 0's task."""
        return self._group0.task

    @property
    def tasks_sampled(self) -> int:
        """Tasks task group 0 has started."""
        return self._group0.tasks_sampled

    @property
    def iteration_in_task(self) -> int:
        """Iterations task group 0 has completed on its task."""
        return self._group0.iteration_in_task

    def reset_master(self) -> None:
        """Re-initialise every master's weights and optimizer state; their next decisions are made afresh."""
        self.policy.reset_master()
        self._decide_afresh()

    def _draw_task(self, group: TaskGroup) -> Any:
        """
        :return: ``group``'s next task: drawn by the env, or with ``distinct_group_tasks`` uniformly among the tasks
            that no other group holds (among all of them when every task is held).
        """
        assert self.env is not None and self.task_groups is not None
        rng = self.task_groups.task_rng()
        if not self.distinct_group_tasks:
            return sample_task(self.env, rng, index=group.envs.start)
        tasks = finite_tasks(self.env)
        assert tasks is not None  # checked with the task protocol
        held = [other.task for other in self.task_groups if other is not group and other.task is not None]
        free = [task for task in tasks if not any(same_task(task, other) for other in held)] or tasks
        return free[int(rng.integers(len(free)))]

    def _start_task(self, group: TaskGroup) -> None:
        """
        Start ``group``'s next task: re-initialise its master and, if the env has the task protocol,
        sample the task, set it on the group's envs and reset them. Without the protocol the env is
        one task: its episodes go on, and the fresh master decides afresh where they are.
        """
        assert self.env is not None and self.task_groups is not None
        task = None
        if self._env_has_tasks:
            task = self._draw_task(group)
            set_task(self.env, task, indices=list(group.envs))
        self.task_groups.start_task(group, task)
        self.policy.reset_master(group.index)
        envs = np.array(group.envs)
        if not self._env_has_tasks:
            if self._macro_state is not None:
                inputs = self.policy.normalize_observation(self._last_obs)  # type: ignore[arg-type]
                self._decide(inputs, envs, np.asarray(self._last_episode_starts)[envs])
            return
        if len(envs) == self.env.num_envs:
            self._last_obs = self.env.reset()  # type: ignore[assignment]
            self._last_episode_starts = np.ones((self.env.num_envs,), dtype=bool)
            self._decide_afresh()
            return
        reset_obs = [obs for obs, _ in self.env.env_method("reset", indices=list(envs))]
        put(self._last_obs, envs, stack(reset_obs))
        self._last_episode_starts[envs] = True  # type: ignore[index]
        if self._macro_state is not None:
            self._decide(self.policy.normalize_observation(self._last_obs), envs, np.ones(len(envs), dtype=bool))  # type: ignore[arg-type]

    def _update_current_progress_remaining(self, num_timesteps: int, total_timesteps: int) -> None:
        super()._update_current_progress_remaining(num_timesteps, self.schedule_timesteps or total_timesteps)

    def _setup_learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        reset_num_timesteps: bool = True,
        tb_log_name: str = "run",
        progress_bar: bool = False,
    ) -> tuple[int, BaseCallback]:
        if reset_num_timesteps or self._last_obs is None:
            # The envs are about to be reset: decisions restart, and the tasks under way are kept
            self._decide_afresh()
            assert self.env is not None and self.task_groups is not None
            for group in self.task_groups:
                if group.phase != "master_only" and group.iteration_in_task > 0 and self._env_has_tasks:
                    set_task(self.env, group.task, indices=list(group.envs))
        setup = super()._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar)
        # learn called again and again to go on (checkpoint chunks): time and fps are the run's, in this process
        if reset_num_timesteps or self._run_clock is None:
            self._run_clock = (self.start_time, self._num_timesteps_at_start)
        else:
            self.start_time, self._num_timesteps_at_start = self._run_clock
        return setup

    def dump_logs(self, iteration: int = 0) -> None:
        """SB3's logs, with ``time/iterations`` counting the run's iterations, not this ``learn`` call's."""
        super().dump_logs(self._n_updates + 1 if iteration > 0 else 0)

    # ---------------------------------------------------------------- rollout

    def _decide_afresh(self) -> None:
        """Drop the macro steps under way (the envs were reset): at the next step every env's master chooses anew."""
        self._macro_state = None

    def _decide(self, inputs: Observations, env_indices: np.ndarray, episode_start: np.ndarray) -> None:
        """
        For each env in ``env_indices``, its group's master chooses a sub-policy at ``inputs[env_indices]`` (the
        networks' inputs: the observations, normalised with ``normalize_observations``): a macro step begins there.
        """
        assert self.task_groups is not None
        decision_inputs = take(inputs, env_indices)
        with th.no_grad():
            chosen, value, log_prob = self.policy.decide(
                obs_as_tensor(decision_inputs, self.device), self.task_groups.group_of_env[env_indices]
            )
        if self._macro_state is None:
            self._macro_state = MacroState.empty(inputs, n_rows(inputs))
        self._macro_state.begin(
            env_indices, decision_inputs, chosen.cpu().numpy(), value.cpu().numpy().flatten(), log_prob.cpu().numpy(),
            episode_start, self.macro_duration,
        )  # fmt: skip

    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: RolloutBuffer,
        n_rollout_steps: int,
    ) -> bool:
        """
        Collect ``n_rollout_steps`` steps per env with the hierarchy: sub-policy steps (tagged with the
        active sub-policy) go to ``rollout_buffer``, macro transitions to ``master_rollout_buffer``.
        First, each task group whose task is complete starts a new one. A callback finds SB3's names in its
        ``locals``: ``new_obs`` as the env returned it, ``rewards``, ``dones``, ``infos``; and the networks' inputs
        (the observations normalised) as ``last_inputs`` and ``new_inputs``.

        :param env: The training environment.
        :param callback: Callback called at every environment step.
        :param rollout_buffer: The sub-policy buffer (a ``TaggedRolloutBuffer``).
        :param n_rollout_steps: Steps to collect per env.
        :return: True if all steps were collected, False if the callback stopped training.
        """
        assert isinstance(rollout_buffer, TaggedRolloutBuffer) and self.task_groups is not None
        for group in self.task_groups.starting():
            self._start_task(group)
        assert self._last_obs is not None, "No previous observation was provided"
        # the networks' inputs: the observations, normalised with statistics that stay fixed until train() ends
        last_inputs = cast(Observations, self.policy.normalize_observation(self._last_obs))
        if self._macro_state is None:
            self._decide(last_inputs, np.arange(env.num_envs), np.asarray(self._last_episode_starts, dtype=bool))
        macro = self._macro_state
        assert macro is not None

        self.policy.set_training_mode(False)
        rollout_buffer.reset()
        self.master_rollout_buffer.reset()
        group_of_env = self.task_groups.group_of_env
        self._rewarded_masters = np.zeros(self.n_task_groups, dtype=bool)
        bootstrapped, earned = 0.0, 0.0  # reward magnitudes: from time-limit bootstraps, from the env
        normalizer, reward_normalizer = self.policy.obs_normalizer, self.policy.reward_normalizer
        self._new_obs_stats = self._new_return_stats = None
        # this iteration's observations and discounted returns, for the normalisers' statistics (computed once, when
        # all are in)
        observed: list[np.ndarray] | None = [] if normalizer is not None and self.train_subpolicies else None
        returns_seen: list[np.ndarray] | None = [] if reward_normalizer is not None and self.train_subpolicies else None
        if returns_seen is not None and (self._discounted_returns is None or len(self._discounted_returns) != env.num_envs):
            self._discounted_returns = np.zeros(env.num_envs)
        callback.on_rollout_start()

        n_steps = 0
        while n_steps < n_rollout_steps:
            # each env's active sub-policy acts
            with th.no_grad():
                actions, values, log_probs = self.policy(obs_as_tensor(last_inputs, self.device), macro.active)
            actions = actions.cpu().numpy()
            clipped_actions = actions
            if isinstance(self.action_space, spaces.Box):
                clipped_actions = np.clip(actions, self.action_space.low, self.action_space.high)

            new_obs, rewards, dones, infos = env.step(clipped_actions)
            self.num_timesteps += env.num_envs
            _check_finite(cast(Observations, new_obs), rewards, self.num_timesteps)  # no Tuple spaces (checked)
            if observed is not None:
                observed.append(np.array(new_obs, dtype=np.float64))  # a copy: a VecEnv may reuse its array
            new_inputs = cast(Observations, self.policy.normalize_observation(cast(Observations, new_obs)))

            callback.update_locals(locals())
            if not callback.on_step():
                return False

            self._update_info_buffer(infos, dones)
            if dones.any() and self._task_set_size is not None:
                tasks = [self.task_groups[int(g)].task for g in group_of_env]
                keep_task_returns(self._task_returns, infos, tasks, self._stats_window_size)
            n_steps += 1
            if isinstance(self.action_space, spaces.Discrete):
                actions = actions.reshape(-1, 1)

            macro.step(rewards)
            if returns_seen is not None:  # as VecNormalize: the return restarts with each episode
                assert self._discounted_returns is not None
                starts = np.asarray(self._last_episode_starts, dtype=bool)
                self._discounted_returns = np.where(starts, 0.0, self.gamma * self._discounted_returns) + rewards
                returns_seen.append(self._discounted_returns)
            # the sub-policies' rewards (the masters' are the env's, summed by the macro step)
            sub_rewards = rewards if reward_normalizer is None else reward_normalizer.normalize(rewards)
            earned += float(np.abs(sub_rewards).sum())
            if self.bootstrap_truncation:
                bootstrapped += self._bootstrap_time_limits(sub_rewards, dones, infos)

            rollout_buffer.add(
                last_inputs,
                actions,
                sub_rewards,
                self._last_episode_starts,  # type: ignore[arg-type]
                values,
                log_probs,
                subpolicy=macro.active,
            )

            # where a macro step ends: the master's transition, and its group's master chooses again
            ended = macro.ended(dones)
            if len(ended) > 0:
                self.master_rollout_buffer.add(*macro.transitions(ended), env_indices=ended)
                self._rewarded_masters[group_of_env[ended[macro.earned[ended]]]] = True
                self._decide(new_inputs, ended, dones[ended])

            last_inputs = new_inputs
            self._last_obs = new_obs  # type: ignore[assignment]  # as the env gives it
            self._last_episode_starts = dones

        with th.no_grad():
            last_values = self.policy.predict_values(obs_as_tensor(new_inputs, self.device), macro.active)
        rollout_buffer.compute_returns_and_advantage(last_values=last_values, dones=dones)
        self.master_rollout_buffer.compute_returns_and_advantage(
            last_values=th.as_tensor(macro.value), dones=macro.episode_start
        )

        if observed is not None and normalizer is not None:
            self._new_obs_stats = RunningMeanStd(epsilon=0.0, shape=tuple(normalizer.mean.shape))
            self._new_obs_stats.update(np.concatenate(observed))
        if returns_seen is not None:
            self._new_return_stats = RunningMeanStd(epsilon=0.0, shape=())
            self._new_return_stats.update(np.concatenate(returns_seen))
        usage = np.bincount(rollout_buffer.subpolicies.ravel(), minlength=self.n_subpolicies)
        record_rollout(self.logger, self.task_groups, usage, self._task_returns, self._task_set_size)
        self.logger.record("rollout/bootstrap_fraction", bootstrapped / max(bootstrapped + earned, 1e-8))
        self.logger.record("rollout/subpolicy_divergence", rollout_divergence(self.policy, rollout_buffer))
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    def _bootstrap_time_limits(self, rewards: np.ndarray, dones: np.ndarray, infos: list[dict[str, Any]]) -> float:
        """
        A time limit is not a termination: where an episode was cut by one, add the discounted value of its final
        observation to the step's reward (``rewards``, in place; the active sub-policy's value) and to the macro
        step's (the master's value).

        :return: The magnitude of the sub-policies' bootstraps added (logged against the env's rewards).
        """
        assert self._macro_state is not None and self.task_groups is not None
        macro, master_gamma = self._macro_state, self.master_rollout_buffer.gamma
        added = 0.0
        for idx in np.flatnonzero(dones):
            if infos[idx].get("terminal_observation") is not None and infos[idx].get("TimeLimit.truncated", False):
                terminal = self.policy.obs_to_tensor(self.policy.normalize_observation(infos[idx]["terminal_observation"]))[0]
                with th.no_grad():
                    sub_value = self.policy.subpolicies[macro.active[idx]].predict_values(terminal)[0].item()
                    master_value = self.policy.masters[self.task_groups.group_of_env[idx]].predict_values(terminal)[0].item()
                rewards[idx] += self.gamma * sub_value
                macro.reward[idx] += master_gamma * master_value
                added += abs(self.gamma * sub_value)
        return added

    # ------------------------------------------------------------------ train

    def train(self) -> None:
        """
        One iteration's updates: each task group's master on its own macro transitions (with
        ``master_skip_rewardless``, only if one of them earned a reward); each sub-policy once, on the steps it took
        in the groups in their joint phase (a group in its warm-up trains its master only); then the observation
        normaliser takes in this iteration's observations, and the task schedule advances.
        """
        assert self.task_groups is not None
        self._train_masters()
        self._train_subpolicies(self.task_groups.joint_envs())
        if self._new_obs_stats is not None and self.policy.obs_normalizer is not None:
            self.policy.obs_normalizer.update(self._pooled_stats(self._new_obs_stats))
            self._new_obs_stats = None
        if self._new_return_stats is not None and self.policy.reward_normalizer is not None:
            self.policy.reward_normalizer.update(self._pooled_stats(self._new_return_stats))
            self._new_return_stats = None
        self._n_updates += 1
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.task_groups.end_iteration()

    def _train_masters(self) -> None:
        """Update each task group's master on the macro transitions of its envs."""
        assert self.task_groups is not None and self._rewarded_masters is not None
        self.master_rollout_buffer.flatten()
        master_logger = LevelLogger(self.logger, "master", average=True)
        groups = self.task_groups.group_of_env[self.master_rollout_buffer.env_indices]
        skipped = 0
        for group, learner in zip(self.task_groups, self.master_learners, strict=True):
            learner.rollout_buffer.select(groups == group.index)
            if self.master_skip_rewardless and not self._rewarded_masters[group.index]:
                skipped += 1
            elif learner.rollout_buffer.size() >= _MIN_UPDATE_ROWS:
                learner.update(master_logger, self._current_progress_remaining)
        if self.master_skip_rewardless:
            self.logger.record("train/master/skipped_rewardless", skipped)

    def _train_subpolicies(self, joint_envs: np.ndarray) -> list[int]:
        """
        Update each sub-policy once, on the steps it took in the envs of the groups in their joint phase.

        :param joint_envs: Boolean mask over the envs: those whose steps train the sub-policies.
        :return: Per sub-policy, the steps its update read (0: not updated).
        """
        rows = [0] * self.n_subpolicies
        if not joint_envs.any():
            return rows
        self.rollout_buffer.flatten()
        joint_steps = joint_envs[self.rollout_buffer.env_indices]
        sub_logger = LevelLogger(self.logger, "sub", average=True)
        for k, learner in enumerate(self.subpolicy_learners):
            learner.rollout_buffer.select(joint_steps & (self.rollout_buffer.subpolicies == k))
            if learner.rollout_buffer.size() >= _MIN_UPDATE_ROWS:
                learner.update(sub_logger, self._current_progress_remaining)
                rows[k] = learner.rollout_buffer.size()
        return rows

    def _pooled_stats(self, stats: RunningMeanStd) -> RunningMeanStd:
        """:return: The statistics that update a normaliser (observations, returns): this process's, ``stats``."""
        return stats

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        subpolicy: int | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """
        The hierarchy's action (see ``MLSHPolicy.predict``). With several task groups, a batch of
        ``n_envs`` rows is read as one row per training env, each decided by its group's master;
        any other batch is decided by group 0's master.

        :param observation: One observation or a batch (one row per env).
        :param state: ``(active_subpolicy, steps_left)`` per env, as returned by the previous call; ``None`` makes
            the master choose for every env.
        :param episode_start: Per env, whether an episode starts: the master chooses again there.
        :param deterministic: Whether both levels act deterministically.
        :param subpolicy: Run sub-policy ``k`` alone (no master decides): what each sub-policy does by itself.
        :return: The actions and the next state ``(active_subpolicy, steps_left)``.
        """
        masters = None
        # SB3's annotation says arrays, its code takes Dict observations too
        if self.n_task_groups > 1 and is_vectorized_observation(observation, self.observation_space):  # type: ignore[arg-type]
            if len(observation) == self.n_envs:
                assert self.task_groups is not None
                masters = self.task_groups.group_of_env
        return self.policy.predict(observation, state, episode_start, deterministic, masters=masters, subpolicy=subpolicy)

    def learn(
        self: SelfMLSH,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "MLSH",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfMLSH:
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )


def _check_finite(obs: Observations, rewards: np.ndarray, num_timesteps: int) -> None:
    """Raise ``ValueError`` naming the env and ``VecCheckNan`` if a step returned NaN or inf (before it reaches a network)."""
    arrays = obs.values() if isinstance(obs, dict) else (obs,)
    # the common case: a sum is finite if every term is (one of finite terms that overflows is looked at row by row)
    if math.isfinite(rewards.sum()) and all(math.isfinite(array.sum()) for array in arrays if array.dtype.kind == "f"):
        return
    for what, rows in (("observation", non_finite_rows(obs)), ("reward", np.flatnonzero(~np.isfinite(rewards)))):
        if len(rows) > 0:
            raise ValueError(
                f"MLSH: env {int(rows[0])} returned a NaN or infinite {what} (at step {num_timesteps} of training); "
                "fix the env, or wrap it in stable_baselines3.common.vec_env.VecCheckNan(env, raise_exception=True) "
                "to find the action that led there."
            )
