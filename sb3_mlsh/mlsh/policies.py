"""The MLSH hierarchy as one SB3 policy: a master choosing among K sub-policies every N steps."""

from collections.abc import Callable
from typing import Any, cast

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, CombinedExtractor, FlattenExtractor, NatureCNN
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from stable_baselines3.common.utils import is_vectorized_observation
from torch import nn

from sb3_mlsh.common.distributions import EpsilonCategoricalDistribution
from sb3_mlsh.common.ensemble import PolicyEnsemble
from sb3_mlsh.common.normalization import ObservationNormalizer, RewardNormalizer, normalizable
from sb3_mlsh.common.observations import n_rows, take
from sb3_mlsh.common.save_util import rename_legacy_master_keys


def _legacy_keys_hook(state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    """``load_state_dict`` pre-hook of ``MLSHPolicy`` (a module-level function, so that the policy pickles)."""
    rename_legacy_master_keys(state_dict, prefix)


class MasterPolicy(ActorCriticPolicy):
    """
    The master: an actor-critic policy over ``Discrete(n_subpolicies)``.

    With ``exploration > 0`` its choice is replaced by a uniformly random sub-policy with that
    probability; its action distribution is that mixture (see ``EpsilonCategoricalDistribution``).

    :param observation_space: Observation space.
    :param action_space: ``Discrete(n_subpolicies)``.
    :param lr_schedule: Learning rate schedule.
    :param exploration: Probability of a uniformly random choice.
    :param kwargs: Further ``ActorCriticPolicy`` parameters.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Discrete,
        lr_schedule: Schedule,
        exploration: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)
        self.exploration = exploration
        self.action_dist = EpsilonCategoricalDistribution(int(action_space.n), exploration)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(exploration=self.exploration)
        return data


class MLSHPolicy(BasePolicy):
    """
    The hierarchy: a master policy (theta) and ``n_subpolicies`` sub-policies (phi).

    Every ``macro_duration`` steps, or when an episode starts, the master chooses which sub-policy
    acts. ``predict`` carries, per env, the active sub-policy and the steps left until the next
    decision in its ``state``. Each level is an SB3 ``ActorCriticPolicy`` with its own optimizer;
    by default both are the paper's two hidden layers of 64 tanh units, with separate policy and value networks.

    :param observation_space: Observation space.
    :param action_space: Action space of the sub-policies (the environment's).
    :param lr_schedule: Learning rate schedule of the sub-policies.
    :param master_lr_schedule: Learning rate schedule of the master (default: ``lr_schedule``).
    :param n_subpolicies: Number of sub-policies (K).
    :param macro_duration: Steps between the master's decisions (N).
    :param master_exploration: Probability that the master's choice is replaced by a uniformly random sub-policy.
    :param n_masters: Number of masters, one per task group (``masters[g]``; ``master`` is ``masters[0]``).
    :param net_arch: Sub-policy networks, as in ``ActorCriticPolicy`` (default ``dict(pi=[64, 64], vf=[64, 64])``,
        or ``[]`` after ``NatureCNN``); the attribute then holds the architecture built.
    :param master_net_arch: Master networks (default: ``net_arch``).
    :param activation_fn: Activation function.
    :param ortho_init: Whether to use orthogonal initialization.
    :param log_std_init: Initial log standard deviation of Gaussian sub-policies.
    :param features_extractor_class: Features extractor of every network.
    :param features_extractor_kwargs: Keyword arguments of the features extractor.
    :param share_features_extractor: Share the features extractor between policy and value networks.
    :param normalize_images: Whether to divide images by 255.
    :param optimizer_class: Optimizer of each level.
    :param optimizer_kwargs: Keyword arguments of the optimizer, besides the learning rate.
    :param normalize_observations: Whether both levels see the observations normalised by running statistics
        (``obs_normalizer``; a ``Box`` observation space that is not an image). ``MLSH`` sets it and updates the
        statistics; ``predict`` normalises what it is given.
    :param clip_obs: Bound of the normalised observations.
    :param normalize_rewards: Whether the policy keeps running statistics of the sub-policies' discounted returns
        (``reward_normalizer``), by which ``MLSH`` scales the rewards they learn from; saved with the policy.
    :param clip_reward: Bound of the scaled rewards.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        master_lr_schedule: Schedule | None = None,
        n_subpolicies: int = 2,
        macro_duration: int = 10,
        master_exploration: float = 0.0,
        n_masters: int = 1,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        master_net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.Tanh,
        ortho_init: bool = True,
        log_std_init: float = 0.0,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        share_features_extractor: bool = True,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        normalize_observations: bool = False,
        clip_obs: float = 5.0,
        normalize_rewards: bool = False,
        clip_reward: float = 10.0,
    ) -> None:
        if normalize_observations and not normalizable(observation_space):
            raise ValueError(
                f"MLSHPolicy: normalize_observations=True needs a Box observation space that is not an image, not "
                f"{observation_space}; use normalize_observations=False."
            )
        if optimizer_kwargs is None:
            # as ActorCriticPolicy: a small epsilon avoids NaN with Adam (fused Adam is opt-in: docs/mlsh.md, "Choices")
            optimizer_kwargs = {"eps": 1e-5} if optimizer_class == th.optim.Adam else {}
        super().__init__(
            observation_space,
            action_space,
            features_extractor_class,
            features_extractor_kwargs,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            normalize_images=normalize_images,
        )
        self.n_subpolicies = n_subpolicies
        self.macro_duration = macro_duration
        self.master_exploration = master_exploration
        self.n_masters = n_masters
        self.activation_fn = activation_fn
        self.ortho_init = ortho_init
        self.log_std_init = log_std_init
        self.share_features_extractor = share_features_extractor
        self.normalize_observations = normalize_observations
        self.clip_obs = clip_obs
        # One set of statistics for both levels: they see the same observations, and a fresh master must see
        # them as the frozen sub-policies do
        shape = cast(tuple[int, ...], observation_space.shape)
        self.obs_normalizer = ObservationNormalizer(shape, clip_obs) if normalize_observations else None
        self.normalize_rewards = normalize_rewards
        self.clip_reward = clip_reward
        self.reward_normalizer = RewardNormalizer(clip_reward) if normalize_rewards else None
        common: dict[str, Any] = dict(
            activation_fn=activation_fn,
            ortho_init=ortho_init,
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
            share_features_extractor=share_features_extractor,
            normalize_images=normalize_images,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
        )
        self._master_kwargs: dict[str, Any] = dict(
            observation_space=observation_space,
            action_space=spaces.Discrete(n_subpolicies),
            lr_schedule=lr_schedule if master_lr_schedule is None else master_lr_schedule,
            exploration=master_exploration,
            net_arch=net_arch if master_net_arch is None else master_net_arch,
            **common,
        )
        self.masters = nn.ModuleList(MasterPolicy(**self._master_kwargs) for _ in range(n_masters))
        self.subpolicies = nn.ModuleList(
            ActorCriticPolicy(
                observation_space, action_space, lr_schedule, net_arch=net_arch, log_std_init=log_std_init, **common
            )
            for _ in range(n_subpolicies)
        )
        # What was built (ActorCriticPolicy resolves the default architecture), as SB3's policies report it
        self.net_arch = self.subpolicies[0].net_arch
        self.master_net_arch = self.masters[0].net_arch
        # Each level acts as one batched ensemble where its networks allow (None: one network at a time)
        self.subpolicy_ensemble = PolicyEnsemble.create(self.subpolicies)  # type: ignore[arg-type]
        self.master_ensemble = PolicyEnsemble.create(self.masters)  # type: ignore[arg-type]
        # Files saved before task groups hold one master under "master."
        self._register_load_state_dict_pre_hook(_legacy_keys_hook)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            dict(
                lr_schedule=self._dummy_schedule,
                master_lr_schedule=self._dummy_schedule,
                n_subpolicies=self.n_subpolicies,
                macro_duration=self.macro_duration,
                master_exploration=self.master_exploration,
                n_masters=self.n_masters,
                net_arch=self.net_arch,
                master_net_arch=self.master_net_arch,
                activation_fn=self.activation_fn,
                ortho_init=self.ortho_init,
                log_std_init=self.log_std_init,
                share_features_extractor=self.share_features_extractor,
                features_extractor_class=self.features_extractor_class,
                features_extractor_kwargs=self.features_extractor_kwargs,
                optimizer_class=self.optimizer_class,
                optimizer_kwargs=self.optimizer_kwargs,
                normalize_observations=self.normalize_observations,
                clip_obs=self.clip_obs,
                normalize_rewards=self.normalize_rewards,
                clip_reward=self.clip_reward,
            )
        )
        return data

    def normalize_observation(self, observation: np.ndarray | dict[str, np.ndarray]) -> np.ndarray | dict[str, np.ndarray]:
        """
        :param observation: Observations as the env gives them (one or a batch).
        :return: The networks' inputs: normalised by the running statistics with ``normalize_observations``,
            else ``observation`` itself.
        """
        if self.obs_normalizer is None:
            return observation
        return self.obs_normalizer.normalize(cast(np.ndarray, observation))

    @property
    def master(self) -> MasterPolicy:
        """The master of task group 0 (the only one with a single task group)."""
        return self.masters[0]  # type: ignore[return-value]

    def reset_master(self, index: int | None = None) -> None:
        """
        Re-initialise a master's weights (a fresh random draw) and its optimizer's state.

        :param index: The master (task group) to reset; ``None``: every master.
        """
        for g in range(self.n_masters) if index is None else [index]:
            fresh = MasterPolicy(**self._master_kwargs)
            master = cast(MasterPolicy, self.masters[g])
            master.load_state_dict(fresh.state_dict())
            master.optimizer.load_state_dict(fresh.optimizer.state_dict())

    def _per_policy(
        self, policies: nn.ModuleList, index: np.ndarray, fn: Callable[[ActorCriticPolicy, th.Tensor], tuple[th.Tensor, ...]]
    ) -> tuple[th.Tensor, ...]:
        """
        Run ``fn(policies[k], rows)`` for each ``k`` on the rows where ``index`` is ``k``, and put the
        results back in row order (the path for networks that ``PolicyEnsemble`` cannot batch).
        """
        outputs: list[th.Tensor] = []
        for k in np.unique(index):
            rows = th.as_tensor(np.flatnonzero(index == k), device=self.device)
            results = fn(policies[k], rows)
            if not outputs:
                outputs = [th.empty((len(index), *r.shape[1:]), dtype=r.dtype, device=r.device) for r in results]
            for output, result in zip(outputs, results, strict=True):
                output[rows] = result
        return tuple(outputs)

    def forward(
        self, obs: PyTorchObs, active: np.ndarray, deterministic: bool = False
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """
        Act with the active sub-policy of each row.

        :param obs: Observations.
        :param active: Index of the active sub-policy per row.
        :param deterministic: Whether to use deterministic actions.
        :return: Actions, values and log-probabilities, each from the row's active sub-policy.
        """
        ensemble = self.subpolicy_ensemble
        if ensemble is not None:
            return ensemble.forward(obs, active, deterministic)
        actions, values, log_probs = self._per_policy(
            self.subpolicies, active, lambda pi, rows: pi(take(obs, rows), deterministic)
        )
        return actions, values, log_probs

    def predict_values(self, obs: PyTorchObs, active: np.ndarray) -> th.Tensor:
        """
        :param obs: Observations.
        :param active: Index of the active sub-policy per row.
        :return: The value of each row under its active sub-policy.
        """
        ensemble = self.subpolicy_ensemble
        if ensemble is not None:
            return ensemble.predict_values(obs, active)
        return self._per_policy(self.subpolicies, active, lambda pi, rows: (pi.predict_values(take(obs, rows)),))[0]

    def _act(self, obs: PyTorchObs, active: np.ndarray, deterministic: bool) -> th.Tensor:
        ensemble = self.subpolicy_ensemble
        if ensemble is not None:
            return ensemble.act(obs, active, deterministic)
        return self._per_policy(self.subpolicies, active, lambda pi, rows: (pi._predict(take(obs, rows), deterministic),))[0]

    def decide(
        self, obs: PyTorchObs, masters: np.ndarray, deterministic: bool = False
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """
        The masters' forward pass: choices, values and log-probabilities.

        :param obs: Observations at decisions.
        :param masters: Per row, the index of the master that decides.
        :param deterministic: Whether the masters choose deterministically.
        :return: The chosen sub-policy, the master's value and the choice's log-probability, per row.
        """
        ensemble = self.master_ensemble
        if ensemble is not None:
            return ensemble.forward(obs, masters, deterministic)
        choices, values, log_probs = self._per_policy(
            self.masters, masters, lambda pi, rows: pi(take(obs, rows), deterministic)
        )
        return choices, values, log_probs

    def choose(self, obs: PyTorchObs, masters: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """
        :param obs: Observations at decisions.
        :param masters: Per row, the index of the master that decides.
        :param deterministic: Whether the masters choose deterministically.
        :return: The chosen sub-policy of each row.
        """
        ensemble = self.master_ensemble
        if ensemble is not None:
            return ensemble.act(obs, masters, deterministic).cpu().numpy()
        choices = self._per_policy(self.masters, masters, lambda pi, rows: (pi._predict(take(obs, rows), deterministic),))[0]
        return choices.cpu().numpy()

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        """The action at a decision point: master 0 chooses for every row, then the chosen sub-policies act."""
        active = self.master._predict(observation, deterministic).cpu().numpy()
        return self._act(observation, active, deterministic)

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        masters: np.ndarray | None = None,
        subpolicy: int | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """
        Get the hierarchy's action; the master chooses where ``state`` says a decision is due.

        :param observation: One observation or a batch (one row per env).
        :param state: ``(active_subpolicy, steps_left)`` per env, as returned by the previous call;
            ``None`` makes the master choose for every env.
        :param episode_start: Per env, whether an episode starts: the master chooses again there.
        :param deterministic: Whether both levels act deterministically.
        :param masters: Per row, the index of the master that decides there (``None``: master 0 everywhere).
        :param subpolicy: Sub-policy ``k`` acts alone on every row (no master decides, ``state`` is not read);
            the state returned then lets the master choose at the next call without ``subpolicy``.
        :return: The actions and the next state ``(active_subpolicy, steps_left)``.
        """
        self.set_training_mode(False)
        if isinstance(observation, tuple) and len(observation) == 2 and isinstance(observation[1], dict):
            raise ValueError(
                "You passed a tuple (observation, info) to predict(), as gymnasium's reset() returns; pass the "
                "observation alone: obs, info = env.reset(); model.predict(obs). A VecEnv's reset() returns the "
                "observation alone. See https://stable-baselines3.readthedocs.io/en/master/guide/vec_envs.html"
            )
        if self.obs_normalizer is not None and not isinstance(observation, dict):
            observation = np.asarray(observation)
            is_vectorized_observation(observation, self.observation_space)  # SB3's error for a wrong shape, first
        obs_tensor, vectorized_env = self.obs_to_tensor(self.normalize_observation(observation))
        rows_in_batch = n_rows(obs_tensor)
        if subpolicy is not None:
            self._check_subpolicies(np.asarray([subpolicy]), "subpolicy")
            active = np.full(rows_in_batch, subpolicy, dtype=np.int64)
            with th.no_grad():
                actions = self._act(obs_tensor, active, deterministic).cpu().numpy()
            return self._actions_out(actions, vectorized_env), (active, np.zeros(rows_in_batch, dtype=np.int64))
        if state is None:
            active = np.zeros(rows_in_batch, dtype=np.int64)
            steps_left = np.zeros(rows_in_batch, dtype=np.int64)
        else:
            active = np.array(state[0], dtype=np.int64).reshape(rows_in_batch)
            steps_left = np.array(state[1], dtype=np.int64).reshape(rows_in_batch)
        if episode_start is not None:
            steps_left[np.asarray(episode_start, dtype=bool).reshape(rows_in_batch)] = 0
        decide = steps_left <= 0
        if state is not None:
            self._check_subpolicies(active[~decide], "state[0] (the active sub-policy of each row)")
        with th.no_grad():
            if decide.any():
                rows = th.as_tensor(np.flatnonzero(decide), device=self.device)
                deciders = np.zeros(rows_in_batch, dtype=np.int64) if masters is None else np.asarray(masters)
                active[decide] = self.choose(take(obs_tensor, rows), deciders[decide], deterministic)
                steps_left[decide] = self.macro_duration
            actions = self._act(obs_tensor, active, deterministic).cpu().numpy()
        steps_left -= 1
        return self._actions_out(actions, vectorized_env), (active, steps_left)

    def _check_subpolicies(self, indices: np.ndarray, name: str) -> None:
        """Raise ``ValueError`` naming ``name`` if an index is not that of a sub-policy."""
        wrong = indices[(indices < 0) | (indices >= self.n_subpolicies)]
        if len(wrong) > 0:
            raise ValueError(
                f"predict(): {name} holds sub-policy {int(wrong[0])}, but this model has {self.n_subpolicies} "
                f"(0 to {self.n_subpolicies - 1})."
            )

    def _actions_out(self, actions: np.ndarray, vectorized_env: bool) -> np.ndarray:
        """:return: The actions shaped as the action space (clipped to a ``Box``), without the batch axis if one row came."""
        actions = actions.reshape((-1, *(self.action_space.shape or ())))
        if isinstance(self.action_space, spaces.Box):
            actions = np.clip(actions, self.action_space.low, self.action_space.high)
        if not vectorized_env:
            actions = actions.squeeze(axis=0)
        return actions


class MLSHCnnPolicy(MLSHPolicy):
    """
    ``MLSHPolicy`` for image observations: every network (the masters' and the sub-policies') starts
    with its own ``NatureCNN`` (and, by default, no hidden layers after it, as SB3's ``CnnPolicy``).
    Parameters as in ``MLSHPolicy``.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        features_extractor_class: type[BaseFeaturesExtractor] = NatureCNN,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            observation_space, action_space, lr_schedule, features_extractor_class=features_extractor_class, **kwargs
        )


class MLSHMultiInputPolicy(MLSHPolicy):
    """
    ``MLSHPolicy`` for ``Dict`` observations: every network starts with its own ``CombinedExtractor``
    (a ``NatureCNN`` per image key, the other keys flattened). Parameters as in ``MLSHPolicy``.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        features_extractor_class: type[BaseFeaturesExtractor] = CombinedExtractor,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            observation_space, action_space, lr_schedule, features_extractor_class=features_extractor_class, **kwargs
        )


MlpPolicy = MLSHPolicy
CnnPolicy = MLSHCnnPolicy
MultiInputPolicy = MLSHMultiInputPolicy
