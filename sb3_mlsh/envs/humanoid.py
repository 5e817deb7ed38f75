"""The paper's Humanoid tasks, built from gymnasium's Humanoid model with ``mujoco.MjSpec``."""

from importlib.resources import files
from typing import Any

import mujoco
import numpy as np
from gymnasium.envs.mujoco.humanoid_v5 import HumanoidEnv, mass_center

from sb3_mlsh.envs.mujoco_spec import compile_spec, load_spec
from sb3_mlsh.envs.task_set import TaskSet

HUMANOID_XML = files("gymnasium.envs.mujoco").joinpath("assets", "humanoid.xml")
WALK, CRAWL = 1, 0


class HumanoidTaskEnv(TaskSet, HumanoidEnv):
    """
    Base of the Humanoid tasks: gymnasium's Humanoid-v5 with a ceiling that can be put in place.

    - **Observation**: ``Box(350)``, one layout for both Humanoid tasks: Humanoid-v5's (positions,
      velocities, ``cinert``, ``cvel``, ``qfrc_actuator``, ``cfrc_ext``) with the torso's x, y kept.
    - **Action**: Humanoid-v5's 17 torques in [-0.4, 0.4].
    - **Ceiling**: the original code's slab, 23 x 23 wide and 1 thick, its underside at height 1.0, centred at
      x = ``CEILING_X`` (where a subclass puts it) on the x axis; when it is not in place it neither collides nor
      shows. gymnasium's floor (20 x 20 half-size) is enlarged to 100.
    - **Rewards** (``velocity`` is the centre of mass's x velocity): *walk*, Humanoid-v5's: ``1.25 * velocity + 5 -
      0.1 |a|^2 - contact cost``, and the episode terminates when the torso drops below 1.0; *crawl*, the original
      code's: ``-7.5 * velocity - 0.1 |a|^2 - contact cost`` (its 1.5 per unit of x moved per physics step: 7.5 per
      unit of velocity, six times the walk's weight), no alive bonus, no termination.

    :param render_mode: As in Humanoid-v5.
    :param kwargs: Further Humanoid-v5 parameters.
    """

    CEILING_HEIGHT = 1.0
    CEILING_HALF_SIZE = (11.5, 11.5, 0.5)
    CEILING_X = 0.0
    CRAWL_REWARD_WEIGHT = 7.5
    FLOOR_HALF_SIZE = 100.0

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        super().__init__(
            xml_file=str(HUMANOID_XML),
            exclude_current_positions_from_observation=False,
            terminate_when_unhealthy=False,
            render_mode=render_mode,
            **kwargs,
        )
        self._ceiling = self.model.geom("ceiling").id
        self.set_ceiling(False)

    def _initialize_simulation(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        spec = load_spec(self.fullpath, self.FLOOR_HALF_SIZE)  # humanoid.xml's floor ends at +-20
        # a geom of the world body, not a body of its own, which would add to Humanoid-v5's per-body observations
        half_thickness = self.CEILING_HALF_SIZE[2]
        spec.worldbody.add_geom(
            name="ceiling", type=mujoco.mjtGeom.mjGEOM_BOX, pos=[self.CEILING_X, 0.0, self.CEILING_HEIGHT + half_thickness],
            size=list(self.CEILING_HALF_SIZE), rgba=[0.9, 0.2, 0.2, 0.6], contype=1, conaffinity=1,
        )  # fmt: skip
        return compile_spec(spec, self.width, self.height)

    @property
    def ceiling(self) -> bool:
        """Whether the ceiling is in place."""
        return bool(self.model.geom_contype[self._ceiling])

    def set_ceiling(self, in_place: bool) -> None:
        """:param in_place: Put the ceiling in place (colliding, visible) or take it away."""
        self.model.geom_contype[self._ceiling] = self.model.geom_conaffinity[self._ceiling] = int(in_place)
        self.model.geom_rgba[self._ceiling, 3] = 0.6 if in_place else 0.0

    def _mode(self) -> int:
        """``WALK`` or ``CRAWL``: which reward this step earns."""
        raise NotImplementedError

    # gymnasium types MujocoEnv's info as dict[str, float64]; this env's also carries its task
    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:  # type: ignore[override]
        x_before = mass_center(self.model, self.data)[0]
        self.do_simulation(action, self.frame_skip)
        velocity = (mass_center(self.model, self.data)[0] - x_before) / self.dt
        mode = self._mode()
        costs = self.control_cost(action) + self.contact_cost
        if mode == WALK:
            reward = self._forward_reward_weight * velocity + self._healthy_reward - costs
            terminated = bool(self.data.qpos[2] < self.CEILING_HEIGHT)
        else:
            reward = -self.CRAWL_REWARD_WEIGHT * velocity - costs
            terminated = False
        info = {
            "x_position": self.data.qpos[0],
            "z_position": self.data.qpos[2],
            "x_velocity": velocity,
            "mode": "walk" if mode == WALK else "crawl",
            "task": self.task,
        }
        if self.render_mode == "human":
            self.render()
        return self._get_obs(), float(reward), terminated, False, info


class HumanoidWalkCrawlEnv(HumanoidTaskEnv):
    """
    Humanoid walk / crawl (Frans et al., 2018): the training distribution of the Humanoid experiment.

    - **Task** ``1``, walk: walk forward (+x) upright, no ceiling; the walk reward; terminates when
      the torso drops below 1.0.
    - **Task** ``0``, crawl: the ceiling is in place, its underside at height 1.0, over x in [-29.5, -6.5]
      (the original code's, 6.5 behind the start); move backward (-x) and under it; the crawl reward; no
      termination.
    - **Observation**, **action**: as ``HumanoidTaskEnv`` (350 numbers; 17 torques). The task is not observed.
    - ``HumanoidWalkCrawl-v0`` truncates episodes at 1000 steps.

    :param render_mode: As in Humanoid-v5.
    :param kwargs: Further Humanoid-v5 parameters.
    """

    tasks = (WALK, CRAWL)
    TASK_HELP = "the tasks are 1 (walk) and 0 (crawl)."
    CEILING_X = -18.0

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        self._init_tasks()
        super().__init__(render_mode=render_mode, **kwargs)
        self.set_task(self.task)

    def _apply_task(self) -> None:
        self.set_ceiling(self.task == CRAWL)

    def _mode(self) -> int:
        return self._task


class HumanoidCourseEnv(HumanoidTaskEnv):
    """
    Humanoid course (Frans et al., 2018): the Humanoid experiment's combination (transfer) task.

    Walk forward upright (the walk reward, terminating on a fall) until the torso passes x = 25;
    then the ceiling comes down over x in [-5.5, 17.5] (the original code's), its underside at height 1.0, and
    stays for the rest of the episode, and moving backward, under it, pays (the crawl reward, no termination).

    - **Observation**, **action**: as ``HumanoidTaskEnv`` (350 numbers; 17 torques).
    - ``HumanoidCourse-v0`` truncates episodes at 3000 steps.
    - **Task**: the single task ``0``.

    :param render_mode: As in Humanoid-v5.
    :param kwargs: Further Humanoid-v5 parameters.
    """

    TURN_X = 25.0
    CEILING_X = 6.0
    tasks = (0,)
    TASK_HELP = "this env has the single task 0."

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        self._init_tasks()
        super().__init__(render_mode=render_mode, **kwargs)

    def reset_model(self) -> np.ndarray:
        self.set_ceiling(False)
        return super().reset_model()

    def _mode(self) -> int:
        if not self.ceiling and self.data.qpos[0] > self.TURN_X:
            self.set_ceiling(True)
        return CRAWL if self.ceiling else WALK
