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
the mean distance in each 200-step stretch between two joint re-draws. The page is
``docs/benchmarks/approach.md`` (``--write``).
"""

import itertools
import pathlib
import re
from typing import Any

import gymnasium as gym
import numpy as np

import sb3_mlsh  # noqa: F401  (registers the envs)
from benchmarks.experiments import EXPERIMENTS, alone_episode, models_arguments, models_page, publish, shown
from benchmarks.reproduce import TARGET_REACHED

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "benchmarks" / "approach.md"
SPEC = EXPERIMENTS["ant_two_walk"]
STRETCH = 200  # steps between two joint re-draws


def paths(model: Any, k: int, n_episodes: int, seed: int) -> np.ndarray:
    """
    :return: ``[episode][step] -> (x, y)``: sub-policy ``k`` of ``model`` alone, actions sampled, from the starts of
        ``seed + 1``, ``seed + 2``, ... (torch's generator seeded with ``seed``, as ``sampled_ends`` seeds it).
    """
    import torch as th

    env = gym.make(SPEC.env_id, **SPEC.env_kwargs)
    ant: Any = env.unwrapped
    episodes = []
    with th.random.fork_rng():
        th.manual_seed(seed)
        for episode in range(n_episodes):
            episodes.append([tuple(ant.xy) for _ in alone_episode(model, env, k, seed + 1 + episode, deterministic=False)])
    env.close()
    return np.asarray(episodes)


def measure(path: pathlib.Path, n_episodes: int, seed: int) -> list[str]:
    """:return: One table row per sub-policy of the model saved at ``path``."""
    import torch as th

    from sb3_mlsh import MLSH

    th.set_num_threads(1)
    model = MLSH.load(path, device="cpu")
    targets = np.asarray(gym.make(SPEC.env_id, **SPEC.env_kwargs).unwrapped.targets)  # type: ignore[attr-defined]
    walks = [paths(model, k, n_episodes, seed) for k in range(model.n_subpolicies)]
    ends = [walk[:, -1].mean(axis=0) for walk in walks]
    pairing = min(
        itertools.permutations(range(len(targets)), len(walks)),
        key=lambda p: max(np.linalg.norm(end - targets[t]) for end, t in zip(ends, p, strict=True)),
    )
    rows = []
    for k, (walk, t) in enumerate(zip(walks, pairing, strict=True)):
        target = targets[t]
        distances = np.linalg.norm(walk - target, axis=2)  # [episode][step]
        within = distances <= TARGET_REACHED
        arrived = within.any(axis=1)
        first = [int(np.argmax(row)) for row in within[arrived]]
        staying = within[arrived, -STRETCH:].mean() if arrived.any() else float("nan")
        direction = target / np.linalg.norm(target)
        overshoot = walk[:, -1] @ direction - np.linalg.norm(target)  # along the target's direction, + past it
        stretches = distances[:, 1:].reshape(n_episodes, -1, STRETCH).mean(axis=(0, 2))
        rows.append(
            f"| {shown(path)} | {k} | {t} | {np.linalg.norm(ends[k] - target):.2f} | {distances[:, -1].mean():.2f} "
            f"| {distances.min(axis=1).mean():.2f} | {arrived.mean():.0%} "
            f"| {np.median(first) if first else '-'} | {staying:.0%} "
            f"| {np.mean(overshoot):+.2f} ({np.min(overshoot):+.1f} to {np.max(overshoot):+.1f}) "
            f"| {' / '.join(f'{d:.1f}' for d in stretches)} |"
        )
    return rows


def run_seed(path: pathlib.Path) -> int:
    """:return: The seed of the run that saved ``path`` (``reproduce.py`` names its models ``..._seed<N>.zip``), or 0."""
    found = re.search(r"_seed(\d+)", path.stem)
    return int(found.group(1)) if found else 0


def main() -> None:
    args = models_arguments(__doc__, PAGE, 8, "episodes per sub-policy")
    rows = [row for path in args.models for row in measure(path, args.episodes, run_seed(path))]
    page = models_page(
        "Ant TwoWalk: does each sub-policy stop at its target?",
        "approach.py",
        f"{args.episodes} episodes of 1000 steps per sub-policy, actions sampled",
        "Each sub-policy acts alone from the start (5 from each target), paired with a distinct target as "
        "`reproduce.py`'s bar pairs them. *Mean end*: the distance of its mean end from the target (the bar's "
        f"measure: within {TARGET_REACHED:g} counts); *end*: the mean of the episodes' end distances; *nearest*: the "
        f"mean nearest approach; *reached*: the share of episodes that come within {TARGET_REACHED:g}, *first*: the "
        f"median step they first do, *stays*: the share of their last {STRETCH} steps spent within it; *past the "
        "target*: how far beyond the target along its direction the episodes end, mean (least to most; negative: "
        f"short of it); *per stretch*: the mean distance in each {STRETCH}-step stretch between two joint re-draws.",
        ["model", "sub-policy", "target", "mean end", "end", "nearest", "reached", "first", "stays", "past the target",
         "per stretch"],
        rows,
    )  # fmt: skip
    publish(page, PAGE, args.write)


if __name__ == "__main__":
    main()
