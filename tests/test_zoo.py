"""rl-zoo3: the literal `python -m rl_zoo3.train --algo mlsh` commands, run in subprocesses against the installed package."""

import inspect
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from stable_baselines3.common.env_util import make_vec_env

from sb3_mlsh import MLSH
from sb3_mlsh.zoo import hyperparams_path, mlsh_settings, register, with_schedules
from sb3_mlsh.zoo.hyperparams_opt import sample_mlsh_params

HOOK_INSTALLED = any((Path(path) / "sb3_mlsh_zoo.pth").is_file() for path in site.getsitepackages())
needs_hook = pytest.mark.skipif(
    not HOOK_INSTALLED, reason="the rl-zoo3 hook (sb3_mlsh_zoo.pth) comes with a non-editable install: pip install '.[tests]'"
)
ENV = "MovementBandits-v0"


def run(*args: str, cwd: Path, extra_env: dict[str, str] | None = None, timeout: float = 600) -> str:
    """Run ``python *args`` in ``cwd``; fail with its output if it fails; return stdout and stderr."""
    env = {**os.environ, "SB3_MLSH_NO_ZOO_HOOK": "0", **(extra_env or {})}
    result = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return output


def run_dir(cwd: Path, exp_id: int) -> Path:
    return cwd / "logs" / "mlsh" / f"{ENV}_{exp_id}"


@pytest.mark.slow  # several rl_zoo3 processes: 40 to 90 s
@needs_hook
def test_zoo_train_eval_checkpoints_continue_and_enjoy(tmp_path):
    run("-m", "rl_zoo3.train", "--algo", "mlsh", "--env", ENV, "-n", "4000", "--eval-freq", "2000", "--save-freq", "2000",
        "-P", cwd=tmp_path)  # fmt: skip
    first = run_dir(tmp_path, 1)
    for name in (f"{ENV}.zip", "best_model.zip", "evaluations.npz", "rl_model_2000_steps.zip", "rl_model_4000_steps.zip"):
        assert (first / name).is_file(), name
    config = yaml.unsafe_load((first / ENV / "config.yml").read_text())
    assert dict(config)["n_subpolicies"] == 2 and dict(config)["macro_duration"] == 10  # our packaged mlsh.yml

    output = run(
        "-m", "rl_zoo3.enjoy", "--algo", "mlsh", "--env", ENV, "-f", "logs/", "--no-render", "--load-best", cwd=tmp_path
    )
    assert "Loading" in output and "best_model.zip" in output

    output = run(
        "-m", "rl_zoo3.train", "--algo", "mlsh", "--env", ENV, "-i", f"logs/mlsh/{ENV}_1/{ENV}.zip", "-n", "2000", cwd=tmp_path
    )  # fmt: skip
    assert "Loading pretrained agent" in output
    # 2000 steps per iteration: 2 iterations of the first task, then a third one after loading
    first_model, continued = MLSH.load(first / f"{ENV}.zip"), MLSH.load(run_dir(tmp_path, 2) / f"{ENV}.zip")
    assert (first_model.tasks_sampled, first_model.iteration_in_task) == (1, 2)
    assert (continued.tasks_sampled, continued.iteration_in_task) == (1, 3)

    output = run(
        "-m", "rl_zoo3.enjoy", "--algo", "mlsh", "--env", ENV, "-f", "logs/", "--no-render", "-n", "500", cwd=tmp_path
    )
    assert "Episode Reward" in output


@pytest.mark.slow  # several rl_zoo3 processes: 40 to 90 s
@needs_hook
def test_zoo_subproc_vec_env(tmp_path):
    run("-m", "rl_zoo3.train", "--algo", "mlsh", "--env", ENV, "--vec-env", "subproc", "-n", "2000", cwd=tmp_path)
    assert (run_dir(tmp_path, 1) / f"{ENV}.zip").is_file()


@pytest.mark.slow  # several rl_zoo3 processes: 40 to 90 s
@needs_hook
def test_zoo_optimize(tmp_path):
    run("-m", "rl_zoo3.train", "--algo", "mlsh", "--env", ENV, "-n", "2000", "-optimize", "--n-trials", "2",
        "--n-evaluations", "2", "--sampler", "random", "--pruner", "median", cwd=tmp_path)  # fmt: skip
    reports = list((tmp_path / "logs" / "mlsh").glob("report_*.csv"))
    assert len(reports) == 1
    assert "n_subpolicies" in reports[0].read_text()


@pytest.mark.skipif(shutil.which("sb3-mlsh-zoo") is None, reason="the console script comes with pip install")
def test_console_script_trains_and_enjoys_without_the_hook(tmp_path):
    script, no_hook = shutil.which("sb3-mlsh-zoo"), {"SB3_MLSH_NO_ZOO_HOOK": "1"}
    usage = subprocess.run([script], capture_output=True, text=True)
    assert usage.returncode != 0 and "record_video" in usage.stderr
    for command in (["train", "-n", "2000"], ["enjoy", "-f", "logs/", "--no-render", "-n", "200"]):
        result = subprocess.run(
            [script, command[0], "--algo", "mlsh", "--env", ENV, *command[1:]],
            cwd=tmp_path, env={**os.environ, **no_hook}, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert (run_dir(tmp_path, 1) / f"{ENV}.zip").is_file()


def test_explicit_route_without_the_hook(tmp_path):
    run("-m", "sb3_mlsh.zoo", "train", "--algo", "mlsh", "--env", ENV, "-n", "2000", cwd=tmp_path,
        extra_env={"SB3_MLSH_NO_ZOO_HOOK": "1"})  # fmt: skip
    assert (run_dir(tmp_path, 1) / f"{ENV}.zip").is_file()


def test_env_without_an_entry_says_how_to_give_one_and_the_documented_entry_works(tmp_path):
    command = ["-m", "sb3_mlsh.zoo", "train", "--algo", "mlsh", "--env", "CartPole-v1", "-n", "120"]
    result = subprocess.run([sys.executable, *command], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "--conf-file" in result.stderr and "docs/zoo.md" in result.stderr
    docs = (Path(__file__).parents[1] / "docs" / "zoo.md").read_text()
    entry = yaml.safe_load(docs.split("```yaml\n")[1].split("```")[0])
    entry["CartPole-v1"].update(n_envs=2, n_steps=20)  # a tiny budget, the rest as documented
    (tmp_path / "my_mlsh.yml").write_text(yaml.safe_dump(entry))
    run(*command, "--conf-file", "my_mlsh.yml", "--hyperparams", "n_subpolicies:3", cwd=tmp_path)
    model = MLSH.load(tmp_path / "logs" / "mlsh" / "CartPole-v1_1" / "CartPole-v1.zip")
    assert model.n_subpolicies == 3 and model.macro_duration == 10


def test_pep_829_start_file_names_the_hooks_installer():
    root = Path(__file__).parents[1]
    entry = (root / "sb3_mlsh_zoo.start").read_text().strip()
    module, _, name = entry.partition(":")
    sys.path.insert(0, str(root))
    try:
        install = getattr(__import__(module), name)
    finally:
        sys.path.remove(str(root))
    assert callable(install) and not inspect.signature(install).parameters  # a zero-argument callable
    if HOOK_INSTALLED:  # installed next to the .pth file
        assert any((Path(path) / "sb3_mlsh_zoo.start").is_file() for path in site.getsitepackages())


@pytest.mark.slow  # several rl_zoo3 processes: 40 to 90 s
def test_adaptation_eval_callback_from_the_zoo_callback_key(tmp_path):
    docs = (Path(__file__).parents[1] / "docs" / "zoo.md").read_text()
    entry = yaml.safe_load(docs.split("```yaml\n")[2].split("```")[0])  # the page's second YAML block
    entry[ENV].update(n_envs=2, n_steps=50, warmup_iterations=1, joint_iterations=1)  # a tiny budget
    callback = entry[ENV]["callback"][0]["sb3_mlsh.AdaptationEvalCallback"]
    callback.update(n_tasks=2, adaptation_timesteps=200, eval_freq=100)
    (tmp_path / "mlsh_adapt.yml").write_text(yaml.safe_dump(entry))
    output = run("-m", "sb3_mlsh.zoo", "train", "--algo", "mlsh", "--env", ENV, "-n", "400", "--conf-file", "mlsh_adapt.yml",
                 cwd=tmp_path)  # fmt: skip
    assert "Eval num_timesteps=200, adaptation_return=" in output and "adaptation_return   " in output  # logged
    assert (tmp_path / "adaptation" / "best_model.zip").is_file()


@needs_hook
def test_hook_can_be_disabled(tmp_path):
    code = "import rl_zoo3; print(sorted(rl_zoo3.ALGOS))"
    assert "'mlsh'" in run("-c", code, cwd=tmp_path)
    assert "'mlsh'" not in run("-c", code, cwd=tmp_path, extra_env={"SB3_MLSH_NO_ZOO_HOOK": "1"})


@needs_hook
def test_hook_failure_only_warns(tmp_path):
    # sb3_mlsh cannot be imported: rl_zoo3 still imports and works, with a warning
    code = "import sys; sys.modules['sb3_mlsh'] = None; import rl_zoo3; print('ppo' in rl_zoo3.ALGOS, 'mlsh' in rl_zoo3.ALGOS)"
    output = run("-c", code, cwd=tmp_path)
    assert "True False" in output and "could not add `--algo mlsh` to rl_zoo3" in output


def test_register_keeps_a_users_own_entry():
    import rl_zoo3
    from stable_baselines3 import PPO

    saved = rl_zoo3.ALGOS.pop("mlsh", None)
    try:
        rl_zoo3.ALGOS["mlsh"] = PPO
        register()
        assert rl_zoo3.ALGOS["mlsh"] is PPO
    finally:
        rl_zoo3.ALGOS["mlsh"] = saved or MLSH


def test_packaged_hyperparams_have_every_registered_env():
    from sb3_mlsh.envs import ENV_IDS

    config = yaml.safe_load(hyperparams_path().read_text())
    for env_id in ENV_IDS:
        entry = config[env_id]
        for key in ("n_subpolicies", "macro_duration", "warmup_iterations", "joint_iterations", "n_timesteps"):
            assert key in entry, (env_id, key)


def test_mlsh_settings_build_the_model_the_entry_describes():
    n_envs, settings = mlsh_settings("MovementBandits-v0")
    entry = yaml.safe_load(hyperparams_path().read_text())["MovementBandits-v0"]
    assert n_envs == entry["n_envs"]
    assert set(settings) == set(entry) - {"n_envs", "n_timesteps", "policy"}
    model = MLSH(entry["policy"], make_vec_env("MovementBandits-v0", n_envs=n_envs), **settings)
    assert (model.n_subpolicies, model.macro_duration) == (entry["n_subpolicies"], entry["macro_duration"])
    rate = with_schedules(entry)["learning_rate"]  # a lin_<v> string in the entry
    assert [model.lr_schedule(p) for p in (1.0, 0.5, 0.0)] == pytest.approx([rate(p) for p in (1.0, 0.5, 0.0)])
    with pytest.raises(KeyError, match="entries: "):
        mlsh_settings("CartPole-v1")


def test_schedule_strings_read_as_the_zoo_reads_them():
    rate = with_schedules({"learning_rate": "lin_1e-3", "n_steps": 125})["learning_rate"]
    assert (rate(1.0), rate(0.25), rate(0.0)) == pytest.approx((1e-3, 2.5e-4, 0.0))
    assert with_schedules({"master_learning_rate": 0.01}) == {"master_learning_rate": 0.01}
    with pytest.raises(ValueError, match="lin_<initial value>"):
        with_schedules({"clip_range": "cos_0.2"})


def test_optuna_sampler_gives_valid_models():
    sampler = optuna.samplers.RandomSampler(seed=0)
    study = optuna.create_study(sampler=sampler)
    for _ in range(5):
        trial = study.ask()
        params = sample_mlsh_params(trial, n_actions=5, n_envs=1, additional_args={})
        assert {"n_subpolicies", "macro_duration", "warmup_iterations", "joint_iterations", "master_learning_rate"} <= set(
            params
        )
        MLSH("MlpPolicy", ENV, **params)  # raises on an invalid combination


@needs_hook
@pytest.mark.parametrize("first", ["sb3_mlsh", "sb3_mlsh.zoo.hyperparams_opt", "rl_zoo3.train"])
def test_hook_works_whatever_is_imported_first(tmp_path, first):
    code = f"import {first}, rl_zoo3; print('mlsh' in rl_zoo3.ALGOS)"
    assert "True" in run("-W", "error::RuntimeWarning", "-c", code, cwd=tmp_path)


@needs_hook
def test_zoo_transfer_with_pretrained_agent_starts_a_fresh_master(tmp_path):
    # meta-train two task groups, then transfer through `-i` with an entry shaped as mlsh.yml's transfer recipes
    meta = MLSH("MlpPolicy", make_vec_env(ENV, n_envs=2), n_task_groups=2, n_steps=50, seed=0)
    meta.learn(200)
    meta.save(tmp_path / "meta")
    transfer_entry = {
        ENV: dict(
            n_envs=1, n_timesteps=100, policy="MlpPolicy", n_steps=50, train_subpolicies=False, reset_master_on_load=True,
            n_task_groups=1,
            master_learning_rate=0.0,  # the master stays as the transfer started it
        )
    }  # fmt: skip
    (tmp_path / "transfer.yml").write_text(yaml.safe_dump(transfer_entry))
    run("-m", "rl_zoo3.train", "--algo", "mlsh", "--env", ENV, "-i", "meta.zip", "--conf-file", "transfer.yml",
        "--eval-freq", "-1", cwd=tmp_path)  # fmt: skip
    transferred = MLSH.load(run_dir(tmp_path, 1) / f"{ENV}.zip")
    saved, fresh = meta.policy.state_dict(), transferred.policy.state_dict()
    assert all((saved[k] == fresh[k]).all() for k in saved if k.startswith("subpolicies."))
    assert not (saved["masters.0.action_net.weight"] == fresh["masters.0.action_net.weight"]).any()
    assert transferred.phase == "master_only"


def test_packaged_transfer_recipes_start_fresh_masters():
    entries = yaml.safe_load(hyperparams_path().read_text())
    transfers = [name for name, entry in entries.items() if entry.get("train_subpolicies") is False]
    assert transfers == ["AntObstacle-v0", "HumanoidCourse-v0"]
    assert all(entries[name].get("reset_master_on_load") is True for name in transfers)
    assert all(entries[name].get("n_task_groups") == 1 for name in transfers)
