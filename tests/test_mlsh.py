"""The MLSH algorithm: API, schedule, macro transitions, save/load, callbacks, determinism."""

import time

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from helpers import CountingEnv, parameters, same
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import IdentityEnv, IdentityEnvBox, IdentityEnvMultiBinary, IdentityEnvMultiDiscrete
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_mlsh import MLSH, TaskSamplerWrapper

SMALL = dict(
    n_subpolicies=2, macro_duration=3, warmup_iterations=1, joint_iterations=1, n_steps=30, batch_size=16, master_batch_size=4
)


def small_model(env="MovementBandits-v0", **kwargs) -> MLSH:
    return MLSH("MlpPolicy", env, **{**SMALL, "seed": 0, **kwargs})


@pytest.mark.parametrize(
    "env",
    [
        "MovementBandits-v0",  # Box observation, Discrete action
        "FourRooms-v0",  # Discrete observation, tasks are tuples
        IdentityEnv(5),  # Discrete observation
        IdentityEnvBox(),  # Box action
        IdentityEnvMultiDiscrete(),
        IdentityEnvMultiBinary(),
    ],
    ids=["bandits", "four-rooms", "discrete-obs", "box-action", "multidiscrete", "multibinary"],
)
@pytest.mark.filterwarnings("ignore:MLSH. the env has no task protocol")
def test_learn_and_predict_on_spaces(env):
    model = small_model(env)
    model.learn(120)
    vec_env = model.get_env()
    obs = vec_env.reset()
    action, state = model.predict(obs)
    assert action.shape == (1, *model.action_space.shape)
    assert vec_env.action_space.contains(action[0])
    rewards, _ = evaluate_policy(model, vec_env, n_eval_episodes=2)
    assert np.isfinite(rewards)


def test_predict_single_and_batched_observations():
    model = small_model()
    env = gym.make("MovementBandits-v0")
    obs, _ = env.reset(seed=0)
    action, (active, steps_left) = model.predict(obs)
    assert np.shape(action) == () and env.action_space.contains(int(action))
    assert active.shape == (1,) and steps_left.tolist() == [2]

    batch = np.stack([obs] * 4)
    actions, (active, steps_left) = model.predict(batch)
    assert actions.shape == (4,)
    assert active.shape == (4,) and (steps_left == 2).all()


def test_predict_state_keeps_subpolicy_for_macro_duration_and_rechooses_on_episode_start():
    model = small_model(macro_duration=4, n_subpolicies=8)
    obs = np.random.default_rng(0).random((64, 6)).astype(np.float32)
    _, state = model.predict(obs)
    first = state[0].copy()
    for expected_left in (2, 1, 0):
        _, state = model.predict(obs, state=state)
        assert (state[0] == first).all()
        assert (state[1] == expected_left).all()
    # the decision is due: the master chooses again (8 sub-policies, 64 envs: some change)
    _, state = model.predict(obs, state=state)
    assert (state[1] == 3).all() and (state[0] != first).any()
    # an episode start forces a decision in that env only
    episode_start = np.zeros(64, dtype=bool)
    episode_start[0] = True
    _, state = model.predict(obs, state=state, episode_start=episode_start)
    assert state[1][0] == 3 and (state[1][1:] == 2).all()


def test_predict_with_a_subpolicy_runs_it_alone_and_lets_the_master_choose_next():
    model = small_model(n_subpolicies=3)
    obs = np.random.default_rng(0).random((16, 6)).astype(np.float32)
    for k in range(3):
        actions, (active, steps_left) = model.predict(obs, deterministic=True, subpolicy=k)
        with th.no_grad():
            obs_tensor = model.policy.obs_to_tensor(model.policy.normalize_observation(obs))[0]
            expected = model.policy.subpolicies[k]._predict(obs_tensor, deterministic=True).numpy()
        assert (actions == expected).all() and (active == k).all()
        # a state given beside it is not read; the state returned lets the master decide at the next call
        _, (active, steps_left) = model.predict(obs, state=(np.full(16, 7), np.full(16, 9)), subpolicy=k)
        assert (active == k).all() and (steps_left == 0).all()
    _, (_, steps_left) = model.predict(obs, state=(active, steps_left))
    assert (steps_left == model.macro_duration - 1).all()
    single, _ = model.predict(obs[0], subpolicy=1, deterministic=True)
    assert np.shape(single) == ()


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda model, obs: model.predict(obs, subpolicy=2), r"subpolicy holds sub-policy 2, but this model has 2 \(0 to 1\)"),
        (lambda model, obs: model.predict(obs, subpolicy=-1), "subpolicy holds sub-policy -1"),
        (lambda model, obs: model.predict(obs, state=(np.array([5]), np.array([3]))), r"state\[0\] .* sub-policy 5"),
        (lambda model, obs: model.predict(obs[:5]), r"Unexpected observation shape \(5,\)"),
    ],
    ids=["subpolicy-too-large", "subpolicy-negative", "state-out-of-range", "observation-shape"],
)
def test_predict_errors_name_the_argument(call, match):
    model = small_model()
    obs = np.zeros(6, dtype=np.float32)
    with pytest.raises(ValueError, match=match):
        call(model, obs)


class MasterBufferAtRolloutEnd(BaseCallback):
    """Copies the master buffer's columns at the end of each rollout, before training consumes them."""

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        buffer = self.model.master_rollout_buffer
        n = buffer.env_pos[0]
        self.rewards = buffer.rewards[:n, 0].tolist()
        self.episode_starts = buffer.episode_starts[:n, 0].tolist()
        self.observations = buffer.observations[:n, 0, 0].tolist()
        self.advantages = buffer.advantages[:n, 0].tolist()


def test_macro_transitions_sum_rewards_and_end_with_the_episode():
    # episodes of 7 steps, a decision every 3: macros of 3, 3 and 1 steps; raw observations (the step count)
    env = DummyVecEnv([lambda: CountingEnv(length=7)])
    model = MLSH("MlpPolicy", env, normalize_observations=False, **{**SMALL, "n_steps": 14, "seed": 0})
    seen = MasterBufferAtRolloutEnd()
    model.learn(14, callback=seen)
    scale = model.current_task  # the task is the reward per step
    assert seen.rewards == [3 * scale, 3 * scale, scale] * 2
    assert seen.episode_starts == [1, 0, 0, 1, 0, 0]
    assert seen.observations == [0, 3, 6, 0, 3, 6]


def test_truncated_macro_bootstraps_from_the_master_value():
    class WithTerminalValue(MasterBufferAtRolloutEnd):
        def _on_rollout_end(self) -> None:
            super()._on_rollout_end()
            with th.no_grad():
                self.terminal_value = self.model.policy.master.predict_values(th.tensor([[5.0]])).item()

    env = DummyVecEnv([lambda: gym.wrappers.TimeLimit(CountingEnv(terminate=False), max_episode_steps=5)])
    model = MLSH("MlpPolicy", env, **{**SMALL, "n_steps": 5, "gamma": 0.9, "seed": 0})
    seen = WithTerminalValue()
    model.learn(5, callback=seen)
    scale = model.current_task
    assert seen.rewards[0] == 3 * scale
    assert seen.rewards[1] == pytest.approx(2 * scale + 0.9 * seen.terminal_value, rel=1e-5)


def test_subpolicy_steps_are_tagged_and_each_subpolicy_learns_only_from_its_own():
    model = small_model(warmup_iterations=0, joint_iterations=1)
    # a master that always chooses sub-policy 0
    with th.no_grad():
        model.policy.master.action_net.bias.copy_(th.tensor([50.0, -50.0]))
    model.policy.reset_master = lambda index=None: None  # keep this master through the task switch
    before = [parameters(sub) for sub in model.policy.subpolicies]
    model.learn(30)
    assert (model.rollout_buffer.subpolicies == 0).all()
    assert not same(before[0], parameters(model.policy.subpolicies[0]))
    assert same(before[1], parameters(model.policy.subpolicies[1]))


def test_schedule_warmup_updates_master_only_and_new_task_resets_master():
    model = small_model(warmup_iterations=2, joint_iterations=1)
    subs = parameters(model.policy.subpolicies)
    model.learn(30)  # first warm-up iteration of task 1
    assert model.phase == "warmup" and model.iteration_in_task == 1 and model.tasks_sampled == 1
    adam_steps = {int(state["step"]) for state in model.policy.master.optimizer.state.values()}
    assert same(subs, parameters(model.policy.subpolicies))
    master = parameters(model.policy.master)
    model.learn(30, reset_num_timesteps=False)  # second warm-up iteration
    assert same(subs, parameters(model.policy.subpolicies))
    assert not same(master, parameters(model.policy.master))
    model.learn(30, reset_num_timesteps=False)  # joint iteration
    assert not same(subs, parameters(model.policy.subpolicies))
    assert model.iteration_in_task == 0 and model.tasks_sampled == 1
    trained = parameters(model.policy.master)
    assert len(model.policy.master.optimizer.state) > 0
    model.learn(30, reset_num_timesteps=False)  # task 2: fresh master, fresh optimizer, one update
    assert model.tasks_sampled == 2
    assert {int(state["step"]) for state in model.policy.master.optimizer.state.values()} == adam_steps
    assert not any(th.allclose(a, b) for a, b in zip(trained, parameters(model.policy.master), strict=True) if a.numel() > 1)


def test_tasks_are_sampled_and_set_on_every_env():
    env = make_vec_env("MovementBandits-v0", n_envs=3, seed=1)
    model = small_model(env, n_steps=10, warmup_iterations=1, joint_iterations=0)
    seen = set()
    for _ in range(12):
        model.learn(30, reset_num_timesteps=False)
        tasks = env.get_attr("task")
        assert tasks == [model.current_task] * 3
        seen.add(model.current_task)
    assert seen == {0, 1}


def test_frozen_subpolicies_train_only_the_master_on_the_env_task():
    env = make_vec_env("MovementBandits-v0", n_envs=1, seed=0)
    env.env_method("set_task", 1)
    model = small_model(env, train_subpolicies=False)
    subs, master = parameters(model.policy.subpolicies), parameters(model.policy.master)
    model.learn(120)
    assert same(subs, parameters(model.policy.subpolicies))
    assert not same(master, parameters(model.policy.master))
    assert model.tasks_sampled == 0 and env.get_attr("task") == [1] and model.phase == "master_only"


@pytest.mark.parametrize(
    "skip, scale, learns",
    [(True, 0, False), (False, 0, True), (True, 1, True)],
    ids=["skip-rewardless", "update-rewardless", "skip-but-rewarded"],
)
def test_master_skip_rewardless_leaves_a_master_whose_batch_earned_nothing(skip, scale, learns):
    # truncated episodes: the macro rewards hold value bootstraps, which are not earned reward
    env = DummyVecEnv([lambda: gym.wrappers.TimeLimit(CountingEnv(terminate=False), max_episode_steps=5)])
    env.env_method("set_task", scale)  # the reward per step
    model = small_model(env, train_subpolicies=False, master_skip_rewardless=skip)
    master = parameters(model.policy.master)
    model.learn(60)
    assert same(master, parameters(model.policy.master)) is not learns
    assert (model.logger.name_to_value.get("train/master/skipped_rewardless") == (0 if learns else 1)) is skip


def test_master_exploration_log_prob_is_that_of_the_mixture():
    class CheckLogProbs(BaseCallback):
        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            buffer, master = self.model.master_rollout_buffer, self.model.policy.master
            n = buffer.env_pos[0]
            obs = th.as_tensor(buffer.observations[:n, 0])
            actions = th.as_tensor(buffer.actions[:n, 0, 0]).long()
            with th.no_grad():
                logits = master.action_net(master.mlp_extractor.forward_actor(obs))
                _, self.log_prob, _ = master.evaluate_actions(obs, actions)
            mixture = 0.7 * th.softmax(logits, -1) + 0.3 / 3
            self.expected = th.log(mixture.gather(1, actions[:, None]).squeeze(1))
            self.stored = th.as_tensor(buffer.log_probs[:n, 0])

    model = small_model(master_exploration=0.3, n_subpolicies=3)
    check = CheckLogProbs()
    model.learn(30, callback=check)
    # the log-probability PPO's ratio starts from is that of the mixture that chose
    assert th.allclose(check.stored, check.expected, atol=1e-5)
    assert th.allclose(check.log_prob, check.expected, atol=1e-5)


def test_callback_sees_every_environment_step():
    class Count(BaseCallback):
        def __init__(self):
            super().__init__()
            self.calls = 0

        def _on_step(self) -> bool:
            self.calls += 1
            return True

    env = make_vec_env("MovementBandits-v0", n_envs=2, seed=0)
    model = small_model(env, n_steps=15)
    counter = Count()
    model.learn(120, callback=counter, progress_bar=True)
    assert counter.calls == 60 and model.num_timesteps == 120


def test_eval_callback_and_logger_keys(tmp_path):
    env = make_vec_env("MovementBandits-v0", n_envs=1, seed=0)
    model = small_model(env)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    eval_callback = EvalCallback(make_vec_env("MovementBandits-v0", n_envs=1, seed=1), eval_freq=30, n_eval_episodes=2)
    model.learn(120, callback=eval_callback)
    header = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    for key in (
        "rollout/ep_rew_mean",
        "time/fps",
        "mlsh/task",
        "mlsh/phase",
        "rollout/subpolicy_0_usage",
        "train/master/policy_gradient_loss",
        "train/sub/value_loss",
        "eval/mean_reward",
    ):
        assert key in header, key
    assert eval_callback.last_mean_reward is not None


def test_save_load_round_trip(tmp_path):
    model = small_model(warmup_iterations=2, joint_iterations=2, master_exploration=0.1)
    model.learn(150)
    assert model.iteration_in_task == 1 and model.tasks_sampled == 2
    model.save(tmp_path / "model")
    env = make_vec_env("MovementBandits-v0", n_envs=1, seed=3)
    loaded = MLSH.load(tmp_path / "model", env=env)

    for a, b in zip(model.policy.state_dict().values(), loaded.policy.state_dict().values(), strict=True):
        assert th.equal(a, b)
    for name in ["policy.masters.0.optimizer", "policy.subpolicies.0.optimizer", "policy.subpolicies.1.optimizer"]:
        saved, restored = (m.get_parameters()[name]["state"] for m in (model, loaded))
        assert all(th.equal(saved[i]["exp_avg"], restored[i]["exp_avg"]) for i in saved)
    assert (loaded.current_task, loaded.iteration_in_task, loaded.tasks_sampled) == (model.current_task, 1, 2)

    obs = np.random.default_rng(0).random((16, 6)).astype(np.float32)
    state = None
    for _ in range(5):
        actions, state_a = model.predict(obs, state=state, deterministic=True)
        actions_b, state_b = loaded.predict(obs, state=state, deterministic=True)
        assert (actions == actions_b).all() and all((x == y).all() for x, y in zip(state_a, state_b, strict=True))
        state = state_a

    # the schedule goes on: same task, then a new one
    loaded.learn(30, reset_num_timesteps=False)
    assert loaded.iteration_in_task == 2 and env.get_attr("task") == [model.current_task] and loaded.tasks_sampled == 2
    loaded.learn(90, reset_num_timesteps=False)  # ends task 2, then the first iteration of task 3
    assert loaded.tasks_sampled == 3 and loaded.iteration_in_task == 1


def test_load_with_frozen_subpolicies_and_set_env(tmp_path):
    model = small_model()
    model.learn(60)
    model.save(tmp_path / "model")
    loaded = MLSH.load(tmp_path / "model", env=make_vec_env("MovementBandits-v0", n_envs=1), train_subpolicies=False)
    assert loaded.phase == "master_only"
    subs = parameters(loaded.policy.subpolicies)
    loaded.set_env(make_vec_env("MovementBandits-v0", n_envs=1, seed=5))
    loaded.learn(60)
    assert same(subs, parameters(loaded.policy.subpolicies))


def test_same_seed_gives_identical_parameters():
    def run() -> list[th.Tensor]:
        env = make_vec_env("MovementBandits-v0", n_envs=2, seed=7)
        model = small_model(env, seed=7, n_steps=20)
        model.learn(200)
        return parameters(model.policy)

    assert same(run(), run())


def test_fused_adam_makes_the_same_update_up_to_rounding():
    # Adam's fused implementation (opt-in, docs/mlsh.md "Speed") runs the same arithmetic in one kernel
    def run(**optimizer_kwargs) -> list[th.Tensor]:
        env = make_vec_env("MovementBandits-v0", n_envs=2, seed=7)
        model = small_model(
            env, seed=7, n_steps=20, warmup_iterations=0, policy_kwargs=dict(optimizer_kwargs=optimizer_kwargs)
        )
        assert bool(model.policy.subpolicies[0].optimizer.defaults.get("fused")) == optimizer_kwargs.get("fused", False)
        model.learn(40)  # two iterations: the second collects with the first's update
        return parameters(model.policy)

    sb3, fused, before = run(eps=1e-5), run(eps=1e-5, fused=True), parameters(small_model(seed=7).policy)
    assert not same(sb3, before)
    assert all(th.allclose(a, b, atol=1e-6) for a, b in zip(sb3, fused, strict=True))


def test_schedules_for_learning_rates():
    class LearningRates(BaseCallback):
        def _on_step(self) -> bool:
            return True

        def _on_rollout_start(self) -> None:
            policy = self.model.policy
            self.seen.append(
                (policy.master.optimizer.param_groups[0]["lr"], policy.subpolicies[0].optimizer.param_groups[0]["lr"])
            )

    rates = LearningRates()
    rates.seen = []
    model = small_model(
        learning_rate=lambda p: 1e-3 * p, master_learning_rate=lambda p: 1e-2 * p, warmup_iterations=0, joint_iterations=2
    )
    model.learn(60, callback=rates)
    # the first update happens halfway through training
    assert rates.seen[1] == pytest.approx((1e-2 * 0.5, 1e-3 * 0.5))


def test_schedule_timesteps_makes_schedules_span_chunked_learn_calls():
    model = small_model(learning_rate=lambda p: 1e-3 * p, warmup_iterations=0, joint_iterations=2)
    model.schedule_timesteps = 120
    rates = []
    for _ in range(4):
        model.learn(30, reset_num_timesteps=False)
        rates.append(model.policy.subpolicies[0].optimizer.param_groups[0]["lr"])
    # one run of 120 steps: the rate falls over the whole run, not again within each call as SB3's chunks do
    assert rates == pytest.approx([1e-3 * (1 - steps / 120) for steps in (30, 60, 90, 120)], abs=1e-4)
    assert "schedule_timesteps" in model._excluded_save_params()


def test_unsupported_observation_space_raises():
    class TupleObs(gym.Env):
        observation_space = spaces.Tuple((spaces.Discrete(2), spaces.Discrete(3)))
        action_space = spaces.Discrete(2)

    with pytest.raises(ValueError, match="MLSH: env has the observation space Tuple"):
        MLSH("MlpPolicy", DummyVecEnv([TupleObs]), **SMALL)


def test_env_without_task_protocol_warns_once_and_trains():
    with pytest.warns(UserWarning, match="TaskSamplerWrapper") as record:
        model = small_model(gym.make("CartPole-v1"))
    assert len([w for w in record if "TaskSamplerWrapper" in str(w.message)]) == 1
    model.learn(60)
    assert model.current_task is None and model.tasks_sampled == 1


def test_pendulum_gravity_tasks_through_the_wrapper():
    def make():
        return TaskSamplerWrapper(
            gym.make("Pendulum-v1"),
            sample_task=lambda rng: float(rng.uniform(5.0, 15.0)),
            set_task=lambda env, g: setattr(env.unwrapped, "g", g),
        )

    env = make_vec_env(make, n_envs=2, seed=0)
    model = small_model(env, n_steps=10, warmup_iterations=1, joint_iterations=0)
    model.learn(40)
    assert 5.0 <= model.current_task <= 15.0
    assert [e.unwrapped.g for e in env.envs] == [model.current_task] * 2


def test_logs_of_a_run_learned_in_chunks_count_its_iterations_and_time():
    from stable_baselines3.common.logger import KVWriter, Logger

    class Records(KVWriter):
        def __init__(self) -> None:
            self.rows: list[dict] = []

        def write(self, key_values, key_excluded, step=0) -> None:
            self.rows.append(dict(key_values))

    records = Records()
    model = small_model()
    model.set_logger(Logger(folder=None, output_formats=[records]))
    iteration = model.n_steps * model.n_envs
    model.learn(iteration)
    for _ in range(2):  # as the distributed command does between checkpoints
        time.sleep(1.1)
        model.learn(iteration, reset_num_timesteps=False)
    assert [row["time/iterations"] for row in records.rows] == [1, 2, 3]
    assert records.rows[-1]["time/time_elapsed"] >= 2
    assert records.rows[-1]["time/total_timesteps"] == 3 * iteration
