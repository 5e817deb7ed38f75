"""
Calibration: SB3's PPO on the Ant and the Humanoid, with the package's sub-policy settings and with the RL Zoo's,
learning curves against steps and against CPU time: what a flat learner needs to walk here, before any cost of the
hierarchy.

    python -m benchmarks.calibration --envs Ant-v5 two_walk --settings package zoo --seeds 0 1 2 --timesteps 3000000

Envs (``ENVS``): ``Ant-v5`` and ``Humanoid-v5`` (gymnasium's, with their defaults); ``two_walk`` (AntTwoWalk-v0 as
the reproduction makes it, its first evaluation task fixed, as ``benchmarks/flat_learner.py --tasks fixed`` trains);
``two_walk_far`` (the same with the far targets of ``reproduce.py ant_two_walk_far``); ``walk`` and ``crawl``
(HumanoidWalkCrawl-v0 with that task fixed). Settings (``SETTINGS``):

- ``package``: a sub-policy's PPO settings: the ``hyperparams/mlsh.yml`` entry of the MLSH env the env stands for
  (``MLSH_ENTRY``: AntTwoWalk-v0 or HumanoidWalkCrawl-v0; n_envs, n_steps, batch size, learning rate, target KL,
  ``policy_kwargs``), MLSH's defaults where it sets none; the observations normalised by a ``VecNormalize`` of the
  observations alone, clipped at MLSH's ``clip_obs``, as MLSH does its own.
- ``package_reward``: the same, with ``VecNormalize``'s reward scaling as well (as the RL Zoo's MuJoCo entries).
- ``package_ant``: ``package`` with the AntTwoWalk-v0 entry whatever the env (on the Humanoid: whether the settings
  that the Ant's calibration chose carry over).
- ``zoo``: rl-zoo3's active Ant entry (``Ant-v4`` in its ``hyperparams/ppo.yml``, read from the installed
  rl_zoo3): SB3's PPO defaults, one env, ``normalize: true`` (observations and rewards). Its Humanoid entry, commented
  out, is the same (``<<: *mujoco-defaults``) with 2M steps.
- ``zoo_tuned``: the tuned Ant entry that the same file keeps commented out (its values, restated in ``ZOO_TUNED``).

Each run records, every ``--every`` steps, the mean return of the training episodes that ended in that window (on
``two_walk`` and ``two_walk_far`` also their mean distance to the target at the end) and the CPU seconds of training
so far; at each quarter of the run, the mean return of ``EVAL_EPISODES`` episodes with the most likely actions (the
observation statistics frozen), as rl-zoo3's own benchmark measures its agents. The measurements' CPU time is not counted.

A run is checkpointed 20 times in ``<out>/calibration_checkpoints/`` (model, observation statistics, record so far):
a sitting that stops leaves them, and ``--resume`` continues every run of the command from its checkpoint. Finished
runs are kept in ``<out>/calibration.json`` and are not run again; the page ``<out>/calibration.md`` and a figure
per env are written from all kept runs (``--render``: only that; ``--out``: ``results`` unless given; the project's
page: ``--out docs/benchmarks``). Runs go ``--jobs`` at a time, one process and one torch thread each.
"""

import argparse
import inspect
import json
import pathlib
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import yaml

from benchmarks.experiments import (
    EXPERIMENTS,
    EpisodeWindows,
    add_out_argument,
    counted,
    page_header,
    run_and_keep,
)
from benchmarks.reproduce import CHUNKS, Checkpoints, load_statistics, save_checkpoint, statistics_path
from sb3_mlsh.zoo import mlsh_settings

RUNS = "calibration.json"  # in --out, beside the page calibration.md
CHECKPOINTS = "calibration_checkpoints"
# the experiments whose envs ``two_walk`` and ``two_walk_far`` are
EXPERIMENT = {"two_walk": "ant_two_walk", "two_walk_far": "ant_two_walk_far"}
ENVS = {
    "Ant-v5": "gymnasium's Ant-v5",
    "two_walk": "AntTwoWalk-v0, one task fixed",
    "two_walk_far": "AntTwoWalk-v0 with far targets, one task fixed",
    "Humanoid-v5": "gymnasium's Humanoid-v5",
    "walk": "HumanoidWalkCrawl-v0, walk",
    "crawl": "HumanoidWalkCrawl-v0, crawl",
}
# the MLSH env whose hyperparams/mlsh.yml entry ``package`` reads for each env
MLSH_ENTRY = dict.fromkeys(("Ant-v5", "two_walk", "two_walk_far"), "AntTwoWalk-v0") | dict.fromkeys(
    ("Humanoid-v5", "walk", "crawl"), "HumanoidWalkCrawl-v0"
)
HUMANOID_TASKS = {"walk": 1, "crawl": 0}  # HumanoidWalkCrawl-v0's task numbers
SETTINGS = {
    "package": "the package's sub-policy settings",
    "package_reward": "the package's, rewards scaled",
    "package_ant": "the package's Ant TwoWalk sub-policy settings",
    "zoo": "rl-zoo3's Ant entry",
    "zoo_tuned": "rl-zoo3's tuned Ant entry (commented out there)",
}
# rl-zoo3's hyperparams/ppo.yml keeps this tuned Ant-v4 entry commented out (with n_timesteps 1e7 and normalize: true)
ZOO_TUNED = dict(
    n_envs=1, batch_size=32, n_steps=512, gamma=0.98, learning_rate=1.90609e-05, ent_coef=4.9646e-07,
    clip_range=0.1, n_epochs=10, gae_lambda=0.8, max_grad_norm=0.6, vf_coef=0.677239,
)  # fmt: skip
# what rl-zoo3 publishes for its PPO Ant agent (benchmark.md of DLR-RM/rl-baselines3-zoo, commit 22e3ff2): one
# trained agent, Ant-v3, 1M steps, mean and std of the return of 175 episodes with the most likely actions; it has no
# PPO agent on the Humanoid: the walk task's reward is Humanoid-v3's, and its nearest agent there is A2C's (SAC's 6232.3)
PUBLISHED = {
    "Ant-v5": ("rl-zoo3's benchmark, PPO on Ant-v3, one agent", 1_000_000, 1327.158, 451.577),
    "walk": ("rl-zoo3's benchmark (no PPO agent there), A2C on Humanoid-v3, one agent", 2_000_000, 388.321, 92.652),
}
EVAL_EPISODES = 5
# the sub-policies' PPO settings that MLSH takes under the same names as SB3's PPO
SUBPOLICY_SETTINGS = (
    "n_steps", "learning_rate", "batch_size", "n_epochs", "gamma", "gae_lambda", "clip_range", "ent_coef", "vf_coef",
    "max_grad_norm", "target_kl",
)  # fmt: skip


def learner_settings(settings: str, env: str) -> tuple[int, dict[str, Any], dict[str, Any] | None]:
    """
    :param settings: A key of ``SETTINGS``.
    :param env: A key of ``ENVS``.
    :return: ``n_envs``, PPO's keyword arguments and ``VecNormalize``'s (``None``: no ``VecNormalize``).
    """
    if settings in ("package", "package_reward", "package_ant"):
        from sb3_mlsh import MLSH

        n_envs, hyperparams = mlsh_settings("AntTwoWalk-v0" if settings == "package_ant" else MLSH_ENTRY[env])
        defaults = {name: p.default for name, p in inspect.signature(MLSH.__init__).parameters.items()}
        ppo = {name: hyperparams.get(name, defaults[name]) for name in SUBPOLICY_SETTINGS}
        policy_kwargs = {k: v for k, v in hyperparams.get("policy_kwargs", {}).items() if not k.startswith("master_")}
        ppo["policy_kwargs"] = policy_kwargs or None
        clip_obs = hyperparams.get("clip_obs", defaults["clip_obs"])
        # the entry's normalize_rewards is MLSH's VecNormalize reward scaling; package_reward scales them either way
        norm_reward = settings == "package_reward" or hyperparams.get("normalize_rewards", False)
        return n_envs, ppo, dict(norm_reward=norm_reward, clip_obs=clip_obs, gamma=ppo["gamma"])
    if settings == "zoo":
        import rl_zoo3

        entry = yaml.safe_load((pathlib.Path(rl_zoo3.__file__).parent / "hyperparams" / "ppo.yml").read_text())["Ant-v4"]
        entry = {k: v for k, v in entry.items() if k not in ("n_timesteps", "policy")}
    else:
        entry = {**ZOO_TUNED, "normalize": True}
    n_envs = entry.pop("n_envs", 1)
    normalize = entry.pop("normalize", False)
    # as rl-zoo3's ExperimentManager: VecNormalize's defaults, its gamma the entry's if it sets one
    return n_envs, entry, ({"gamma": entry["gamma"]} if "gamma" in entry else {}) if normalize else None


def make_calibration_env(env: str) -> Callable[[], Any]:
    """:return: A maker of the env ``env`` (a key of ``ENVS``): gymnasium's, or an MLSH env with one task fixed."""
    import gymnasium as gym

    from sb3_mlsh import TaskSamplerWrapper
    from sb3_mlsh.baselines import TaskPerEpisode

    def make() -> gym.Env:
        if env in ("Ant-v5", "Humanoid-v5"):
            return gym.make(env)
        if env in EXPERIMENT:
            spec = EXPERIMENTS[EXPERIMENT[env]]
            made, task = gym.make(spec.env_id, **spec.env_kwargs), spec.evaluation_tasks()[0]
        else:
            made, task = gym.make(MLSH_ENTRY[env]), HUMANOID_TASKS[env]
        return TaskPerEpisode(TaskSamplerWrapper(made, tasks=[task]))

    return make


def checkpoint_path(out: pathlib.Path, config: dict[str, Any]) -> pathlib.Path:
    """Where a run is checkpointed (the model; its record and statistics beside it)."""
    return out / CHECKPOINTS / f"{config['env']}_{config['settings']}_seed{config['seed']}_{config['timesteps']}.zip"


def run(config: dict[str, Any]) -> dict[str, Any]:
    """
    One run, from its checkpoint if there is one.

    :param config: ``env``, ``settings``, ``seed``, ``timesteps``, ``every``, ``out``.
    :return: ``config`` with ``windows`` (per window: steps, mean training return, mean distance to the target at
        the end or ``None``, CPU seconds of training so far), ``evaluations`` (per quarter: steps, mean return and,
        on ``two_walk`` and ``two_walk_far``, mean distance with the most likely actions) and ``cpu_minutes`` (training).
    """
    import torch as th
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    th.set_num_threads(1)
    start = time.process_time()
    n_envs, ppo, normalize = learner_settings(config["settings"], config["env"])
    make_env = make_calibration_env(config["env"])

    seed, every = config["seed"], config["every"]
    env: Any = make_vec_env(make_env, n_envs=n_envs, seed=seed)
    checkpoint = checkpoint_path(pathlib.Path(config["out"]), config)
    record = checkpoint.with_suffix(".json")
    if checkpoint.is_file() and record.is_file():
        env = load_statistics(checkpoint, env) or env
        model = PPO.load(checkpoint, env=env)
        saved = json.loads(record.read_text())
    else:
        env = VecNormalize(env, **normalize) if normalize is not None else env
        model = PPO("MlpPolicy", env, seed=seed, **ppo)
        saved = {"windows": [], "evaluations": [], "cpu_seconds": 0.0}
    windows, evaluations = saved["windows"], saved["evaluations"]
    measuring = [0.0]  # this sitting's CPU seconds of evaluations

    def cpu_seconds() -> float:
        return saved["cpu_seconds"] + time.process_time() - start - measuring[0]

    def evaluate(trained: Any) -> tuple[int, float, float | None]:
        begin = time.process_time()
        statistics = trained.get_vec_normalize_env()
        eval_env = make_env()
        returns, distances = [], []
        for episode in range(EVAL_EPISODES):
            obs, info = eval_env.reset(seed=seed + 1000 + episode)
            total, done = 0.0, False
            while not done:
                inputs = statistics.normalize_obs(obs) if statistics is not None else obs
                action, _ = trained.predict(inputs, deterministic=True)
                obs, reward, terminated, truncated, info = eval_env.step(action)
                total, done = total + float(reward), terminated or truncated
            returns.append(total)
            distances += [info["distance_to_target"]] if "distance_to_target" in info else []
        eval_env.close()
        measuring[0] += time.process_time() - begin
        return trained.num_timesteps, float(np.mean(returns)), float(np.mean(distances)) if distances else None

    def save(trained: Any, curve: list[Any]) -> None:
        save_checkpoint(trained, checkpoint, {"windows": windows, "evaluations": curve, "cpu_seconds": cpu_seconds()})

    checkpoints = Checkpoints(every=config["timesteps"] // CHUNKS, curve=evaluations, save=save, curve_point=evaluate)
    model.learn(
        max(config["timesteps"] - model.num_timesteps, 0),
        reset_num_timesteps=False,
        callback=[EpisodeWindows(every, len(windows), lambda *window: windows.append([*window, cpu_seconds()])), checkpoints],
    )
    checkpoints.finish()
    for path in (checkpoint, record, statistics_path(checkpoint)):
        path.unlink(missing_ok=True)
    return {
        **{k: v for k, v in config.items() if k != "out"},
        "windows": windows, "evaluations": evaluations, "cpu_minutes": cpu_seconds() / 60,
    }  # fmt: skip


def case(row: dict[str, Any]) -> tuple[str, str, int]:
    """:return: What a run measures: env, settings and budget."""
    return row["env"], row["settings"], row["timesteps"]


def key(row: dict[str, Any]) -> tuple[Any, ...]:
    """:return: A kept run's identity: its case and seed."""
    return (*case(row), row["seed"])


def at(windows: list[list[Any]], steps: int, column: int) -> float | None:
    """:return: The window value (1: return, 2: distance, 3: CPU seconds) of the last window ending by ``steps``."""
    before = [window for window in windows if window[0] <= steps]
    return before[-1][column] if before else None


def cell(value: float | None, form: str) -> str:
    return "-" if value is None else form.format(value)


def render(rows: list[dict[str, Any]], out: pathlib.Path) -> None:
    """Write the page (a table per env: per settings and seed, the returns at each quarter and CPU) and the figures."""
    lines = [
        *page_header("Calibration: SB3's PPO on the Ant and the Humanoid", "calibration.py", rows, out / RUNS),
        "SB3's PPO with the package's sub-policy settings and with rl-zoo3's, one run per settings and seed "
        "(settings: `benchmarks/calibration.py`). *training*: the mean return of the training episodes that ended in "
        "the window before the point; *most likely*: the mean return of "
        f"{EVAL_EPISODES} episodes with the most likely actions at that point (the observation statistics frozen), as "
        "rl-zoo3 measures its agents; on AntTwoWalk-v0 the mean distance to the target at the end follows each return "
        "(the target is 5 away; 50 on the far variant). On the Humanoid's *walk* an episode ends when the torso drops "
        "below 1.0 and each step earns 5 for being alive, plus about 83 per unit walked forward (a whole upright "
        "episode: 5,000 and more); "
        "on *crawl* each unit crawled backward under the slab earns 500, and nothing is paid for being alive. "
        "*CPU minutes*: the run's training alone, one torch thread (runs sharing the cores "
        "with other jobs take longer).",
        "",
    ]
    for env in ENVS:
        cases = sorted({case(row) for row in rows if row["env"] == env}, key=lambda c: (list(SETTINGS).index(c[1]), c[2]))
        if not cases:
            continue
        lines += [f"## {ENVS[env]}", ""]
        if env in PUBLISHED:
            source, steps, mean, std = PUBLISHED[env]
            lines += [f"Published: {source}, {steps:,} steps: {mean:.1f} +- {std:.1f} (most likely actions).", ""]
        for _, settings, timesteps in cases:
            runs = sorted((row for row in rows if case(row) == (env, settings, timesteps)), key=lambda r: r["seed"])
            points = [timesteps * q // 4 for q in (1, 2, 3, 4)]
            distance = env in EXPERIMENT
            lines += [
                f"### {SETTINGS[settings]} (`{settings}`), {timesteps:,} steps",
                "",
                "| seed | measure | " + " | ".join(f"{p:,}" for p in points) + " | CPU minutes |",
                "|---|---|" + "---|" * (len(points) + 1),
            ]
            for row in runs:
                training = [at(row["windows"], p, 1) for p in points]
                ends = [at(row["windows"], p, 2) for p in points]
                cells = [
                    cell(r, "{:.1f}") + (f" / {cell(d, '{:.2f}')}" if distance else "")
                    for r, d in zip(training, ends, strict=True)
                ]
                lines.append(f"| {row['seed']} | training | {' | '.join(cells)} | {row['cpu_minutes']:.1f} |")
                evaluated = {e[0] // (timesteps // 4): e for e in row["evaluations"]}
                cells = [
                    cell(evaluated[q][1], "{:.1f}") + (f" / {cell(evaluated[q][2], '{:.2f}')}" if distance else "")
                    if q in evaluated else "-"
                    for q in (1, 2, 3, 4)
                ]  # fmt: skip
                lines.append(f"| {row['seed']} | most likely | {' | '.join(cells)} |  |")
            finals = [row["evaluations"][-1][1] for row in runs if row["evaluations"]]
            rates = [row["timesteps"] / (row["cpu_minutes"] * 60) for row in runs]
            lines += [
                "",
                f"Most likely actions at the end: {np.mean(finals):.1f} on average over {counted(len(finals), 'seed')}; "
                f"{np.mean(rates):.0f} steps per CPU second of training.",
                "",
            ]
        figure = out / f"calibration_{env}.png"
        draw(rows, env, figure)
        lines += [f"![Training return against steps and CPU minutes, {ENVS[env]}]({figure.name})", ""]
    (out / RUNS).with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))


def draw(rows: list[dict[str, Any]], env: str, path: pathlib.Path) -> None:
    """Training return against steps and against CPU minutes, one colour per settings, one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for index, settings in enumerate(SETTINGS):
        runs = [row for row in rows if row["env"] == env and row["settings"] == settings]
        for number, row in enumerate(runs):
            windows = np.array([w for w in row["windows"] if w[1] is not None], dtype=float).reshape(-1, 4)
            label = SETTINGS[settings] if number == 0 else None
            axes[0].plot(windows[:, 0], windows[:, 1], color=f"C{index}", alpha=0.8, label=label)
            axes[1].plot(windows[:, 3] / 60, windows[:, 1], color=f"C{index}", alpha=0.8)
    axes[0].set_xlabel("steps")
    axes[1].set_xlabel("CPU minutes of training")
    axes[0].set_ylabel("training return per episode")
    axes[0].legend(fontsize="small")
    figure.suptitle(f"SB3's PPO, {ENVS[env]}")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", choices=list(ENVS), default=list(ENVS))
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=["package", "zoo"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--timesteps", type=int, default=3_000_000)
    parser.add_argument("--every", type=int, default=50_000, help="steps per window of training returns")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time, one process each")
    parser.add_argument("--resume", action="store_true", help="continue runs from their checkpoints")
    parser.add_argument("--render", action="store_true", help="only rewrite the page from the kept runs")
    add_out_argument(parser, "docs/benchmarks")
    args = parser.parse_args()
    if args.timesteps < max(args.every, CHUNKS):
        parser.error(f"--timesteps {args.timesteps}: at least one window (--every {args.every}) and {CHUNKS} steps")
    runs = args.out / RUNS
    rows = json.loads(runs.read_text()) if runs.is_file() else []
    if not args.render:
        done = {key(row) for row in rows}
        configs = [
            dict(env=env, settings=settings, seed=seed, timesteps=args.timesteps, every=args.every, out=str(args.out))
            for seed in args.seeds
            for env in args.envs
            for settings in args.settings
        ]
        configs = [config for config in configs if key(config) not in done]
        started = [config for config in configs if checkpoint_path(args.out, config).is_file()]
        if started and not args.resume:
            parser.error(
                f"{args.out / CHECKPOINTS} holds checkpoints of these runs "
                f"({', '.join(checkpoint_path(args.out, c).name for c in started)}): add --resume to continue them, "
                "or remove them to start afresh"
            )
        run_and_keep(
            run, configs, args.jobs, runs, key, "calibration.py",
            lambda row: f"{key(row)}: {row['evaluations']}, {row['cpu_minutes']:.1f} CPU minutes",
        )  # fmt: skip
        rows = json.loads(runs.read_text()) if runs.is_file() else []
    if rows:
        render(rows, args.out)


if __name__ == "__main__":
    main()
