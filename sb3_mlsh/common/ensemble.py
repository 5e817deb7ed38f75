"""K actor-critic policies of one architecture evaluated as one batched ensemble: one matrix product per layer."""

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch as th
from stable_baselines3.common.distributions import (
    BernoulliDistribution,
    CategoricalDistribution,
    DiagGaussianDistribution,
    Distribution,
    MultiCategoricalDistribution,
)
from stable_baselines3.common.policies import ActorCriticPolicy, BaseModel
from stable_baselines3.common.type_aliases import PyTorchObs
from torch import nn
from torch.distributions import Distribution as TorchDistribution

from sb3_mlsh.common.distributions import EpsilonCategoricalDistribution

_DISTRIBUTIONS = (DiagGaussianDistribution, CategoricalDistribution, MultiCategoricalDistribution, BernoulliDistribution)
_LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))  # as torch.distributions.Normal.log_prob computes it


@contextmanager
def _unvalidated() -> Iterator[None]:
    """
    Distributions made and used within skip torch's argument checks (``validate_args``): on MovementBandits
    they took about 10 of the 100 microseconds of a collection step. ``_actions`` checks the one thing
    they would catch that nothing else does, non-finite network outputs.
    """
    previous = TorchDistribution._validate_args
    TorchDistribution.set_default_validate_args(False)
    try:
        yield
    finally:
        TorchDistribution.set_default_validate_args(previous)


def _sample(
    dist: Distribution, params: th.Tensor, log_std: th.Tensor | None, deterministic: bool
) -> tuple[th.Tensor, th.Tensor] | None:
    """
    Actions and their log-probabilities for SB3's diagonal Gaussian and (epsilon-)categorical distributions, by the
    very tensor operations that ``torch.distributions`` runs for them (the same results, bit for bit, under the same
    seed), without building the distribution objects: on a step's few rows that building cost as much as the
    sampling (a categorical over 8 rows: 79 microseconds through the objects, 35 without).

    :param dist: The policies' action distribution (its type and epsilon are read, nothing is written to it).
    :param params: The action net's output per row: the Gaussian's means, or the categorical's logits.
    :param log_std: The Gaussian's log standard deviation per row.
    :param deterministic: The most likely action instead of a sampled one.
    :return: Actions and log-probabilities, or None for the other distributions.
    """
    if type(dist) is DiagGaussianDistribution:
        assert log_std is not None
        std = th.ones_like(params) * log_std.exp()
        with th.no_grad():
            actions = params if deterministic else th.normal(params, std)
        log_prob = -((actions - params) ** 2) / (2 * std**2) - std.log() - _LOG_SQRT_2PI
        return actions, log_prob.sum(dim=1)
    if type(dist) is CategoricalDistribution or (type(dist) is EpsilonCategoricalDistribution and dist.epsilon == 0.0):
        logits = params - params.logsumexp(dim=-1, keepdim=True)
        probs = th.softmax(logits, dim=-1)
    elif type(dist) is EpsilonCategoricalDistribution:
        mixture = (1.0 - dist.epsilon) * th.softmax(params, dim=-1) + dist.epsilon / dist.action_dim
        probs = mixture / mixture.sum(dim=-1, keepdim=True)
        eps = th.finfo(probs.dtype).eps
        logits = th.log(probs.clamp(min=eps, max=1 - eps))
    else:
        return None
    actions = th.argmax(probs, dim=1) if deterministic else th.multinomial(probs, 1, True).reshape(-1)
    return actions, logits.gather(-1, actions.unsqueeze(-1)).squeeze(-1)


def _layers(network: nn.Module) -> list[nn.Module] | None:
    """The modules of an MLP branch (``Linear`` layers and parameter-free activations), or None if it is not one."""
    modules = list(network) if isinstance(network, nn.Sequential) else [network]
    for module in modules:
        if not isinstance(module, nn.Linear) and any(True for _ in module.parameters()):
            return None
    return modules


class PolicyEnsemble:
    """
    Evaluates K ``ActorCriticPolicy`` of one MLP architecture, each on the rows it is chosen for,
    as one batched network: every layer is one batched matrix product over all K, and each row keeps
    the output of its own policy. The cost of a step then hardly depends on K.

    The policies' weights are tied to stacked tensors: each parameter becomes a view of its slice,
    so that optimizer steps and ``load_state_dict`` (which write in place) reach the ensemble at no
    cost; a parameter that was given new storage (e.g. by a move to another device) is stacked and
    tied again. Results equal those of the K networks up to floating-point rounding (a batched
    matrix product sums in another order). The policies stay ordinary modules, each trained by its
    own optimizer; one policy's weights saved alone carry the whole stacked storage with them.

    :param policies: The policies (e.g. the sub-policies, or the masters of the task groups).
    """

    def __init__(self, policies: Sequence[ActorCriticPolicy]) -> None:
        self.policies = policies
        self._branches: dict[str, list[tuple[th.Tensor, th.Tensor, list[nn.Module]]]] = {}
        self._log_std: th.Tensor | None = None
        self._tied: list[th.Tensor] = []
        self._pointers: list[int] = []
        self._tie()

    @classmethod
    def create(cls, policies: Sequence[ActorCriticPolicy]) -> "PolicyEnsemble | None":
        """:return: The ensemble of ``policies``, or None if they cannot be batched (see ``supports``)."""
        return cls(policies) if cls.supports(policies) else None

    @staticmethod
    def supports(policies: Sequence[ActorCriticPolicy]) -> bool:
        """
        :param policies: Candidate policies.
        :return: Whether they can be batched: features extractors without weights (e.g. ``FlattenExtractor``,
            or a ``CombinedExtractor`` of vectors), MLP branches and one of SB3's standard action
            distributions (no gSDE), with the same architecture for all.
        """
        first = policies[0]
        extractors = [first.features_extractor, first.pi_features_extractor, first.vf_features_extractor]
        if any(True for extractor in extractors for _ in extractor.parameters()):
            return False
        if not isinstance(first.action_dist, _DISTRIBUTIONS):
            return False
        branches = (first.mlp_extractor.policy_net, first.mlp_extractor.value_net)
        if any(_layers(branch) is None for branch in branches):
            return False
        shapes = [tuple(p.shape) for p in first.parameters()]
        return all(
            type(policy) is type(first) and [tuple(p.shape) for p in policy.parameters()] == shapes for policy in policies
        )

    def _stack(self, parameters: list[th.Tensor]) -> th.Tensor:
        """Stack ``parameters`` (one per policy) and make each a view of its slice."""
        stacked = th.stack([parameter.detach() for parameter in parameters]).contiguous()
        for k, parameter in enumerate(parameters):
            parameter.data = stacked[k]
        self._tied += parameters
        return stacked

    def _tie(self) -> None:
        """Tie the policies' weights to stacked tensors (see the class description)."""
        self._tied = []
        with th.no_grad():
            for name in ("pi", "vf"):
                per_policy = [self._branch(policy, name) for policy in self.policies]
                self._branches[name] = [
                    (
                        self._stack([branch[depth][0].weight for branch in per_policy]).transpose(1, 2),
                        self._stack([branch[depth][0].bias for branch in per_policy]).unsqueeze(1),
                        activations,
                    )
                    for depth, (_, activations) in enumerate(per_policy[0])
                ]
            if isinstance(self.policies[0].action_dist, DiagGaussianDistribution):
                self._log_std = self._stack([policy.log_std for policy in self.policies])
        self._pointers = [parameter.data_ptr() for parameter in self._tied]

    def _check_tied(self) -> None:
        """Tie again any weight that was given new storage since the last call."""
        if [parameter.data_ptr() for parameter in self._tied] != self._pointers:
            self._tie()

    @staticmethod
    def _branch(policy: ActorCriticPolicy, name: str) -> list[tuple[nn.Linear, list[nn.Module]]]:
        """A branch as its linear layers, each with the activations that follow it; the output layer last."""
        mlp = policy.mlp_extractor.policy_net if name == "pi" else policy.mlp_extractor.value_net
        head = policy.action_net if name == "pi" else policy.value_net
        layers: list[tuple[nn.Linear, list[nn.Module]]] = []
        for module in [*(_layers(mlp) or []), head]:
            if isinstance(module, nn.Linear):
                layers.append((module, []))
            else:
                layers[-1][1].append(module)
        return layers

    def _run(self, name: str, features: th.Tensor, rows: th.Tensor, index: th.Tensor) -> th.Tensor:
        """The branch ``name`` of every policy on ``features``; each row keeps its own policy's output."""
        hidden = features.unsqueeze(0).expand(len(self.policies), *features.shape)
        for weights, biases, activations in self._branches[name]:
            hidden = th.baddbmm(biases, hidden, weights)
            for activation in activations:
                hidden = activation(hidden)
        return hidden[index, rows]

    def _features(self, obs: PyTorchObs) -> th.Tensor:
        # every policy's extractor is the same function without weights
        return BaseModel.extract_features(self.policies[0], obs, self.policies[0].features_extractor)

    def _actions(
        self, features: th.Tensor, rows: th.Tensor, index: th.Tensor, deterministic: bool
    ) -> tuple[th.Tensor, th.Tensor]:
        """The action of each row under its policy and its log-probability (as ``get_actions`` and ``log_prob``)."""
        dist = self.policies[0].action_dist
        params = self._run("pi", features, rows, index)
        if not math.isfinite(params.sum().item()):  # finite iff every term is, short of float32 overflow
            raise ValueError(
                "MLSH: a policy's network gave a NaN or infinite action parameter, so training has diverged; "
                "lower learning_rate (or master_learning_rate) or max_grad_norm, or normalize the observations."
            )
        log_std = None if self._log_std is None else self._log_std[index]
        sampled = _sample(dist, params, log_std, deterministic)
        if sampled is not None:
            return sampled
        with _unvalidated():  # the checks are those above
            distribution = dist.proba_distribution(params) if log_std is None else dist.proba_distribution(params, log_std)
            actions = distribution.get_actions(deterministic=deterministic)
            return actions, distribution.log_prob(actions)

    def _index(self, features: th.Tensor, policy_index: np.ndarray) -> tuple[th.Tensor, th.Tensor]:
        self._check_tied()
        rows = th.arange(len(features), device=features.device)
        return rows, th.as_tensor(policy_index, device=features.device)

    def forward(
        self, obs: PyTorchObs, policy_index: np.ndarray, deterministic: bool = False
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """
        As ``ActorCriticPolicy.forward``, each row by policy ``policy_index[row]``.

        :param obs: Observations.
        :param policy_index: The policy of each row.
        :param deterministic: Whether to use deterministic actions.
        :return: Actions, values and log-probabilities.
        """
        features = self._features(obs)
        rows, index = self._index(features, policy_index)
        actions, log_prob = self._actions(features, rows, index, deterministic)
        values = self._run("vf", features, rows, index)
        return actions.reshape((-1, *self.policies[0].action_space.shape)), values, log_prob  # type: ignore[misc]

    def predict_values(self, obs: PyTorchObs, policy_index: np.ndarray) -> th.Tensor:
        """:return: The value of each row under its policy."""
        features = self._features(obs)
        return self._run("vf", features, *self._index(features, policy_index))

    def act(self, obs: PyTorchObs, policy_index: np.ndarray, deterministic: bool = False) -> th.Tensor:
        """:return: The action of each row under its policy (as ``ActorCriticPolicy._predict``)."""
        features = self._features(obs)
        return self._actions(features, *self._index(features, policy_index), deterministic)[0]
