"""
The experiments that ``python -m benchmarks.reproduce`` runs: env, budgets, evaluation tasks, scripted
reference returns, and where each sub-policy goes when it acts alone.

MLSH's hyperparameters are not repeated here: every experiment uses its env's entry of the
packaged ``hyperparams/mlsh.yml`` (the RL Zoo's config), so that the reproduction and
``python -m rl_zoo3.train --algo mlsh`` train the same thing.
"""

import datetime
import fcntl
import importlib.metadata
import itertools
import json
import multiprocessing
import os
import pathlib
import platform
import re
import sys
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import yaml
from stable_baselines3.common.callbacks import BaseCallback

import sb3_mlsh  # noqa: F401  (registers the environments)
from sb3_mlsh.envs.ant import MAZE_LAYOUTS
from sb3_mlsh.envs.humanoid import HumanoidWalkCrawlEnv
from sb3_mlsh.zoo import mlsh_settings

PACKAGE = pathlib.Path(__file__).resolve().parent


def add_out_argument(parser: Any, project: str) -> None:
    """
    Add ``--out``: the folder a benchmark writes its runs file and page to, ``results/`` unless given (the
    project's own pages: ``--out {project}``).
    """
    parser.add_argument(
        "--out", type=pathlib.Path, default=pathlib.Path("results"),
        help=f"folder of the runs file and the page (default: results; the project's pages: {project})",
    )  # fmt: skip


def counted(n: int, noun: str) -> str:
    """:return: ``"1 seed"``, ``"3 seeds"``: ``n`` and the noun, plural unless ``n`` is 1."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def module_of(script: str) -> str:
    """:return: The module that runs a benchmark named by its file (``"master_settings.py"``: its diagnostics module)."""
    stem = script.removesuffix(".py")
    return f"benchmarks.diagnostics.{stem}" if (PACKAGE / "diagnostics" / f"{stem}.py").is_file() else f"benchmarks.{stem}"


def script_path(script: str) -> str:
    """:return: The file of a benchmark named by its file name, from the repository's root."""
    return module_of(script).replace(".", "/") + ".py"


def runnable(command: str) -> str:
    """
    :return: A recorded command as it runs today: commands recorded before the benchmarks became a package ran the
        script's file (``python benchmarks/reproduce.py ...``), now its module (``python -m benchmarks.reproduce ...``).
    """
    return re.sub(r"^python benchmarks/(\w+)\.py", lambda match: f"python -m {module_of(match.group(1))}", command)


@dataclass(frozen=True)
class Experiment:
    """
    :param env_id: The environment.
    :param kind: ``"plane"`` (MovementBandits, KeyDoor), ``"grid"`` (Four Rooms), ``"ant"`` or ``"humanoid"``: how
        references and sub-policy paths are computed and drawn.
    :param meta_timesteps: Default meta-training (and shared-policy) budget.
    :param adaptation_timesteps: Default T.
    :param episode_steps: Steps per episode (to show R per episode).
    :param tasks: Evaluation tasks; ``None``: the env's ``held_out_tasks`` (set by ``env_kwargs``).
    :param env_kwargs: Keyword arguments of the env, for training and evaluation alike.
    :param n_eval_episodes: Deterministic episodes per task after adaptation.
    :param ratio_aim: The issue's aim for MLSH's R over the normalising reference, if it sets one.
    :param note: A line for the results page (e.g. how the budget compares with the paper's).
    :param report_at: Early T's at which the page also reports R (from the adaptation curves).
    :param seed_bars: ``(baseline method, factor)``: the page counts the seeds in which MLSH's R (at the first
        ``report_at``, else at T) is above ``factor`` times the baseline's.
    :param mean_bars: ``(baseline method, factor)``: the page checks that MLSH's R, averaged over seeds and tasks,
        is at least ``factor`` times the baseline's.
    :param key_index: Where the observation holds a has-key flag (KeyDoor): sub-policies alone are also measured
        by how often they reach the key.
    :param source: A transfer experiment: the experiment whose meta-trained models (MLSH's sub-policies, the shared
        policy) it starts from, the model of the same method and seed; it meta-trains nothing itself.
    :param sparse_reward: Most episodes earn nothing: the page also counts, per method and seed, the episodes of the
        adaptation that earned any reward (a mean R can come from a few episodes).
    :param terminating: Episodes end early (the Humanoid's falls): R per episode divides the reward collected over T
        by the episodes those steps held (``AdaptationResult.per_episode_rewards``), not by T over ``episode_steps``,
        which would pay a learner that falls at once the alive bonus of every step.
    :param target_reached: Ant TwoWalk: a sub-policy alone that ends this near a target walks there (the bar).
    :param paper_order: Methods in the order of the paper's table, highest R first: the page counts the seeds in which
        R (over T) falls in that order.
    """

    env_id: str
    kind: str
    meta_timesteps: int
    adaptation_timesteps: int
    episode_steps: int
    tasks: tuple[Any, ...] | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    n_eval_episodes: int = 48
    ratio_aim: float | None = None
    note: str = ""
    report_at: tuple[int, ...] = ()
    seed_bars: tuple[tuple[str, float], ...] = (("single_policy", 1.0), ("shared_policy", 1.0))
    mean_bars: tuple[tuple[str, float], ...] = ()
    key_index: int | None = None
    source: str | None = None
    sparse_reward: bool = False
    terminating: bool = False
    target_reached: float = 1.0
    paper_order: tuple[str, ...] = ()

    @property
    def has_targets(self) -> bool:
        """Whether each task is a target to walk to (Ant TwoWalk): a sub-policy alone is judged by where it ends."""
        return self.env_id == "AntTwoWalk-v0"

    @property
    def is_maze(self) -> bool:
        """Whether the tasks are the Ant mazes' layouts: a sub-policy alone is judged by the direction it walks."""
        return self.env_id == "AntMaze-v0"

    def hyperparams(self) -> tuple[int, dict[str, Any]]:
        """:return: ``n_envs`` and MLSH's keyword arguments, from the packaged ``mlsh.yml``."""
        return mlsh_settings(self.env_id)

    def ppo_settings(self, settings: dict[str, Any] | None = None) -> tuple[dict[str, Any], bool, bool]:
        """
        :param settings: MLSH's settings changed from the entry (``--set``), which the baselines follow too.
        :return: The PPO baselines' settings taken from MLSH's entry: ``n_steps``, MLSH's GAE lambda (0.98), the
            sub-policies' ``batch_size`` (where the entry sets it) and ``policy_kwargs`` (the master's left out);
            whether PPO learns in normalised observations, as MLSH does (its ``normalize_observations``, on the
            observation spaces it normalises); and whether from scaled rewards, as MLSH's sub-policies do
            (``normalize_rewards``: ``VecNormalize``'s ``norm_reward``).
        """
        from sb3_mlsh.common.normalization import normalizable

        _, hyperparams = self.hyperparams()
        hyperparams = {**hyperparams, **(settings or {})}
        policy_kwargs = {
            key: value for key, value in hyperparams.get("policy_kwargs", {}).items() if not key.startswith("master_")
        }
        ppo = dict(n_steps=hyperparams["n_steps"], gae_lambda=0.98, policy_kwargs=policy_kwargs or None)
        if "batch_size" in hyperparams:  # the sub-policies' minibatch, where the entry sets one
            ppo["batch_size"] = hyperparams["batch_size"]
        space = gym.make(self.env_id, **self.env_kwargs).observation_space
        normalize = hyperparams.get("normalize_observations", True) and normalizable(space)
        return ppo, normalize, hyperparams.get("normalize_rewards", False)

    def key_share(self, last_observations: np.ndarray) -> float:
        """
        :param last_observations: The last observation of each of some episodes, one row per episode.
        :return: The share of those episodes that ended with the key (needs ``key_index``).
        """
        assert self.key_index is not None
        return float(np.mean(last_observations[:, self.key_index] > 0.5))

    def late_key_shares(self, result: Any, adaptation_timesteps: int) -> list[float]:
        """
        :param result: An ``AdaptationResult`` on this experiment's evaluation tasks.
        :param adaptation_timesteps: The T it adapted for.
        :return: Per task, the share of the episodes the learner ran (actions sampled) in the last quarter of its
            adaptation that ended with the key: the KeyDoor aim's measure.
        """
        return [
            self.key_share(ends[steps > 0.75 * adaptation_timesteps])
            for (steps, _), ends in zip(result.curves, result.episode_ends, strict=True)
        ]

    def evaluation_tasks(self) -> list[Any]:
        if self.tasks is not None:
            return list(self.tasks)
        return list(gym.make(self.env_id, **self.env_kwargs).unwrapped.held_out_tasks)  # type: ignore[attr-defined]


class EpisodeWindows(BaseCallback):
    """
    Every ``every`` training steps, ``on_window(steps, mean return, mean distance)`` of the training episodes that
    ended in that window (the distance to the target at the end, where the env reports it: Ant TwoWalk; ``None``
    where no episode ended or none reports it).

    :param every: Steps per window.
    :param done: Windows already recorded (a run resumed from a checkpoint).
    :param on_window: Called at the end of each window.
    """

    def __init__(self, every: int, done: int, on_window: Callable[[int, float | None, float | None], None]) -> None:
        super().__init__()
        self.every, self.done, self.on_window = every, done, on_window
        self.returns: list[float] = []
        self.distances: list[float] = []

    def _on_step(self) -> bool:
        ended = [info for info in self.locals["infos"] if "episode" in info]
        self.returns += [info["episode"]["r"] for info in ended]
        self.distances += [info["distance_to_target"] for info in ended if "distance_to_target" in info]
        if self.num_timesteps // self.every > self.done:
            self.done += 1
            mean = float(np.mean(self.returns)) if self.returns else None
            self.on_window(self.num_timesteps, mean, float(np.mean(self.distances)) if self.distances else None)
            self.returns, self.distances = [], []
        return True


def update_json(path: pathlib.Path, default: Any, change: Callable[[Any], None]) -> Any:
    """
    Read ``path`` (``default`` if absent), ``change`` it in place and write it back, under a lock beside it so that
    several invocations of a benchmark can save at once. :return: The changed content.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        content = json.loads(path.read_text()) if path.is_file() else default
        change(content)
        path.write_text(json.dumps(content, indent=1) + "\n")
    return content


def page_header(title: str, script: str, rows: list[dict[str, Any]], runs: pathlib.Path) -> list[str]:
    """
    :param rows: The saved runs of a benchmark that keeps them in ``runs`` (each with ``machine``, ``cpu_minutes``,
        ``date`` and ``command``).
    :return: The first lines of its page: the title, what measured it where and when, and the commands.
    """
    packages = packages_note([row.get("packages") for row in rows])
    return [
        f"# {title}",
        "",
        f"Measured by `{script_path(script)}` ({'; '.join(sorted({row['machine'] for row in rows}))}; one torch "
        f"thread per run; {sum(row['cpu_minutes'] for row in rows):.0f} CPU minutes in all; last run "
        f"{max(row['date'] for row in rows)}). The runs are kept in `{runs.name}` beside this page; `--render` "
        "rewrites this page from them." + (f" {packages}" if packages else ""),
        "",
        "```bash",
        *sorted({runnable(row["command"]) for row in rows}),
        "```",
        "",
    ]


def packages_note(kept: list[str | None]) -> str:
    """
    :param kept: Each run's package versions (``package_versions``), ``None`` for a run made before they were kept.
    :return: A sentence naming the package versions the runs were measured with, and how many runs had each (empty if
        no run kept them).
    """
    counts: dict[str, int] = {}
    for versions in kept:
        if versions:
            counts[versions] = counts.get(versions, 0) + 1
    if not counts:
        return ""

    def runs(n: int) -> str:
        return f"{n} run{'s' if n > 1 else ''}"

    unrecorded = len(kept) - sum(counts.values())
    before = f"; {runs(unrecorded)} measured before they were kept" if unrecorded else ""
    return "Packages: " + "; ".join(f"{versions} ({runs(n)})" for versions, n in sorted(counts.items())) + before + "."


def add_section(path: pathlib.Path, page: str) -> None:
    """
    Write ``page`` (a ``models_page``) to ``path``, keeping the measurements already there: each invocation's is a
    section, from its "Measured by" line on, under the page's title; an earlier section of the same command is replaced.
    """
    title, _, section = page.partition("\n\n")
    sections = [section]
    if path.is_file():
        _, _, earlier = path.read_text().partition("\n\n")
        command = section.split("```")[1]
        sections = [part for part in re.split(r"\n(?=Measured by )", earlier) if part.split("```")[1] != command]
        sections.append(section)
    path.write_text(title + "\n\n" + "\n".join(part.rstrip("\n") + "\n" for part in sections))


def models_page(title: str, script: str, measured: str, legend: str, columns: list[str], rows: list[str]) -> str:
    """
    A page that measures saved models in one invocation (its command written as run, ``--write`` left out).

    :param measured: What each measurement is, after "Measured by ... on <date>, " (e.g. "4 episodes per measurement").
    :param legend: The paragraph that says what the columns mean.
    :param columns: The table's column names; ``rows`` its rows, as Markdown lines.
    :return: The page's Markdown.
    """
    return (
        "\n".join(
            [
                f"# {title}",
                "",
                f"Measured by `{script_path(script)}` on {datetime.date.today()}, {measured}:",
                "",
                "```bash",
                f"python -m {module_of(script)} " + " ".join(a for a in sys.argv[1:] if a != "--write"),
                "```",
                "",
                legend,
                "",
                "| " + " | ".join(columns) + " |",
                "|" + "---|" * len(columns),
                *rows,
            ]
        )
        + "\n"
    )


def publish(page: str, path: pathlib.Path, write: bool) -> None:
    """Print a diagnostic's page, and with ``write`` (its ``--write``) also write it to ``path``."""
    print(page, end="")
    if write:
        path.write_text(page)


def models_arguments(doc: str | None, page: pathlib.Path, episodes: int, episodes_help: str) -> Any:
    """
    The command line of a diagnostic that measures saved models and writes ``page`` (``models_page``): the models
    (each must exist), ``--episodes`` (default ``episodes``) and ``--write``.

    :return: The parsed arguments.
    """
    import argparse

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=pathlib.Path)
    parser.add_argument("--episodes", type=int, default=episodes, help=episodes_help)
    parser.add_argument("--write", action="store_true", help=f"write {shown(page)}")
    args = parser.parse_args()
    for path in args.models:
        if not path.is_file():
            parser.error(f"{path} does not exist; give models saved by benchmarks/reproduce.py (<out>/models/*.zip).")
    return args


def shown(path: pathlib.Path) -> str:
    """:return: ``path`` relative to the repository's root if it is inside it."""
    path, root = path.resolve(), PACKAGE.parent
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def setting(text: str) -> Any:
    """
    :return: A ``--set`` value as YAML reads it, and ``3e-4`` as a number (YAML 1.1 wants ``3.0e-4``); a schedule
        string (``lin_1e-3``) stays a string, made a schedule when the model is built.
    """
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def invocation(script: str) -> dict[str, Any]:
    """
    :return: What a benchmark records of this invocation with each run: its command, the machine, the commit and the
        packages.
    """
    words = " ".join(f'"{word}"' if word == "" or " " in word else word for word in sys.argv[1:])
    return dict(
        command=f"python -m {module_of(script)} {words}",
        machine=f"{platform.machine()}, {multiprocessing.cpu_count()} cores",
        commit=code_version(),
        packages=package_versions(),
    )


# the packages whose versions change a run's numbers: a new MuJoCo, for one, sends the same seed down another path
PACKAGES = ("torch", "stable-baselines3", "gymnasium", "mujoco", "numpy")


def package_versions() -> str:
    """:return: The installed versions of ``PACKAGES``, e.g. ``"torch 2.13.0+cpu, ..., mujoco 4.0.1, numpy 2.4.6"``."""
    found = []
    for package in PACKAGES:
        try:
            found.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def keep_run(path: pathlib.Path, row: dict[str, Any], key: Callable[[dict[str, Any]], Any]) -> None:
    """Date ``row`` and keep it in the runs file ``path``, in place of a kept run with the same ``key``."""
    row["date"] = datetime.date.today().isoformat()

    def replace(rows: list[dict[str, Any]]) -> None:
        rows[:] = [saved for saved in rows if key(saved) != key(row)] + [row]

    update_json(path, [], replace)


def run_and_keep(
    run: Callable[[dict[str, Any]], dict[str, Any]],
    configs: list[dict[str, Any]],
    jobs: int,
    path: pathlib.Path,
    key: Callable[[dict[str, Any]], Any],
    script: str,
    describe: Callable[[dict[str, Any]], str],
) -> None:
    """
    Run ``run`` on each of ``configs``, ``jobs`` at a time (one spawned process each), keeping each run in the runs
    file ``path`` as it ends (``keep_run``, with ``script``'s ``invocation``) and printing ``describe(run)``.
    """
    kept = invocation(script)
    with multiprocessing.get_context("spawn").Pool(jobs, maxtasksperchild=1) as pool:
        for row in pool.imap_unordered(run, configs):
            keep_run(path, {**row, **kept}, key)
            print(describe(row), flush=True)


def key_values(pairs: list[str], script: str) -> dict[str, Any]:
    """
    :param pairs: ``KEY=VALUE`` strings, as a benchmark's command line gives settings.
    :param script: The benchmark, named in the error on a string that is not ``KEY=VALUE``.
    :return: The settings as MLSH keyword arguments (values read by ``setting``).
    """
    parsed = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator:
            raise SystemExit(f"{script}: {pair!r} is not KEY=VALUE (e.g. target_kl=0.03).")
        parsed[key] = setting(value)
    return parsed


def code_version() -> str | None:
    """
    :return: This checkout's commit, ``-dirty`` when a tracked file outside ``docs/`` has uncommitted changes (the
        benchmarks write their results under ``docs/``; those do not change the code), or ``None`` outside a git
        checkout.
    """
    import subprocess

    here = pathlib.Path(__file__).parent
    try:
        commit = subprocess.run(["git", "describe", "--always"], cwd=here, capture_output=True, text=True)
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ":/", ":(top,exclude)docs"],
            cwd=here,
            capture_output=True,
            text=True,
        )
    except OSError:
        return None
    if commit.returncode != 0 or changed.returncode != 0:
        return None
    return commit.stdout.strip() + ("-dirty" if changed.stdout.strip() else "")


# AntMaze-v0's layouts kept for adaptation: right then up (goal (40, 24)), down then right (goal (32, -16))
ANT_MAZE_HELD_OUT = (5, 8)
FOUR_ROOMS_HELD_OUT = ((1, 1), (2, 11), (5, 4), (9, 1), (11, 5), (8, 8), (11, 11), (4, 7))

EXPERIMENTS: dict[str, Experiment] = {
    "movement_bandits": Experiment(
        "MovementBandits-v0",
        "plane",
        3_200_000,
        20_000,
        50,
        tasks=(0, 1),
        ratio_aim=1.8,
        mean_bars=(("shared_policy", 1.3), ("single_policy", 5.0)),
    ),
    "key_door": Experiment("KeyDoor-v0", "plane", 4_000_000, 40_000, 100, tasks=(0, 1), key_index=8),
    "four_rooms": Experiment(
        "FourRooms-v0",
        "grid",
        3_000_000,
        100_000,
        100,
        tasks=((8, 7), (9, 9), (10, 8), (11, 11)),
        report_at=(10_000, 20_000),
        seed_bars=(("single_policy", 2.0), ("shared_policy", 1.0)),
        note="The original code's Four Rooms: start in the doorway between the two right-hand rooms, the goal one of "
        "four cells of the bottom-right room.",
    ),
    "four_rooms_held_out": Experiment(
        "FourRooms-v0",
        "grid",
        3_000_000,
        100_000,
        100,
        env_kwargs={"goals": "all", "start": (3, 6), "held_out_tasks": FOUR_ROOMS_HELD_OUT},
        note="The whole-grid variant: any free cell but the start can be the goal; the 8 evaluation goals, two per room "
        "and each beside a wall, are never drawn during meta-training.",
    ),
    "ant_two_walk": Experiment(
        "AntTwoWalk-v0",
        "ant",
        5_000_000,
        100_000,
        1000,
        tasks=(0, 1),
        n_eval_episodes=8,
        note="The paper meta-trained on 120 cores (10 task groups of 12 workers) and does not state its number of steps.",
    ),
    "ant_two_walk_far": Experiment(
        "AntTwoWalk-v0",
        "ant",
        5_000_000,
        100_000,
        1000,
        tasks=(0, 1),
        # its runs and the obstacle transfers from them were made with the upright bonus 0.5, the env's default then
        env_kwargs={"target_distance": 50.0, "upright_reward": 0.5},
        n_eval_episodes=8,
        target_reached=5.0,  # a tenth of the way, as 1.0 is half of it with the paper's targets
        note="Ant TwoWalk with its targets 50 east and north of the start, beyond an episode's walk: the source of the "
        "obstacle-course transfer, whose goal lies about 50 away (with the paper's targets, 5 away, the sub-policies "
        "learn to walk there and stop: docs/benchmarks/obstacle_ceiling.md).",
    ),
    "humanoid_walk_crawl": Experiment(
        "HumanoidWalkCrawl-v0",
        "humanoid",
        20_000_000,
        100_000,
        1000,
        tasks=(1, 0),
        n_eval_episodes=8,
        terminating=True,
        note="The paper meta-trained on 120 cores and does not state its number of steps; it tables only the "
        "transfer to the course (humanoid_course).",
    ),
    "humanoid_course": Experiment(
        "HumanoidCourse-v0",
        "humanoid",
        0,
        1_000_000,
        3000,
        tasks=(0,),
        n_eval_episodes=4,
        source="humanoid_walk_crawl",
        mean_bars=(("shared_policy", 1.5),),
        paper_order=("mlsh", "shared_policy", "single_policy"),
        terminating=True,
        note="The paper's combination task: a fresh master over the walk / crawl sub-policies (frozen), the shared "
        "policy trained on walk and crawl fine-tuned here, PPO from scratch; the paper tables MLSH 14333, the shared "
        "policy 6055, PPO from scratch -643 per 3000-step episode, and does not state T.",
    ),
    "ant_maze": Experiment(
        "AntMaze-v0",
        "ant",
        20_000_000,
        200_000,
        1000,
        env_kwargs={"held_out_tasks": ANT_MAZE_HELD_OUT},
        n_eval_episodes=8,
        note="The paper's Ant mazes: 9 layouts of one arena, each a route of up, right and down legs to its goal; "
        "meta-training draws 7 of them, and the fresh masters adapt to the 2 held out (right then up, down then "
        "right), whose legs the other layouts hold; the paper does not state T.",
    ),
    "ant_obstacle": Experiment(
        "AntObstacle-v0",
        "ant",
        0,
        1_000_000,
        2000,
        tasks=(0,),
        n_eval_episodes=4,
        source="ant_two_walk_far",
        sparse_reward=True,
        seed_bars=(("single_policy", 1.0), ("shared_policy", 1.0), ("mlsh_fixed_master", 1.0)),
        note="The paper's transfer task: a fresh master over the sub-policies of Ant TwoWalk with far targets "
        "(ant_two_walk_far; frozen), the shared policy trained there fine-tuned here, PPO from scratch; the paper "
        "tables MLSH 193, PPO from scratch 0, and does not state T.",
    ),
}


def scripted_return(experiment: Experiment, policy: Callable[[Any, Any, Any], Any], n_episodes: int, seed: int) -> float:
    """
    Mean episode reward of a scripted policy over the experiment's evaluation tasks.

    :param policy: ``policy(env.unwrapped, observation, task) -> action``.
    :param n_episodes: Episodes per task.
    :param seed: Seed of the first episode.
    """
    env = gym.make(experiment.env_id, **experiment.env_kwargs)
    returns = []
    for task in experiment.evaluation_tasks():
        env.unwrapped.set_task(task)  # type: ignore[attr-defined]
        for episode in range(n_episodes):
            obs, _ = env.reset(seed=seed + episode)
            total, done = 0.0, False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(policy(env.unwrapped, obs, task))
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
    env.close()
    return float(np.mean(returns))


def shortest_path_action(env: Any, cell: int, goal: tuple[int, int]) -> int:
    """Four Rooms: the first move of a shortest path from ``cell`` to ``goal``; on the goal, a move into a wall (it stays)."""
    start = env.cells[int(cell)]
    if start == goal:
        return next((a for a, (dr, dc) in enumerate(env.MOVES) if env.walls[start[0] + dr, start[1] + dc]), 0)
    first: dict[tuple[int, int], int] = {}
    queue = deque([start])
    while queue:
        here = queue.popleft()
        for action, (dr, dc) in enumerate(env.MOVES):
            there = (here[0] + dr, here[1] + dc)
            if env.walls[there] or there in first or there == start:
                continue
            first[there] = first.get(here, action)
            if there == goal:
                return first[there]
            queue.append(there)
    raise ValueError(f"no path from {start} to {goal}")


def references(experiment: Experiment, seed: int = 10) -> dict[str, float]:
    """:return: Label -> mean episode return of each of the experiment's scripted references."""
    if experiment.kind == "plane":

        def walk_to(goal: Callable[[Any], int]) -> float:
            return scripted_return(experiment, lambda env, obs, task: type(env).greedy_action(obs, goal(task)), 48, seed)

        return {
            "scripted: walks to the paying goal": walk_to(lambda task: task),
            "scripted: always goal 0": walk_to(lambda task: 0),
        }
    if experiment.kind == "grid":
        rng = np.random.default_rng(seed)
        return {
            "scripted: shortest path to the goal": scripted_return(experiment, shortest_path_action, 24, seed),
            "uniformly random moves": scripted_return(experiment, lambda env, obs, task: int(rng.integers(4)), 24, seed),
        }
    space = gym.make(experiment.env_id, **experiment.env_kwargs).action_space
    zero = np.zeros(space.shape, dtype=np.float32)
    label = "the Humanoid falls where it stands" if experiment.kind == "humanoid" else "the Ant stays at the start"
    return {f"zero torques ({label})": scripted_return(experiment, lambda env, obs, task: zero, 2, seed)}


def adaptation_r(model: Any, experiment: Experiment, n_envs: int, seed: int) -> tuple[Any, float]:
    """
    The paper's figure of merit for a meta-trained ``model``: a fresh master learns each evaluation task for T
    steps, sub-policies frozen (``evaluate_adaptation``, envs and masters seeded with ``seed + 100``).

    :return: The ``AdaptationResult`` and R per episode (mean over the tasks).
    """
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_mlsh import evaluate_adaptation

    env = make_vec_env(experiment.env_id, n_envs=n_envs, seed=seed + 100, env_kwargs=experiment.env_kwargs)
    tasks = experiment.evaluation_tasks()
    T = experiment.adaptation_timesteps
    result = evaluate_adaptation(model, env, n_tasks=len(tasks), adaptation_timesteps=T, seed=seed + 100, tasks=tasks)
    return result, result.mean * experiment.episode_steps / T


NORMALISER = {"plane": "scripted: always goal 0", "grid": "scripted: shortest path to the goal"}


def alone_episode(
    model: Any, env: gym.Env, k: int | Callable[[int], int], seed: int, deterministic: bool = True
) -> Iterator[Any]:
    """
    Sub-policy ``k`` acting alone for a whole episode of ``env`` from ``env.reset(seed=seed + 1000)``, the same start
    for every sub-policy.

    :param k: The sub-policy, or a function of the step's index that names the sub-policy acting at that step (a
        scripted master in place of the model's).
    :param deterministic: Take the most likely action, or sample it (from torch's global generator), as the master
        runs the sub-policy.

    :return: The episode's observations, the reset's first, each as the env has stepped to it.
    """
    acting = k if callable(k) else lambda step: k
    obs, _ = env.reset(seed=seed + 1000)
    yield obs
    done, step = False, 0
    while not done:
        action, _ = model.predict(obs, subpolicy=acting(step), deterministic=deterministic)
        obs, _, terminated, truncated, _ = env.step(action)
        done, step = terminated or truncated, step + 1
        yield obs


def subpolicy_paths(model: Any, experiment: Experiment, seed: int) -> dict[str, Any]:
    """
    Where each sub-policy takes the agent when it acts alone (deterministically) for a whole episode
    from the same reset.

    :return: ``{"paths": [k][step] -> (x, y), "marks": [(label, (x, y), radius)]}`` in the env's
        plane (arena units; grid column, row; the Ant's torso x, y).
    """
    env = gym.make(experiment.env_id, **experiment.env_kwargs)
    unwrapped: Any = env.unwrapped
    paths = [
        [_position(experiment, unwrapped, obs) for obs in alone_episode(model, env, k, seed)]
        for k in range(model.n_subpolicies)
    ]
    if experiment.kind == "plane":
        marks = [(f"goal {i}", tuple(map(float, goal)), unwrapped.RADIUS) for i, goal in enumerate(unwrapped._goals)]
        if hasattr(unwrapped, "_key"):
            marks.append(("key", tuple(map(float, unwrapped._key)), unwrapped.RADIUS))
    elif experiment.kind == "grid":
        label = "goal" if experiment.tasks is not None else "held-out goal"
        marks = [(label, (float(c), float(r)), 0.4) for r, c in experiment.evaluation_tasks()]
    elif experiment.kind == "humanoid":  # the paths: from the env's first task's start (walk: up to a fall)
        marks = []
    elif experiment.is_maze:  # the start and the goals of the layouts the masters adapt to
        marks = [("start", tuple(map(float, unwrapped.START)), 0.5)]
        marks += [(f"goal {t}", tuple(map(float, MAZE_LAYOUTS[t][0])), 0.8) for t in experiment.evaluation_tasks()]
    elif hasattr(unwrapped, "targets"):
        marks = [(f"target {i}", tuple(map(float, target)), 0.5) for i, target in enumerate(unwrapped.targets)]
    else:  # the obstacle course
        middle = (unwrapped.GOAL_LOW + unwrapped.GOAL_HIGH) / 2
        marks = [("goal", (middle, middle), (unwrapped.GOAL_HIGH - middle)), ("enemy", unwrapped.ENEMY_POST, 1.0)]
    env.close()
    return {"paths": paths, "marks": marks}


SAMPLED_ENDS = 8  # Ant TwoWalk: episodes per sub-policy alone with sampled actions


def sampled_ends(model: Any, experiment: Experiment, seed: int, n_episodes: int = SAMPLED_ENDS) -> list[list[float]]:
    """
    Where each sub-policy acting alone with its actions sampled, as the master runs it, ends an episode of an Ant
    experiment, on average over ``n_episodes`` episodes from the starts of ``seed + 1``, ``seed + 2``, ... (the
    samples from torch's generator, seeded with ``seed`` and restored after).

    :return: ``[k] -> (x, y)``, the mean end of sub-policy ``k``.
    """
    import torch as th

    env = gym.make(experiment.env_id, **experiment.env_kwargs)
    ends = []
    with th.random.fork_rng():
        th.manual_seed(seed)
        for k in range(model.n_subpolicies):
            points = []
            for episode in range(n_episodes):
                for _ in alone_episode(model, env, k, seed + 1 + episode, deterministic=False):
                    pass
                points.append(env.unwrapped.xy)  # type: ignore[attr-defined]
            ends.append(np.mean(points, axis=0).tolist())
    env.close()
    return ends


HUMANOID_ALONE_EPISODES = 4  # Humanoid: episodes per sub-policy and task alone, actions sampled
# HumanoidWalkCrawl-v0's crawl: where the slab begins behind the start (x; its front edge)
HUMANOID_UNDER_SLAB = HumanoidWalkCrawlEnv.CEILING_X + HumanoidWalkCrawlEnv.CEILING_HALF_SIZE[0]


def humanoid_alone(model: Any, experiment: Experiment, seed: int, n_episodes: int = HUMANOID_ALONE_EPISODES) -> list[Any]:
    """
    Each sub-policy of a Humanoid experiment acting alone (``alone_episode``, actions sampled as the master runs it)
    for ``n_episodes`` whole episodes of each evaluation task, from the starts of ``seed + 1``, ``seed + 2``, ... (the
    samples from torch's generator seeded with ``seed`` and restored after).

    :return: ``[k][task] -> (mean return, mean steps, mean x moved)``: on walk, steps at the time limit in every
        episode mean the Humanoid never fell; x moved is the root's, forward positive.
    """
    import torch as th

    env = gym.wrappers.RecordEpisodeStatistics(gym.make(experiment.env_id, **experiment.env_kwargs))
    unwrapped: Any = env.unwrapped
    measured = []
    with th.random.fork_rng():
        th.manual_seed(seed)
        for k in range(model.n_subpolicies):
            per_task = []
            for task in experiment.evaluation_tasks():
                unwrapped.set_task(task)
                episodes = []
                for episode in range(n_episodes):
                    steps = alone_episode(model, env, k, seed + 1 + episode, deterministic=False)
                    next(steps)  # the reset
                    start = float(unwrapped.data.qpos[0])
                    for _ in steps:
                        pass
                    moved = float(unwrapped.data.qpos[0]) - start
                    episodes.append((float(env.return_queue[-1]), int(env.length_queue[-1]), moved))
                per_task.append(np.mean(episodes, axis=0).tolist())
            measured.append(per_task)
    env.close()
    return measured


def _position(experiment: Experiment, env: Any, obs: Any) -> tuple[float, float]:
    if experiment.kind == "plane":
        return float(env._agent[0]), float(env._agent[1])
    if experiment.kind == "grid":
        row, column = env.cells[int(obs)]
        return float(column), float(row)
    return float(env.data.qpos[0]), float(env.data.qpos[1])  # the MuJoCo bodies' root: the Ant's torso, the Humanoid's


def draw_paths(axis: Any, experiment: Experiment, paths: dict[str, Any]) -> None:
    """Draw ``subpolicy_paths`` on a matplotlib axis."""
    import matplotlib.pyplot as plt

    if experiment.kind == "grid":
        walls = gym.make(experiment.env_id).unwrapped.walls  # type: ignore[attr-defined]
        axis.imshow(walls, cmap="Greys", vmin=0, vmax=1.5, origin="upper")
    if experiment.kind == "ant":  # the arena's walls and blocks: fixed, colliding boxes
        import mujoco

        model = gym.make(experiment.env_id, **experiment.env_kwargs).unwrapped.model  # type: ignore[attr-defined]
        for geom in range(model.ngeom):
            body = model.geom_bodyid[geom]
            fixed = body > 0 and model.body_parentid[body] == 0 and model.body_mocapid[body] < 0
            if fixed and model.geom_type[geom] == mujoco.mjtGeom.mjGEOM_BOX and model.geom_contype[geom]:
                (x, y), (half_x, half_y) = model.body_pos[body][:2], model.geom_size[geom][:2]
                axis.add_patch(plt.Rectangle((x - half_x, y - half_y), 2 * half_x, 2 * half_y, color="0.6"))
    for k, path in enumerate(paths["paths"]):
        points = np.asarray(path)
        if experiment.kind == "grid":  # spread the sub-policies' lines apart so that they do not hide each other
            points = points + (k - (len(paths["paths"]) - 1) / 2) * 0.12
        axis.plot(points[:, 0], points[:, 1], marker="." if experiment.kind != "ant" else None, label=f"sub-policy {k}")
    for index, (label, center, radius) in enumerate(paths["marks"]):
        axis.add_patch(plt.Circle(center, radius, alpha=0.3, color=f"C{(index % 3) + 4}"))
        if experiment.kind != "grid":
            axis.annotate(label, center, ha="center")
    if experiment.kind == "plane":
        axis.set_xlim(-50, 450)
        axis.set_ylim(-50, 450)
    axis.set_aspect("equal")


# the Humanoid seen from its side, following it (its own camera looks down on it from behind): the slab in view
VIDEO_CAMERA = {
    "humanoid": {
        "default_camera_config": {
            "trackbodyid": 1,
            "distance": 6.0,
            "elevation": -10.0,
            "azimuth": 90.0,
            "lookat": [0.0, 0.0, 1.0],
        }
    }
}


VIDEO_EVERY = 20  # steps per frame of subpolicy_video


def subpolicy_video(model: Any, experiment: Experiment, seed: int, path: pathlib.Path, every: int = VIDEO_EVERY) -> None:
    """
    A GIF of each sub-policy acting alone for a whole episode (``alone_episode``, as ``subpolicy_paths``), side by
    side, one frame every ``every`` steps shown for 0.1 s (``video_speed``); on the Humanoid, an episode of each
    evaluation task after the other (walk, then crawl), a sub-policy that fell early showing its last frame until the
    others end. Rendered off-screen: without a display, MuJoCo uses EGL (``MUJOCO_GL=egl``) unless ``MUJOCO_GL`` says
    otherwise.

    :param path: The GIF to write.
    """
    from PIL import Image

    if "DISPLAY" not in os.environ:
        os.environ.setdefault("MUJOCO_GL", "egl")
    pictures = []
    for task in experiment.evaluation_tasks() if experiment.kind == "humanoid" else [None]:
        columns = []
        for k in range(model.n_subpolicies):
            env = gym.make(
                experiment.env_id, render_mode="rgb_array", width=240, height=240, **VIDEO_CAMERA.get(experiment.kind, {}),
                **experiment.env_kwargs,
            )  # fmt: skip
            if task is not None:
                env.unwrapped.set_task(task)  # type: ignore[attr-defined]
            frames = [env.render() for step, _ in enumerate(alone_episode(model, env, k, seed)) if step % every == 0]
            env.close()
            columns.append(frames)
        length = max(map(len, columns))
        columns = [frames + frames[-1:] * (length - len(frames)) for frames in columns]
        pictures += [Image.fromarray(np.concatenate(row, axis=1)) for row in zip(*columns, strict=True)]
    path.parent.mkdir(parents=True, exist_ok=True)
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=100, loop=0, optimize=True)


def video_speed(experiment: Experiment, every: int = VIDEO_EVERY) -> float:
    """:return: How many times as fast as real ``subpolicy_video`` shows the env (``every`` steps per 0.1 s frame)."""
    env = gym.make(experiment.env_id, **experiment.env_kwargs)
    dt = float(env.unwrapped.dt)  # type: ignore[attr-defined]
    env.close()
    return every * dt / 0.1


def subpolicies_separate(experiment: Experiment, paths: dict[str, Any], share: float = 0.5) -> bool | None:
    """
    ``True`` if the sub-policies end at different goals (plane: within the goal's radius; Ant: within
    ``share`` of the start's distance of different targets: with ``share=1``, each ends nearer its own target than
    the start is); ``None`` where the question does not apply (Four Rooms; the Humanoid, whose tasks are no places;
    a transfer experiment, whose sub-policies are its source's; the Ant mazes: ``walk_directions``).
    """
    if experiment.kind in ("grid", "humanoid") or experiment.source is not None or experiment.is_maze:
        return None
    if experiment.kind == "plane":
        goals = [(center, radius) for label, center, radius in paths["marks"] if label.startswith("goal")]
    else:
        goals = [(center, float(np.linalg.norm(center)) * share) for _, center, _ in paths["marks"]]
    ends = []
    for path in paths["paths"]:
        distances = [np.linalg.norm(np.subtract(path[-1], center)) for center, _ in goals]
        nearest = int(np.argmin(distances))
        if distances[nearest] >= goals[nearest][1]:
            return False
        ends.append(nearest)
    return len(set(ends)) == len(ends)


def past_and_aside(ends: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """
    Ant TwoWalk: where episodes ended, measured along the line from the start (the origin) through ``target``.

    :param ends: The episodes' last x, y, one row each.
    :return: Per episode, how far past the target along its direction it ended (negative: short of it), and how far
        to the side of that line.
    """
    direction = target / np.linalg.norm(target)
    return ends @ direction - np.linalg.norm(target), np.abs(ends @ np.array([-direction[1], direction[0]]))


MAZE_MIN_WALK = 4.0  # Ant mazes: a sub-policy alone that ends this far from the start walks somewhere
MAZE_MIN_ANGLE = 45.0  # degrees between two sub-policies' headings for them to walk in different directions


def walk_directions(paths: dict[str, Any]) -> tuple[bool, list[tuple[float, float]]]:
    """
    The Ant mazes: where each sub-policy alone (``subpolicy_paths``) walks from the start.

    :return: Whether they walk in clearly different directions (each ends at least ``MAZE_MIN_WALK`` from the start,
        every two headings at least ``MAZE_MIN_ANGLE`` degrees apart), and per sub-policy its heading (degrees, 0:
        east, 90: north) and distance from the start at the end.
    """
    moves = [np.subtract(path[-1], path[0]) for path in paths["paths"]]
    walks = [(float(np.degrees(np.arctan2(y, x))), float(np.hypot(x, y))) for x, y in moves]
    apart = all(abs((a[0] - b[0] + 180.0) % 360.0 - 180.0) >= MAZE_MIN_ANGLE for a, b in itertools.combinations(walks, 2))
    return apart and all(distance >= MAZE_MIN_WALK for _, distance in walks), walks


ALONE_EPISODES = 16  # episodes per task with the most likely action
SAMPLED_EPISODES = 64  # episodes per task with sampled actions (noisier, hence more)
SPECIALISED = 40.0  # the reproduction issue's bar on MovementBandits: a sub-policy alone earns >= 40 on its task


def subpolicies_alone(
    model: Any, experiment: Experiment, seed: int, deterministic: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Each sub-policy of a plane experiment acting alone for a whole episode on each task.

    :param deterministic: Take the most likely action (``ALONE_EPISODES`` episodes per task), or sample it, as the
        master runs the sub-policy during training and adaptation (``SAMPLED_EPISODES`` episodes per task, the
        samples drawn from torch's generator seeded with ``seed``).
    :return: ``returns[k, task]``, sub-policy ``k``'s mean episode reward on ``task``; ``entropy[k]``, its mean
        action entropy on the states it visits; ``keys[k, task]``, the share of its episodes that reached the key
        (zeros without ``experiment.key_index``).
    """
    import torch as th
    from stable_baselines3.common.env_util import make_vec_env

    n_episodes = ALONE_EPISODES if deterministic else SAMPLED_EPISODES
    env = make_vec_env(experiment.env_id, n_envs=n_episodes, seed=seed, env_kwargs=experiment.env_kwargs)
    generator = th.Generator().manual_seed(seed)
    tasks = experiment.evaluation_tasks()
    returns = np.zeros((model.n_subpolicies, len(tasks)))
    keys = np.zeros_like(returns)
    entropy = np.zeros(model.n_subpolicies)
    for k, subpolicy in enumerate(model.policy.subpolicies):
        for j, task in enumerate(tasks):
            env.env_method("set_task", task)
            obs = env.reset()
            for _ in range(experiment.episode_steps):
                with th.no_grad():
                    distribution = subpolicy.get_distribution(
                        model.policy.obs_to_tensor(model.policy.normalize_observation(obs))[0]
                    )
                    entropy[k] += distribution.entropy().mean().item() / (experiment.episode_steps * len(tasks))
                    if deterministic:
                        actions = distribution.mode()
                    else:
                        probs = distribution.distribution.probs
                        actions = th.multinomial(probs, 1, generator=generator).squeeze(1)
                obs, rewards, _, infos = env.step(actions.numpy())
                returns[k, j] += rewards.sum() / n_episodes
            if experiment.key_index is not None:  # the episodes ended at this step: their last observation is in infos
                keys[k, j] = experiment.key_share(np.stack([info["terminal_observation"] for info in infos]))
    env.close()
    return returns, entropy, keys


def specialised(returns: np.ndarray) -> bool:
    """:return: Whether each task has its own sub-policy earning >= ``SPECIALISED`` alone on it (``returns[k, task]``)."""
    n_subpolicies, n_tasks = returns.shape
    return any(
        all(returns[k, j] >= SPECIALISED for j, k in enumerate(assignment))
        for assignment in itertools.permutations(range(n_subpolicies), n_tasks)
    )
