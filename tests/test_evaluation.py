"""evaluate_adaptation, AdaptationEvalCallback and the collapse diagnostic."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from helpers import CountingEnv
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_mlsh import MLSH, AdaptationEvalCallback, evaluate_adaptation
from sb3_mlsh.common.diagnostics import subpolicy_divergence

SMALL = dict(
    n_subpolicies=2, macro_duration=3, warmup_iterations=1, joint_iterations=1, n_steps=30, batch_size=16, master_batch_size=4
)


def counting_env() -> DummyVecEnv:
    return DummyVecEnv([lambda: Monitor(CountingEnv(length=7))])


def test_hand_computed_case():
    # reward = task on every step, episodes of 7 steps: over T = 30 steps the reward is 30 x task,
    # and the episodes end at steps 7, 14, 21 and 28 with returns 7 x task
    model = MLSH("MlpPolicy", counting_env(), seed=0, **SMALL)
    result = evaluate_adaptation(model, counting_env(), n_tasks=2, adaptation_timesteps=30, seed=0, tasks=[1, 2])
    assert result.tasks == [1, 2]
    assert result.total_rewards.tolist() == [30.0, 60.0]
    for (steps, returns), task in zip(result.curves, (1, 2), strict=True):
        assert steps.tolist() == [7, 14, 21, 28] and returns.tolist() == [7.0 * task] * 4
    # the observation on which each of those episodes ended: the step count, 7
    assert [ends.tolist() for ends in result.episode_ends] == [[[7.0]] * 4] * 2
    assert result.mean == 45.0 and result.confidence_interval == (30.0, 60.0)
    # per episode: 30 steps hold 30 / 7 episodes of 7 steps
    assert np.allclose(result.per_episode_rewards, [7.0, 14.0]) and np.isclose(result.per_episode, 10.5)
    assert np.allclose(result.per_episode_interval, (7.0, 14.0))
    assert result.usage.shape == (2, 2) and np.allclose(result.usage.sum(axis=1), 1.0)
    assert result.final_returns is None and result.final_observations is None
    with_eval = evaluate_adaptation(model, counting_env(), n_tasks=1, adaptation_timesteps=30, tasks=[2], n_eval_episodes=3)
    assert with_eval.final_returns.tolist() == [14.0]  # 7 steps of reward 2
    # the observation on which each evaluation episode ended: the step count, 7
    assert [ends.tolist() for ends in with_eval.final_observations] == [[[7.0]] * 3]
    # each evaluation episode step by step: the counts 0 to 6 acted on, the sub-policy choices held for N = 3 steps
    assert result.final_episodes is None and len(with_eval.final_episodes[0]) == 3
    for observations, subpolicies in with_eval.final_episodes[0]:
        assert observations.ravel().tolist() == list(range(7))
        assert subpolicies.shape == (7,) and set(subpolicies.tolist()) <= {0, 1}
        assert all(len(set(subpolicies[start : start + 3].tolist())) == 1 for start in (0, 3))


def test_with_several_envs_it_counts_exactly_the_first_t_steps():
    env = DummyVecEnv([lambda: Monitor(CountingEnv(length=7))] * 4)
    model = MLSH("MlpPolicy", env, seed=0, **SMALL)
    result = evaluate_adaptation(model, env, n_tasks=1, adaptation_timesteps=30, seed=0, tasks=[2])
    assert result.total_rewards.tolist() == [60.0]


def test_model_and_random_state_are_left_untouched_and_results_repeat_under_a_seed():
    env = make_vec_env("MovementBandits-v0", n_envs=2, seed=0)
    model = MLSH("MlpPolicy", env, seed=0, **{**SMALL, "macro_duration": 10, "n_steps": 50})
    model.learn(200)
    before = {name: value.clone() for name, value in model.policy.state_dict().items()}
    optimizer_before = model.policy.master.optimizer.state_dict()["state"][0]["exp_avg"].clone()
    schedule = (model.current_task, model.tasks_sampled, model.iteration_in_task, model.num_timesteps)
    np.random.seed(123)
    th.manual_seed(123)
    expected_np, expected_th = np.random.rand(), th.rand(1)
    np.random.seed(123)
    th.manual_seed(123)

    first = evaluate_adaptation(model, "MovementBandits-v0", n_tasks=2, adaptation_timesteps=300, seed=7)

    assert np.random.rand() == expected_np and th.equal(th.rand(1), expected_th)
    assert all(th.equal(before[name], value) for name, value in model.policy.state_dict().items())
    assert th.equal(model.policy.master.optimizer.state_dict()["state"][0]["exp_avg"], optimizer_before)
    assert (model.current_task, model.tasks_sampled, model.iteration_in_task, model.num_timesteps) == schedule
    second = evaluate_adaptation(model, "MovementBandits-v0", n_tasks=2, adaptation_timesteps=300, seed=7)
    assert first.tasks == second.tasks and np.array_equal(first.total_rewards, second.total_rewards)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(first.curves, second.curves, strict=True))


def test_held_out_tasks_are_the_ones_evaluated():
    held_out = [(1, 1), (11, 11), (10, 6)]
    model = MLSH("MlpPolicy", "FourRooms-v0", seed=0, **{**SMALL, "n_steps": 30})
    env = make_vec_env("FourRooms-v0", n_envs=1, env_kwargs={"goals": "all", "held_out_tasks": held_out})
    result = evaluate_adaptation(model, env, n_tasks=3, adaptation_timesteps=30, seed=0)
    assert sorted(result.tasks) == sorted(held_out)


def test_bad_arguments():
    model = MLSH("MlpPolicy", counting_env(), **SMALL)
    with pytest.raises(ValueError, match="n_tasks"):
        evaluate_adaptation(model, counting_env(), n_tasks=0, adaptation_timesteps=10)
    with pytest.raises(ValueError, match="adaptation_timesteps"):
        evaluate_adaptation(model, counting_env(), n_tasks=1, adaptation_timesteps=0)
    with pytest.raises(ValueError, match="TaskSamplerWrapper"):
        evaluate_adaptation(model, "CartPole-v1", n_tasks=1, adaptation_timesteps=10)


def test_divergence_is_zero_for_identical_subpolicies_and_positive_otherwise():
    model = MLSH("MlpPolicy", "MovementBandits-v0", seed=0, **SMALL)
    observations = np.random.default_rng(0).random((64, 6)).astype(np.float32)
    model.policy.subpolicies[1].load_state_dict(model.policy.subpolicies[0].state_dict())
    assert subpolicy_divergence(model.policy, observations) == pytest.approx(0.0, abs=1e-7)
    with th.no_grad():
        model.policy.subpolicies[1].action_net.bias.add_(th.tensor([3.0, 0.0, 0.0, 0.0, 0.0]))
    assert subpolicy_divergence(model.policy, observations) > 0.1


def test_callback_logs_and_saves_the_best_model(tmp_path):
    model = MLSH("MlpPolicy", counting_env(), seed=0, **SMALL)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    callback = AdaptationEvalCallback(
        counting_env(), n_tasks=2, adaptation_timesteps=30, eval_freq=30, tasks=[1, 2], best_model_save_path=str(tmp_path)
    )
    model.learn(60, callback=callback)
    assert callback.last_result is not None and callback.last_result.mean == 45.0
    assert (tmp_path / "best_model.zip").is_file()
    header = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    for key in ("eval/adaptation_return", "eval/subpolicy_divergence", "rollout/subpolicy_divergence"):
        assert key in header, key


def test_baselines_run_under_the_same_protocol():
    from stable_baselines3 import PPO

    from sb3_mlsh.baselines import TaskPerEpisode, shared_policy_transfer, single_policy

    shared_env = DummyVecEnv([lambda: Monitor(TaskPerEpisode(CountingEnv(length=7)))])
    shared_env.seed(0)
    shared = PPO("MlpPolicy", shared_env, n_steps=32, batch_size=16, seed=0).learn(64)
    tasks_seen = {shared_env.envs[0].unwrapped.task for _ in range(20) if shared_env.reset() is not None}
    assert tasks_seen == {1, 2}  # a task drawn at every reset
    before = [p.detach().clone() for p in shared.policy.parameters()]

    transfer = shared_policy_transfer(shared, counting_env(), n_tasks=2, adaptation_timesteps=30, seed=0, tasks=[1, 2])
    scratch = single_policy(counting_env(), n_tasks=2, adaptation_timesteps=30, seed=0, tasks=[1, 2], n_steps=16, batch_size=8)
    # the same hand-computed figure of merit for every method: reward = task on each of the T = 30 steps
    assert transfer.total_rewards.tolist() == scratch.total_rewards.tolist() == [30.0, 60.0]
    assert all(th.equal(a, b) for a, b in zip(before, shared.policy.parameters(), strict=True))
    assert transfer.usage.shape == (2, 0) and np.isnan(transfer.divergence)


def test_baselines_learn_in_normalised_observations_when_asked():
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecNormalize

    from sb3_mlsh.baselines import TaskPerEpisode, shared_policy_transfer, single_policy

    shared_env = VecNormalize(DummyVecEnv([lambda: Monitor(TaskPerEpisode(CountingEnv(length=7)))]), norm_reward=False)
    shared = PPO("MlpPolicy", shared_env, n_steps=32, batch_size=16, seed=0).learn(64)
    mean = shared_env.obs_rms.mean.copy()
    common = dict(n_tasks=2, adaptation_timesteps=30, seed=0, tasks=[1, 2], n_eval_episodes=2)
    transfer = shared_policy_transfer(shared, counting_env(), vec_normalize=shared_env, **common)
    scratch = single_policy(counting_env(), normalize_observations=True, n_steps=16, batch_size=8, **common)
    assert all(subpolicies is None for _, subpolicies in scratch.final_episodes[0])  # PPO has no sub-policies
    for result in (transfer, scratch):
        # rewards as the env pays them; the deterministic episodes evaluated (7 steps of reward = task)
        assert result.total_rewards.tolist() == [30.0, 60.0]
        assert result.final_returns is not None and result.final_returns.tolist() == [7.0, 14.0]
        # the observations the learners saw: the count 7 that ends each episode, normalised
        assert all(abs(float(ends[0, 0]) - 7.0) > 1.0 for ends in result.episode_ends)
    assert np.array_equal(shared_env.obs_rms.mean, mean)  # the shared policy's statistics are not changed


def test_rewards_are_the_envs_own_when_the_learner_scales_them():
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecNormalize

    from sb3_mlsh.baselines import TaskPerEpisode, shared_policy_transfer

    shared_env = VecNormalize(DummyVecEnv([lambda: Monitor(TaskPerEpisode(CountingEnv(length=7)))]), norm_reward=True)
    shared = PPO("MlpPolicy", shared_env, n_steps=32, batch_size=16, seed=0).learn(64)
    result = shared_policy_transfer(shared, counting_env(), vec_normalize=shared_env, n_tasks=2, adaptation_timesteps=30,
                                    seed=0, tasks=[1, 2])  # fmt: skip
    assert result.total_rewards.tolist() == [30.0, 60.0]  # not VecNormalize's scaled rewards
    assert np.allclose(result.per_episode_rewards, [7.0, 14.0])


class SeedRecorder(Monitor):
    """Records every seed its env is reset with."""

    seeds: list[int] = []

    def reset(self, **kwargs):
        if kwargs.get("seed") is not None:
            SeedRecorder.seeds.append(kwargs["seed"])
        return super().reset(**kwargs)


def test_every_task_and_env_has_its_own_random_stream():
    SeedRecorder.seeds = []
    env = DummyVecEnv([lambda: SeedRecorder(CountingEnv(length=7))] * 4)
    model = MLSH("MlpPolicy", env, seed=0, **SMALL)
    SeedRecorder.seeds = []
    evaluate_adaptation(model, env, n_tasks=5, adaptation_timesteps=12, seed=3, tasks=[1, 2])
    # each of the 5 tasks seeds its 4 envs once, all 20 seeds distinct
    assert len(SeedRecorder.seeds) == 20 and len(set(SeedRecorder.seeds)) == 20
    first = list(SeedRecorder.seeds)
    SeedRecorder.seeds = []
    evaluate_adaptation(model, env, n_tasks=5, adaptation_timesteps=12, seed=4, tasks=[1, 2])
    assert not set(first) & set(SeedRecorder.seeds)  # another evaluation seed, other streams


def test_a_finite_task_set_is_enumerated_not_drawn_with_replacement():
    model = MLSH("MlpPolicy", "MovementBandits-v0", seed=0, **SMALL)
    for seed in range(4):
        tasks = evaluate_adaptation(model, "MovementBandits-v0", n_tasks=4, adaptation_timesteps=10, seed=seed).tasks
        assert sorted(tasks[:2]) == [0, 1] and sorted(tasks[2:]) == [0, 1]


def test_master_exploration_of_the_fresh_master_is_a_parameter():
    model = MLSH("MlpPolicy", "MovementBandits-v0", seed=0, master_exploration=0.1, **SMALL)
    seen = []
    original = MLSH._setup_model

    def spy(self):
        original(self)
        seen.append(self.policy.master.action_dist.epsilon)

    MLSH._setup_model = spy
    try:
        evaluate_adaptation(model, "MovementBandits-v0", n_tasks=1, adaptation_timesteps=10)
        evaluate_adaptation(model, "MovementBandits-v0", n_tasks=1, adaptation_timesteps=10, master_exploration=0.0)
    finally:
        MLSH._setup_model = original
    assert seen == [0.1, 0.0]


def test_a_model_with_task_groups_adapts_one_fresh_master_per_task():
    env = make_vec_env("MovementBandits-v0", n_envs=4, seed=0)
    model = MLSH("MlpPolicy", env, n_task_groups=2, seed=0, **SMALL)
    model.learn(240)
    result = evaluate_adaptation(model, "MovementBandits-v0", n_tasks=2, adaptation_timesteps=60, seed=0)
    assert sorted(result.tasks) == [0, 1] and np.isfinite(result.total_rewards).all()


class TurnOrWalkEnv(gym.Env):
    """Egocentric actions on a line: turn left, turn right, or step forward; the observation is the heading only."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,))
    action_space = gym.spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.heading, self.t = 0, 1, 0
        return np.array([self.heading], dtype=np.float32), {}

    def step(self, action):
        if action == 2:
            self.x += self.heading
        else:
            self.heading = -self.heading
        self.t += 1
        return np.array([self.heading], dtype=np.float32), float(action == 2), False, self.t >= 20, {}


@pytest.mark.filterwarnings("ignore:MLSH. the env has no task protocol")
def test_behaviour_sees_a_subpolicy_that_only_turns_where_divergence_does_not():
    from sb3_mlsh.common.diagnostics import subpolicy_behaviour

    model = MLSH("MlpPolicy", TurnOrWalkEnv(), seed=0, normalize_observations=False, **SMALL)
    for k, preferred in enumerate((0, 2)):  # sub-policy 0 always turns, sub-policy 1 always steps forward
        action_net = model.policy.subpolicies[k].action_net
        with th.no_grad():
            action_net.weight.zero_()
            action_net.bias.copy_(th.tensor([5.0 if a == preferred else 0.0 for a in range(3)]))
    divergence = subpolicy_divergence(model.policy, np.array([[1.0], [-1.0]], dtype=np.float32))
    assert divergence > 1.0  # the two act very differently...
    env = TurnOrWalkEnv()
    turner, walker = subpolicy_behaviour(model, env, n_episodes=2, position=lambda env, obs: env.x, deterministic=True)
    # ...but one of them goes nowhere
    assert (turner.displacement, turner.distinct_positions, turner.mean_return) == (0.0, 1.0, 0.0)
    assert (walker.displacement, walker.distinct_positions, walker.mean_return) == (20.0, 21.0, 20.0)
    # by the observation (the heading) alone, turning in place looks like going somewhere
    assert subpolicy_behaviour(model, env, n_episodes=1, deterministic=True)[0].distinct_positions == 2.0


def test_single_policy_learns_from_scaled_rewards_when_asked(monkeypatch):
    from stable_baselines3.common.vec_env import VecNormalize

    from sb3_mlsh import baselines

    made: list[VecNormalize] = []

    class Recorded(VecNormalize):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(baselines, "VecNormalize", Recorded)
    result = baselines.single_policy(
        counting_env(), n_tasks=2, adaptation_timesteps=30, seed=0, tasks=[1, 2], normalize_rewards=True, gamma=0.9,
        n_steps=16, batch_size=8,
    )  # fmt: skip
    assert result.total_rewards.tolist() == [30.0, 60.0]  # the env's own rewards, not the scaled ones
    assert len(made) == 2 and all(v.norm_reward and not v.norm_obs and v.gamma == 0.9 for v in made)
    assert all(v.ret_rms.count > 1 for v in made)  # the scaling's statistics came from the learner's steps
