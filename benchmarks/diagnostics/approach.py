"""
Ant TwoWalk: does each sub-policy walk to its target and stop there, or walk on past it?

    python -m benchmarks.diagnostics.approach MODEL.zip [MODEL.zip ...] [--episodes 8] [--write]

For each saved MLSH model (``benchmarks/reproduce.py ant_two_walk`` keeps them under ``<out>/models``), each
sub-policy acts alone on AntTwoWalk-v0 (``alone_episode``, actions sampled as the master runs it, from the starts
and samples of ``reproduce.py``'s sampled ends for the run's seed) and is paired with a distinct target as
``reproduce.py``'s bar pairs them (the pairing that makes the worse mean end least). Per sub-policy: the distance of
its mean end from the target (the bar's measure), the mean distance at the end of an episode, the mean nearest
approach, the share of episodes that come within 1.0 and the median step they first do, the share of the last 200
steps spent within 1.0 in those, how far past the target along its direction the episodes end (the overshoot), and
the mean distance in each 200-step stretch between two joint re-draws, and how far the episodes end to the side of
the line through the start and the target. The experiment is read from the models' names (``ant_two_walk``, or
``ant_two_walk_far``: targets 50 away); the page is ``docs/benchmarks/approach.md``, or ``approach_far.md`` for the
far targets (``--write``).
"""

import itertools
import pathlib
import re
from typing import Any

import gymnasium as gym
import numpy as np

import sb3_mlsh  # noqa: F401  (registers the envs)
from benchmarks.experiments import (
    EXPERIMENTS,
    Experiment,
    alone_episode,
    models_arguments,
    models_page,
    past_and_aside,
    publish,
    shown,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAGES = {
    "ant_two_walk": ROOT / "docs" / "benchmarks" / "approach.md",
    "ant_two_walk_far": ROOT / "docs" / "benchmarks" / "approach_far.md",
}
STRETCH = 200  # steps between two joint re-draws


def paths(spec: Experiment, model: Any, k: int, n_episodes: int, seed: int) -> np.ndarray:
    """
    :return: ``[episode][step] -> (x, y)``: sub-policy ``k`` of ``model`` alone on ``spec``'s env, actions sampled,
        from the starts of ``seed + 1``, ``seed + 2``, ... (torch's generator seeded with ``seed``, as
        ``sampled_ends`` seeds it).
    """
    import torch as th

    env = gym.make(spec.env_id, **spec.env_kwargs)
    ant: Any = env.unwrapped
    episodes = []
    with th.random.fork_rng():
        th.manual_seed(seed)
        for episode in range(n_episodes):
            episodes.append([tuple(ant.xy) for _ in alone_episode(model, env, k, seed + 1 + episode, deterministic=False)])
    env.close()
    return np.asarray(episodes)


def measure(spec: Experiment, path: pathlib.Path, n_episodes: int, seed: int) -> list[str]:
    """:return: One table row per sub-policy of the model saved at ``path``, trained on ``spec``."""
    import torch as th

    from sb3_mlsh import MLSH

    th.set_num_threads(1)
    model = MLSH.load(path, device="cpu")
    targets = np.asarray(gym.make(spec.env_id, **spec.env_kwargs).unwrapped.targets)  # type: ignore[attr-defined]
    walks = [paths(spec, model, k, n_episodes, seed) for k in range(model.n_subpolicies)]
    ends = [walk[:, -1].mean(axis=0) for walk in walks]
    pairing = min(
        itertools.permutations(range(len(targets)), len(walks)),
        key=lambda p: max(np.linalg.norm(end - targets[t]) for end, t in zip(ends, p, strict=True)),
    )
    rows = []
    for k, (walk, t) in enumerate(zip(walks, pairing, strict=True)):
        target = targets[t]
        distances = np.linalg.norm(walk - target, axis=2)  # [episode][step]
        within = distances <= spec.target_reached
        arrived = within.any(axis=1)
        first = [int(np.argmax(row)) for row in within[arrived]]
        staying = within[arrived, -STRETCH:].mean() if arrived.any() else float("nan")
        overshoot, aside = past_and_aside(walk[:, -1], target)
        stretches = distances[:, 1:].reshape(n_episodes, -1, STRETCH).mean(axis=(0, 2))
        rows.append(
            f"| {shown(path)} | {k} | {t} | {np.linalg.norm(ends[k] - target):.2f} | {distances[:, -1].mean():.2f} "
            f"| {distances.min(axis=1).mean():.2f} | {arrived.mean():.0%} "
            f"| {np.median(first) if first else '-'} | {staying:.0%} "
            f"| {np.mean(overshoot):+.2f} ({np.min(overshoot):+.1f} to {np.max(overshoot):+.1f}) "
            f"| {' / '.join(f'{d:.1f}' for d in stretches)} | {np.mean(aside):.2f} |"
        )
    return rows


def run_experiment(path: pathlib.Path) -> str:
    """:return: The experiment that saved ``path`` (``reproduce.py`` names its models ``<experiment>_mlsh_...``)."""
    found = re.match(r"(\w+?)_mlsh_", path.stem)
    if found is None or found.group(1) not in PAGES:
        raise SystemExit(f"{path}: not a model saved by reproduce.py ant_two_walk or ant_two_walk_far (their names).")
    return found.group(1)


def run_seed(path: pathlib.Path) -> int:
    """:return: The seed of the run that saved ``path`` (``reproduce.py`` names its models ``..._seed<N>.zip``), or 0."""
    found = re.search(r"_seed(\d+)", path.stem)
    return int(found.group(1)) if found else 0


def main() -> None:
    args = models_arguments(__doc__, PAGES["ant_two_walk"], 8, "episodes per sub-policy")
    experiments = {run_experiment(path) for path in args.models}
    if len(experiments) > 1:
        raise SystemExit(f"the models come from {sorted(experiments)}: give those of one experiment (one page each).")
    name = experiments.pop()
    spec = EXPERIMENTS[name]
    distance = float(np.linalg.norm(gym.make(spec.env_id, **spec.env_kwargs).unwrapped.targets[0]))  # type: ignore[attr-defined]
    rows = [row for path in args.models for row in measure(spec, path, args.episodes, run_seed(path))]
    page = models_page(
        "Ant TwoWalk" + (f", targets {distance:g} away" if name != "ant_two_walk" else "")
        + ": does each sub-policy stop at its target?",
        "approach.py",
        f"{args.episodes} episodes of 1000 steps per sub-policy, actions sampled",
        f"Each sub-policy acts alone from the start ({distance:g} from each target), paired with a distinct target "
        "as `reproduce.py`'s bar pairs them. *Mean end*: the distance of its mean end from the target (the bar's "
        f"measure: within {spec.target_reached:g} counts); *end*: the mean of the episodes' end distances; "
        f"*nearest*: the mean nearest approach; *reached*: the share of episodes that come within "
        f"{spec.target_reached:g}, *first*: the median step they first do, *stays*: the share of their last {STRETCH} "
        "steps spent within it; *past the target*: how far beyond the target along its direction the episodes end, "
        f"mean (least to most; negative: short of it); *per stretch*: the mean distance in each {STRETCH}-step "
        "stretch between two joint re-draws; *aside*: how far the episodes end to the side of the line through the "
        "start and the target, mean.",
        ["model", "sub-policy", "target", "mean end", "end", "nearest", "reached", "first", "stays", "past the target",
         "per stretch", "aside"],
        rows,
    )  # fmt: skip
    publish(page, PAGES[name], args.write)


if __name__ == "__main__":
    main()
