"""The paper's Ant tasks, built from gymnasium's Ant model with ``mujoco.MjSpec``."""

import math
from collections.abc import Sequence
from importlib.resources import files
from typing import Any

import mujoco
import numpy as np
from gymnasium.envs.mujoco.ant_v5 import AntEnv

from sb3_mlsh.envs.mujoco_spec import compile_spec, load_spec
from sb3_mlsh.envs.task_set import TaskSet

ANT_XML = files("gymnasium.envs.mujoco").joinpath("assets", "ant.xml")
NON_COLLIDING = dict(contype=0, conaffinity=0)


class AntTaskEnv(TaskSet, AntEnv):
    """
    Base of the Ant tasks: gymnasium's Ant-v5 body and physics in an arena that subclasses build.

    - **Observation**: ``Box(29)``, one layout for every Ant task so that sub-policies transfer:
      the torso's x, y, z and orientation quaternion, the 8 joint angles (``qpos``, 15 numbers)
      and all velocities (``qvel``, 14 numbers). No contact forces.
    - **Action**: ``Box(-1, 1, (8,))``, the joint torques, as in Ant-v5.
    - **Termination**: none (episodes end by time limit).

    The arena is added to the ``MjSpec`` of gymnasium's ``ant.xml`` by ``_build_arena``; nothing
    is copied from that file.

    :param render_mode: ``"rgb_array"``, ``"human"``, ... as in Ant-v5, or ``None``.
    :param kwargs: Further Ant-v5 parameters (``frame_skip``, ``reset_noise_scale``, ``width``, ...).
    """

    FLOOR_HALF_SIZE = 100.0
    REDRAW_EVERY: int | None = None  # re-draw the joints every this many steps (None: never)

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        self._steps = 0
        self.redraw_every = self.REDRAW_EVERY
        super().__init__(
            xml_file=str(ANT_XML),
            exclude_current_positions_from_observation=False,
            include_cfrc_ext_in_observation=False,
            terminate_when_unhealthy=False,
            render_mode=render_mode,
            **kwargs,
        )

    def _initialize_simulation(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        spec = load_spec(self.fullpath, self.FLOOR_HALF_SIZE)  # ant.xml's floor ends at +-40
        self._build_arena(spec)
        return compile_spec(spec, self.width, self.height)

    def _build_arena(self, spec: mujoco.MjSpec) -> None:
        """Add the task's bodies and geoms to ``spec`` (called once, before compiling)."""

    @staticmethod
    def _add_box(
        spec: mujoco.MjSpec, name: str, center: Sequence[float], half_size: Sequence[float], **attributes: Any
    ) -> None:
        """
        Add a fixed, colliding box in a static body of its own, so that MuJoCo's broad phase can
        prune the boxes far from the Ant body by body.
        """
        body = spec.worldbody.add_body(name=name, pos=list(center))
        colliding = dict(contype=1, conaffinity=1)  # ant.xml's default geom has conaffinity 0
        body.add_geom(name=name, type=mujoco.mjtGeom.mjGEOM_BOX, size=list(half_size), **{**colliding, **attributes})

    @property
    def xy(self) -> np.ndarray:
        """The torso's x, y position."""
        return self.data.qpos[:2].copy()

    @property
    def upright(self) -> bool:
        """Whether the torso's z axis points up (the Ant is not on its back or side)."""
        _, qx, qy, _ = self.data.qpos[3:7]
        return bool(1.0 - 2.0 * (qx * qx + qy * qy) > 0.0)

    def _task_reward(self, xy_before: np.ndarray, action: np.ndarray) -> tuple[float, dict[str, float]]:
        """:return: This step's reward and its terms, given the torso's position before the step."""
        raise NotImplementedError

    def reset_model(self) -> np.ndarray:
        self._steps = 0
        return super().reset_model()

    def _redraw_joints(self) -> None:
        """Re-draw everything but the torso's x, y as at a reset, so that a fallen Ant gets up."""
        xy = self.xy
        super().reset_model()
        qpos = self.data.qpos.copy()
        qpos[:2] = xy
        self.set_state(qpos, self.data.qvel.copy())

    # gymnasium types MujocoEnv's info as dict[str, float64]; this env's also carries its task
    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:  # type: ignore[override]
        xy_before = self.xy
        self.do_simulation(action, self.frame_skip)
        reward, reward_info = self._task_reward(xy_before, action)
        self._steps += 1
        if self.redraw_every is not None and self._steps % self.redraw_every == 0:
            self._redraw_joints()
        info = {"x_position": self.data.qpos[0], "y_position": self.data.qpos[1], "task": self.task, **reward_info}
        if self.render_mode == "human":
            self.render()
        return self._get_obs(), reward, False, False, info


class AntTwoWalkEnv(AntTaskEnv):
    """
    Ant TwoWalk (Frans et al., 2018): walk to one of two targets, which one being the task.

    A target marker, non-colliding and not observed, sits at (5, 0) or (0, 5) (``target_distance`` from the start,
    east or north); the Ant starts at the origin.

    - **Observation**, **action**: as ``AntTaskEnv`` (29 numbers; 8 torques).
    - **Reward**: the distance to the target closed in this step, per second of simulated time (the velocity toward
      the target, as ``AntMaze-v0`` pays on each axis). ``reward="sqrt"``: the original code's ``-sqrt(distance(torso
      x, y; target)) / 3000`` on each step, from which SB3's PPO learns nothing in 3M steps (docs/mlsh.md,
      "Choices"); ``reward="distance"``: ``-distance / 3000``, this env's reward in sb3-mlsh 0.1.0.
      ``upright_reward`` (0.2) is added on each step that the torso is upright (its z axis points up): without it the
      learned walkers dive toward the target after each re-draw and lie on their back until the next; with 0.5 (its
      default before) it outweighed the progress toward the target in the masters' choices, which then split the
      tasks between the sub-policies late (docs/benchmarks/assignment.md).
    - **Every 200 steps** (``redraw_every``) the joints and the torso's height and orientation are re-drawn as at a
      reset, keeping x, y, so that an Ant on its back gets up (as in the paper's other Ant tasks).
    - **Termination**: none; ``AntTwoWalk-v0`` truncates episodes at 1000 steps.
    - **Task**: ``0`` (target at (5, 0)) or ``1`` (target at (0, 5)).

    :param target_distance: How far east (task 0) or north (task 1) of the start the target sits; the paper's 5. The
        Ant, which observes its x, y, learns to walk to a target and stop there; targets farther than an episode's walk
        (e.g. 50) teach it to walk east or north instead, as a transfer to a larger arena needs
        (``benchmarks/diagnostics/obstacle_ceiling.py``).
    :param reward: ``"progress"``, ``"sqrt"`` (the original code's) or ``"distance"`` (sb3-mlsh 0.1.0's).
    :param upright_reward: Paid on each step the torso is upright, besides ``reward`` (0: none, the original's and
        sb3-mlsh 0.1.0's).
    :param redraw_every: Steps between re-draws of the joints; ``None``: never (sb3-mlsh 0.1.0).
    :param render_mode: As in Ant-v5.
    :param kwargs: Further Ant-v5 parameters.
    """

    DIRECTIONS = ((1.0, 0.0), (0.0, 1.0))  # of the targets from the start: east (task 0), north (task 1)
    REWARDS = ("progress", "sqrt", "distance")
    tasks = (0, 1)
    TASK_HELP = "the tasks are 0 (the target east of the start) and 1 (north)."

    def __init__(
        self,
        target_distance: float = 5.0,
        reward: str = "progress",
        upright_reward: float = 0.2,
        redraw_every: int | None = 200,
        render_mode: str | None = None,
        **kwargs: Any,
    ) -> None:
        if not np.isfinite(target_distance) or target_distance <= 0:
            raise ValueError(f"AntTwoWalkEnv: target_distance={target_distance!r}; use a number > 0 (the paper's 5).")
        if reward not in self.REWARDS:
            raise ValueError(f"AntTwoWalkEnv: reward={reward!r}; use one of {self.REWARDS}.")
        if not np.isfinite(upright_reward) or upright_reward < 0:
            raise ValueError(f"AntTwoWalkEnv: upright_reward={upright_reward!r}; use a number >= 0 (0: none).")
        if redraw_every is not None and (not isinstance(redraw_every, int) or redraw_every < 1):
            raise ValueError(f"AntTwoWalkEnv: redraw_every={redraw_every!r}; use an integer >= 1 or None (never).")
        self.targets = tuple((target_distance * x, target_distance * y) for x, y in self.DIRECTIONS)
        self.reward = reward
        self.upright_reward = float(upright_reward)
        self._init_tasks()
        # seen from above, the start and both targets in view
        middle = target_distance / 2
        camera = {"distance": 5.2 * middle, "elevation": -90.0, "lookat": [middle, middle, 0.0]}
        kwargs.setdefault("default_camera_config", camera)
        super().__init__(render_mode=render_mode, **kwargs)
        self.redraw_every = redraw_every
        self._target_geom = self.model.geom("target").id
        self.set_task(self.task)

    def _build_arena(self, spec: mujoco.MjSpec) -> None:
        spec.worldbody.add_geom(
            name="target",
            type=mujoco.mjtGeom.mjGEOM_SPHERE,
            size=[0.3, 0, 0],
            pos=[*self.targets[0], 0.3],
            rgba=[0.2, 0.8, 0.3, 0.5],
            **NON_COLLIDING,
        )

    def _apply_task(self) -> None:
        self.model.geom_pos[self._target_geom, :2] = self.targets[self.task]

    def _task_reward(self, xy_before: np.ndarray, action: np.ndarray) -> tuple[float, dict[str, float]]:
        # on Python floats: numpy's norm of a 2-vector cost a tenth of the env's step outside the physics
        target_x, target_y = self.targets[self._task]
        distance = math.hypot(self.data.qpos[0] - target_x, self.data.qpos[1] - target_y)
        upright = self.upright
        info = {"distance_to_target": distance, "upright": float(upright)}
        if self.reward == "progress":
            reward = (math.hypot(xy_before[0] - target_x, xy_before[1] - target_y) - distance) / self.dt
        else:
            reward = -float(np.sqrt(distance) if self.reward == "sqrt" else distance) / 3000.0
        return reward + self.upright_reward * upright, info


# layout: (goal, cells opened besides (8, 0)); see AntMazeEnv
MAZE_LAYOUTS: tuple[tuple[tuple[float, float], tuple[tuple[int, int], ...]], ...] = (
    ((8.0, 24.0), ((8, 16),)),  # up
    ((8.0, -24.0), ((8, -16),)),  # down
    ((24.0, 24.0), ((24, 0), (24, 16))),  # right, up
    ((24.0, -24.0), ((24, 0), (24, -16))),  # right, down
    ((48.0, 0.0), ((24, 0), (40, 0))),  # right
    ((40.0, 24.0), ((24, 0), (40, 0), (40, 16))),  # right, up
    ((40.0, -24.0), ((24, 0), (40, 0), (40, -16))),  # right, down
    ((32.0, 16.0), ((8, 16), (24, 16))),  # up, right
    ((32.0, -16.0), ((8, -16), (24, -16))),  # down, right
)


class AntMazeEnv(AntTaskEnv):
    """
    Ant mazes (Frans et al., 2018): reach the goal of one of 9 maze layouts, the layout being the task.

    A walled arena x in [0, 48], y in [-24, 24] holds a 3 x 3 grid of 15.2 x 15.2 blocks centred at
    x in {8, 24, 40}, y in {16, 0, -16}. The Ant starts at (2, 0); the cell at (8, 0) is always open.
    Each layout removes the blocks of its route (``MAZE_LAYOUTS``: up, down, right and two-leg routes).

    - **Observation**, **action**: as ``AntTaskEnv`` (29 numbers; 8 torques). The layout is not observed.
    - **Reward**: the torso's velocity toward the goal on each axis (``sign(goal - xy) . velocity``)
      minus ``0.1 * |action|^2``.
    - **Every 200 steps** the joints and the torso's height and orientation are re-drawn as at a
      reset, keeping x, y, so the Ant cannot stay fallen.
    - **Termination**: none; ``AntMaze-v0`` truncates episodes at 1000 steps.
    - **Task**: the layout index, 0 to 8; ``sample_task()`` draws from ``train_tasks``
      (all, unless ``held_out_tasks`` keeps some for evaluation).

    :param held_out_tasks: Layouts that ``sample_task()`` never draws.
    :param render_mode: As in Ant-v5.
    :param kwargs: Further Ant-v5 parameters.
    """

    START = (2.0, 0.0)
    CELL_CENTERS = tuple((x, y) for x in (8, 24, 40) for y in (16, 0, -16))
    BLOCK_HALF = 7.6
    REDRAW_EVERY = 200
    tasks = tuple(range(len(MAZE_LAYOUTS)))
    TASK_HELP = f"the tasks are the layout indices {tasks}."

    def __init__(self, held_out_tasks: Sequence[int] | None = None, render_mode: str | None = None, **kwargs: Any) -> None:
        self._init_tasks(held_out_tasks)
        kwargs.setdefault("default_camera_config", {"distance": 60.0, "elevation": -90.0, "lookat": [24.0, 0.0, 0.0]})
        super().__init__(render_mode=render_mode, **kwargs)
        self.init_qpos[:2] = self.START
        self._blocks = [self.model.geom(f"block_{x}_{y}").id for x, y in self.CELL_CENTERS]
        self._goal_geom = self.model.geom("goal").id
        self.set_task(self.task)

    def _build_arena(self, spec: mujoco.MjSpec) -> None:
        wall = dict(rgba=[0.5, 0.5, 0.55, 1.0])
        for name, center, half in (
            ("wall_west", (-0.25, 0.0), (0.25, 24.5)),
            ("wall_east", (48.25, 0.0), (0.25, 24.5)),
            ("wall_south", (24.0, -24.25), (24.5, 0.25)),
            ("wall_north", (24.0, 24.25), (24.5, 0.25)),
        ):
            self._add_box(spec, name, (*center, 1.0), (*half, 1.0), **wall)
        for x, y in self.CELL_CENTERS:
            self._add_box(
                spec, f"block_{x}_{y}", (x, y, 1.0), (self.BLOCK_HALF, self.BLOCK_HALF, 1.0), rgba=[0.35, 0.3, 0.25, 1]
            )
        spec.worldbody.add_geom(
            name="goal", type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[0.8, 0, 0], pos=[0, 0, 0.8], rgba=[0.2, 0.8, 0.3, 0.6],
            **NON_COLLIDING,
        )  # fmt: skip

    @property
    def goal(self) -> np.ndarray:
        """The current layout's goal (x, y)."""
        return np.asarray(MAZE_LAYOUTS[self._task][0])

    def open_cells(self, task: int | None = None) -> set[tuple[int, int]]:
        """:return: The block cells a layout (default: the current one) leaves open, (8, 0) included."""
        return {(8, 0), *MAZE_LAYOUTS[self._task if task is None else task][1]}

    def _apply_task(self) -> None:
        """Remove the blocks of the layout's route, and move the goal marker."""
        open_cells = self.open_cells()
        for cell, geom in zip(self.CELL_CENTERS, self._blocks, strict=True):
            solid = cell not in open_cells
            self.model.geom_contype[geom] = self.model.geom_conaffinity[geom] = int(solid)
            self.model.geom_rgba[geom, 3] = 1.0 if solid else 0.0
        self.model.geom_pos[self._goal_geom, :2] = self.goal

    def _task_reward(self, xy_before: np.ndarray, action: np.ndarray) -> tuple[float, dict[str, float]]:
        velocity = (self.xy - xy_before) / self.dt
        toward_goal = float(np.sign(self.goal - xy_before) @ velocity)
        ctrl_cost = 0.1 * float(np.square(action).sum())
        return toward_goal - ctrl_cost, {"reward_toward_goal": toward_goal, "reward_ctrl": -ctrl_cost}


class AntObstacleEnv(AntTaskEnv):
    """
    Ant obstacle course (Frans et al., 2018): the paper's sparse-reward transfer task, a single task.

    A walled arena (walls at -3 and 40 on both axes, 5 high); the Ant starts near (0, 0) and is paid only in
    the goal region, the top-right corner x, y in [35, 40]. An inner wall pair (x = 30 for y < 25,
    and y = 25 for x in (30, 40)) closes off the pocket x in (30, 40), y < 25, so the way is north
    first, then east. An enemy, a colliding block, waits at (0, 20); while the Ant is within 15 of
    that point it moves up to one unit per step toward the Ant on each axis, knocking it back, and
    otherwise goes back to its post the same way; it moves smoothly through the step's frames.

    - **Observation**, **action**: as ``AntTaskEnv`` (29 numbers; 8 torques); the enemy is not observed.
    - **Reward**: 1 on each step that ends in the goal region, else 0.
    - **Every 200 steps** the joints are re-drawn as at a reset, keeping x, y.
    - **Termination**: none; ``AntObstacle-v0`` truncates episodes at 2000 steps.
    - **Task**: the single task ``0`` (the protocol is there so that a trained model can be
      transferred with ``train_subpolicies=False``).

    :param render_mode: As in Ant-v5.
    :param kwargs: Further Ant-v5 parameters.
    """

    GOAL_LOW, GOAL_HIGH = 35.0, 40.0
    ENEMY_POST = (0.0, 20.0)
    ENEMY_RANGE = 15.0
    ENEMY_STEP = 1.0
    REDRAW_EVERY = 200
    WALL_HEIGHT = 5.0
    tasks = (0,)
    TASK_HELP = "this env has the single task 0."

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        self._init_tasks()
        kwargs.setdefault("default_camera_config", {"distance": 65.0, "elevation": -90.0, "lookat": [18.5, 18.5, 0.0]})
        super().__init__(render_mode=render_mode, **kwargs)
        self._enemy = self.model.body("enemy").mocapid[0]

    def _build_arena(self, spec: mujoco.MjSpec) -> None:
        wall = dict(rgba=[0.5, 0.5, 0.55, 1.0])
        for name, center, half in (
            ("wall_west", (-3.25, 18.5), (0.25, 21.75)),
            ("wall_east", (40.25, 18.5), (0.25, 21.75)),
            ("wall_south", (18.5, -3.25), (21.75, 0.25)),
            ("wall_north", (18.5, 40.25), (21.75, 0.25)),
            ("wall_pocket_west", (30.0, 11.0), (0.25, 14.0)),
            ("wall_pocket_north", (35.0, 25.0), (5.0, 0.25)),
        ):
            # 5 high, as the original's: the enemy's hit can throw the Ant several units up, over lower walls
            self._add_box(spec, name, (*center, self.WALL_HEIGHT / 2), (*half, self.WALL_HEIGHT / 2), **wall)
        enemy = spec.worldbody.add_body(name="enemy", pos=[*self.ENEMY_POST, 1.0], mocap=True)
        enemy.add_geom(
            name="enemy", type=mujoco.mjtGeom.mjGEOM_BOX, size=[1.0, 1.0, 1.0], rgba=[0.8, 0.2, 0.2, 1.0],
            contype=1, conaffinity=1,
        )  # fmt: skip
        spec.worldbody.add_geom(
            name="goal", type=mujoco.mjtGeom.mjGEOM_BOX, pos=[37.5, 37.5, 0.01], size=[2.5, 2.5, 0.01],
            rgba=[0.2, 0.8, 0.3, 0.6], **NON_COLLIDING,
        )  # fmt: skip

    @property
    def enemy_xy(self) -> np.ndarray:
        """The enemy's x, y."""
        return self.data.mocap_pos[self._enemy, :2].copy()

    def reset_model(self) -> np.ndarray:
        self.data.mocap_pos[self._enemy, :2] = self.ENEMY_POST
        return super().reset_model()

    @property
    def in_goal(self) -> bool:
        """Whether the torso is in the goal region."""
        return bool(np.all((self.xy >= self.GOAL_LOW) & (self.xy <= self.GOAL_HIGH)))

    def _step_mujoco_simulation(self, ctrl: np.ndarray, n_frames: int) -> None:
        # the enemy's step, spread over the step's frames: moved a whole unit at once, it lands inside the Ant and
        # MuJoCo pushes them apart so hard that the Ant flies over the walls (13.6 high, measured)
        post = np.asarray(self.ENEMY_POST)
        chasing = np.linalg.norm(self.xy - post) < self.ENEMY_RANGE
        target = self.xy if chasing else post
        frame_step = np.clip(target - self.enemy_xy, -self.ENEMY_STEP, self.ENEMY_STEP) / n_frames
        self.data.ctrl[:] = ctrl
        for _ in range(n_frames):
            self.data.mocap_pos[self._enemy, :2] += frame_step
            mujoco.mj_step(self.model, self.data)
        mujoco.mj_rnePostConstraint(self.model, self.data)

    def _task_reward(self, xy_before: np.ndarray, action: np.ndarray) -> tuple[float, dict[str, float]]:
        in_goal = float(self.in_goal)
        return in_goal, {"in_goal": in_goal}
