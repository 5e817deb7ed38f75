"""SB3's PPO update, applied to one level of the hierarchy."""

from typing import Any

import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.common.utils import FloatSchedule

from sb3_mlsh.common.buffers import BufferView


class LevelLogger:
    """
    Hands ``PPO.train``'s ``train/<name>`` records to MLSH's logger as ``train/<level>/<name>``.

    :param logger: MLSH's logger.
    :param level: ``"master"`` or ``"sub"``.
    :param average: Average the records of every learner at this level (the K sub-policies)
        instead of keeping the last one.
    """

    def __init__(self, logger: Logger, level: str, average: bool) -> None:
        self.logger = logger
        self.level = level
        self.average = average

    def record(self, key: str, value: Any, exclude: str | tuple[str, ...] | None = None) -> None:
        key = key.replace("train/", f"train/{self.level}/", 1)
        if self.average:
            self.logger.record_mean(key, value, exclude)
        else:
            self.logger.record(key, value, exclude)


class PPOLearner(PPO):
    """
    SB3's ``PPO.train`` bound to a policy and a buffer that MLSH owns and fills.

    It has no environment and collects nothing: the clipped surrogate loss, value loss, entropy
    bonus, gradient clipping, KL early stop and the learning-rate and clip-range schedules are
    SB3's own, used unchanged for the master and for each sub-policy.

    :param policy: The policy to update (trained in place).
    :param rollout_buffer: Where ``train`` reads its samples.
    :param learning_rate: Learning rate, constant or a schedule of the progress remaining.
    :param batch_size: Minibatch size.
    :param n_epochs: Passes over the buffer per update.
    :param clip_range: PPO clipping parameter (or schedule).
    :param clip_range_vf: Value clipping parameter (or schedule); ``None`` for none.
    :param normalize_advantage: Normalize advantages per minibatch.
    :param ent_coef: Entropy coefficient.
    :param vf_coef: Value loss coefficient.
    :param max_grad_norm: Gradient clipping norm.
    :param target_kl: Stop the epochs early past this approximate KL (``None``: never).
    :param scale_lr_by_fill: Scale the learning rate of an update by the share of a minibatch that the buffer's
        content fills, ``min(1, size / batch_size)``: an update on fewer steps than a minibatch moves the policy less.
    :param verbose: Verbosity level.
    """

    rollout_buffer: BufferView  # type: ignore[assignment]  # what PPO.train reads of a RolloutBuffer

    def __init__(
        self,
        policy: ActorCriticPolicy,
        rollout_buffer: BufferView,
        learning_rate: float | Schedule,
        batch_size: int,
        n_epochs: int,
        clip_range: float | Schedule,
        clip_range_vf: float | Schedule | None,
        normalize_advantage: bool,
        ent_coef: float,
        vf_coef: float,
        max_grad_norm: float,
        target_kl: float | None,
        scale_lr_by_fill: bool = False,
        verbose: int = 0,
    ) -> None:
        super().__init__(
            type(policy),
            env=None,  # type: ignore[arg-type]
            learning_rate=learning_rate,
            batch_size=batch_size,
            n_epochs=n_epochs,
            clip_range=clip_range,
            clip_range_vf=clip_range_vf,
            normalize_advantage=normalize_advantage,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            target_kl=target_kl,
            device=policy.device,
            _init_setup_model=False,
        )
        self.verbose = verbose  # set after construction, which would announce the device
        self.scale_lr_by_fill = scale_lr_by_fill
        self.observation_space = policy.observation_space
        self.action_space = policy.action_space
        self.policy = policy
        self.rollout_buffer = rollout_buffer
        self._setup_lr_schedule()
        self.clip_range = FloatSchedule(self.clip_range)
        if self.clip_range_vf is not None:
            self.clip_range_vf = FloatSchedule(self.clip_range_vf)

    def _update_learning_rate(self, optimizers: list[th.optim.Optimizer] | th.optim.Optimizer) -> None:
        super()._update_learning_rate(optimizers)
        if self.scale_lr_by_fill:
            fill = min(1.0, self.rollout_buffer.size() / self.batch_size)
            for optimizer in optimizers if isinstance(optimizers, list) else [optimizers]:
                for param_group in optimizer.param_groups:
                    param_group["lr"] *= fill

    def update(self, logger: LevelLogger, progress_remaining: float) -> None:
        """
        One PPO update on the buffer's current content.

        :param logger: Where the update's ``train/...`` records go.
        :param progress_remaining: MLSH's training progress remaining (1 to 0), for the schedules.
        """
        self.set_logger(logger)  # type: ignore[arg-type]
        self._current_progress_remaining = progress_remaining
        self.train()
