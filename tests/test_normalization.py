"""Observation and reward normalisation inside MLSH: which spaces, when the statistics change, what is saved."""

import io
import json
import zipfile

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import FakeImageEnv
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecNormalize
from test_run import SMALL

from sb3_mlsh import MLSH, MLSHPolicy, evaluate_adaptation
from sb3_mlsh.common.normalization import ObservationNormalizer, RewardNormalizer

pytestmark = pytest.mark.filterwarnings("ignore:MLSH. the env has no task protocol")


class Scaled(gym.ObservationWrapper):
    """MovementBandits with observations far from unit scale: (obs - 3) * 40."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        box = env.observation_space
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, box.shape, np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return ((observation - 3.0) * 40.0).astype(np.float32)

    def sample_task(self, rng=None):
        return self.env.unwrapped.sample_task(rng)

    def set_task(self, task) -> None:
        self.env.unwrapped.set_task(task)

    @property
    def task(self):
        return self.env.unwrapped.task


def scaled_env(n_envs: int = 2, seed: int = 0):
    return make_vec_env(lambda: Scaled(gym.make("MovementBandits-v0")), n_envs=n_envs, seed=seed)


class Recorder(BaseCallback):
    """Per iteration: the raw observations stepped to, and the statistics in use at every step."""

    def __init__(self) -> None:
        super().__init__()
        self.raw: list[np.ndarray] = []
        self.iterations: list[dict] = []

    def _on_rollout_start(self) -> None:
        normalizer = self.model.policy.obs_normalizer
        self.start = normalizer.mean.clone()
        self.raw = [self.model._last_obs.copy()]

    def _on_step(self) -> bool:
        assert th.equal(self.model.policy.obs_normalizer.mean, self.start), "statistics changed during collection"
        self.raw.append(self.locals["new_obs"].copy())
        return True

    def _on_rollout_end(self) -> None:
        buffer = self.model.rollout_buffer.observations  # (n_steps, n_envs, dim): the inputs of each step
        expected = self.model.policy.obs_normalizer.normalize(np.stack(self.raw[:-1]))
        np.testing.assert_array_equal(buffer, expected)
        self.iterations.append(dict(raw=np.concatenate(self.raw[1:]), mean=self.start))


def test_on_for_box_observations_off_for_others():
    assert MLSH("MlpPolicy", "MovementBandits-v0", **SMALL).policy.obs_normalizer is not None
    assert MLSH("MlpPolicy", "MovementBandits-v0", normalize_observations=False, **SMALL).policy.obs_normalizer is None
    assert MLSH("MlpPolicy", "FourRooms-v0", **SMALL).policy.obs_normalizer is None  # Discrete
    image = FakeImageEnv(screen_height=36, screen_width=36, n_channels=1)
    assert MLSH("CnnPolicy", image, **SMALL).policy.obs_normalizer is None
    with pytest.raises(ValueError, match="normalize_observations=True needs a Box"):
        MLSHPolicy(gym.spaces.Discrete(4), gym.spaces.Discrete(2), lambda _: 1e-3, normalize_observations=True)


def test_statistics_come_from_the_rollouts_and_change_only_after_each_update():
    recorder = Recorder()
    model = MLSH("MlpPolicy", scaled_env(), **SMALL)
    model.learn(3 * SMALL["n_steps"] * 2, callback=recorder)
    assert len(recorder.iterations) == 3
    # the statistics in use in iteration i are those of the observations of iterations < i
    running = RunningMeanStd(shape=(6,))
    for i, iteration in enumerate(recorder.iterations):
        np.testing.assert_allclose(iteration["mean"].numpy(), running.mean, rtol=1e-10, err_msg=f"iteration {i}")
        running.update(iteration["raw"].astype(np.float64))
    normalizer = model.policy.obs_normalizer
    np.testing.assert_allclose(normalizer.mean.numpy(), running.mean, rtol=1e-10)
    np.testing.assert_allclose(normalizer.var.numpy(), running.var, rtol=1e-10)
    # the inputs are near unit scale where the raw observations are far from it
    raw = recorder.iterations[-1]["raw"]
    inputs = normalizer.normalize(raw)
    assert np.abs(raw.mean(axis=0)).min() > 20 and np.abs(inputs.mean(axis=0)).max() < 1.5


def test_clip_and_update_as_running_mean_std():
    normalizer = ObservationNormalizer((2,), clip_obs=2.0)
    data = np.random.default_rng(0).normal([10.0, -3.0], [4.0, 0.5], size=(500, 2))
    batch = RunningMeanStd(shape=(2,))
    batch.update(data[:200])
    normalizer.update(batch)
    batch = RunningMeanStd(shape=(2,))
    batch.update(data[200:])
    normalizer.update(batch)
    np.testing.assert_allclose(normalizer.mean.numpy(), data.mean(axis=0), rtol=1e-4)
    np.testing.assert_allclose(normalizer.var.numpy(), data.var(axis=0), rtol=1e-3)
    normalized = normalizer.normalize(np.array([data.mean(axis=0) + data.std(axis=0), [1000.0, -1000.0]]))
    assert normalized.dtype == np.float32
    np.testing.assert_allclose(normalized[0], 1.0, rtol=1e-3)
    np.testing.assert_array_equal(normalized[1], [2.0, -2.0])


def test_frozen_when_the_subpolicies_are():
    model = MLSH("MlpPolicy", scaled_env(), **SMALL)
    model.learn(2 * SMALL["n_steps"] * 2)
    before = {k: v.clone() for k, v in model.policy.obs_normalizer.state_dict().items()}

    evaluate_adaptation(model, scaled_env(seed=5), n_tasks=2, adaptation_timesteps=64, seed=1)
    model.train_subpolicies = False
    model.learn(2 * SMALL["n_steps"] * 2, reset_num_timesteps=False)
    after = model.policy.obs_normalizer.state_dict()
    assert all(th.equal(value, after[key]) for key, value in before.items())


def test_save_and_load_predict_the_same_actions_bit_for_bit(tmp_path):
    model = MLSH("MlpPolicy", scaled_env(), **SMALL)
    model.learn(3 * SMALL["n_steps"] * 2)
    obs = np.stack([scaled_env(seed=9).reset() for _ in range(4)]).reshape(-1, 6)
    model.save(tmp_path / "model.zip")
    loaded = MLSH.load(tmp_path / "model.zip")
    assert loaded.normalize_observations and loaded.clip_obs == model.clip_obs
    for key, value in model.policy.obs_normalizer.state_dict().items():
        assert th.equal(value, loaded.policy.obs_normalizer.state_dict()[key])
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    model.policy.save(tmp_path / "policy.pt")
    policy = MLSHPolicy.load(tmp_path / "policy.pt")
    np.testing.assert_array_equal(policy.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])


def test_predict_normalizes_what_it_is_given():
    model = MLSH("MlpPolicy", scaled_env(), **SMALL)
    model.learn(2 * SMALL["n_steps"] * 2)
    obs = scaled_env(seed=3).reset()
    inputs = th.as_tensor(model.policy.normalize_observation(obs))
    with th.no_grad():
        expected = model.policy._predict(inputs, deterministic=True).numpy()
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], expected)


def without_attribute(path, name: str) -> bytes:
    """The model file at ``path`` with ``name`` removed from its saved attributes, as an older version wrote it."""
    out = io.BytesIO()
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(out, "w") as target:
        for item in source.namelist():
            content = source.read(item)
            if item == "data":
                data = json.loads(content)
                del data[name]
                content = json.dumps(data).encode()
            target.writestr(item, content)
    return out.getvalue()


def test_a_model_saved_before_normalisation_loads_without_it(tmp_path):
    model = MLSH("MlpPolicy", scaled_env(), normalize_observations=False, **SMALL)
    model.learn(SMALL["n_steps"] * 2)
    model.save(tmp_path / "new.zip")
    (tmp_path / "old.zip").write_bytes(without_attribute(tmp_path / "new.zip", "normalize_observations"))
    obs = scaled_env(seed=3).reset()
    for source in (tmp_path / "old.zip", io.BytesIO((tmp_path / "old.zip").read_bytes())):
        loaded = MLSH.load(source, env=scaled_env())
        assert loaded.normalize_observations is False and loaded.policy.obs_normalizer is None
        np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
        loaded.learn(SMALL["n_steps"] * 2, reset_num_timesteps=False)


class LargeRewards(gym.RewardWrapper):
    """Scaled's env with rewards far from unit scale: 50 * reward + 3 on every step."""

    def reward(self, reward: float) -> float:
        return 50.0 * reward + 3.0


def large_reward_env(n_envs: int = 2, seed: int = 0):
    return make_vec_env(lambda: LargeRewards(Scaled(gym.make("MovementBandits-v0"))), n_envs=n_envs, seed=seed)


class RewardRecorder(BaseCallback):
    """Per iteration: the env's rewards and the episode starts of each step; checks the sub-policies' rewards."""

    def __init__(self) -> None:
        super().__init__()
        self.rewards: list[np.ndarray] = []
        self.starts: list[np.ndarray] = []
        self.variances: list[float] = []

    def _on_rollout_start(self) -> None:
        self.var = self.model.policy.reward_normalizer.var.clone()
        self.iteration_rewards: list[np.ndarray] = []

    def _on_step(self) -> bool:
        assert th.equal(self.model.policy.reward_normalizer.var, self.var), "statistics changed during collection"
        self.starts.append(np.asarray(self.locals["self"]._last_episode_starts, dtype=bool).copy())
        self.iteration_rewards.append(self.locals["rewards"].copy())
        return True

    def _on_rollout_end(self) -> None:
        raw = np.stack(self.iteration_rewards)
        expected = np.clip(raw / np.sqrt(float(self.var) + 1e-8), -10.0, 10.0).astype(np.float32)
        np.testing.assert_array_equal(self.model.rollout_buffer.rewards, expected)
        self.rewards.append(raw)
        self.variances.append(float(self.var))


def test_normalize_rewards_scales_the_subpolicies_rewards_by_the_returns_of_earlier_iterations():
    recorder = RewardRecorder()
    model = MLSH("MlpPolicy", large_reward_env(), normalize_rewards=True, bootstrap_truncation=False, **SMALL)
    model.learn(3 * SMALL["n_steps"] * 2, callback=recorder)
    assert len(recorder.rewards) == 3
    # the discounted return of each env, restarted with each episode (as VecNormalize), pooled per iteration
    running, returns = RunningMeanStd(shape=()), np.zeros(2)
    starts = iter(recorder.starts)
    for i, rewards in enumerate(recorder.rewards):
        assert recorder.variances[i] == pytest.approx(running.var, rel=1e-10), f"iteration {i}"
        seen = []
        for step_rewards in rewards:
            returns = np.where(next(starts), 0.0, model.gamma * returns) + step_rewards
            seen.append(returns)
        running.update(np.concatenate(seen))
    assert float(model.policy.reward_normalizer.var) == pytest.approx(running.var, rel=1e-10)
    assert running.var > 100.0  # the returns are far from unit scale, so the scaling is not near 1


def test_normalize_rewards_leaves_the_masters_rewards_as_the_env_gives_them():
    buffers = []
    for normalize in (False, True):
        model = MLSH("MlpPolicy", large_reward_env(), normalize_rewards=normalize, **SMALL)
        model.learn(2 * SMALL["n_steps"] * 2)  # the second iteration's rewards scaled by the first's returns
        buffers.append(model.master_rollout_buffer.rewards.copy())
    # a warm-up iteration, then a joint one: the same steps either way until the sub-policies' first update
    np.testing.assert_array_equal(buffers[0], buffers[1])
    assert np.abs(buffers[0]).max() >= 9.0  # a macro step of 3 env steps of at least 3 each, not scaled down


def test_reward_statistics_as_vec_normalize_computes_them():
    """The same rewards and episode ends give SB3's VecNormalize and RewardNormalizer the same scaling."""
    rng = np.random.default_rng(0)
    rewards, dones = rng.normal(5.0, 20.0, size=(300, 2)), rng.random((300, 2)) < 0.05
    vec_normalize = VecNormalize(make_vec_env("CartPole-v1", n_envs=2), norm_obs=False, gamma=0.9, clip_reward=3.0)
    normalizer, returns, starts = RewardNormalizer(clip_reward=3.0), np.zeros(2), np.zeros(2, dtype=bool)
    seen = []
    for step_rewards, step_dones in zip(rewards, dones, strict=True):
        vec_normalize._update_reward(step_rewards)
        vec_normalize.returns[step_dones] = 0
        returns = np.where(starts, 0.0, 0.9 * returns) + step_rewards
        seen.append(returns)
        starts = step_dones
    batch = RunningMeanStd(shape=())
    batch.update(np.concatenate(seen))
    normalizer.update(batch)
    probe = np.array([-100.0, -1.0, 0.0, 2.5, 1000.0])
    np.testing.assert_allclose(normalizer.normalize(probe), vec_normalize.normalize_reward(probe), rtol=1e-5)
    assert normalizer.normalize(probe).dtype == np.float32 and normalizer.normalize(probe)[-1] == 3.0


def test_reward_statistics_are_saved_and_frozen_with_the_subpolicies(tmp_path):
    model = MLSH("MlpPolicy", large_reward_env(), normalize_rewards=True, clip_reward=4.0, **SMALL)
    model.learn(2 * SMALL["n_steps"] * 2)
    model.save(tmp_path / "model.zip")
    loaded = MLSH.load(tmp_path / "model.zip", env=large_reward_env())
    assert loaded.normalize_rewards and loaded.clip_reward == 4.0 and loaded.policy.reward_normalizer.clip_reward == 4.0
    for key, value in model.policy.reward_normalizer.state_dict().items():
        assert th.equal(value, loaded.policy.reward_normalizer.state_dict()[key])
    before = loaded.policy.reward_normalizer.var.clone()
    loaded.train_subpolicies = False
    loaded.learn(2 * SMALL["n_steps"] * 2, reset_num_timesteps=False)
    assert th.equal(loaded.policy.reward_normalizer.var, before)
    loaded.train_subpolicies = True
    loaded.learn(SMALL["n_steps"] * 2, reset_num_timesteps=False)
    assert not th.equal(loaded.policy.reward_normalizer.var, before)


def test_a_model_saved_before_reward_normalisation_loads_without_it(tmp_path):
    model = MLSH("MlpPolicy", scaled_env(), **SMALL)
    model.learn(SMALL["n_steps"] * 2)
    model.save(tmp_path / "new.zip")
    (tmp_path / "old.zip").write_bytes(without_attribute(tmp_path / "new.zip", "normalize_rewards"))
    loaded = MLSH.load(tmp_path / "old.zip", env=scaled_env())
    assert loaded.normalize_rewards is False and loaded.policy.reward_normalizer is None
    loaded.learn(SMALL["n_steps"] * 2, reset_num_timesteps=False)
