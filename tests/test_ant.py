"""AntTwoWalk-v0 and AntMaze-v0: built from gymnasium's Ant, as the notes define them. Few hundred steps each."""

import pathlib

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import sb3_mlsh  # noqa: F401  (registers the envs)

pytest.importorskip("mujoco")
ANT_IDS = ("AntTwoWalk-v0", "AntMaze-v0", "AntObstacle-v0")


@pytest.mark.parametrize("env_id", ANT_IDS)
def test_checkers_spec_and_shared_observation_layout(env_id):
    # the "human" mode needs a display: rendering is tested below, off-screen
    gym_check_env(gym.make(env_id).unwrapped, skip_render_check=True)
    sb3_check_env(gym.make(env_id))
    env = gym.make(env_id)
    assert env.spec.max_episode_steps == (2000 if env_id == "AntObstacle-v0" else 1000)
    assert env.observation_space.shape == (29,) and env.action_space.shape == (8,)


@pytest.mark.parametrize("env_id", ANT_IDS)
def test_seeded_episodes_are_deterministic_and_do_not_terminate(env_id):
    def episode(seed: int) -> np.ndarray:
        env = gym.make(env_id)
        env.reset(seed=seed)
        env.action_space.seed(seed)
        trace = []
        for _ in range(100):
            obs, reward, terminated, _, _ = env.step(env.action_space.sample())
            assert not terminated
            trace.append(np.append(obs, reward))
        return np.array(trace)

    assert np.array_equal(episode(0), episode(0))
    assert not np.array_equal(episode(0), episode(1))


@pytest.mark.parametrize("env_id, bad_task", [("AntTwoWalk-v0", 2), ("AntMaze-v0", 9)])
def test_unknown_task_raises(env_id, bad_task):
    with pytest.raises(ValueError, match="unknown task"):
        gym.make(env_id).unwrapped.set_task(bad_task)


def reward_at(env, xy) -> float:
    """Reward of a zero-torque step taken with the torso put at ``xy``."""
    qpos = env.init_qpos.copy()
    qpos[:2] = xy
    env.set_state(qpos, np.zeros_like(env.init_qvel))
    return env.step(np.zeros(8))[1]


def test_two_walk_original_reward_rises_near_the_target_of_the_task():
    env = gym.make("AntTwoWalk-v0", reward="sqrt", upright_reward=0.0).unwrapped  # the original's reward alone
    env.reset(seed=0)
    env.set_task(0)
    far, near, at = (reward_at(env, xy) for xy in [(-3.0, 0.0), (2.0, 0.0), (5.0, 0.0)])
    assert far < near < at <= 0.0
    assert at > -0.3 / 3000  # the original code's -sqrt(distance) / 3000
    assert far == pytest.approx(-np.sqrt(8.0) / 3000, rel=0.05)
    linear = gym.make("AntTwoWalk-v0", reward="distance", upright_reward=0.0).unwrapped
    linear.reset(seed=0)
    assert reward_at(linear, (-3.0, 0.0)) == pytest.approx(-8.0 / 3000, rel=0.05)
    env.set_task(1)
    assert reward_at(env, (5.0, 0.0)) < reward_at(env, (0.0, 5.0))
    draws = {env.sample_task() for _ in range(50)}
    assert draws == {0, 1}


def test_two_walk_reward_is_the_velocity_toward_the_target():
    env = gym.make("AntTwoWalk-v0", upright_reward=0.0).unwrapped  # reward="progress", the default
    env.reset(seed=0)
    env.set_task(0)  # target (5, 0)
    for velocity, expected_sign in ((1.0, 1), (-1.0, -1)):
        qpos, qvel = env.init_qpos.copy(), np.zeros_like(env.init_qvel)
        qvel[0] = velocity  # the torso slides along x, toward the target or away
        env.set_state(qpos, qvel)
        before = np.linalg.norm(env.xy - (5.0, 0.0))
        reward = env.step(np.zeros(8))[1]
        closed = before - np.linalg.norm(env.xy - (5.0, 0.0))
        assert np.sign(reward) == expected_sign
        assert reward == pytest.approx(closed / env.dt)


def test_two_walk_target_distance_moves_both_targets_and_the_reward_with_them():
    env = gym.make("AntTwoWalk-v0", target_distance=50.0, upright_reward=0.0).unwrapped
    assert env.targets == ((50.0, 0.0), (0.0, 50.0))
    env.reset(seed=0)
    env.set_task(1)  # target (0, 50): past (0, 5), walking north still pays
    assert np.allclose(env.model.geom_pos[env.model.geom("target").id, :2], (0.0, 50.0))
    qpos, qvel = env.init_qpos.copy(), np.zeros_like(env.init_qvel)
    qpos[:2], qvel[1] = (0.0, 10.0), 1.0
    env.set_state(qpos, qvel)
    before = np.linalg.norm(env.xy - (0.0, 50.0))
    reward = env.step(np.zeros(8))[1]
    assert reward > 0
    assert reward == pytest.approx((before - np.linalg.norm(env.xy - (0.0, 50.0))) / env.dt)
    with pytest.raises(ValueError, match="target_distance=-1"):
        gym.make("AntTwoWalk-v0", target_distance=-1)


def test_two_walk_upright_reward_is_paid_only_while_the_torso_points_up():
    plain = gym.make("AntTwoWalk-v0", upright_reward=0.0).unwrapped
    env = gym.make("AntTwoWalk-v0").unwrapped  # upright_reward=0.2, the default
    for upside_down, bonus in ((False, 0.2), (True, 0.0)):
        rewards = []
        for ant in (plain, env):
            ant.reset(seed=0)
            qpos = ant.init_qpos.copy()
            if upside_down:
                qpos[2], qpos[3:7] = 0.3, (0.0, 1.0, 0.0, 0.0)
            ant.set_state(qpos, np.zeros_like(ant.init_qvel))
            _, reward, _, _, info = ant.step(np.zeros(8))
            assert info["upright"] == float(not upside_down)
            rewards.append(reward)
        assert rewards[1] - rewards[0] == pytest.approx(bonus)
    with pytest.raises(ValueError, match="upright_reward=-1"):
        gym.make("AntTwoWalk-v0", upright_reward=-1)


def test_two_walk_redraws_the_joints_every_200_steps_keeping_x_y():
    env = gym.make("AntTwoWalk-v0").unwrapped
    env.reset(seed=0)
    qpos = env.init_qpos.copy()
    qpos[:2], qpos[3:7] = (1.5, -0.5), (0.0, 1.0, 0.0, 0.0)  # upside down
    env.set_state(qpos, np.zeros_like(env.init_qvel))
    env._steps = 199
    env.step(np.zeros(8))
    assert np.allclose(env.xy, (1.5, -0.5), atol=0.05)
    assert np.allclose(env.data.qpos[3:7], env.init_qpos[3:7], atol=0.2)  # upright again
    never = gym.make("AntTwoWalk-v0", redraw_every=None).unwrapped
    never.reset(seed=0)
    never.set_state(qpos, np.zeros_like(never.init_qvel))
    never._steps = 199
    never.step(np.zeros(8))
    assert not np.allclose(never.data.qpos[3:7], never.init_qpos[3:7], atol=0.2)
    with pytest.raises(ValueError, match="redraw_every=0"):
        gym.make("AntTwoWalk-v0", redraw_every=0)
    with pytest.raises(ValueError, match="reward='manhattan'"):
        gym.make("AntTwoWalk-v0", reward="manhattan")


EXPECTED_ROUTES = {
    0: {(8, 0), (8, 16)},
    1: {(8, 0), (8, -16)},
    2: {(8, 0), (24, 0), (24, 16)},
    3: {(8, 0), (24, 0), (24, -16)},
    4: {(8, 0), (24, 0), (40, 0)},
    5: {(8, 0), (24, 0), (40, 0), (40, 16)},
    6: {(8, 0), (24, 0), (40, 0), (40, -16)},
    7: {(8, 0), (8, 16), (24, 16)},
    8: {(8, 0), (8, -16), (24, -16)},
}


@pytest.mark.parametrize("layout", range(9))
def test_maze_layout_opens_its_route_and_only_it(layout):
    env = gym.make("AntMaze-v0").unwrapped
    env.set_task(layout)
    assert env.open_cells() == EXPECTED_ROUTES[layout]
    for cell, geom in zip(env.CELL_CENTERS, env._blocks, strict=True):
        solid = cell not in EXPECTED_ROUTES[layout]
        assert bool(env.model.geom_contype[geom]) == solid and (env.model.geom_rgba[geom, 3] > 0) == solid
    # the route is connected from the start cell, and its last cell touches the goal
    reached, frontier = {(8, 0)}, [(8, 0)]
    while frontier:
        x, y = frontier.pop()
        for step in ((16, 0), (-16, 0), (0, 16), (0, -16)):
            cell = (x + step[0], y + step[1])
            if cell in EXPECTED_ROUTES[layout] and cell not in reached:
                reached.add(cell)
                frontier.append(cell)
    assert reached == EXPECTED_ROUTES[layout]
    goal = env.goal
    assert min(np.abs(goal - np.array(cell)).max() for cell in reached) <= 8.0 + 1e-6


def test_maze_blocks_stop_the_ant():
    env = gym.make("AntMaze-v0").unwrapped
    env.reset(seed=0)
    env.set_task(0)  # (24, 0) is a block: walking east from (8, 0) hits it at x = 16.4
    qpos, qvel = env.init_qpos.copy(), np.zeros_like(env.init_qvel)
    qpos[:2] = (14.0, 0.0)
    qvel[0] = 10.0
    env.set_state(qpos, qvel)
    for _ in range(20):
        env.step(np.zeros(8))
    assert env.xy[0] < 16.4
    env.set_task(4)  # now open
    env.set_state(qpos, qvel)
    for _ in range(20):
        env.step(np.zeros(8))
    assert env.xy[0] > 16.4


def test_maze_floor_covers_the_whole_arena():
    env = gym.make("AntMaze-v0").unwrapped
    env.reset(seed=0)
    env.set_task(4)
    qpos = env.init_qpos.copy()
    qpos[:2] = (46.0, 0.0)  # beyond gymnasium's 40 x 40 floor
    env.set_state(qpos, np.zeros_like(env.init_qvel))
    for _ in range(50):
        env.step(np.zeros(8))
    assert env.data.qpos[2] > 0.2


def test_maze_reward_is_velocity_toward_the_goal_and_joints_are_redrawn_every_200_steps():
    env = gym.make("AntMaze-v0").unwrapped
    env.reset(seed=0)
    env.set_task(4)  # goal (48, 0): east pays
    qpos, qvel = env.init_qpos.copy(), np.zeros_like(env.init_qvel)
    qvel[0] = 2.0
    env.set_state(qpos, qvel)
    assert env.step(np.zeros(8))[1] > 0
    qvel[0] = -2.0
    env.set_state(qpos, qvel)
    assert env.step(np.zeros(8))[1] < 0
    # the layout changes what pays: north pays in layout 0 (goal (8, 24)), not in layout 1 (goal (8, -24))
    qvel[:2] = (0.0, 2.0)
    rewards = {}
    for layout in (0, 1):
        env.set_task(layout)
        env.set_state(qpos, qvel)
        rewards[layout] = env.step(np.zeros(8))[1]
    assert rewards[0] > 0 > rewards[1]

    env.reset(seed=1)
    for _ in range(199):
        env.step(env.action_space.sample())
    xy_before = env.xy
    env.step(np.zeros(8))  # the 200th step redraws the joints, keeping x, y
    assert np.allclose(env.xy, xy_before, atol=0.2)
    assert abs(env.data.qpos[2] - env.init_qpos[2]) <= 0.1 + 1e-9 and np.allclose(env.data.qvel[:2], 0.0, atol=0.5)


def test_maze_held_out_layouts():
    env = gym.make("AntMaze-v0", held_out_tasks=[7, 8]).unwrapped
    env.reset(seed=0)
    assert env.held_out_tasks == (7, 8) and {env.sample_task() for _ in range(200)} == set(range(7))


@pytest.mark.parametrize("env_id", ANT_IDS)
def test_render_rgb_array_headless(env_id):
    env = gym.make(env_id, render_mode="rgb_array", width=96, height=96)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (96, 96, 3) and frame.dtype == np.uint8 and frame.std() > 0


def put(env, xy, velocity=(0.0, 0.0)):
    qpos, qvel = env.init_qpos.copy(), np.zeros_like(env.init_qvel)
    qpos[:2], qvel[:2] = xy, velocity
    env.set_state(qpos, qvel)


def test_obstacle_course_pays_only_in_the_goal_region():
    env = gym.make("AntObstacle-v0").unwrapped
    env.reset(seed=0)
    assert gym.spec("AntObstacle-v0").max_episode_steps == 2000 and env.tasks == (0,)
    for xy, paid in (((37.5, 37.5), 1.0), ((0.0, 0.0), 0.0), ((37.5, 30.0), 0.0), ((30.0, 37.5), 0.0)):
        put(env, xy)
        assert env.step(np.zeros(8))[1] == paid, xy
    with pytest.raises(ValueError, match="unknown task"):
        env.set_task(1)


def test_obstacle_course_pocket_is_closed():
    env = gym.make("AntObstacle-v0").unwrapped
    env.reset(seed=0)
    put(env, (27.5, 10.0), velocity=(10.0, 0.0))  # east, into the pocket's west wall at x = 30
    for _ in range(20):
        env.step(np.zeros(8))
    assert env.xy[0] < 30.0
    put(env, (35.0, 28.0), velocity=(0.0, -10.0))  # south, into the pocket's north wall at y = 25
    for _ in range(20):
        env.step(np.zeros(8))
    assert env.xy[1] > 25.0


def test_obstacle_course_enemy_chases_within_range_and_knocks_the_ant_back():
    env = gym.make("AntObstacle-v0").unwrapped
    env.reset(seed=0)
    put(env, (20.0, 20.0))  # out of range: the enemy stays at its post
    for _ in range(10):
        env.step(np.zeros(8))
    assert np.allclose(env.enemy_xy, env.ENEMY_POST)
    put(env, (0.0, 10.0))  # within 15 of the post: it comes, one unit per step on each axis
    env.step(np.zeros(8))
    assert np.allclose(env.enemy_xy, (0.0, 19.0), atol=1e-6)
    for _ in range(30):
        env.step(np.zeros(8))
    pushed = env.xy
    put(env, (20.0, 20.0))  # the same 31 still steps, out of the enemy's range
    for _ in range(31):
        env.step(np.zeros(8))
    still = env.xy - (20.0, 20.0)
    assert abs(still[1]) < 0.05 and pushed[1] < 10.0 - 0.3  # pushed back by the enemy


def test_obstacle_course_walls_hold_an_ant_the_enemy_throws():
    # the enemy's hit can throw the Ant several units high; the walls (5 high, as the original's) keep it in the arena
    env = gym.make("AntObstacle-v0").unwrapped
    env.reset(seed=0)
    qpos, qvel = env.init_qpos.copy(), np.zeros_like(env.init_qvel)
    qpos[:3], qvel[:3] = (0.0, 3.0, 3.5), (-15.0, -15.0, 3.0)  # high, flying toward the west and south walls
    env.set_state(qpos, qvel)
    for _ in range(40):
        env.step(np.zeros(8))
        assert env.xy.min() > -3.0, env.xy


def test_obstacle_course_enemy_hit_does_not_throw_the_ant_out():
    # a hit recorded on the course (seed 1's far-target walkers under a route master): the Ant near the edge of the
    # enemy's reach, the enemy coming at it. Moved a whole unit at once, the enemy landed inside the Ant and MuJoCo
    # threw it 13.6 high, over the walls and out of the arena; moved smoothly through the frames, it pushes it aside
    import mujoco

    recorded = np.load(pathlib.Path(__file__).parent / "data" / "ant_obstacle_enemy_hit.npz")
    env = gym.make("AntObstacle-v0").unwrapped
    env.reset(seed=0)
    kind = mujoco.mjtState.mjSTATE_INTEGRATION
    assert mujoco.mj_stateSize(env.model, kind) == recorded["state"].size, "the course's model changed: record again"
    mujoco.mj_setState(env.model, env.data, recorded["state"], kind)
    mujoco.mj_forward(env.model, env.data)
    env._steps = int(recorded["steps"])
    highest = 0.0
    for action in recorded["actions"]:
        env.step(action)
        highest = max(highest, env.data.qpos[2])
    assert highest < env.WALL_HEIGHT and np.all(env.xy > -3.0) and np.all(env.xy < 40.0), (highest, env.xy)
