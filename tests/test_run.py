"""MLSH as an SB3 user drives any algorithm: every policy alias, the spaces, callbacks, VecNormalize and predict."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3.common.callbacks import CheckpointCallback, EvalCallback, StopTrainingOnRewardThreshold
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import FakeImageEnv, SimpleMultiObsEnv
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.utils import ConstantSchedule, FloatSchedule
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from sb3_mlsh import MLSH, MLSHCnnPolicy, MLSHMultiInputPolicy, MLSHPolicy, TaskSamplerWrapper

SMALL = dict(
    n_subpolicies=2,
    macro_duration=3,
    warmup_iterations=1,
    joint_iterations=1,
    n_steps=16,
    batch_size=8,
    master_batch_size=4,
    n_epochs=2,
    seed=0,
)
pytestmark = pytest.mark.filterwarnings("ignore:MLSH. the env has no task protocol")


class VectorDictEnv(gym.Env):
    """Dict observations of two vectors (no image), a task protocol (the reward's sign) and 5-step episodes."""

    observation_space = spaces.Dict(
        {"position": spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32), "flag": spaces.MultiBinary(3)}
    )
    action_space = spaces.Discrete(3)

    def __init__(self) -> None:
        self.task, self.t = 1, 0

    def sample_task(self, rng: np.random.Generator | None = None) -> int:
        return int((rng or self.np_random).choice([-1, 1]))

    def set_task(self, task: int) -> None:
        self.task = task

    def _obs(self) -> dict[str, np.ndarray]:
        return {"position": np.full(2, self.t / 5, dtype=np.float32), "flag": np.array([self.t % 2, 1, 0], dtype=np.int8)}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        return self._obs(), float(self.task * (action == 1)), self.t >= 5, False, {}


def image_env(discrete: bool = True) -> gym.Env:
    # channel-last uint8 images: SB3 wraps the VecEnv in VecTransposeImage, as for PPO
    return gym.wrappers.TimeLimit(FakeImageEnv(screen_height=36, screen_width=36, n_channels=1, discrete=discrete), 12)


@pytest.mark.parametrize(
    "policy, make_env, policy_class",
    [
        ("CnnPolicy", lambda: image_env(discrete=True), MLSHCnnPolicy),
        ("CnnPolicy", lambda: image_env(discrete=False), MLSHCnnPolicy),
        ("MultiInputPolicy", lambda: gym.wrappers.TimeLimit(SimpleMultiObsEnv(random_start=False), 12), MLSHMultiInputPolicy),
        ("MultiInputPolicy", VectorDictEnv, MLSHMultiInputPolicy),
        ("MlpPolicy", lambda: gym.make("Pendulum-v1"), MLSHPolicy),
    ],
    ids=["cnn-discrete", "cnn-box", "multi-input-image", "multi-input-vectors", "mlp"],
)
def test_policies_learn_and_predict(policy, make_env, policy_class):
    model = MLSH(policy, make_vec_env(make_env, n_envs=2, seed=0), **SMALL)
    assert type(model.policy) is policy_class
    model.learn(64)
    vec_env = model.get_env()
    obs = vec_env.reset()
    actions, (active, steps_left) = model.predict(obs)
    assert len(actions) == 2 and all(vec_env.action_space.contains(action) for action in actions)
    assert active.shape == (2,) and steps_left.tolist() == [2, 2]
    mean_reward, _ = evaluate_policy(model, vec_env, n_eval_episodes=2)
    assert np.isfinite(mean_reward)


def test_dict_observations_with_task_groups_reset_each_group_alone():
    model = MLSH("MultiInputPolicy", make_vec_env(VectorDictEnv, n_envs=4, seed=0), n_task_groups=2, **SMALL)
    # batched where the extractors have no weights: a Dict of vectors is flattened by CombinedExtractor
    assert model.policy.subpolicy_ensemble is not None and model.policy.master_ensemble is not None
    model.learn(16 * 4 * 4)
    assert model.task_groups is not None and all(group.tasks_sampled >= 2 for group in model.task_groups)
    assert model.master_rollout_buffer.size() > 0


def test_dict_observation_space_needs_multi_input_policy():
    with pytest.raises(ValueError, match="MultiInputPolicy"):
        MLSH("MlpPolicy", VectorDictEnv(), **SMALL)


def test_net_arch_describes_the_networks_built():
    mlp = MLSH("MlpPolicy", "MovementBandits-v0", **SMALL).policy
    assert mlp.net_arch == dict(pi=[64, 64], vf=[64, 64]) == mlp.master_net_arch
    cnn = MLSH("CnnPolicy", image_env(), **SMALL).policy
    assert cnn.net_arch == [] and cnn.master_net_arch == []  # as SB3's CnnPolicy: NatureCNN then the heads
    custom = MLSH("MlpPolicy", "MovementBandits-v0", **SMALL, policy_kwargs=dict(net_arch=[32], master_net_arch=[16])).policy
    assert custom.net_arch == [32] and custom.master_net_arch == [16]
    assert custom.subpolicies[0].mlp_extractor.policy_net[0].out_features == 32
    assert custom.master.mlp_extractor.policy_net[0].out_features == 16


def test_predict_rejects_the_reset_tuple_of_a_gymnasium_env():
    env = gym.make("MovementBandits-v0")
    model = MLSH("MlpPolicy", env, **SMALL)
    with pytest.raises(ValueError, match="tuple"):
        model.predict(env.reset(seed=0))


def test_clip_ranges_are_schedules_as_in_ppo():
    model = MLSH("MlpPolicy", "MovementBandits-v0", **{**SMALL, "clip_range": lambda progress: 0.3 * progress})
    assert isinstance(model.clip_range, FloatSchedule) and model.clip_range(0.5) == pytest.approx(0.15)
    assert model.clip_range_vf is None
    model = MLSH("MlpPolicy", "MovementBandits-v0", **{**SMALL, "clip_range_vf": 0.4})
    assert model.clip_range(1.0) == 0.2 and model.clip_range_vf(0.0) == 0.4
    # floats become SB3's schedule classes, not lambdas: saved models load on other machines
    assert isinstance(model.clip_range.value_schedule, ConstantSchedule)


def test_single_task_env_keeps_its_episodes_whole():
    # without a task protocol a new "task" is the same task: the envs are not reset, no episode is cut short
    env = Monitor(gym.make("Pendulum-v1", max_episode_steps=50))
    model = MLSH("MlpPolicy", env, **{**SMALL, "n_epochs": 1})
    model.learn(16 * 10)
    assert model.tasks_sampled == 5
    assert env.get_episode_lengths() == [50, 50, 50]


def test_task_protocol_warning_once_per_model_at_the_callers_line(tmp_path):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model = MLSH("MlpPolicy", "CartPole-v1", **SMALL)
        model.set_env(make_vec_env("CartPole-v1", n_envs=1))
        model.save(tmp_path / "model")
        MLSH.load(tmp_path / "model", env=make_vec_env("CartPole-v1", n_envs=1))
    warned = [w for w in record if "no task protocol" in str(w.message)]
    assert len(warned) == 1 and warned[0].filename == __file__


def test_callbacks_checkpoint_eval_and_stop_on_reward(tmp_path):
    env = make_vec_env("MovementBandits-v0", n_envs=2, seed=0)
    stop = StopTrainingOnRewardThreshold(reward_threshold=-np.inf, verbose=0)  # any reward stops training
    evaluation = EvalCallback(
        make_vec_env("MovementBandits-v0", n_envs=1, seed=1),
        callback_on_new_best=stop,
        eval_freq=32,
        n_eval_episodes=1,
        warn=False,
    )
    checkpoint = CheckpointCallback(save_freq=16, save_path=str(tmp_path), name_prefix="mlsh")
    model = MLSH("MlpPolicy", env, **SMALL)
    model.learn(10_000, callback=[checkpoint, evaluation])
    assert model.num_timesteps == 64  # stopped at the first evaluation, after 32 steps per env
    saved = sorted(tmp_path.glob("mlsh_*_steps.zip"))
    assert [path.name for path in saved] == ["mlsh_32_steps.zip", "mlsh_64_steps.zip"]
    MLSH.load(saved[-1])


def test_vec_normalize_save_and_load(tmp_path):
    def make():
        return TaskSamplerWrapper(
            gym.make("Pendulum-v1"),
            sample_task=lambda rng: float(rng.uniform(8.0, 12.0)),
            set_task=lambda env, g: setattr(env.unwrapped, "g", g),
        )

    env = VecNormalize(DummyVecEnv([make]), gamma=0.99)
    model = MLSH("MlpPolicy", env, **SMALL)
    model.learn(96)
    model.save(tmp_path / "model")
    env.save(tmp_path / "vec_normalize.pkl")

    loaded_env = VecNormalize.load(tmp_path / "vec_normalize.pkl", DummyVecEnv([make]))
    loaded_env.training = False
    assert np.allclose(loaded_env.obs_rms.mean, env.obs_rms.mean)
    loaded = MLSH.load(tmp_path / "model", env=loaded_env)
    obs = loaded_env.reset()
    assert np.abs(obs).max() <= loaded_env.clip_obs
    actions, _ = loaded.predict(obs, deterministic=True)
    assert actions.shape == (1, 1)
    loaded.learn(32, reset_num_timesteps=False)
