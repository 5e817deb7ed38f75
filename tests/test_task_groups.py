"""Task groups: staggered schedules, per-group tasks and masters, pooled sub-policy updates, exact resumption."""

import math
import pickle
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from helpers import CountingEnv, parameters, same
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from sb3_mlsh import MLSH

SMALL = dict(
    macro_duration=3, n_steps=12, batch_size=32, master_batch_size=8, n_epochs=2, seed=0, policy_kwargs=dict(net_arch=[8])
)
DATA = Path(__file__).parent / "data"


def grouped_model(n_envs=8, n_task_groups=4, warmup_iterations=2, joint_iterations=2, seed=0, **kwargs) -> MLSH:
    env = make_vec_env("MovementBandits-v0", n_envs=n_envs, seed=seed)
    return MLSH(
        "MlpPolicy",
        env,
        n_task_groups=n_task_groups,
        warmup_iterations=warmup_iterations,
        joint_iterations=joint_iterations,
        **{**SMALL, "seed": seed, **kwargs},
    )


class Schedule(BaseCallback):
    """Per iteration (at rollout start, after new tasks started): each group's task, phase, position, whether its
    master's optimizer is fresh, the env tasks, and whether the sub-policies changed since the last iteration."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict] = []

    def _on_step(self) -> bool:
        return True

    def _on_rollout_start(self) -> None:
        model = self.model
        subs = parameters(model.policy.subpolicies)
        if self.rows:
            self.rows[-1]["subs_changed_after"] = not same(self._subs, subs)
        self._subs = subs
        self.rows.append(
            dict(
                tasks=[g.task for g in model.task_groups],
                phases=[g.phase for g in model.task_groups],
                positions=[g.iteration_in_task for g in model.task_groups],
                sampled=[g.tasks_sampled for g in model.task_groups],
                fresh_master=[len(m.optimizer.state) == 0 for m in model.policy.masters],
                env_tasks=model.get_env().get_attr("task"),
            )
        )


def test_groups_are_staggered_and_keep_their_task_for_a_whole_schedule():
    model = grouped_model()
    seen = Schedule()
    n_iterations = 14
    model.learn(n_iterations * 12 * 8, callback=seen)
    rows = seen.rows
    assert [g.offset for g in model.task_groups] == [0, 1, 2, 3]  # g * (W + U) // G
    assert [list(g.envs) for g in model.task_groups] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    # phases differ within the first W + U iterations
    assert len({tuple(row["phases"]) for row in rows[:4]}) > 1
    assert rows[2]["phases"] == ["joint", "warmup", "warmup", "warmup"]
    for g, group in enumerate(model.task_groups):
        starts = [i for i, row in enumerate(rows) if row["positions"][g] == 0]
        # the first task lasts W + U + offset iterations, every later one W + U
        assert starts[:3] == [0, 4 + g, 8 + g]
        for i, row in enumerate(rows):
            # each env has its group's task
            assert row["env_tasks"][2 * g : 2 * g + 2] == [row["tasks"][g]] * 2
            # the master is fresh (re-initialised) exactly where the group's task starts
            assert row["fresh_master"][g] == (i in starts)
            if i not in starts:  # a task is constant between its starts
                assert row["tasks"][g] == rows[i - 1]["tasks"][g] and row["sampled"][g] == rows[i - 1]["sampled"][g]
        assert group.tasks_sampled == len(starts)
    # with U / (W + U) = 1/2 and 4 groups, two groups are in the joint phase once the stagger is established
    assert all(row["phases"].count("joint") == 2 for row in rows[6:])


def test_subpolicies_learn_only_in_iterations_with_a_joint_group_and_only_from_its_steps():
    # two groups, W = 1, U = 1: group 1's first task starts with two warm-up iterations
    model = grouped_model(n_envs=4, n_task_groups=2, warmup_iterations=1, joint_iterations=1)
    selected: list[np.ndarray] = []
    for learner in model.subpolicy_learners:
        update = learner.update

        def spy(logger, progress, learner=learner, update=update):
            selected.append(model.rollout_buffer.env_indices[learner.rollout_buffer.indices])
            update(logger, progress)

        learner.update = spy
    seen = Schedule()
    model.learn(5 * 12 * 4, callback=seen)
    for row in seen.rows[:-1]:
        assert row["subs_changed_after"] == ("joint" in row["phases"])
    assert seen.rows[0]["phases"] == ["warmup", "warmup"]
    assert seen.rows[1]["phases"] == ["joint", "warmup"]
    assert seen.rows[2]["phases"] == ["warmup", "joint"]
    # the updates of iteration 1 read group 0's envs only, those of iteration 2 group 1's only
    assert selected and all(set(rows) <= {0, 1} or set(rows) <= {2, 3} for rows in selected)
    assert {0, 1} & set(np.concatenate(selected)) and {2, 3} & set(np.concatenate(selected))


def test_save_load_mid_schedule_resumes_every_group_and_the_task_sequence(tmp_path):
    steps = 12 * 8

    def run(interrupt: bool) -> list[tuple]:
        model = grouped_model(warmup_iterations=1, joint_iterations=1, seed=3)
        seen = Schedule()
        if interrupt:
            model.learn(5 * steps, callback=seen)
            model.save(tmp_path / "model")
            model = MLSH.load(tmp_path / "model", env=make_vec_env("MovementBandits-v0", n_envs=8, seed=3))
            model.learn(9 * steps, callback=seen, reset_num_timesteps=False)
        else:
            model.learn(14 * steps, callback=seen)
        return [(tuple(r["tasks"]), tuple(r["phases"]), tuple(r["positions"]), tuple(r["sampled"])) for r in seen.rows]

    uninterrupted, resumed = run(False), run(True)
    assert len(uninterrupted) == 14 and resumed == uninterrupted
    # enough tasks were drawn for the comparison to mean something
    assert len({tasks for tasks, *_ in uninterrupted}) > 2


def test_predict_uses_each_rows_group_master_for_a_batch_of_n_envs_rows():
    model = grouped_model(n_envs=4, n_task_groups=2, n_subpolicies=2)
    with th.no_grad():
        model.policy.masters[0].action_net.bias.copy_(th.tensor([50.0, -50.0]))
        model.policy.masters[1].action_net.bias.copy_(th.tensor([-50.0, 50.0]))
    obs = np.zeros((4, 6), dtype=np.float32)
    _, (active, _) = model.predict(obs, deterministic=True)
    assert active.tolist() == [0, 0, 1, 1]
    _, (active, _) = model.predict(obs[:3], deterministic=True)  # not one row per env: group 0's master
    assert active.tolist() == [0, 0, 0]


def test_group_logger_keys_and_per_task_returns(tmp_path):
    # tasks of 6 iterations of 12 steps: long enough for episodes of 50 steps to end
    model = grouped_model(n_envs=4, n_task_groups=2, warmup_iterations=3, joint_iterations=3)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(10 * 12 * 4)
    header = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    for key in (
        "mlsh/group_0/task",
        "mlsh/group_1/phase",
        "mlsh/group_1/phase_id",
        "mlsh/groups_in_joint",
        "rollout/bootstrap_fraction",
        "train/master/policy_gradient_loss",
        "train/sub/value_loss",
    ):
        assert key in header, key
    assert {"rollout/ep_rew_mean_task_0", "rollout/ep_rew_mean_task_1"} & set(header)


def test_a_subpolicy_with_fewer_than_two_steps_is_not_updated_and_nothing_logged_is_nan(tmp_path):
    model = MLSH(
        "MlpPolicy",
        make_vec_env("MovementBandits-v0", n_envs=1, seed=0),
        n_subpolicies=3,
        warmup_iterations=0,
        joint_iterations=1,
        **{**SMALL, "macro_duration": 1, "n_steps": 16},
    )
    decisions = []

    def decide(obs, masters, deterministic=False):  # sub-policy 1 acts once, then sub-policy 0 only
        actions, values, log_probs = type(model.policy).decide(model.policy, obs, masters, deterministic)
        actions = th.full_like(actions, 1 if not decisions else 0)
        decisions.append(int(actions[0]))
        return actions, values, log_probs

    model.policy.decide = decide
    model.policy.reset_master = lambda index=None: None
    before = [parameters(sub) for sub in model.policy.subpolicies]
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(16)
    assert decisions.count(1) == 1 and (model.rollout_buffer.subpolicies == 1).sum() == 1
    assert not same(before[0], parameters(model.policy.subpolicies[0]))
    assert same(before[1], parameters(model.policy.subpolicies[1])) and same(
        before[2], parameters(model.policy.subpolicies[2])
    )
    lines = (tmp_path / "progress.csv").read_text().splitlines()
    values = dict(zip(lines[0].split(","), lines[1].split(","), strict=True))
    assert not any(v.lower() == "nan" for v in values.values()), values


def test_distinct_group_tasks_give_the_groups_different_tasks_while_there_are_free_ones():
    # FourRooms-v0: four tasks; with two groups the starting group always has three free ones
    env = make_vec_env("FourRooms-v0", n_envs=4, seed=0)
    model = MLSH(
        "MlpPolicy", env, n_task_groups=2, warmup_iterations=1, joint_iterations=1, distinct_group_tasks=True, **SMALL
    )
    seen = Schedule()
    model.learn(16 * 12 * 4, callback=seen)
    assert all(row["tasks"][0] != row["tasks"][1] for row in seen.rows)
    assert len({task for row in seen.rows for task in row["tasks"]}) == 4  # every task drawn, not one pair kept
    # with as many groups as tasks (MovementBandits-v0: two), each group keeps the task the other does not hold
    model = grouped_model(n_envs=4, n_task_groups=2, distinct_group_tasks=True)
    seen = Schedule()
    model.learn(10 * 12 * 4, callback=seen)
    assert all(sorted(row["tasks"]) == [0, 1] for row in seen.rows)
    # independent draws (the default, the paper's) give both groups the same task at times
    model = grouped_model(n_envs=4, n_task_groups=2)
    seen = Schedule()
    model.learn(30 * 12 * 4, callback=seen)
    assert any(row["tasks"][0] == row["tasks"][1] for row in seen.rows)


def test_distinct_group_tasks_need_a_finite_task_list():
    from sb3_mlsh import TaskSamplerWrapper

    def make_env() -> gym.Env:
        return TaskSamplerWrapper(gym.make("MovementBandits-v0"), sample_task=lambda rng: 0, set_task=lambda env, task: None)

    env = DummyVecEnv([make_env] * 2)
    with pytest.raises(ValueError, match="distinct_group_tasks=True draws each group's task from the env's finite task"):
        MLSH("MlpPolicy", env, n_task_groups=2, distinct_group_tasks=True, **SMALL)


@pytest.mark.parametrize(
    "n_envs, kwargs, match",
    [
        (8, dict(n_task_groups=3), "n_task_groups=3 does not divide the 8 envs"),
        (8, dict(n_task_groups=0), "n_task_groups=0; use an integer >= 1"),
        (8, dict(n_task_groups="2"), "n_task_groups='2'; use an integer >= 1"),
        (8, dict(bootstrap_truncation="no"), "bootstrap_truncation='no'; use True or False"),
    ],
)
def test_invalid_task_groups_are_rejected_before_any_step(n_envs, kwargs, match):
    class NeverStep(gym.Wrapper):
        def step(self, action):
            raise AssertionError("the env was stepped")

    env = DummyVecEnv([lambda: NeverStep(gym.make("MovementBandits-v0"))] * n_envs)
    with pytest.raises(ValueError, match=match):
        MLSH("MlpPolicy", env, **{**SMALL, **kwargs})


def test_task_groups_need_envs_that_reset_one_at_a_time():
    env = VecNormalize(make_vec_env("MovementBandits-v0", n_envs=4))
    with pytest.raises(ValueError, match="n_task_groups=2 resets each group's envs alone, which VecNormalize"):
        MLSH("MlpPolicy", env, n_task_groups=2, **SMALL)


def test_reset_master_on_load_starts_fresh_masters_and_is_not_saved(tmp_path):
    model = grouped_model(n_envs=4, n_task_groups=2)
    model.learn(3 * 12 * 4)
    model.save(tmp_path / "meta")
    env = make_vec_env("MovementBandits-v0", n_envs=1, seed=1)
    with pytest.raises(RuntimeError, match="the saved model has 2 masters .* reset_master_on_load=True"):
        MLSH.load(tmp_path / "meta", env=env, n_task_groups=1)
    transfer = MLSH.load(
        tmp_path / "meta", env=env, n_task_groups=1, train_subpolicies=False, reset_master_on_load=True, seed=5
    )
    assert same(parameters(model.policy.subpolicies), parameters(transfer.policy.subpolicies))
    assert transfer.policy.n_masters == 1 and len(transfer.policy.master.optimizer.state) == 0
    assert not any(
        th.equal(a, b) for a, b in zip(parameters(model.policy.masters[0]), parameters(transfer.policy.master), strict=True)
    )
    transfer.learn(60)
    transfer.save(tmp_path / "transfer")
    trained = parameters(transfer.policy.master)
    again = MLSH.load(tmp_path / "transfer", env=env)  # the adapted master is kept: the flag was not saved
    assert not again.reset_master_on_load and same(trained, parameters(again.policy.master))


def test_truncation_bootstrap_can_be_turned_off():
    def macro_rewards(bootstrap: bool) -> list[float]:
        env = DummyVecEnv([lambda: gym.wrappers.TimeLimit(CountingEnv(terminate=False), max_episode_steps=5)])
        model = MLSH(
            "MlpPolicy",
            env,
            macro_duration=3,
            n_steps=5,
            warmup_iterations=1,
            joint_iterations=1,
            bootstrap_truncation=bootstrap,
            **{k: v for k, v in SMALL.items() if k not in ("macro_duration", "n_steps")},
        )
        rewards = []

        class Record(BaseCallback):
            def _on_step(self) -> bool:
                return True

            def _on_rollout_end(self) -> None:
                rewards.extend(self.model.master_rollout_buffer.rewards[:2, 0].tolist())

        model.learn(5, callback=Record())
        return [r / model.current_task for r in rewards]

    assert macro_rewards(False) == [3.0, 2.0]
    with_bootstrap = macro_rewards(True)
    assert with_bootstrap[0] == 3.0 and not math.isclose(with_bootstrap[1], 2.0)


def test_files_saved_by_version_0_1_0_load_with_their_masters_and_schedule():
    # saved by sb3-mlsh 0.1.0 (one master under "master."): MovementBandits, K = 2, N = 3, W = U = 2, after 150 steps
    model = MLSH.load(DATA / "mlsh_0.1.0_bandits.zip", env=make_vec_env("MovementBandits-v0", n_envs=1))
    saved = th.load(_extract(DATA / "mlsh_0.1.0_bandits.zip", "policy.pth"), weights_only=True)
    assert th.equal(model.policy.master.action_net.weight, saved["master.action_net.weight"])
    assert th.equal(model.policy.subpolicies[1].value_net.weight, saved["subpolicies.1.value_net.weight"])
    assert len(model.policy.master.optimizer.state) > 0
    assert (model.current_task, model.tasks_sampled, model.iteration_in_task) == (1, 2, 1)
    model.learn(30, reset_num_timesteps=False)  # the saved task goes on
    assert model.iteration_in_task == 2 and model.tasks_sampled == 2
    model.learn(90, reset_num_timesteps=False)  # its last iteration, then a new task
    assert model.iteration_in_task == 1 and model.tasks_sampled == 3


def _extract(archive: Path, name: str):
    import io
    import zipfile

    with zipfile.ZipFile(archive) as zf:
        return io.BytesIO(zf.read(name))


def test_groups_in_subprocesses_draw_the_same_tasks_as_in_one_process():
    from stable_baselines3.common.vec_env import SubprocVecEnv

    def tasks_drawn(vec_env_cls) -> list[tuple]:
        env = make_vec_env("sb3_mlsh:MovementBandits-v0", n_envs=4, seed=0, vec_env_cls=vec_env_cls)
        try:
            model = MLSH("MlpPolicy", env, n_task_groups=2, warmup_iterations=1, joint_iterations=1, **SMALL)
            seen = Schedule()
            model.learn(8 * 12 * 4, callback=seen)
            for row in seen.rows:
                assert row["env_tasks"] == [row["tasks"][0]] * 2 + [row["tasks"][1]] * 2
            return [tuple(row["tasks"]) for row in seen.rows]
        finally:
            env.close()

    in_process = tasks_drawn(DummyVecEnv)
    assert tasks_drawn(SubprocVecEnv) == in_process and len(set(in_process)) > 1


def test_a_policy_state_dict_of_version_0_1_0_loads_into_the_policy():
    model = grouped_model(n_envs=1, n_task_groups=1)
    legacy = {k.replace("masters.0.", "master.", 1): v for k, v in model.policy.state_dict().items()}
    assert any(k.startswith("master.") for k in legacy)
    other = grouped_model(n_envs=1, n_task_groups=1, seed=1)
    other.policy.load_state_dict(legacy)
    assert same(parameters(model.policy), parameters(other.policy))
    assert same(parameters(pickle.loads(pickle.dumps(model.policy))), parameters(model.policy))
