"""Saving and loading as SB3 users do it: whole models per policy alias, the policy alone, parameters, schedules."""

import io
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import gymnasium as gym
import numpy as np
import pytest
import stable_baselines3.common.base_class as base_class
import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import FakeImageEnv
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.utils import FloatSchedule
from test_run import SMALL, VectorDictEnv

from sb3_mlsh import MLSH

pytestmark = pytest.mark.filterwarnings("ignore:MLSH. the env has no task protocol")


class TanhExtractor(BaseFeaturesExtractor):
    """A features extractor with weights of its own and a keyword argument."""

    def __init__(self, observation_space: gym.Space, features_dim: int = 16) -> None:
        super().__init__(observation_space, features_dim)
        self.linear = th.nn.Linear(int(np.prod(observation_space.shape)), features_dim)

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return th.tanh(self.linear(th.flatten(observations, start_dim=1)))


CASES = {
    "mlp": ("MlpPolicy", lambda: gym.make("MovementBandits-v0"), {}),
    "mlp-extractor": (
        "MlpPolicy",
        lambda: gym.make("MovementBandits-v0"),
        dict(features_extractor_class=TanhExtractor, features_extractor_kwargs=dict(features_dim=8), net_arch=[16]),
    ),
    "cnn": (
        "CnnPolicy",
        lambda: FakeImageEnv(screen_height=36, screen_width=36, n_channels=1),
        dict(features_extractor_kwargs=dict(features_dim=32)),
    ),
    "multi-input": ("MultiInputPolicy", VectorDictEnv, dict(net_arch=dict(pi=[8], vf=[8]))),
}


def trained(name: str) -> MLSH:
    policy, make_env, policy_kwargs = CASES[name]
    model = MLSH(policy, make_vec_env(make_env, n_envs=2, seed=0), policy_kwargs=policy_kwargs, **SMALL)
    model.learn(64)
    return model


def same_actions(first, second, obs) -> None:
    """Both act alike on ``obs`` for a few steps (deterministic), carrying their state."""
    state_a = state_b = None
    for _ in range(4):
        actions_a, state_a = first.predict(obs, state=state_a, deterministic=True)
        actions_b, state_b = second.predict(obs, state=state_b, deterministic=True)
        np.testing.assert_array_equal(actions_a, actions_b)
        assert all((a == b).all() for a, b in zip(state_a, state_b, strict=True))


@pytest.mark.parametrize("name", list(CASES))
def test_model_and_policy_round_trips(tmp_path, name):
    model = trained(name)
    obs = model.get_env().reset()

    model.save(tmp_path / "model.zip")
    loaded = MLSH.load(tmp_path / "model.zip", env=model.get_env())
    assert type(loaded.policy) is type(model.policy)
    for key, value in model.policy.state_dict().items():
        assert th.equal(value, loaded.policy.state_dict()[key]), key
    same_actions(model, loaded, obs)

    # the policy alone, with its features extractor and architecture
    model.policy.save(tmp_path / "policy.pt")
    policy = type(model.policy).load(tmp_path / "policy.pt")
    assert policy.features_extractor_class is model.policy.features_extractor_class
    assert policy.net_arch == model.policy.net_arch
    same_actions(model.policy, policy, obs)


@pytest.mark.skipif(th.cuda.is_available(), reason="simulates a machine without CUDA")
def test_model_saved_on_cuda_loads_on_a_cpu_only_machine(tmp_path, monkeypatch):
    """Every tensor in the files is tagged as a CUDA tensor, as a run with ``device="cuda"`` saves them."""
    model = trained("mlp")
    obs = model.get_env().reset()
    with monkeypatch.context() as patch:
        patch.setattr(th.serialization, "location_tag", lambda storage: "cuda:0")
        model.save(tmp_path / "model.zip")
        model.policy.save(tmp_path / "policy.pt")
    with zipfile.ZipFile(tmp_path / "model.zip") as archive, pytest.raises(RuntimeError, match="CUDA"):
        th.load(io.BytesIO(archive.read("policy.pth")), weights_only=True)  # a CUDA file indeed

    for device in ("auto", "cpu"):
        loaded = MLSH.load(tmp_path / "model.zip", env=model.get_env(), device=device)
        assert loaded.device.type == "cpu"
        assert all(value.device.type == "cpu" for value in loaded.policy.state_dict().values())
        for key, value in model.policy.state_dict().items():
            assert th.equal(value, loaded.policy.state_dict()[key]), key
        same_actions(model, loaded, obs)
        loaded.learn(64, reset_num_timesteps=False)  # the optimizers' state came to the CPU as well
    policy = type(model.policy).load(tmp_path / "policy.pt", device="auto")
    same_actions(model.policy, policy, obs)


def test_get_and_set_parameters():
    model, other = trained("mlp"), MLSH("MlpPolicy", "MovementBandits-v0", **{**SMALL, "seed": 1})
    params = model.get_parameters()
    assert {"policy", "policy.masters.0.optimizer", "policy.subpolicies.0.optimizer"} <= set(params)
    other.set_parameters(params, exact_match=True)
    for key, value in model.policy.state_dict().items():
        assert th.equal(value, other.policy.state_dict()[key]), key
    partial = {"policy": {k: v for k, v in params["policy"].items() if k.startswith("subpolicies.")}}
    with pytest.raises(RuntimeError, match="Missing key"):
        other.set_parameters(partial, exact_match=True)
    fresh = MLSH("MlpPolicy", "MovementBandits-v0", **{**SMALL, "seed": 2})
    master = [p.clone() for p in fresh.policy.master.parameters()]
    fresh.set_parameters(partial, exact_match=False)  # the sub-policies alone: e.g. to transfer them
    assert all(th.equal(a, b) for a, b in zip(master, fresh.policy.master.parameters(), strict=True))
    assert th.equal(fresh.policy.subpolicies[1].value_net.weight, model.policy.subpolicies[1].value_net.weight)
    # a modified sub-policy weight reaches the acting (batched) networks
    params["policy"]["subpolicies.0.action_net.bias"] += 1.0
    other.set_parameters(params, exact_match=True)
    obs = np.zeros((3, 6), dtype=np.float32)
    _, values, _ = other.policy(th.as_tensor(obs), np.zeros(3, dtype=np.int64))
    expected = other.policy.subpolicies[0].predict_values(th.as_tensor(obs))
    assert th.allclose(values, expected)


def test_save_exclude_and_include(tmp_path):
    model = trained("mlp")
    model.save(tmp_path / "model.zip", exclude=["n_epochs"], include=["_last_obs"])
    loaded = MLSH.load(tmp_path / "model.zip")
    assert loaded.n_epochs == 10  # excluded: the default
    np.testing.assert_array_equal(loaded._last_obs, model._last_obs)


def test_schedules_survive_save_and_load_and_custom_objects(tmp_path):
    model = MLSH(
        "MlpPolicy",
        "MovementBandits-v0",
        **{**SMALL, "clip_range": lambda progress: 0.1 + 0.1 * progress, "learning_rate": lambda progress: 1e-3 * progress},
    )
    model.learn(32)
    model.save(tmp_path / "model.zip")
    loaded = MLSH.load(tmp_path / "model.zip")
    assert loaded.clip_range(0.0) == pytest.approx(0.1) and loaded.clip_range(1.0) == pytest.approx(0.2)
    # as with PPO: replace schedules that cannot be unpickled elsewhere, e.g. saved lambdas
    replaced = MLSH.load(
        tmp_path / "model.zip", custom_objects={"clip_range": 0.3, "learning_rate": 5e-4, "lr_schedule": lambda _: 5e-4}
    )
    assert isinstance(replaced.clip_range, FloatSchedule) and replaced.clip_range(0.5) == 0.3
    replaced.set_env(make_vec_env("MovementBandits-v0", n_envs=1))
    replaced.learn(32)
    assert replaced.subpolicy_learners[0].clip_range(0.5) == 0.3


def test_failed_save_leaves_the_earlier_file_intact(tmp_path, monkeypatch):
    model = trained("mlp")
    model.save(tmp_path / "victim")  # ".zip" added, as SB3 does
    before = (tmp_path / "victim.zip").read_bytes()

    def write_half_then_fail(save_path, *args, **kwargs):
        save_path.write(before[: len(before) // 2])
        raise OSError("No space left on device")

    monkeypatch.setattr(base_class, "save_to_zip_file", write_half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        model.save(tmp_path / "victim.zip")
    assert (tmp_path / "victim.zip").read_bytes() == before
    assert [path.name for path in tmp_path.iterdir()] == ["victim.zip"]  # no temporary file left
    MLSH.load(tmp_path / "victim.zip")


def test_killed_save_leaves_the_earlier_file_intact(tmp_path):
    trained("mlp").save(tmp_path / "victim.zip")
    before = (tmp_path / "victim.zip").read_bytes()
    # a process that starts saving a model to the same path and is killed (SIGKILL) while it writes
    script = textwrap.dedent(
        f"""
        import pathlib, time
        import stable_baselines3.common.base_class as base_class
        from sb3_mlsh import MLSH

        def write_forever(save_path, *args, **kwargs):
            save_path.write(b"PK" + bytes(1 << 20))
            save_path.flush()
            pathlib.Path({str(tmp_path / "writing")!r}).touch()
            time.sleep(60)

        base_class.save_to_zip_file = write_forever
        MLSH("MlpPolicy", "MovementBandits-v0", n_steps=30, batch_size=16).save({str(tmp_path / "victim.zip")!r})
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "writing").exists():
            assert process.poll() is None and time.monotonic() < deadline, "the saving process did not start writing"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert (tmp_path / "victim.zip").read_bytes() == before
    MLSH.load(tmp_path / "victim.zip")


def test_loading_a_model_of_another_algorithm_says_what_it_is(tmp_path):
    from stable_baselines3 import PPO

    PPO("MlpPolicy", "CartPole-v1", n_steps=64).save(tmp_path / "ppo")
    with pytest.raises(
        ValueError, match=r"not an MLSH model .* stable_baselines3\.common\.policies\.ActorCriticPolicy.*PPO\.load"
    ):
        MLSH.load(tmp_path / "ppo.zip")
