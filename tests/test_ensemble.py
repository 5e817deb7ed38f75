"""The batched ensemble gives each row what its own network gives it, and follows every change of the weights."""

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from sb3_mlsh.mlsh.policies import MLSHPolicy

SPACES = {
    "Discrete": spaces.Discrete(5),
    "Box": spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32),
    "MultiDiscrete": spaces.MultiDiscrete([3, 4]),
    "MultiBinary": spaces.MultiBinary(4),
}
OBSERVATION = spaces.Box(-2.0, 2.0, shape=(6,), dtype=np.float32)
# Float32 sums in another order: results agree to rounding (a wrong network for a row differs by far more)
TOLERANCE = dict(rtol=1e-4, atol=1e-5)


def observations(n: int, seed: int = 0) -> th.Tensor:
    return th.as_tensor(np.random.default_rng(seed).uniform(-2.0, 2.0, size=(n, 6)).astype(np.float32))


def make_policy(action_space: spaces.Space, n_subpolicies: int = 3, **kwargs) -> MLSHPolicy:
    th.manual_seed(0)
    policy = MLSHPolicy(OBSERVATION, action_space, lambda _: 3e-4, n_subpolicies=n_subpolicies, log_std_init=-0.5, **kwargs)
    with th.no_grad():  # distinct networks, distinct standard deviations
        for k, subpolicy in enumerate(policy.subpolicies):
            for parameter in subpolicy.parameters():
                parameter.add_(0.1 * k * th.randn_like(parameter))
    return policy


def reference(policy: MLSHPolicy, obs: th.Tensor, active: np.ndarray, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
    """Each row's value and log-probability of ``actions``, from its own sub-policy run alone on the whole batch."""
    values, log_probs = [], []
    for subpolicy in policy.subpolicies:
        value, log_prob, _ = subpolicy.evaluate_actions(obs, actions)
        values.append(value)
        log_probs.append(log_prob)
    rows = th.arange(len(obs))
    index = th.as_tensor(active)
    return th.stack(values)[index, rows], th.stack(log_probs)[index, rows]


@pytest.mark.parametrize("space", list(SPACES))
def test_the_ensemble_gives_each_row_its_own_subpolicys_actions_values_and_log_probabilities(space):
    policy = make_policy(SPACES[space])
    assert policy.subpolicy_ensemble is not None
    obs = observations(11)
    active = np.array([0, 2, 1, 1, 0, 2, 2, 0, 1, 0, 2])
    with th.no_grad():
        for deterministic in (True, False):
            actions, values, log_probs = policy(obs, active, deterministic)
            expected_values, expected_log_probs = reference(policy, obs, active, actions)
            th.testing.assert_close(values, expected_values, **TOLERANCE)
            th.testing.assert_close(log_probs, expected_log_probs, **TOLERANCE)
            if deterministic:
                modes = [sub.get_distribution(obs).get_actions(deterministic=True) for sub in policy.subpolicies]
                expected_actions = th.stack(modes)[th.as_tensor(active), th.arange(len(obs))]
                th.testing.assert_close(actions.float(), expected_actions.float(), **TOLERANCE)
        th.testing.assert_close(policy.predict_values(obs, active), expected_values, **TOLERANCE)


def test_the_ensemble_samples_from_each_rows_distribution_and_a_seed_repeats_it():
    """Rows of sub-policy k follow its distribution: sub-policy 0 picks action 0, sub-policy 1 action 3, nearly always."""
    policy = make_policy(SPACES["Discrete"], n_subpolicies=2)
    with th.no_grad():
        for k, favourite in enumerate((0, 3)):
            policy.subpolicies[k].action_net.bias.copy_(th.full((5,), -20.0))
            policy.subpolicies[k].action_net.bias[favourite] = 20.0
    obs = observations(400)
    active = np.arange(400) % 2
    th.manual_seed(1)
    actions = policy(obs, active)[0]
    assert (actions[active == 0] == 0).all() and (actions[active == 1] == 3).all()
    policy.subpolicies[0].action_net.bias.data.zero_()  # uniform: random draws, repeated under the same seed
    th.manual_seed(2)
    first = policy(obs, active)[0]
    th.manual_seed(2)
    assert th.equal(first, policy(obs, active)[0]) and len(first[active == 0].unique()) == 5


def test_the_ensemble_follows_optimizer_steps_and_loaded_weights():
    policy = make_policy(SPACES["Box"], n_subpolicies=2)
    obs = observations(6)
    active = np.array([0, 1, 0, 1, 1, 0])
    before = policy.predict_values(obs, active).detach()
    subpolicy = policy.subpolicies[1]
    loss = subpolicy.predict_values(obs).sum()
    subpolicy.optimizer.zero_grad()
    loss.backward()
    subpolicy.optimizer.step()
    after_step = policy.predict_values(obs, active).detach()
    assert th.equal(after_step[active == 0], before[active == 0]) and not th.equal(after_step, before)
    th.testing.assert_close(after_step[active == 1], subpolicy.predict_values(obs[active == 1]).detach(), **TOLERANCE)
    policy.load_state_dict(make_policy(SPACES["Box"], n_subpolicies=2).state_dict())
    th.testing.assert_close(policy.predict_values(obs, active).detach(), before, **TOLERANCE)
    for parameter in subpolicy.parameters():  # new storage, as a move to another device gives
        parameter.data = parameter.data.clone() * 2
    expected = subpolicy.predict_values(obs[active == 1]).detach()
    th.testing.assert_close(policy.predict_values(obs, active).detach()[active == 1], expected, **TOLERANCE)
    with th.no_grad():
        subpolicy.value_net.bias.add_(1.0)
    th.testing.assert_close(policy.predict_values(obs, active).detach()[active == 1], expected + 1.0, **TOLERANCE)


def test_the_masters_of_the_task_groups_decide_as_one_ensemble():
    policy = make_policy(SPACES["Discrete"], n_masters=3)
    obs = observations(9)
    masters = np.array([2, 0, 1, 1, 2, 0, 0, 1, 2])
    assert policy.master_ensemble is not None
    with th.no_grad():
        choices, values, log_probs = policy.decide(obs, masters, deterministic=True)
        for g, master in enumerate(policy.masters):
            rows = th.as_tensor(masters == g)
            expected_choices, expected_values, expected_log_probs = master(obs[rows], deterministic=True)
            assert th.equal(choices[rows], expected_choices)
            th.testing.assert_close(values[rows], expected_values, **TOLERANCE)
            th.testing.assert_close(log_probs[rows], expected_log_probs, **TOLERANCE)


@pytest.mark.parametrize("space", ["Discrete", "Box"])
def test_under_one_seed_the_ensemble_samples_what_the_rows_own_network_samples(space):
    """The ensemble samples without torch's distribution objects: the same draws as through them, seed for seed."""
    policy = make_policy(SPACES[space], n_subpolicies=2)
    obs = observations(64)
    for k, subpolicy in enumerate(policy.subpolicies):
        with th.no_grad():
            th.manual_seed(3)
            actions, _, log_probs = policy(obs, np.full(64, k))
            th.manual_seed(3)
            expected_actions, _, expected_log_probs = subpolicy(obs)
        th.testing.assert_close(actions.float(), expected_actions.float(), **TOLERANCE)
        th.testing.assert_close(log_probs, expected_log_probs, **TOLERANCE)


def test_exploring_masters_sample_from_their_mixture_as_each_master_alone_does():
    """With master exploration the choice comes from (1 - epsilon) softmax + epsilon / K, and so does its probability."""
    policy = make_policy(SPACES["Discrete"], n_masters=2, master_exploration=0.3)
    obs = observations(200)
    for g, master in enumerate(policy.masters):
        with th.no_grad():
            th.manual_seed(4)
            choices, _, log_probs = policy.decide(obs, np.full(200, g))
            th.manual_seed(4)
            expected_choices, _, expected_log_probs = master(obs)
        assert th.equal(choices, expected_choices) and len(choices.unique()) == 3
        th.testing.assert_close(log_probs, expected_log_probs, **TOLERANCE)


class TwoLayerExtractor(BaseFeaturesExtractor):
    """A features extractor with weights: the ensemble cannot batch it."""

    def __init__(self, observation_space: spaces.Box) -> None:
        super().__init__(observation_space, features_dim=8)
        self.linear = th.nn.Linear(observation_space.shape[0], 8)

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return th.relu(self.linear(observations))


def test_networks_the_ensemble_cannot_batch_act_one_at_a_time():
    policy = make_policy(SPACES["Discrete"], features_extractor_class=TwoLayerExtractor)
    assert policy.subpolicy_ensemble is None and policy.master_ensemble is None
    obs = observations(7)
    active = np.array([0, 1, 2, 0, 1, 2, 0])
    with th.no_grad():
        actions, values, log_probs = policy(obs, active, deterministic=True)
    expected_values, expected_log_probs = reference(policy, obs, active, actions)
    th.testing.assert_close(values, expected_values, **TOLERANCE)
    th.testing.assert_close(log_probs, expected_log_probs, **TOLERANCE)
