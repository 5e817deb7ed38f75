"""
How far can Ant TwoWalk sub-policies take the Ant on the obstacle course, under the best master one can script?

    python benchmarks/obstacle_ceiling.py MODEL.zip [MODEL.zip ...] [--episodes 4] [--write]

The paper's transfer (Ant Obstacle, ``benchmarks/reproduce.py ant_obstacle``) trains a fresh master over frozen
TwoWalk sub-policies; whatever that master learns, it cannot earn more than its sub-policies can be steered to. For
each saved MLSH model, on AntObstacle-v0 (2000 steps, goal region x, y in [35, 40]):

- each sub-policy acts alone for whole episodes (actions sampled, as a master runs it): where it ends, and so its
  heading (the mean of its ends: where it walks, seen from the start);
- a scripted master follows ``ROUTE``, waypoints around the enemy's reach and the pocket's walls: every N steps (the
  model's macro duration) it picks the sub-policy whose heading points closest to the next waypoint; the goal
  reward per episode (steps in the goal region) and the number of waypoints passed.

The page is ``docs/benchmarks/obstacle_ceiling.md`` (``--write``).
"""

import argparse
import pathlib
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

import gymnasium as gym
import numpy as np
from experiments import alone_episode, models_page

import sb3_mlsh  # noqa: F401  (registers the envs)

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "benchmarks" / "obstacle_ceiling.md"
ENV_ID = "AntObstacle-v0"
# east first (out of the enemy's reach: 15 around (0, 20)), north west of the pocket (x = 30, y < 25), then east
ROUTE = ((20.0, 0.0), (20.0, 37.5), (37.5, 37.5))
REACHED = 3.0  # a waypoint counts as passed once the Ant is within this distance of it along its leg of the route


def passed(xy: np.ndarray, waypoint: int) -> bool:
    """Whether the Ant at ``xy`` has come within ``REACHED`` of ``ROUTE[waypoint]``, measured along the leg to it."""
    start = np.zeros(2) if waypoint == 0 else np.asarray(ROUTE[waypoint - 1])
    leg = np.asarray(ROUTE[waypoint]) - start
    length = float(np.linalg.norm(leg))
    return float((xy - start) @ leg) / length >= length - REACHED


def goal_steps(model: Any, env: gym.Env, k: int | Callable[[int], int], seed: int) -> Iterator[int]:
    """
    One episode of ``alone_episode`` (actions sampled, as a master runs the sub-policies) on the course.

    :return: After each step, whether the torso is in the goal region (the step's reward).
    """
    ant: Any = env.unwrapped
    for _ in islice(alone_episode(model, env, k, seed, deterministic=False), 1, None):
        yield int(ant.in_goal)


def alone(model: Any, k: int, n_episodes: int, seed: int) -> tuple[list[np.ndarray], float]:
    """
    Sub-policy ``k`` alone on the course.

    :return: The torso's x, y at the end of each episode, and the mean goal reward.
    """
    import torch as th

    env = gym.make(ENV_ID)
    th.manual_seed(seed)
    ends, rewards = [], []
    for episode in range(n_episodes):
        rewards.append(sum(goal_steps(model, env, k, seed + episode)))
        ends.append(env.unwrapped.xy)  # type: ignore[attr-defined]
    env.close()
    return ends, float(np.mean(rewards))


def scripted_master(model: Any, headings: np.ndarray, n_episodes: int, seed: int) -> list[tuple[float, int, Any]]:
    """
    The route-following master over ``model``'s frozen sub-policies.

    :param headings: One unit vector per sub-policy, the direction it walks alone.
    :return: Per episode: the goal reward, the number of waypoints passed and the torso's x, y at the end.
    """
    import torch as th

    env = gym.make(ENV_ID)
    ant: Any = env.unwrapped
    th.manual_seed(seed)
    episodes = []
    for episode in range(n_episodes):
        waypoint, k = 0, 0

        def choose(step: int) -> int:
            nonlocal waypoint, k
            while waypoint < len(ROUTE) and passed(ant.xy, waypoint):
                waypoint += 1
            if step % model.macro_duration == 0:
                way = np.asarray(ROUTE[min(waypoint, len(ROUTE) - 1)]) - ant.xy
                k = int(np.argmax(headings @ (way / max(np.linalg.norm(way), 1e-9))))
            return k

        total = sum(goal_steps(model, env, choose, seed + episode))
        episodes.append((float(total), waypoint, ant.xy))
    env.close()
    return episodes


def measure(path: pathlib.Path, n_episodes: int, seed: int = 0) -> list[str]:
    """:return: The page's rows for one model: one per sub-policy alone, one for the scripted master."""
    from sb3_mlsh import MLSH

    model = MLSH.load(path, device="cpu")
    rows, headings = [], []
    for k in range(model.n_subpolicies):
        ends, reward = alone(model, k, n_episodes, seed)
        heading = np.mean(ends, axis=0)
        headings.append(heading / max(np.linalg.norm(heading), 1e-9))
        farthest = max(float(np.linalg.norm(end)) for end in ends)
        where = ", ".join(f"({x:.1f}, {y:.1f})" for x, y in ends)
        rows.append(
            f"| {path} | sub-policy {k} alone | ({heading[0]:.1f}, {heading[1]:.1f}) | {where} | {farthest:.1f} "
            f"| - | {reward:.1f} |"
        )
    episodes = scripted_master(model, np.asarray(headings), n_episodes, seed)
    where = ", ".join(f"({x:.1f}, {y:.1f})" for _, _, (x, y) in episodes)
    farthest = max(float(np.linalg.norm(end)) for _, _, end in episodes)
    waypoints = " / ".join(str(n) for _, n, _ in episodes)
    reward = float(np.mean([total for total, _, _ in episodes]))
    rows.append(f"| {path} | scripted master | - | {where} | {farthest:.1f} | {waypoints} | {reward:.1f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=pathlib.Path, help="MLSH models trained on AntTwoWalk-v0 (.zip)")
    parser.add_argument("--episodes", type=int, default=4, help="episodes per measurement")
    parser.add_argument("--write", action="store_true", help=f"write {PAGE.relative_to(ROOT)}")
    args = parser.parse_args()
    for path in args.models:
        if not path.is_file():
            parser.error(f"{path} does not exist; give models saved by benchmarks/reproduce.py (<out>/models/*.zip).")
    if args.episodes < 1:
        parser.error(f"--episodes {args.episodes}: give at least 1.")
    rows = [row for path in args.models for row in measure(path, args.episodes)]
    route = " -> ".join(f"({x:g}, {y:g})" for x, y in ROUTE)
    page = models_page(
        "Ant Obstacle: how far the TwoWalk sub-policies can take the Ant",
        "obstacle_ceiling.py",
        f"{args.episodes} episodes per measurement, on {ENV_ID} (2000 steps; goal region x, y in [35, 40])",
        "*Alone*: one sub-policy acts for the whole episode (actions sampled). *Heading*: the mean of its ends. "
        "*Scripted master*: every N steps it picks the sub-policy whose heading points closest to the next waypoint "
        f"of the route {route} (east out of the enemy's reach, north west of the pocket, then east into the goal "
        f"region); a waypoint counts as passed once the Ant is within {REACHED:g} of it along its leg of the route. "
        "*Goal reward*: steps in the goal region per episode (the paper's MLSH transfer: 193).",
        ["model", "who acts", "heading", "ends at", "farthest end from the start", "waypoints passed (of 3)", "goal reward"],
        rows,
    )
    print(page, end="")
    if args.write:
        PAGE.write_text(page)


if __name__ == "__main__":
    main()
