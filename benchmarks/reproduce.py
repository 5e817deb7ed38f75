"""
Reproduce a paper experiment: MLSH, its ablations and the paper's baselines, all measured with the
paper's figure of merit (reward collected by a fresh learner during its first T steps on a task),
over several seeds. Writes a CSV, PNG plots and a markdown page.

    pip install "sb3-mlsh[reproduce]"
    python -m benchmarks.reproduce movement_bandits [--seeds 0 1] [--out results]
    python -m benchmarks.reproduce four_rooms --methods mlsh single_policy

Experiments (benchmarks/experiments.py): movement_bandits, key_door, four_rooms, four_rooms_held_out, ant_two_walk,
ant_two_walk_far (its targets 50 away instead of 5), and ant_obstacle, the paper's transfer: it meta-trains nothing,
but starts from the models ant_two_walk_far kept for the same seeds (run that first, with the same ``--out``); and
humanoid_walk_crawl with its transfer humanoid_course, the same way; ant_maze (7 of the 9 maze layouts in
meta-training, the fresh masters adapting to the 2 held out). MLSH uses the env's entry of hyperparams/mlsh.yml;
the PPO baselines use its n_envs and n_steps. On the Ant and the Humanoid, each MLSH run also writes a GIF of its
sub-policies acting alone.

Methods: MLSH (fresh master, sub-policies frozen); MLSH without warm-up (W = 0); MLSH with the
master acting every step (N = 1); shared policy (one PPO policy trained on the whole task
distribution for the same budget, then fine-tuned on each task); single policy (PPO from scratch
on each task). Runs go ``--jobs`` at a time (default 2), one process and one torch thread each.

The page ``<out>/<experiment>.md`` (with its CSV and figures; ``--out`` is ``results`` unless given, the project's
pages: ``--out docs/results``) and the index ``<out>.md`` are written from the runs. Every run is added to
``<out>/<experiment>_runs.json`` as soon as it ends; the meta-trained models (MLSH's, the shared policy's) are kept
in ``<out>/models/``. ``--resume`` keeps the runs
already there that match this command's budgets and runs only the missing (method, seed) pairs, and a
run that was stopped during meta-training continues from its last checkpoint, so an experiment longer than a
sitting goes on where it stopped. ``--extend`` with a larger ``--meta-timesteps`` continues the saved runs'
meta-training from their kept models to the new budget (adaptation measured again; the PPO-from-scratch runs are
kept); the earlier runs file and models are first copied beside them with the old budget in their names.
A transfer experiment's ``--resume`` runs again the transfers whose source model has been trained further since.
``--set KEY=VALUE`` (repeatable) changes one of MLSH's settings from the env's entry for this command's MLSH runs
(the page names it; ``--resume`` holds a runs file to the settings it was made with); the PPO baselines follow the
settings they take from the entry (``Experiment.ppo_settings``: ``n_steps``, ``batch_size``, ``policy_kwargs``, the
normalisations).
"""

import argparse
import csv
import itertools
import json
import multiprocessing
import pathlib
import platform
import shutil
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from benchmarks.experiments import (
    ALONE_EPISODES,
    EXPERIMENTS,
    HUMANOID_ALONE_EPISODES,
    HUMANOID_UNDER_SLAB,
    MAZE_MIN_ANGLE,
    MAZE_MIN_WALK,
    NORMALISER,
    SAMPLED_ENDS,
    SAMPLED_EPISODES,
    SPECIALISED,
    Experiment,
    code_version,
    draw_paths,
    humanoid_alone,
    key_values,
    package_versions,
    packages_note,
    references,
    sampled_ends,
    specialised,
    subpolicies_alone,
    subpolicies_separate,
    subpolicy_paths,
    subpolicy_video,
    video_speed,
    walk_directions,
)

ROOT = pathlib.Path(__file__).resolve().parent.parent
METHODS = ("mlsh", "mlsh_no_warmup", "mlsh_n1", "mlsh_fixed_master", "shared_policy", "single_policy")
TRANSFER_ONLY = ("mlsh_fixed_master",)  # methods that adapt a source's model and meta-train nothing of their own
LABELS = {
    "mlsh": "MLSH",
    "mlsh_no_warmup": "MLSH, no warm-up (W = 0)",
    "mlsh_n1": "MLSH, master every step (N = 1)",
    "mlsh_fixed_master": "MLSH's sub-policies, a master that never learns",
    "shared_policy": "Shared policy, fine-tuned",
    "single_policy": "Single policy, from scratch",
}


@dataclass
class Run:
    method: str
    seed: int
    tasks: list[Any]
    total_rewards: list[float]
    final_returns: list[float]
    curves: list[tuple[list[int], list[float]]]
    usage: list[list[float]]
    divergence: float
    subpolicy_paths: dict[str, Any]
    seconds: float
    cpu_seconds: float | None = None
    # MLSH: (meta-training steps, R per episode at CURVE_T) and, on the Ant TwoWalk, a third item: where each
    # sub-policy acting alone (most likely action, one episode from the same start) ends then, [k] -> (x, y), and a
    # fourth: where it ends with its actions sampled, the mean of SAMPLED_ENDS episodes (absent in older runs)
    meta_curve: list[tuple[Any, ...]] | None = None
    # MLSH on the Ant TwoWalk after meta-training: the fourth item above, the mean of ends_sampled_episodes episodes
    ends_sampled: list[list[float]] | None = None
    alone: list[list[float]] | None = None  # MLSH on a plane: [k][task], sub-policy k's mean episode reward alone
    alone_keys: list[list[float]] | None = None  # MLSH on KeyDoor: [k][task], the share of those episodes with the key
    # as the two above, the sub-policy's actions sampled (as the master runs it) instead of its most likely action
    alone_sampled: list[list[float]] | None = None
    alone_keys_sampled: list[list[float]] | None = None
    # on KeyDoor, per task, the share of episodes that end with the key: of those the learner ran (actions sampled) in
    # the last quarter of T, and of the deterministic evaluation after adaptation
    late_keys: list[float] | None = None
    final_keys: list[float] | None = None
    # the code that ran it (``git describe --always --dirty``), if it ran from a checkout; a run meta-trained over several
    # sittings: each sitting's, comma-separated
    commit: str | None = None
    # a transfer: the meta-training steps of the source model it started from (None in runs made before it was kept)
    source_timesteps: int | None = None
    adaptation_timesteps: int | None = None  # T: the steps of adaptation per task
    # the versions of experiments.PACKAGES in the sitting that measured it (None in runs made before they were kept)
    packages: str | None = None
    # MLSH, the shared policy: the CPU seconds of meta-training alone, without the meta-training curve's measurements,
    # the final adaptation and the pictures (None in runs made before it was kept)
    meta_train_cpu_seconds: float | None = None
    # how many episodes ends_sampled averages (None: SAMPLED_ENDS, in runs made before FINAL_SAMPLED_ENDS)
    ends_sampled_episodes: int | None = None
    # per task, R per episode as the library counts it: the reward over T over the episodes it held (None in runs made
    # before it was kept; used where the experiment's episodes end early, Experiment.terminating)
    per_episode_rewards: list[float] | None = None
    # MLSH on the Humanoid's walk / crawl: [k][task] -> each sub-policy alone, actions sampled (``humanoid_alone``)
    alone_humanoid: list[list[list[float]]] | None = None
    # MLSH on the Humanoid course: per task, the adapted master's first evaluation episode (``course_choices``)
    course_choices: list[list[list[float]]] | None = None


CURVE_POINTS = 4  # adaptation measured this many times during meta-training, evenly spaced
# meta-training (MLSH, shared policy) is checkpointed this many times; MLSH: a curve point every CHUNKS // CURVE_POINTS
CHUNKS = 20
# Ant TwoWalk: episodes per sub-policy in the sampled end after meta-training, the bar's measure: the worse mean end
# of 8 (SAMPLED_ENDS, the curve's) differed from that of 32 by 0.1 to 0.7 in six runs (docs/benchmarks/approach.md)
FINAL_SAMPLED_ENDS = 32
# KeyDoor: the adapted learner should hold the key at the end of at least this share of its episodes, as it runs
KEY_AIM = 0.8


def model_path(out: str, name: str, method: str, seed: int) -> pathlib.Path:
    """Where a run's meta-trained model (MLSH's, the shared policy's) is kept once meta-training has ended."""
    return pathlib.Path(out) / "models" / f"{name}_{method}_seed{seed}.zip"


def statistics_path(path: pathlib.Path) -> pathlib.Path:
    """Where the observation statistics (``VecNormalize``) of a PPO model saved at ``path`` are kept, if it has any."""
    return path.with_suffix(".vecnormalize.pkl")


def saved_timesteps(path: pathlib.Path) -> int:
    """The ``num_timesteps`` of the SB3 model saved at ``path`` (read from its ``data``, without loading the model)."""
    with zipfile.ZipFile(path) as archive:
        return int(json.loads(archive.read("data"))["num_timesteps"])


def video_path(out: str, name: str, seed: int) -> pathlib.Path:
    """Where an Ant run's GIF of each MLSH sub-policy acting alone is written."""
    return pathlib.Path(out) / f"{name}_subpolicies_seed{seed}.gif"


def checkpoint_path(out: str, name: str, method: str, seed: int | str) -> pathlib.Path:
    """
    Where a run's meta-training is checkpointed (the model; a ``.json`` beside it: the curve and CPU time so far).
    ``seed="*"`` gives the pattern of every seed's checkpoint.
    """
    return pathlib.Path(out) / "checkpoints" / f"{name}_{method}_seed{seed}.zip"


def curve_timesteps(spec: Experiment, adaptation_timesteps: int) -> int:
    """The T of the meta-training curve: the experiment's first early T, else its T."""
    return spec.report_at[0] if spec.report_at else adaptation_timesteps


class Checkpoints(BaseCallback):
    """
    Checkpoints a meta-training run every ``every`` steps, at the first iteration boundary after them (the update
    done), and at the end: ``save(model, curve)``. With ``curve_point``, every ``CHUNKS // CURVE_POINTS``
    checkpoints and at the end it first adds ``curve_point(model)`` to ``curve``.
    """

    def __init__(
        self,
        every: int,
        curve: list[tuple[int, float]],
        save: Callable[[Any, list[tuple[int, float]]], None],
        curve_point: Callable[[Any], tuple[Any, ...]] | None,
    ) -> None:
        super().__init__()
        self.every, self.curve, self.save, self.curve_point = every, curve, save, curve_point

    def _on_training_start(self) -> None:
        self.next = (self.model.num_timesteps // self.every + 1) * self.every

    def _on_rollout_start(self) -> None:
        if self.model.num_timesteps >= self.next:
            done = self.model.num_timesteps // self.every
            self.next = (done + 1) * self.every
            self._checkpoint(measure=done % (CHUNKS // CURVE_POINTS) == 0)

    def _on_step(self) -> bool:
        return True

    def finish(self) -> None:
        """The last checkpoint, once ``learn`` has returned (its curve point unless one was taken at these steps)."""
        measured = bool(self.curve) and self.curve[-1][0] == self.model.num_timesteps
        self._checkpoint(measure=not measured)

    def _checkpoint(self, measure: bool) -> None:
        if measure and self.curve_point is not None:
            self.curve.append(self.curve_point(self.model))
        self.save(self.model, self.curve)


def meta_train(
    name: str,
    method: str,
    seed: int,
    meta_timesteps: int,
    adaptation_timesteps: int,
    out: str,
    cpu_start: float,
    commit: str | None,
    settings: dict[str, Any],
) -> tuple[Any, list[tuple[int, float]] | None, float, str | None]:
    """
    Meta-train MLSH or the shared policy: one ``learn`` call checkpointed ``CHUNKS`` times (model, curve, CPU time),
    from the run's checkpoint if there is one; the model is then kept in ``model_path``.

    :param cpu_start: ``time.process_time()`` as this sitting's run started.
    :param commit: The code of this sitting (``code_version``).
    :param settings: MLSH's settings changed from the yml entry (``--set``).
    :return: The model, MLSH's meta-training curve (``None`` for the shared policy), the CPU seconds of earlier
        sittings (from the checkpoint), the CPU seconds of meta-training alone (every sitting's, the curve's
        measurements left out) and the commits of every sitting, comma-separated.
    """
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    from sb3_mlsh import MLSH, evaluate_adaptation
    from sb3_mlsh.baselines import TaskPerEpisode

    spec = EXPERIMENTS[name]
    n_envs, hyperparams = spec.hyperparams()
    ppo_settings, normalize, normalize_rewards = spec.ppo_settings(settings)
    tasks = spec.evaluation_tasks()

    def make_env(env_seed: int, **kwargs: Any) -> Any:
        return make_vec_env(spec.env_id, n_envs=n_envs, seed=env_seed, env_kwargs=spec.env_kwargs, **kwargs)

    curve: list[tuple[int, float]] = []  # the curve so far, from the checkpoint
    cpu_before = 0.0  # CPU seconds of earlier sittings, from the checkpoint
    measuring = [0.0]  # CPU seconds spent on the curve's measurements, earlier sittings' included
    checkpoint = checkpoint_path(out, name, method, seed)
    progress = checkpoint.with_suffix(".json")
    algorithm = PPO if method == "shared_policy" else MLSH
    if algorithm is PPO:  # the shared policy: a new task at every reset, observations normalised as MLSH's are
        env = make_env(seed, wrapper_class=TaskPerEpisode)
        if normalize or normalize_rewards:
            resumed = load_statistics(checkpoint, env) if checkpoint.is_file() else None
            # the returns that scale the rewards discount with VecNormalize's gamma, PPO's default, as the PPO here
            env = resumed or VecNormalize(
                env, norm_obs=normalize, norm_reward=normalize_rewards, clip_obs=hyperparams.get("clip_obs", 5.0)
            )
    else:
        env = make_env(seed)
    if checkpoint.is_file() and progress.is_file():
        model = algorithm.load(checkpoint, env=env)
        saved = json.loads(progress.read_text())
        curve, cpu_before = [tuple(point) for point in saved["meta_curve"]], saved["cpu_seconds"]
        measuring[0] = saved.get("measure_cpu_seconds", 0.0)
        earlier = saved.get("commit")
        if earlier and commit not in earlier.split(", "):
            commit = f"{earlier}, {commit}"
    elif algorithm is PPO:
        model = PPO("MlpPolicy", env, seed=seed, learning_rate=hyperparams.get("learning_rate", 3e-4), **ppo_settings)
    else:
        overrides = {"mlsh_no_warmup": {"warmup_iterations": 0}, "mlsh_n1": {"macro_duration": 1}}.get(method, {})
        model = MLSH("MlpPolicy", env, seed=seed, **{**hyperparams, **settings, **overrides})
    curve_t = curve_timesteps(spec, adaptation_timesteps)

    def curve_point(mlsh: Any) -> tuple[Any, ...]:
        """
        The paper's R at curve_t now: when the hierarchy became useful (the model is not changed); with targets (Ant
        TwoWalk), also where each sub-policy alone ends now, so that the page can show them nearing their targets.
        """
        begin = time.process_time()
        point = evaluate_adaptation(
            mlsh, make_env(seed + 200), n_tasks=len(tasks), adaptation_timesteps=curve_t, seed=seed + 200, tasks=tasks,
        )  # fmt: skip
        r = point.per_episode if spec.terminating else point.mean * spec.episode_steps / curve_t
        measured: tuple[Any, ...] = (mlsh.num_timesteps, r)
        if spec.has_targets:
            ends = [list(path[-1]) for path in subpolicy_paths(mlsh, spec, seed)["paths"]]
            measured += (ends, sampled_ends(mlsh, spec, seed))
        measuring[0] += time.process_time() - begin
        return measured

    def save(trained: Any, curve: list[tuple[int, float]]) -> None:
        cpu_seconds = cpu_before + time.process_time() - cpu_start
        kept = {"meta_curve": curve, "cpu_seconds": cpu_seconds, "measure_cpu_seconds": measuring[0], "commit": commit}
        save_checkpoint(trained, checkpoint, kept)

    checkpoints = Checkpoints(
        every=max(meta_timesteps // CHUNKS, 1), curve=curve, save=save,
        curve_point=curve_point if algorithm is MLSH else None,
    )  # fmt: skip
    # one learn call: the schedules (learning rates, clip ranges) run over the whole budget, across resumptions
    model.learn(max(meta_timesteps - model.num_timesteps, 0), reset_num_timesteps=False, callback=checkpoints)
    checkpoints.finish()
    train_cpu = cpu_before + time.process_time() - cpu_start - measuring[0]
    model.save(model_path(out, name, method, seed))  # kept for analyses after the run (not in git: *.zip)
    save_statistics(model, model_path(out, name, method, seed))
    return model, checkpoints.curve if algorithm is MLSH else None, cpu_before, train_cpu, commit


def save_checkpoint(model: Any, checkpoint: pathlib.Path, progress: dict[str, Any]) -> None:
    """
    Checkpoint a run: the model at ``checkpoint``, its observation statistics beside it (``save_statistics``) and
    ``progress`` (the run's record so far) as JSON in ``checkpoint.with_suffix(".json")``. Each file is written beside
    and renamed over the last, so a run killed while saving keeps its previous checkpoint.
    """
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    partial = checkpoint.with_name(f".{checkpoint.stem}.part.zip")
    model.save(partial)
    partial.replace(checkpoint)
    save_statistics(model, checkpoint)
    record = checkpoint.with_suffix(".json")
    partial = record.with_name(f".{record.name}.part")
    partial.write_text(json.dumps(progress))
    partial.replace(record)


def save_statistics(model: Any, path: pathlib.Path) -> None:
    """Keep the observation statistics of a PPO ``model`` saved at ``path`` beside it, if it learns in ``VecNormalize``."""
    statistics = model.get_vec_normalize_env()
    if statistics is not None:
        partial = path.with_name(f".{statistics_path(path).name}.part")
        statistics.save(str(partial))
        partial.replace(statistics_path(path))


def load_statistics(path: pathlib.Path, env: Any) -> Any:
    """
    The observation statistics ``save_statistics`` kept beside the PPO model at ``path``, as a ``VecNormalize`` of
    ``env`` (``None`` if the model has none).
    """
    from stable_baselines3.common.vec_env import VecNormalize

    saved = statistics_path(path)
    return VecNormalize.load(str(saved), env) if saved.is_file() else None


def run(config: tuple[str, str, int, int, int, str, str | None, dict[str, Any]]) -> Run:
    """
    One (method, seed): meta-train if the method needs it (``meta_train``; a transfer experiment loads its source's
    model instead), then adapt to every evaluation task. The meta-training checkpoint is removed once the run is
    complete.
    """
    import torch as th
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_mlsh import MLSH, evaluate_adaptation
    from sb3_mlsh.baselines import shared_policy_transfer, single_policy
    from sb3_mlsh.zoo import with_schedules

    # commit: the code as the command started (a commit made while the runs go does not relabel them)
    name, method, seed, meta_timesteps, adaptation_timesteps, out, commit, settings = config
    spec = EXPERIMENTS[name]
    n_envs, hyperparams = spec.hyperparams()
    tasks = spec.evaluation_tasks()
    th.set_num_threads(1)
    start, cpu_start = time.perf_counter(), time.process_time()
    eval_env = make_vec_env(spec.env_id, n_envs=n_envs, seed=seed + 100, env_kwargs=spec.env_kwargs)
    common = dict(
        n_tasks=len(tasks), adaptation_timesteps=adaptation_timesteps, seed=seed + 100, tasks=tasks,
        n_eval_episodes=spec.n_eval_episodes,
    )  # fmt: skip
    paths: dict[str, Any] = {}
    meta_curve: list[tuple[Any, ...]] | None = None  # MLSH's
    source_timesteps = None  # a transfer's
    alone: dict[str, Any] = {}  # MLSH's on a plane: Run.alone, Run.alone_keys and their sampled counterparts
    cpu_before = 0.0  # CPU seconds of earlier sittings, from the checkpoint
    train_cpu = None  # CPU seconds of meta-training alone
    checkpoint = checkpoint_path(out, name, method, seed)
    ppo_settings, normalize, normalize_rewards = spec.ppo_settings(settings)
    if method == "single_policy":
        result = single_policy(
            eval_env, **common, **ppo_settings, normalize_observations=normalize, normalize_rewards=normalize_rewards
        )
    else:
        algorithm = PPO if method == "shared_policy" else MLSH
        if spec.source is not None:  # as `rl_zoo3.train -i` loads it: the transfer's mlsh.yml entry overrides MLSH's
            # the honest control: MLSH's sub-policies under a fresh master whose learning rate is 0 (its choice stays
            # the fresh one, near uniform): what MLSH's R owes to the master's learning
            fixed = {"master_learning_rate": 0.0} if method == "mlsh_fixed_master" else {}
            source = model_path(out, spec.source, "mlsh" if fixed else method, seed)
            source_timesteps = saved_timesteps(source)
            loaded = with_schedules({**hyperparams, **settings, **fixed}) if algorithm is MLSH else {}
            model = algorithm.load(source, **loaded)
            statistics = load_statistics(source, eval_env)
        else:
            model, meta_curve, cpu_before, train_cpu, commit = meta_train(
                name, method, seed, meta_timesteps, adaptation_timesteps, out, cpu_start, commit, settings
            )
            statistics = model.get_vec_normalize_env() if algorithm is PPO else None
        if algorithm is MLSH:
            result = evaluate_adaptation(model, eval_env, **common)
            paths = subpolicy_paths(model, spec, seed) if method != "mlsh_fixed_master" else {}
            if spec.kind == "plane":
                for deterministic, suffix in ((True, ""), (False, "_sampled")):
                    returns, _, keys = subpolicies_alone(model, spec, seed + 1, deterministic)
                    alone[f"alone{suffix}"] = returns.tolist()
                    alone[f"alone_keys{suffix}"] = keys.tolist() if spec.key_index is not None else None
            if spec.kind in ("ant", "humanoid") and method != "mlsh_fixed_master":
                subpolicy_video(model, spec, seed, video_path(out, name, seed))
            if spec.kind == "humanoid" and spec.source is None:
                alone["alone_humanoid"] = humanoid_alone(model, spec, seed)
            if spec.kind == "humanoid" and spec.source is not None:
                alone["course_choices"] = course_choices(result)
            if spec.has_targets:
                alone["ends_sampled"] = sampled_ends(model, spec, seed, FINAL_SAMPLED_ENDS)
                alone["ends_sampled_episodes"] = FINAL_SAMPLED_ENDS
        else:
            result = shared_policy_transfer(model, eval_env, **common, vec_normalize=statistics)
    assert result.final_returns is not None and result.final_observations is not None
    late_keys = final_keys = None
    if spec.key_index is not None:  # the has-key flag of the observation on which each episode ended
        late_keys = spec.late_key_shares(result, adaptation_timesteps)
        final_keys = [spec.key_share(ends) for ends in result.final_observations]
    cpu_seconds = cpu_before + time.process_time() - cpu_start
    for path in (checkpoint, checkpoint.with_suffix(".json"), statistics_path(checkpoint)):
        path.unlink(missing_ok=True)
    return Run(
        method,
        seed,
        list(result.tasks),
        result.total_rewards.tolist(),
        result.final_returns.tolist(),
        [(steps.tolist(), returns.tolist()) for steps, returns in result.curves],
        result.usage.tolist(),
        result.divergence,
        paths,
        time.perf_counter() - start,
        cpu_seconds,
        meta_curve,
        **alone,
        meta_train_cpu_seconds=train_cpu,
        late_keys=late_keys,
        final_keys=final_keys,
        commit=commit,
        per_episode_rewards=result.per_episode_rewards.tolist(),
        source_timesteps=source_timesteps,
        adaptation_timesteps=adaptation_timesteps,
        packages=package_versions(),
    )


def r_per_task(spec: Experiment, item: Run, episodes_in_t: float) -> np.ndarray:
    """
    :return: The run's R per episode on each task: the reward over T over the episodes T held where the experiment's
        episodes end early (``Experiment.terminating``), else over T's steps in episodes of ``episode_steps``.
    """
    if spec.terminating:
        if item.per_episode_rewards is None:
            raise ValueError(f"{spec.env_id}: a run without per_episode_rewards; run it again with this reproduce.py")
        return np.asarray(item.per_episode_rewards)
    return np.asarray(item.total_rewards) / episodes_in_t


def early_r(item: Run, timesteps: int) -> float:
    """
    R per episode over a run's first ``timesteps`` adaptation steps: on each task the mean return of the episodes ended
    by then, averaged over the tasks as the table's R is (not pooled: where episodes end early, as the Humanoid's walk,
    the task whose episodes are shortest would count most).
    """
    per_task = [
        [r for step, r in zip(steps, rets, strict=True) if step <= timesteps] for steps, rets in item.curves
    ]  # fmt: skip
    means = [np.mean(returns) for returns in per_task if returns]
    return float(np.mean(means)) if means else float("nan")


def iqm(spec: Experiment, items: list[Run], episodes_in_t: float) -> tuple[float, float, float]:
    """
    Interquartile mean of R per episode over every (seed, task), with a 95 % stratified bootstrap interval
    (rliable, Agarwal et al. 2021: seeds resampled within each task).

    :return: The IQM and the interval's ends.
    """
    import warnings

    from rliable import library, metrics

    tasks = sorted({str(task) for task in items[0].tasks})
    scores = np.array(
        [[dict(zip(map(str, r.tasks), r_per_task(spec, r, episodes_in_t), strict=True))[t] for t in tasks] for r in items]
    )
    # rliable resamples with numpy's global generator (its random_state is not used there): seed it, so that a page
    # rendered again shows the same interval, and leave it as it was
    global_state = np.random.get_state()
    np.random.seed(0)
    try:
        with warnings.catch_warnings():  # arch's notice that random_state will give way to a numpy Generator
            warnings.simplefilter("ignore", FutureWarning)
            point, interval = library.get_interval_estimates(
                {"method": scores}, lambda x: np.array([metrics.aggregate_iqm(x)]), reps=2000,
                random_state=np.random.RandomState(0),
            )  # fmt: skip
    finally:
        np.random.set_state(global_state)
    return float(point["method"][0]), float(interval["method"][0, 0]), float(interval["method"][1, 0])


def binned_curve(runs: list[Run], adaptation_timesteps: int, bins: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean episode return per step bin over every task and seed, with a 95 % normal band over the seed-task runs."""
    edges = np.linspace(0, adaptation_timesteps, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    per_run = []
    for item in runs:
        for steps, returns in item.curves:
            steps_arr, returns_arr = np.asarray(steps), np.asarray(returns)
            masks = [(steps_arr > lo) & (steps_arr <= hi) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
            per_run.append([returns_arr[mask].mean() if mask.any() else np.nan for mask in masks])
    values = np.asarray(per_run)
    mean = np.nanmean(values, axis=0)
    half = 1.96 * np.nanstd(values, axis=0) / np.sqrt(max(len(values), 1))
    return centres, mean, half


def code_versions(runs: list[Run]) -> str:
    """:return: The commits the runs were made with, for the page."""
    # a run meta-trained over several sittings (a checkpoint resumed, --extend) names each sitting's commit
    commits = sorted({part for r in runs if r.commit is not None for part in r.commit.split(", ")})
    unrecorded = sum(r.commit is None for r in runs)
    parts = [f"commit {', '.join(commits)}"] if commits else []
    if unrecorded:
        parts.append(f"{unrecorded} run{'s' if unrecorded > 1 else ''} made before the commit was recorded")
    return "; ".join(parts)


def claims(
    spec: Experiment, runs: list[Run], methods: list[str], refs: dict[str, float], adaptation_timesteps: int
) -> list[str]:
    """The paper's claims for this experiment, checked against the measured runs."""
    episodes_in_t = adaptation_timesteps / spec.episode_steps

    def r_per_episode(method: str, seed: int | None = None) -> float:
        """:return: ``method``'s R per episode, averaged over the tasks and its seeds (or over ``seed``'s runs alone)."""
        chosen = [r for r in runs if r.method == method and seed in (None, r.seed)]
        return float(np.mean([np.mean(r_per_task(spec, r, episodes_in_t)) for r in chosen]))

    lines = []
    normaliser = NORMALISER.get(spec.kind)
    if "mlsh" in methods:
        if spec.kind == "plane" and normaliser is not None:
            ratio = r_per_episode("mlsh") / refs[normaliser]
            line = f"- MLSH's fresh master earns {ratio:.2f}x the always-goal-0 reference during adaptation"
            if spec.ratio_aim is not None:
                line += f" (aim: >= {spec.ratio_aim}x): " + ("met" if ratio >= spec.ratio_aim else "**not met**")
            lines.append(line + ".")
        baselines = (
            ("single_policy", "PPO from scratch"), ("shared_policy", "the fine-tuned shared policy"),
            ("mlsh_fixed_master", "the never-learning master (same sub-policies)"),
        )  # fmt: skip
        for baseline, name in baselines:
            if baseline in methods:
                mlsh, other = r_per_episode("mlsh"), r_per_episode(baseline)
                verdict = "yes" if mlsh > other else "**no**"
                lines.append(
                    f"- MLSH's R is higher than that of {name} at the same T: {verdict} ({mlsh:.2f} vs {other:.2f} per "
                    "episode)."
                )
        for baseline, factor in spec.mean_bars:
            if baseline in methods:
                ratio = r_per_episode("mlsh") / r_per_episode(baseline)
                verdict = "met" if ratio >= factor else "**not met**"
                lines.append(f"- MLSH's R is {ratio:.2f}x that of *{LABELS[baseline]}* (aim: >= {factor:g}x): {verdict}.")
        timesteps = spec.report_at[0] if spec.report_at else adaptation_timesteps
        for baseline, factor in spec.seed_bars:
            if baseline not in methods:
                continue
            seeds = sorted({r.seed for r in runs if r.method == "mlsh"} & {r.seed for r in runs if r.method == baseline})
            wins = sum(
                np.mean([early_r(r, timesteps) for r in runs if (r.method, r.seed) == ("mlsh", seed)])
                > factor * np.mean([early_r(r, timesteps) for r in runs if (r.method, r.seed) == (baseline, seed)])
                for seed in seeds
            )
            times = f"{factor:g}x " if factor != 1 else ""
            lines.append(
                f"- MLSH's R over the first {timesteps:,} steps is above {times}that of *{LABELS[baseline]}* in {wins} "
                f"of {len(seeds)} seeds."
            )
        if spec.paper_order and set(spec.paper_order) <= set(methods):
            seeds = sorted(set.intersection(*({r.seed for r in runs if r.method == m} for m in spec.paper_order)))
            in_order = sum(bool(np.all(np.diff([r_per_episode(m, seed) for m in spec.paper_order]) < 0)) for seed in seeds)
            order = " > ".join(f"*{LABELS[m]}*" for m in spec.paper_order)
            lines.append(f"- R in the paper's order, {order}: in {in_order} of {len(seeds)} seeds.")
        if spec.kind == "grid" and normaliser is not None:
            half = refs[normaliser] / 2
            for method in ("mlsh", "single_policy"):
                if method in methods:
                    centres, mean, _ = binned_curve([r for r in runs if r.method == method], adaptation_timesteps, bins=20)
                    reached = centres[mean >= half]
                    when = f"within the first {reached[0]:.0f} steps" if len(reached) else "not within T"
                    lines.append(f"- {LABELS[method]} reaches half the shortest-path return ({half:.1f}) {when}.")
        separated = [subpolicies_separate(spec, r.subpolicy_paths) for r in runs if r.method == "mlsh"]
        if separated and separated[0] is not None:
            what = "goals" if spec.kind == "plane" else "targets"
            count = sum(map(bool, separated))
            lines.append(f"- The sub-policies, each alone, end at different {what} in {count} of {len(separated)} seeds.")
            if spec.kind == "ant":  # the above asks for half the start's distance; the Ant issue's bar is this one
                mlsh_paths = [r.subpolicy_paths for r in runs if r.method == "mlsh"]
                nearer = sum(bool(subpolicies_separate(spec, paths, share=1.0)) for paths in mlsh_paths)
                lines.append(
                    f"- Each sub-policy alone ends nearer a different target than the start is (nearer than half the "
                    f"start's distance, above, or not): in {nearer} of {len(separated)} seeds."
                )
        lines += alone_claims([r for r in runs if r.method == "mlsh"])
        if spec.has_targets:
            lines += target_claims([r for r in runs if r.method == "mlsh"], spec.target_reached)
        if spec.is_maze:
            lines += direction_claims([r for r in runs if r.method == "mlsh"])
        if spec.kind == "humanoid" and spec.source is None:
            lines += humanoid_claims(spec, [r for r in runs if r.method == "mlsh"])
    lines += key_claims(spec, runs, methods)
    if spec.sparse_reward:
        lines += rewarded_claims(runs, methods)
    if spec.kind == "ant" and spec.source is None:
        still = next(iter(refs.values()))
        above = ", ".join(f"{LABELS[m]}: " + ("yes" if r_per_episode(m) > still else "**no**") for m in methods)
        goal = "goal" if spec.is_maze else "target"
        lines.append(
            f"- R above the zero-torque reference ({still:.2f}), i.e. the Ant gets nearer the {goal} than it starts: {above}."
        )
    if "shared_policy" in methods and spec.kind == "plane" and normaliser is not None:
        ratio = r_per_episode("shared_policy") / refs[normaliser]
        lines.append(f"- The shared policy earns {ratio:.2f}x the always-goal-0 reference (the paper: half the optimum, 1x).")
    return lines


def key_claims(spec: Experiment, runs: list[Run], methods: list[str]) -> list[str]:
    """
    On KeyDoor: how often each adapted learner holds the key as an episode ends, as it runs (actions sampled, the
    last quarter of T; MLSH's aim: KEY_AIM) and in the deterministic evaluation after adaptation.
    """
    lines = []
    for method in methods if spec.key_index is not None else ():
        items = [r for r in runs if r.method == method and r.late_keys is not None and r.final_keys is not None]
        if not items:
            continue
        late, final = [np.mean(r.late_keys) for r in items], [np.mean(r.final_keys) for r in items]
        line = (
            f"- *{LABELS[method]}* holds the key at the end of {np.mean(late):.0%} of the episodes it runs in the last "
            f"quarter of T (per seed: {', '.join(f'{share:.0%}' for share in late)})"
        )
        if method == "mlsh":
            line += f", aim >= {KEY_AIM:.0%}: " + ("met" if np.mean(late) >= KEY_AIM else "**not met**")
        lines.append(
            line
            + f"; of its deterministic evaluation episodes after adaptation, {np.mean(final):.0%} (per seed: "
            + ", ".join(f"{share:.0%}" for share in final)
            + ")."
        )
    return lines


def rewarded_claims(runs: list[Run], methods: list[str]) -> list[str]:
    """With a sparse reward: per method, how many of the adaptation's episodes earned any reward, seed by seed."""
    lines = []
    for method in methods:
        items = sorted((r for r in runs if r.method == method), key=lambda r: r.seed)
        counts = [
            (sum(ret > 0 for _, rets in r.curves for ret in rets), sum(len(rets) for _, rets in r.curves)) for r in items
        ]
        if counts:
            per_seed = " / ".join(f"{rewarded} of {ended}" for rewarded, ended in counts)
            seeds = " / ".join(str(r.seed) for r in items)
            lines.append(
                f"- *{LABELS[method]}*: episodes of the adaptation that earned any reward, seeds {seeds}: {per_seed}."
            )
    return lines


def alone_claims(mlsh_runs: list[Run]) -> list[str]:
    """What MLSH's sub-policies earn, and how often they fetch the key, each acting alone: sampled, and most likely action."""
    lines = []
    ways = (
        ("_sampled", SAMPLED_EPISODES, "its actions sampled, as the master runs it"),
        ("", ALONE_EPISODES, "its most likely action"),
    )
    for suffix, episodes, how in ways:
        measured = [r for r in mlsh_runs if getattr(r, "alone" + suffix) is not None]
        if measured:
            count = sum(specialised(np.array(getattr(r, "alone" + suffix))) for r in measured)
            lines.append(
                f"- Each task has its own sub-policy that alone earns >= {SPECIALISED:.0f} per episode on it in {count} "
                f"of {len(measured)} seeds, with {how} ({episodes} episodes per task)."
            )
        with_keys = [r for r in mlsh_runs if getattr(r, "alone_keys" + suffix) is not None]
        if with_keys:
            best = [float(np.max(np.mean(getattr(r, "alone_keys" + suffix), axis=1))) for r in with_keys]
            lines.append(
                f"- The sub-policy that reaches the key most often, alone, with {how}, does in "
                + ", ".join(f"{share:.0%}" for share in best)
                + " of its episodes (per seed)."
            )
    return lines


def direction_claims(mlsh_runs: list[Run]) -> list[str]:
    """The Ant mazes: per seed, where each sub-policy alone walks from the start, and in how many seeds they part."""
    lines, parted = [], 0
    for item in mlsh_runs:
        apart, walks = walk_directions(item.subpolicy_paths)
        parted += apart
        lines.append(
            f"- Seed {item.seed}, each sub-policy alone, most likely actions, from the start of the first training "
            "layout: "
            + "; ".join(f"sub-policy {k} ends {distance:.1f} away, heading {heading:+.0f} deg" for k, (heading, distance)
                        in enumerate(walks))
            + "."
        )  # fmt: skip
    lines.append(
        f"- The sub-policies alone walk in clearly different directions (each at least {MAZE_MIN_WALK:g} from the "
        f"start, every two headings at least {MAZE_MIN_ANGLE:g} degrees apart) in {parted} of {len(mlsh_runs)} seeds."
    )
    return lines


def target_claims(mlsh_runs: list[Run], reached: float) -> list[str]:
    """
    Ant TwoWalk: per seed, how near each sub-policy alone (the path on the page, most likely actions) comes to the
    target it ends nearest, at the end and on the way (a sub-policy that walks on past its target ends far from it);
    and the worse end from distinct targets over meta-training, with most likely and with sampled actions. The bar
    counts the sampled one, as the plane experiments' bars do: the master runs the sub-policies so.

    :param mlsh_runs: The experiment's MLSH runs.
    :param reached: The bar: a worse end this near its target (``Experiment.target_reached``).
    """
    lines: list[str] = []
    finals: dict[str, list[float]] = {"most likely": [], "sampled": []}  # per seed, the worse end after meta-training
    for item in mlsh_runs:
        targets = [np.asarray(center) for label, center, _ in item.subpolicy_paths["marks"] if label.startswith("target")]
        parts = []
        for k, path in enumerate(item.subpolicy_paths["paths"]):
            points = np.asarray(path)
            nearest = int(np.argmin([np.linalg.norm(points[-1] - target) for target in targets]))
            distances = np.linalg.norm(points - targets[nearest], axis=1)
            parts.append(
                f"sub-policy {k} ends {distances[-1]:.1f} from target {nearest} (at ({points[-1][0]:.1f}, "
                f"{points[-1][1]:.1f})), {distances.min():.1f} at its nearest"
            )
        start = float(np.linalg.norm(targets[0]))
        lines.append(
            f"- Seed {item.seed}, each sub-policy alone, most likely actions (the start is {start:.0f} from each "
            "target): " + "; ".join(parts) + "."
        )
        if item.ends_sampled is not None:
            lines.append(
                f"  With its actions sampled ({item.ends_sampled_episodes or SAMPLED_ENDS} episodes), each ends on average at "
                + ", ".join(f"({x:.1f}, {y:.1f})" for x, y in item.ends_sampled)
                + "."
            )
        for index, how in ((2, "most likely"), (3, "sampled")):
            ends = [(point[0], point[index]) for point in item.meta_curve or [] if len(point) > index]
            if ends:
                lines.append(
                    f"  Over meta-training, the worse of the sub-policies' ends from distinct targets ({how} actions): "
                    + ", ".join(f"{steps / 1e6:g}M: {worse_end(end, targets):.2f}" for steps, end in ends)
                    + "."
                )
        finals["most likely"].append(worse_end([path[-1] for path in item.subpolicy_paths["paths"]], targets))
        if item.ends_sampled is not None:
            finals["sampled"].append(worse_end(item.ends_sampled, targets))
    for how, distances in finals.items():
        if distances:
            met = sum(distance <= reached for distance in distances)
            lines.append(
                f"- Each sub-policy alone ({how} actions) ends within {reached:g} of a distinct target in {met} "
                f"of {len(distances)} seeds (the worse end: {', '.join(f'{distance:.2f}' for distance in distances)})."
            )
    return lines


COURSE_EVERY = 10  # the Humanoid course: steps between two points kept of an evaluation episode


def course_choices(result: Any) -> list[list[list[float]]]:
    """
    :param result: MLSH's ``AdaptationResult`` on the Humanoid course (``n_eval_episodes > 0``).
    :return: Per task, the adapted master's first deterministic episode every ``COURSE_EVERY`` steps: the root's x
        (the observation's first number) and the sub-policy acting there.
    """
    assert result.final_episodes is not None
    kept = []
    for episodes in result.final_episodes:
        observations, subpolicies = episodes[0]
        kept.append([observations[::COURSE_EVERY, 0].tolist(), subpolicies[::COURSE_EVERY].astype(float).tolist()])
    return kept


def course_figure(runs: list[Run], path: pathlib.Path) -> None:
    """Per seed, the root's x along the adapted master's course episode, coloured by the sub-policy acting."""
    import matplotlib.pyplot as plt

    from sb3_mlsh.envs.humanoid import HumanoidCourseEnv

    figure, axis = plt.subplots(figsize=(7, 4.5))
    slab = HumanoidCourseEnv.CEILING_X, HumanoidCourseEnv.CEILING_HALF_SIZE[0]
    axis.axhspan(slab[0] - slab[1], slab[0] + slab[1], color="grey", alpha=0.15, label="under the slab")
    axis.axhline(HumanoidCourseEnv.TURN_X, color="grey", linestyle="--", label="the turn (crawl reward from here)")
    for index, item in enumerate(runs):
        assert item.course_choices is not None
        xs, subpolicies = item.course_choices[0]
        steps = np.arange(len(xs)) * COURSE_EVERY
        axis.plot(steps, xs, color="lightgrey", linewidth=0.8, zorder=1)
        for k in sorted(set(subpolicies)):
            chosen = np.asarray(subpolicies) == k
            axis.scatter(steps[chosen], np.asarray(xs)[chosen], s=6, color=f"C{int(k)}", marker="os^v"[index % 4],
                         label=f"seed {item.seed}, sub-policy {int(k)}", zorder=2)  # fmt: skip
    finish_figure(
        figure, axis, path, "step of the episode", "x of the root",
        "HumanoidCourse-v0: which sub-policy acts where (adapted master)",
    )  # fmt: skip


def humanoid_claims(spec: Experiment, mlsh_runs: list[Run]) -> list[str]:
    """
    Humanoid walk / crawl: per seed, what each sub-policy does alone on each task (actions sampled), and in how many
    seeds each task has a sub-policy that does its job: on walk, upright for whole episodes (never ending early)
    while moving forward; on crawl, back under the slab (past x = -6.5) by the end.
    """
    from sb3_mlsh.envs.humanoid import WALK

    lines: list[str] = []
    jobs = 0
    per_task: dict[str, int] = {}  # seeds in which a sub-policy does the task's job
    measured = [item for item in mlsh_runs if item.alone_humanoid is not None]
    for item in measured:
        assert item.alone_humanoid is not None
        parts, done = [], {}
        for k, on_tasks in enumerate(item.alone_humanoid):
            for task, (mean_return, steps, moved) in zip(spec.evaluation_tasks(), on_tasks, strict=True):
                name = "walk" if task == WALK else "crawl"
                parts.append(f"sub-policy {k} on {name}: return {mean_return:.0f}, {steps:.0f} steps, x {moved:+.1f}")
                # steps never exceed the limit, so a mean at the limit means every episode lasted it
                job = steps >= spec.episode_steps and moved > 0 if task == WALK else moved < HUMANOID_UNDER_SLAB
                done[name] = done.get(name, False) or bool(job)
        jobs += all(done.values())
        for name, job in done.items():
            per_task[name] = per_task.get(name, 0) + job
        lines.append(f"- Seed {item.seed}, each sub-policy alone, actions sampled: " + "; ".join(parts) + ".")
    if measured:
        lines.append(
            f"- Each task has a sub-policy that does its job alone ({HUMANOID_ALONE_EPISODES} episodes each, actions "
            f"sampled; walk: upright for every whole episode and moving forward; crawl: ending under the slab, x < "
            f"{HUMANOID_UNDER_SLAB:g}) in {jobs} of {len(measured)} seeds ("
            + ", ".join(f"{name}: {count} of {len(measured)}" for name, count in sorted(per_task.items(), reverse=True))
            + ")."
        )
    return lines


def worse_end(ends: list[Any], targets: list[np.ndarray]) -> float:
    """
    :param ends: Where each sub-policy alone ends, [k] -> (x, y).
    :param targets: The targets' x, y.
    :return: With each sub-policy paired with a distinct target (the pairing that makes it least), the largest
        distance of an end from its target (infinite if there are more sub-policies than targets).
    """
    pairings = itertools.permutations(range(len(targets)), len(ends))
    return min(
        (max(float(np.linalg.norm(np.subtract(end, targets[t]))) for end, t in zip(ends, pairing, strict=True))
        for pairing in pairings),
        default=float("inf"),
    )  # fmt: skip


def write_index(results: pathlib.Path) -> None:
    """``<out>.md`` beside the folder ``<out>`` (the project's ``docs/results.md``): every experiment page in it."""
    sections = [page.read_text().replace("](", f"]({results.name}/") for page in sorted(results.glob("*.md"))]
    header = [
        "# Results",
        "",
        "Generated by `benchmarks/reproduce.py` (one section per experiment it ran); nothing here is typed by hand.",
        "Each section names the machine and command it ran with; experiments not listed here have not been run yet.",
        "",
        "",
    ]
    (results.parent / "results.md").write_text("\n".join(header) + "\n".join(sections))


def cpu_time(runs: list[Run]) -> str:
    """``"; CPU time per run: ..."`` (minutes, per method), where the runs recorded it."""
    timed = [r for r in runs if r.cpu_seconds is not None]
    if not timed:
        return ""
    per_method = {
        m: np.mean([r.cpu_seconds for r in timed if r.method == m]) / 60 for m in dict.fromkeys(r.method for r in timed)
    }
    line = "; CPU time per run: " + ", ".join(f"{LABELS[m]} {minutes:.1f} min" for m, minutes in per_method.items())
    trained = [r for r in timed if r.meta_train_cpu_seconds is not None]
    if trained:
        per_method = {
            m: np.mean([r.meta_train_cpu_seconds for r in trained if r.method == m]) / 60
            for m in dict.fromkeys(r.method for r in trained)
        }
        line += (
            " (of which meta-training alone, the curve's measurements and the evaluation left out: "
            + ", ".join(f"{LABELS[m]} {minutes:.1f} min" for m, minutes in per_method.items())
            + ")"
        )
    return line


def finish_figure(figure: Any, axis: Any, path: pathlib.Path, xlabel: str, ylabel: str, title: str) -> None:
    """Label a page's figure (its legend small), and save it at ``path``."""
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def write_outputs(name: str, runs: list[Run], args: argparse.Namespace, seconds: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec = EXPERIMENTS[name]
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    episodes_in_t = args.adaptation_timesteps / spec.episode_steps
    refs = references(spec)
    normaliser = NORMALISER.get(spec.kind)

    with open(out / f"{name}.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "seed", "task", "reward_first_T", "reward_per_episode_first_T", "final_return", "seconds"])
        for item in runs:
            values = zip(
                item.tasks, item.total_rewards, r_per_task(spec, item, episodes_in_t), item.final_returns, strict=True
            )
            for task, total, r, final in values:
                writer.writerow([item.method, item.seed, task, total, r, final, round(item.seconds)])

    measured = {r.method for r in runs}
    methods = [method for method in METHODS if method in args.methods and method in measured]
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for method in methods:
        centres, mean, half = binned_curve([r for r in runs if r.method == method], args.adaptation_timesteps)
        axis.plot(centres, mean, label=LABELS[method])
        axis.fill_between(centres, mean - half, mean + half, alpha=0.2)
    for (label, value), style in zip(refs.items(), ("--", ":"), strict=False):
        axis.axhline(value, color="grey", linestyle=style, label=label)
    finish_figure(
        figure,
        axis,
        out / f"{name}_adaptation.png",
        "adaptation steps on the task",
        "episode return",
        f"{spec.env_id}: learning a new task (mean, 95 % band)",
    )

    mlsh_runs = [r for r in runs if r.method == "mlsh"]
    pictures = []
    curves = [r for r in runs if r.meta_curve]
    if curves:
        figure, axis = plt.subplots(figsize=(7, 4.5))
        for item in curves:
            steps, values = [point[0] for point in item.meta_curve], [point[1] for point in item.meta_curve]
            axis.plot(steps, values, marker="o", label=f"{LABELS[item.method]}, seed {item.seed}")
        for (label, value), style in zip(refs.items(), ("--", ":"), strict=False):
            axis.axhline(value, color="grey", linestyle=style, label=label)
        finish_figure(
            figure,
            axis,
            out / f"{name}_meta_training.png",
            "meta-training steps",
            f"R per episode over the first {curve_timesteps(spec, args.adaptation_timesteps):,} steps",
            f"{spec.env_id}: a fresh master's R during meta-training",
        )
        pictures += [f"![meta-training curve]({name}_meta_training.png)", ""]
    with_ends = [r for r in mlsh_runs if r.meta_curve and len(r.meta_curve[-1]) > 2] if spec.has_targets else []
    if with_ends:  # Ant TwoWalk: how near the walkers come to their targets over meta-training
        figure, axis = plt.subplots(figsize=(7, 4.5))
        for seed_index, item in enumerate(with_ends):
            targets = [np.asarray(c) for label, c, _ in item.subpolicy_paths["marks"] if label.startswith("target")]
            for index, (how, style) in enumerate((("most likely", "--"), ("sampled", "-")), start=2):
                points = [(point[0], worse_end(point[index], targets)) for point in item.meta_curve if len(point) > index]
                if points:
                    axis.plot(
                        *zip(*points, strict=True), style, marker="o", color=f"C{seed_index}",
                        label=f"seed {item.seed}, {how} actions",
                    )  # fmt: skip
        reached = spec.target_reached
        axis.axhline(reached, color="grey", linestyle=":", label=f"the bar ({reached:g})")
        finish_figure(
            figure,
            axis,
            out / f"{name}_target_distance.png",
            "meta-training steps",
            "worse sub-policy end from a distinct target",
            f"{spec.env_id}: each sub-policy alone, its end's distance to its target",
        )
        pictures += [f"![distance to the targets over meta-training]({name}_target_distance.png)", ""]
    if mlsh_runs:
        figure, axes = plt.subplots(1, len(mlsh_runs), figsize=(4 * len(mlsh_runs), 4), squeeze=False)
        for axis, item in zip(axes[0], mlsh_runs, strict=True):
            draw_paths(axis, spec, item.subpolicy_paths)
            axis.set_title(f"seed {item.seed}: where each sub-policy goes", fontsize=9)
            axis.legend(fontsize=7)
        figure.tight_layout()
        figure.savefig(out / f"{name}_subpolicies.png", dpi=110)

        figure, axis = plt.subplots(figsize=(max(6, len(mlsh_runs[0].tasks) * 0.9), 3.5))
        width = 0.8 / len(mlsh_runs)
        for index, item in enumerate(mlsh_runs):
            usage = np.asarray(item.usage)
            for k in range(usage.shape[1]):
                axis.bar(np.arange(len(item.tasks)) + index * width, usage[:, k], width, bottom=usage[:, :k].sum(axis=1),
                         color=f"C{k}", label=f"sub-policy {k}" if index == 0 else None)  # fmt: skip
        axis.set_xticks(np.arange(len(mlsh_runs[0].tasks)), [f"task {t}" for t in mlsh_runs[0].tasks], fontsize=7)
        axis.set_ylabel("fraction of adaptation steps")
        axis.set_title("MLSH sub-policy usage per task (one bar per seed)")
        axis.legend(fontsize=7)
        figure.tight_layout()
        figure.savefig(out / f"{name}_usage.png", dpi=110)
        choosing = [r for r in mlsh_runs if r.course_choices]
        if choosing:
            course_figure(choosing, out / f"{name}_choices.png")
            pictures += [f"![which sub-policy acts where along the course]({name}_choices.png)", ""]
        pictures += [
            f"![where each sub-policy goes]({name}_subpolicies.png)",
            "",
            f"![sub-policy usage]({name}_usage.png)",
            "",
            "MLSH sub-policy divergence (mean KL between sub-policies on visited states) per seed: "
            + ", ".join(f"{r.divergence:.2f}" for r in mlsh_runs)
            + ".",
            "",
        ]
        videos = [(r.seed, video_path(args.out, name, r.seed)) for r in mlsh_runs]
        videos = [(seed, path) for seed, path in videos if path.is_file()]
        if videos:
            pictures += [
                "Each sub-policy acting alone from the same start, side by side (sub-policy 0 on the left, "
                + ("on walk, then on crawl, " if spec.kind == "humanoid" else "")
                + f"{video_speed(spec):g} times as fast as real): "
                + ", ".join(f"[seed {seed}]({path.name})" for seed, path in videos)
                + ".",
                "",
            ]

    ratio_header = f" R / {normaliser} |" if normaliser else ""
    shared_env = sum(other.env_id == spec.env_id for other in EXPERIMENTS.values()) > 1
    early_header = "".join(f" R per episode, first {t:,} steps |" for t in spec.report_at)
    packages = packages_note([r.packages for r in runs])
    lines = [
        f"## {spec.env_id}" + (f" ({name})" if shared_env else ""),
        "",
        f"Command: `python -m benchmarks.reproduce {args.command}`  ",
        f"Machine: {args.machine}.  ",
        f"Code: {code_versions(runs)}.  ",
        *([f"{packages}  "] if packages else []),
        *in_progress(runs, args),
        f"Seeds: {', '.join(map(str, args.seeds))}. " + budget(spec, args.meta_timesteps, runs, args.settings) + " "
        f"Adaptation: T = {args.adaptation_timesteps} steps per task, tasks {', '.join(map(str, spec.evaluation_tasks()))}"
        + (" (held out of meta-training)" if spec.tasks is None else "")
        + ".  ",
        f"Wall-clock: {seconds / 60:.1f} min in all{cpu_time(runs)}." + (f"  \n{spec.note}" if spec.note else ""),
        "",
        "R is the reward a fresh learner collects during its first T steps on a task (the paper's figure of merit), "
        + (
            "shown per episode of those steps (the Humanoid's episodes end when it falls: the reward over T over the "
            "episodes it held, so that falling at once earns no alive bonus for the rest of an episode's steps); "
            if spec.terminating
            else "shown per episode; "
        )
        + f'"after" is the adapted learner\'s mean return in {spec.n_eval_episodes} deterministic episodes '
        "per task. Means over seeds and tasks, with the range over seeds in brackets; the IQM is the interquartile "
        "mean over every (seed, task) with a 95 % stratified bootstrap interval (rliable).",
        "",
        "| method |" + early_header + " R per episode, first T steps | IQM of R [95 % CI] | after adaptation |" + ratio_header,
        "|---|" + "---|" * len(spec.report_at) + "---|---|---|" + ("---|" if normaliser else ""),
    ]
    for method in methods:
        items = [r for r in runs if r.method == method]
        per_seed = np.array([np.mean(r_per_task(spec, r, episodes_in_t)) for r in items])
        after = np.array([np.mean(r.final_returns) for r in items])
        ratio = f" {per_seed.mean() / refs[normaliser]:.2f} |" if normaliser else ""
        early = ""
        for timesteps in spec.report_at:
            values = np.array([early_r(r, timesteps) for r in items])
            early += f" {values.mean():.2f} [{values.min():.2f}, {values.max():.2f}] |"
        middle, low, high = iqm(spec, items, episodes_in_t)
        lines.append(
            f"| {LABELS[method]} |{early} {per_seed.mean():.2f} [{per_seed.min():.2f}, {per_seed.max():.2f}] "
            f"| {middle:.2f} [{low:.2f}, {high:.2f}] "
            f"| {after.mean():.2f} [{after.min():.2f}, {after.max():.2f}] |" + ratio
        )
    for label, value in refs.items():
        ratio = f" {value / refs[normaliser]:.2f} |" if normaliser else ""
        lines.append(f"| {label} |" + f" {value:.2f} |" * (1 + len(spec.report_at)) + " | |" + ratio)
    lines += [
        "",
        "Against the paper's claims (computed from the numbers above):",
        "",
        *claims(spec, runs, methods, refs, args.adaptation_timesteps),
        "",
        f"![adaptation curves]({name}_adaptation.png)",
        "",
        *pictures,
    ]
    (out / f"{name}.md").write_text("\n".join(lines))
    write_index(out)
    print("\n".join(lines))


def budget(spec: Experiment, meta_timesteps: int, runs: list[Run], settings: dict[str, Any]) -> str:
    """:return: The page's sentence on what the methods were meta-trained with (``settings``: MLSH's, ``--set``)."""
    changed = ", ".join(f"`{key}={value}`" for key, value in sorted(settings.items()))
    if spec.source is None:
        return (
            f"Meta-training / shared-policy budget: {meta_timesteps} steps (MLSH's settings: the env's entry of "
            "`hyperparams/mlsh.yml`" + (f", with {changed}" if changed else "") + ")."
        )
    sources = sorted({r.source_timesteps for r in runs if r.source_timesteps is not None})
    steps = f", for {' / '.join(map(str, sources))} steps" if sources else ""
    return (
        f"Transfer: MLSH's sub-policies (frozen) and the shared policy are those `reproduce.py {spec.source}` "
        f"meta-trained with the same seed (`models/`{steps}); MLSH's fresh master and the fine-tuning learn here."
    )


RECORDED = ("command", "seeds", "methods", "meta_timesteps", "adaptation_timesteps", "machine", "settings")


def in_progress(runs: list[Run], args: argparse.Namespace) -> list[str]:
    """:return: The page's line naming the runs of the command that are not measured yet (none when all are)."""
    done = {(item.method, item.seed) for item in runs}
    missing = []
    for method in args.methods:
        seeds = [str(seed) for seed in args.seeds if (method, seed) not in done]
        if seeds:
            missing.append(f"{LABELS[method]}, seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)}")
    if not missing:
        return []
    return [
        f"**In progress**: not measured yet: {'; '.join(missing)} (`--resume` runs them); the numbers below are "
        "the runs so far.  "
    ]


def save_runs(runs: list[Run], args: argparse.Namespace, seconds: float) -> None:
    """Keep every measured run in ``<out>/<experiment>_runs.json``, so that the page can be re-rendered (``--render``)."""
    record = {key: getattr(args, key) for key in RECORDED}
    record.update(seconds=seconds, runs=[asdict(item) for item in runs])
    path = pathlib.Path(args.out) / f"{args.experiment}_runs.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def load_runs(args: argparse.Namespace) -> tuple[list[Run], float]:
    """Read what ``save_runs`` wrote: the original command, seeds, methods and budgets into ``args``; the runs; the seconds."""
    path = pathlib.Path(args.out) / f"{args.experiment}_runs.json"
    if not path.is_file():
        raise SystemExit(f"--render: {path} does not exist; run the experiment first.")
    record = json.loads(path.read_text())
    record.setdefault("machine", "x86_64, 2 cores, no GPU; two runs at a time, one thread each")  # files before --jobs
    record.setdefault("settings", {})  # files before --set
    for key in RECORDED:
        setattr(args, key, record[key])
    runs = [Run(**item) for item in record["runs"]]
    for item in runs:  # JSON turns tuple tasks (Four Rooms' cells) into lists
        item.tasks = [tuple(task) if isinstance(task, list) else task for task in item.tasks]
        # runs saved before T was kept per run: a file's runs share its command's T (``--resume`` holds them to it)
        item.adaptation_timesteps = item.adaptation_timesteps or record["adaptation_timesteps"]
    return runs, record["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", choices=sorted(EXPERIMENTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--meta-timesteps", type=int, default=None)
    parser.add_argument("--adaptation-timesteps", type=int, default=None)
    parser.add_argument(
        "--methods", nargs="+", choices=METHODS, default=None,
        help=f"default: all ({', '.join(TRANSFER_ONLY)} on a transfer experiment only)",
    )  # fmt: skip
    parser.add_argument("--out", default="results", help="folder of the pages, runs and models (the project's: docs/results)")
    parser.add_argument("--render", action="store_true", help="re-write the outputs from the saved runs, without running")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (one process each)")
    parser.add_argument("--resume", action="store_true", help="keep the saved runs of this command and run the rest")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="an MLSH setting changed from the env's entry of hyperparams/mlsh.yml (repeatable; MLSH's methods only)",
    )  # fmt: skip
    parser.add_argument(
        "--extend", action="store_true",
        help="continue the saved runs' meta-training to a larger --meta-timesteps (implies --resume)",
    )  # fmt: skip
    args = parser.parse_args()
    args.resume = args.resume or args.extend
    args.settings = key_values(args.set, "reproduce.py")
    transfer = EXPERIMENTS[args.experiment].source is not None
    if args.methods is None:
        args.methods = [method for method in METHODS if transfer or method not in TRANSFER_ONLY]
    elif not transfer and (only := [method for method in args.methods if method in TRANSFER_ONLY]):
        parser.error(
            f"--methods {' '.join(only)}: adapts a transfer's source model; {args.experiment} meta-trains its own, so "
            "run it on a transfer experiment (e.g. ant_obstacle)."
        )
    if args.render:
        runs, seconds = load_runs(args)
        write_outputs(args.experiment, runs, args, seconds)
        return
    # the command as run from the repository root, wherever it ran from (the page shows it)
    out = pathlib.Path(args.out).resolve()
    relative_out = str(out.relative_to(ROOT)) if out.is_relative_to(ROOT) else args.out
    args.command = " ".join(relative_out if arg == args.out else arg for arg in sys.argv[1:])
    args.machine = (
        f"{platform.machine()}, {multiprocessing.cpu_count()} cores, CPU only; {args.jobs} runs at a time, one thread each"
    )
    spec = EXPERIMENTS[args.experiment]
    if spec.source is not None:
        check_source(spec, args)
    args.meta_timesteps = args.meta_timesteps or spec.meta_timesteps
    args.adaptation_timesteps = args.adaptation_timesteps or spec.adaptation_timesteps
    saved = pathlib.Path(args.out) / f"{args.experiment}_runs.json"
    if saved.is_file() and not args.resume:
        raise SystemExit(
            f"{saved} holds earlier runs; add --resume to keep them and run only the missing (method, seed) pairs, "
            "or move that file away (or use another --out) to start afresh."
        )
    patterns = [checkpoint_path(args.out, args.experiment, method, "*") for method in METHODS]
    started = sorted(path for pattern in patterns for path in pattern.parent.glob(pattern.name))
    if started and not args.resume:
        raise SystemExit(
            f"{started[0].parent} holds checkpoints of unfinished runs ({', '.join(p.name for p in started)}); add "
            "--resume to go on from them, or move them away to start afresh."
        )
    runs, seconds = resumed_runs(args) if args.resume else ([], 0.0)
    done = {(item.method, item.seed) for item in runs}
    commit = code_version()
    configs = [
        (args.experiment, method, seed, args.meta_timesteps, args.adaptation_timesteps, args.out, commit, args.settings)
        for method in args.methods
        for seed in args.seeds
        if (method, seed) not in done
    ]
    start = time.perf_counter() - seconds
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        for item in pool.imap_unordered(run, configs, chunksize=1):
            runs.append(item)
            save_runs(runs, args, time.perf_counter() - start)
            print(f"{item.method} seed {item.seed}: {item.seconds / 60:.1f} min", flush=True)
    runs.sort(key=lambda item: (args.methods.index(item.method), item.seed))
    seconds = time.perf_counter() - start
    save_runs(runs, args, seconds)
    write_outputs(args.experiment, runs, args, seconds)


def check_source(spec: Experiment, args: argparse.Namespace) -> None:
    """A transfer experiment: no budget of its own to meta-train, and its source's models must be there."""
    source = spec.source
    assert source is not None
    if args.meta_timesteps:
        raise SystemExit(
            f"--meta-timesteps: {args.experiment} meta-trains nothing (it starts from {spec.source}'s models); give the "
            f"budget to `reproduce.py {spec.source}` instead."
        )
    missing = [
        path
        for method in args.methods
        if method != "single_policy"
        for seed in args.seeds
        if not (path := model_path(args.out, source, "mlsh" if method in TRANSFER_ONLY else method, seed)).is_file()
    ]
    if missing:
        raise SystemExit(
            f"{args.experiment} transfers {spec.source}'s models, and {', '.join(str(p) for p in missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing: run `python -m benchmarks.reproduce {spec.source} "
            "--seeds ... --methods ...` with the same --out first."
        )


def resumed_runs(args: argparse.Namespace) -> tuple[list[Run], float]:
    """The saved runs of this experiment that match ``args``' budgets, methods and seeds (``--resume``), and their seconds."""
    path = pathlib.Path(args.out) / f"{args.experiment}_runs.json"
    if not path.is_file():
        return [], 0.0
    saved = argparse.Namespace(**vars(args))
    runs, seconds = load_runs(saved)
    longer = args.extend and saved.meta_timesteps < args.meta_timesteps
    if saved.adaptation_timesteps != args.adaptation_timesteps or (saved.meta_timesteps != args.meta_timesteps and not longer):
        raise SystemExit(
            f"--resume: {path} holds runs with other budgets (meta {saved.meta_timesteps}, adaptation "
            f"{saved.adaptation_timesteps}); use the same budgets (or, with the same adaptation budget, --extend and a "
            "larger --meta-timesteps), or another --out."
        )
    if saved.settings != args.settings:
        raise SystemExit(
            f"--resume: {path} holds runs with other MLSH settings ({saved.settings or 'the entry as it is'}); give the "
            "same --set, or use another --out."
        )
    kept = [item for item in runs if item.method in args.methods and item.seed in args.seeds]
    if longer:
        kept = extend(kept, path, saved.meta_timesteps, args)
    if EXPERIMENTS[args.experiment].source is not None:
        kept = current_transfers(kept, path, args)
    if kept and args.machine in saved.machine:
        args.machine = saved.machine
    elif kept:
        args.machine = f"{saved.machine} (earlier runs); {args.machine} (runs added by --resume)"
    return kept, seconds


def extend(runs: list[Run], path: pathlib.Path, meta_timesteps: int, args: argparse.Namespace) -> list[Run]:
    """
    ``--extend``: turn every saved run that meta-trained (MLSH's, the shared policy's) back into a checkpoint of its
    kept model, with its meta-training curve and CPU time so far (its earlier adaptation's CPU time included), so that
    ``meta_train`` continues it to ``args.meta_timesteps``. The runs file and those models are first copied beside
    them with ``meta_timesteps`` in their names (an existing copy is kept: a second ``--extend`` after an
    interrupted one finds the same files).

    :param runs: The saved runs of this command; ``path``: their file; ``meta_timesteps``: their budget.
    :return: The runs kept as they are (PPO from scratch's: it meta-trains nothing). A run whose model is not there
        is left out, to be meta-trained afresh to the new budget.
    """
    archive = path.with_name(f"{path.stem}_meta{meta_timesteps}.json")
    if not archive.exists():
        shutil.copyfile(path, archive)
    kept = []
    for item in runs:
        if item.method == "single_policy":
            kept.append(item)
            continue
        model = model_path(args.out, args.experiment, item.method, item.seed)
        checkpoint = checkpoint_path(args.out, args.experiment, item.method, item.seed)
        progress = checkpoint.with_suffix(".json")
        if progress.is_file():  # an interrupted --extend (the progress file is written last): it goes on from there
            continue
        if not model.is_file():  # e.g. a shared policy whose model was not kept: meta-trained afresh to the new budget
            print(f"--extend: {model} is missing: {item.method} seed {item.seed} starts afresh.", flush=True)
            continue
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        for source in (model, statistics_path(model)):  # the checkpoint has the model's name, in checkpoints/
            if source.is_file():
                earlier = source.with_name(source.name.replace(model.stem, f"{model.stem}_meta{meta_timesteps}", 1))
                if not earlier.exists():
                    shutil.copyfile(source, earlier)
                shutil.copyfile(source, checkpoint.parent / source.name)
        so_far = {"meta_curve": item.meta_curve or [], "cpu_seconds": item.cpu_seconds or 0.0, "commit": item.commit}
        if item.cpu_seconds is not None and item.meta_train_cpu_seconds is not None:  # all but meta-training
            so_far["measure_cpu_seconds"] = item.cpu_seconds - item.meta_train_cpu_seconds
        progress.write_text(json.dumps(so_far))
    return kept


def current_transfers(runs: list[Run], path: pathlib.Path, args: argparse.Namespace) -> list[Run]:
    """
    A transfer experiment's saved runs that started from the source models there now (those of PPO from scratch,
    which start from nothing, are all kept). The others are run again; the runs file is first copied beside itself
    as ``<experiment>_runs_source<steps>.json`` (the source's steps those runs started from, or ``unknown``).
    """
    source = EXPERIMENTS[args.experiment].source
    assert source is not None
    stale = [
        item
        for item in runs
        if item.method != "single_policy"
        and item.source_timesteps != saved_timesteps(model_path(args.out, source, item.method, item.seed))
    ]
    if stale:
        steps = sorted({str(item.source_timesteps) if item.source_timesteps else "unknown" for item in stale})
        archive = path.with_name(f"{path.stem}_source{'_'.join(steps)}.json")
        if not archive.exists():
            shutil.copyfile(path, archive)
        print(
            f"--resume: {', '.join(f'{item.method} seed {item.seed}' for item in stale)} started from {source} models "
            f"that have been trained further since (or not recorded): run again; the earlier runs are in {archive}.",
            flush=True,
        )
    return [item for item in runs if item not in stale]


if __name__ == "__main__":
    main()
