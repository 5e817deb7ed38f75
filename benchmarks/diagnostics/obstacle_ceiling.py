"""
How far can Ant TwoWalk sub-policies take the Ant on the obstacle course, under masters one can script?

    python -m benchmarks.diagnostics.obstacle_ceiling MODEL.zip [MODEL.zip ...] [--episodes 4] [--random-episodes 20]
        [--horizon 2] [--samples 3] [--routes X,Y ...] [--route-every N] [--write]

The paper's transfer (Ant Obstacle, ``benchmarks/reproduce.py ant_obstacle``) trains a fresh master over frozen
TwoWalk sub-policies: it needs sub-policies that can be steered to the goal, and a reward that reaches it. For
each saved MLSH model, on AntObstacle-v0 (2000 steps, goal region x, y in [35, 40]):

- each sub-policy acts alone for whole episodes (actions sampled, as a master runs it): where it ends, and so its
  heading (the mean of its ends: where it walks, seen from the start);
- a random master, choosing uniformly every N steps (the model's macro duration), as a fresh master starts: how
  often the goal region's reward reaches it at all;
- a planning master: every N steps it tries every sequence of ``--horizon`` choices
  ``--samples`` times in a copy of the simulation (the enemy included), from the course's exact state, and takes the
  first choice of the sequence whose worst try earns the most goal reward, or else ends nearest the goal region by
  the shortest path around the walls and the enemy's reach. It sees what no learned master sees (the simulator,
  the enemy), but it looks only ``--horizon`` decisions ahead and its tries are noisy: no upper bound;
- route masters (``--routes``), written by hand from the course's map: every N steps the east walker while x < X,
  or while y >= Y short of the goal region's x, else the north walker (the walkers told apart by where each ends
  alone): east, then north past the enemy's reach, then east into the goal region. They look only at the torso's
  x, y, as a learned master could (it observes them), so what they earn is what a master of this simple form can
  earn with these walkers (``--route-every``: deciding more often than the model's N).

Each reports the goal reward per episode and how near the goal region each episode came (the shortest path's length
from the nearest point reached), and each model's meta-training steps. ``--write`` adds the measurements to
``docs/benchmarks/obstacle_ceiling.md`` as a section of their own (an earlier run of the same command is replaced).
"""

import argparse
import heapq
import pathlib
from functools import partial
from itertools import islice, product
from typing import Any, NamedTuple

import gymnasium as gym
import mujoco
import numpy as np

import sb3_mlsh  # noqa: F401  (registers the envs)
from benchmarks.experiments import add_section, alone_episode, models_page

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "benchmarks" / "obstacle_ceiling.md"
ENV_ID = "AntObstacle-v0"
CELL = 0.5  # the grid of the shortest paths to the goal region
MARGIN = 1.0  # cells whose centre is this near a wall are walls (the Ant's torso cannot get nearer)


def path_lengths(ant: Any) -> tuple[np.ndarray, np.ndarray]:
    """
    The length of the shortest path from every cell of ``ant``'s arena to its goal region, around its walls (read
    from the compiled model: the boxes named ``wall_*``) and the enemy's reach (once it has come at the Ant, it
    stays on it: the Ant is caught for the rest of the episode).

    :return: The cells' centres along one axis, and the lengths (``inf`` in walls and the enemy's reach), indexed
        [x cell, y cell].
    """
    low = -3.0  # the arena's outer walls: -3 to 40 on both axes
    centres = np.arange(low + CELL / 2, ant.GOAL_HIGH, CELL)
    x, y = np.meshgrid(centres, centres, indexing="ij")
    wall = np.zeros(x.shape, dtype=bool)
    for geom in range(ant.model.ngeom):
        if ant.model.geom(geom).name.startswith("wall_"):
            centre = ant.model.body(ant.model.geom_bodyid[geom]).pos[:2]
            half = ant.model.geom_size[geom][:2] + MARGIN
            wall |= (np.abs(x - centre[0]) <= half[0]) & (np.abs(y - centre[1]) <= half[1])
    wall |= np.hypot(x - ant.ENEMY_POST[0], y - ant.ENEMY_POST[1]) < ant.ENEMY_RANGE
    goal = (x >= ant.GOAL_LOW) & (y >= ant.GOAL_LOW) & ~wall
    lengths = np.where(goal, 0.0, np.inf)
    queue = [(0.0, int(i), int(j)) for i, j in np.argwhere(goal)]
    while queue:
        length, i, j = heapq.heappop(queue)
        if length > lengths[i, j]:
            continue
        for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1)):
            ni, nj = i + di, j + dj
            if 0 <= ni < len(centres) and 0 <= nj < len(centres) and not wall[ni, nj]:
                step = length + CELL * np.hypot(di, dj)
                if step < lengths[ni, nj]:
                    lengths[ni, nj] = step
                    heapq.heappush(queue, (step, ni, nj))
    return centres, lengths


class GoalDistance:
    """
    The shortest path's length from a point of ``ant``'s arena to its goal region (``path_lengths``): ``inf``
    within the enemy's reach, the nearest reachable cell's in a wall's margin.
    """

    def __init__(self, ant: Any) -> None:
        self.post, self.reach = np.asarray(ant.ENEMY_POST), ant.ENEMY_RANGE
        self.centres, self.lengths = path_lengths(ant)
        self.cells = np.argwhere(np.isfinite(self.lengths))
        self.margin: dict[tuple[int, int], float] = {}  # a wall-margin cell's length, found once

    def __call__(self, xy: np.ndarray) -> float:
        if np.linalg.norm(xy - self.post) < self.reach:
            return np.inf
        i, j = (np.clip(np.round((xy - self.centres[0]) / CELL), 0, len(self.centres) - 1)).astype(int)
        if np.isfinite(self.lengths[i, j]):
            return float(self.lengths[i, j])
        if (i, j) not in self.margin:
            nearest = self.cells[np.argmin(np.sum((self.cells - (i, j)) ** 2, axis=1))]
            self.margin[i, j] = float(self.lengths[tuple(nearest)])
        return self.margin[i, j]


class Episode(NamedTuple):
    """One episode on the course."""

    goal_reward: float  # steps in the goal region
    end: np.ndarray  # the torso's x, y at the end
    nearest: float  # the shortest path's length to the goal region from the nearest point reached


class PlanningMaster:
    """
    Every ``macro_duration`` steps, try every sequence of ``horizon`` choices of sub-policy ``samples`` times in a
    second copy of the course set to the real one's exact state (actions sampled), and choose the first of the
    sequence whose worst try earns the most goal reward, ties going to the one whose worst try ends nearest the goal
    region.

    :param model: The MLSH model whose frozen sub-policies act.
    :param distance: The shortest path's length to the goal region.
    :param horizon: How many of the master's decisions each sequence looks ahead.
    :param samples: How many times each sequence is tried (the sub-policies' actions are sampled).
    """

    STATE = mujoco.mjtState.mjSTATE_INTEGRATION  # everything a step depends on, the enemy's position included

    def __init__(self, model: Any, distance: GoalDistance, horizon: int, samples: int) -> None:
        self.model, self.distance, self.horizon, self.samples = model, distance, horizon, samples
        env = gym.make(ENV_ID)
        assert env.spec is not None and env.spec.max_episode_steps is not None
        self.max_steps = env.spec.max_episode_steps
        self.sim: Any = env.unwrapped
        self.sim.reset(seed=0)
        self.k = 0

    def choose(self, ant: Any, step: int) -> int:
        """:return: The sub-policy to act at ``step`` of the episode on ``ant``."""
        if step % self.model.macro_duration == 0:
            state = np.empty(mujoco.mj_stateSize(ant.model, self.STATE))
            mujoco.mj_getState(ant.model, ant.data, state, self.STATE)
            snapshot = (state, ant._steps)  # the steps count times the joints' re-draws
            scores = {
                sequence: min(self._try(snapshot, sequence, self.max_steps - step) for _ in range(self.samples))
                for sequence in product(range(self.model.n_subpolicies), repeat=self.horizon)
            }
            self.k = max(scores, key=lambda sequence: scores[sequence])[0]
        return self.k

    def _try(self, snapshot: tuple[np.ndarray, int], sequence: tuple[int, ...], steps_left: int) -> tuple[int, float]:
        """:return: The goal reward of one try of ``sequence`` from ``snapshot``, and minus the distance left."""
        state, self.sim._steps = snapshot
        mujoco.mj_setState(self.sim.model, self.sim.data, state, self.STATE)
        mujoco.mj_forward(self.sim.model, self.sim.data)
        obs, goal = self.sim._get_obs(), 0
        for step in range(min(len(sequence) * self.model.macro_duration, steps_left)):
            k = sequence[step // self.model.macro_duration]
            obs, *_ = self.sim.step(self.model.predict(obs, subpolicy=k, deterministic=False)[0])
            goal += int(self.sim.in_goal)
        return goal, -self.distance(self.sim.xy)


class RouteMaster:
    """
    Every ``every`` steps, the east walker while the torso's x < ``turn_north``, or while y >= ``turn_east`` short
    of the goal region's x, else the north walker.

    :param walkers: The east and the north walker (sub-policy indices).
    :param turn_north: Below this x, walk east.
    :param turn_east: From this y on, walk east again.
    :param every: How many steps between decisions (a master's N).
    """

    def __init__(self, walkers: tuple[int, int], turn_north: float, turn_east: float, every: int) -> None:
        self.walkers, self.turn, self.every = walkers, (turn_north, turn_east), every
        self.k = walkers[0]

    def choose(self, ant: Any, step: int) -> int:
        """:return: The sub-policy to act at ``step`` of the episode on ``ant``."""
        if step % self.every == 0:
            x, y = ant.xy
            east = x < self.turn[0] or (y >= self.turn[1] and x < ant.GOAL_LOW)
            self.k = self.walkers[0 if east else 1]
        return self.k


class RandomMaster:
    """
    Every ``macro_duration`` steps, a sub-policy drawn uniformly at random: how a fresh master starts.

    :param model: The MLSH model whose frozen sub-policies act.
    :param seed: Seed of the draws.
    """

    def __init__(self, model: Any, seed: int) -> None:
        self.model, self.rng, self.k = model, np.random.default_rng(seed), 0

    def choose(self, ant: Any, step: int) -> int:
        """:return: The sub-policy to act at ``step`` of the episode (``ant`` is not looked at)."""
        if step % self.model.macro_duration == 0:
            self.k = int(self.rng.integers(self.model.n_subpolicies))
        return self.k


def run_episodes(
    model: Any, who: int | str | RouteMaster, n_episodes: int, seed: int, planning: tuple[int, int]
) -> list[Episode]:
    """
    Episodes of ``alone_episode`` (actions sampled, as a master runs the sub-policies) on the course.

    :param who: The sub-policy acting alone; ``"planning"``: the planning master; ``"random"``: a master choosing
        uniformly at random every N steps, as a fresh master starts; or a route master.
    :param planning: The planning master's horizon and samples (``PlanningMaster``).
    """
    import torch as th

    env = gym.make(ENV_ID)
    ant: Any = env.unwrapped
    distance = GoalDistance(ant)
    if isinstance(who, int):
        acting: int | partial[int] = who
    else:
        if isinstance(who, RouteMaster):
            master: RouteMaster | PlanningMaster | RandomMaster = who
        elif who == "planning":
            master = PlanningMaster(model, distance, *planning)
        else:
            master = RandomMaster(model, seed)
        acting = partial(master.choose, ant)
    th.set_num_threads(1)
    th.manual_seed(seed)
    episodes = []
    for episode in range(n_episodes):
        goal, nearest = 0, np.inf
        for _ in islice(alone_episode(model, env, acting, seed + episode, deterministic=False), 1, None):
            goal, nearest = goal + int(ant.in_goal), min(nearest, distance(ant.xy))
        episodes.append(Episode(float(goal), ant.xy, nearest))
    env.close()
    return episodes


def measure(
    path: pathlib.Path,
    n_episodes: tuple[int, int],
    masters: list[str],
    planning: tuple[int, int],
    routes: list[tuple[float, float]],
    route_every: int | None,
    seed: int = 0,
) -> list[str]:
    """
    :param n_episodes: Episodes per measurement, and for the random master.
    :param masters: Which of ``"random"`` and ``"planning"`` to measure.
    :param routes: Each route master's turns (``RouteMaster``).
    :param route_every: The route masters' steps between decisions; ``None``: the model's N.
    :return: The page's rows for one model: one per sub-policy alone, then one per master.
    """
    from sb3_mlsh import MLSH

    model = MLSH.load(path, device="cpu")
    rows = []

    def row(who: int | str | RouteMaster, label: str, count: int) -> np.ndarray:
        """Add ``who``'s row; :return: its heading."""
        episodes = run_episodes(model, who, count, seed, planning)
        heading = np.mean([episode.end for episode in episodes], axis=0)
        reached = sum(episode.goal_reward > 0 for episode in episodes)
        where = ", ".join(f"({x:.1f}, {y:.1f})" for x, y in (episode.end for episode in episodes))
        nearest = " / ".join(f"{episode.nearest:.1f}" for episode in episodes)
        reward = float(np.mean([episode.goal_reward for episode in episodes]))
        rows.append(
            f"| {path} ({model.num_timesteps:,} steps) | {label} | ({heading[0]:.1f}, {heading[1]:.1f}) | {where} "
            f"| {nearest} | {reached} of {len(episodes)} | {reward:.1f} |"
        )
        return heading

    headings = [row(k, f"sub-policy {k} alone", n_episodes[0]) for k in range(model.n_subpolicies)]
    east_of_north = np.array([x - y for x, y in headings])
    walkers = (int(np.argmax(east_of_north)), int(np.argmin(east_of_north)))
    for who in masters:
        row(who, f"{who} master", n_episodes[who == "random"])
    every = route_every or model.macro_duration
    for turn_north, turn_east in routes:
        label = f"route master (walker {walkers[0]} east to x {turn_north:g}, {walkers[1]} north to y {turn_east:g}" + (
            f"; every {every} steps)" if every != model.macro_duration else ")"
        )
        row(RouteMaster(walkers, turn_north, turn_east, every), label, n_episodes[0])
    return rows


def route(text: str) -> tuple[float, float]:
    """:return: A route master's turns from ``"X,Y"``."""
    try:
        turn_north, turn_east = (float(value) for value in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a route as X,Y (e.g. 12,30): north from x X, east from y Y"
        ) from None
    return turn_north, turn_east


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=pathlib.Path, help="MLSH models trained on AntTwoWalk-v0 (.zip)")
    parser.add_argument("--episodes", type=int, default=4, help="episodes per measurement")
    parser.add_argument("--random-episodes", type=int, default=20, help="episodes for the random master")
    parser.add_argument("--horizon", type=int, default=2, help="how many decisions the planning master looks ahead")
    parser.add_argument("--samples", type=int, default=3, help="how many times the planning master tries a sequence")
    parser.add_argument(
        "--masters", nargs="*", choices=["random", "planning"], default=["random", "planning"],
        help="the masters to measure besides the routes (none: give the option alone)",
    )  # fmt: skip
    parser.add_argument(
        "--routes", nargs="*", type=route, default=[], metavar="X,Y",
        help="route masters: the east walker below x X, or from y Y on short of the goal region, else the north walker",
    )  # fmt: skip
    parser.add_argument(
        "--route-every", type=int, metavar="N", help="the route masters decide every N steps (default: the model's N)"
    )
    parser.add_argument(
        "--write", action="store_true", help=f"add the measurements to {PAGE.relative_to(ROOT)} (the same command's replaced)"
    )
    args = parser.parse_args()
    for path in args.models:
        if not path.is_file():
            parser.error(f"{path} does not exist; give models saved by benchmarks/reproduce.py (<out>/models/*.zip).")
    if args.episodes < 1:
        parser.error(f"--episodes {args.episodes}: give at least 1.")
    if args.route_every is not None and args.route_every < 1:
        parser.error(f"--route-every {args.route_every}: give at least 1 step.")
    for name in ("random_episodes", "horizon", "samples"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)}: give at least 1.")
    rows = [
        row
        for path in args.models
        for row in measure(
            path,
            (args.episodes, args.random_episodes),
            args.masters,
            (args.horizon, args.samples),
            args.routes,
            args.route_every,
        )
    ]
    page = models_page(
        "Ant Obstacle: how far the TwoWalk sub-policies can take the Ant",
        "obstacle_ceiling.py",
        f"{args.episodes} episodes per measurement, on {ENV_ID} (2000 steps; goal region x, y in [35, 40])",
        "*Alone*: one sub-policy acts for the whole episode (actions sampled). *Random master*: every N steps it "
        f"picks a sub-policy uniformly at random, as a fresh master starts ({args.random_episodes} episodes). "
        "*Planning master*: every N steps it "
        f"tries each sequence of its next {args.horizon} choices {args.samples} times in a copy of the simulation "
        "set to the course's exact state (the enemy included) and takes the first choice of the sequence whose worst "
        "try earns the most goal reward, else ends nearest the goal region; it sees what a learned master cannot (the "
        f"simulator, the enemy), but it looks only {args.horizon} decisions ahead and its tries are noisy, so it is no "
        "upper bound. *Route master*: written by hand from the course's map, it looks only at the torso's x, y (as a "
        "learned master could): every N steps the east walker while x is below the first number, or while y has reached "
        "the second short of the goal region's x (35), else the north walker (east, north past the enemy's reach, "
        "east into the goal region); the walkers told apart by where each ends alone; it decides every N steps, or as "
        "often as its row says. "
        "*Heading*: the mean of the episodes' ends. *Nearest the goal*: the length of the shortest "
        "path to the goal region around the walls and the enemy's reach (within it, the enemy pins the Ant for the "
        "rest of the episode) from the nearest point the episode reached; 50.4 from the start. "
        "*Goal reward*: steps in the goal region per episode (the paper's MLSH transfer: 193).",
        [
            "model",
            "who acts",
            "heading",
            "ends at",
            "nearest the goal (per episode)",
            "episodes in the goal region",
            "goal reward",
        ],
        rows,
    )
    print(page, end="")
    if args.write:
        add_section(PAGE, page)


if __name__ == "__main__":
    main()
