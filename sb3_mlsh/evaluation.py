"""The paper's figure of merit: how much reward a fresh master earns on a task with the sub-policies frozen."""

import io
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm, maybe_make_env
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.type_aliases import GymEnv
from stable_baselines3.common.vec_env import VecEnv, VecNormalize, unwrap_vec_normalize

from sb3_mlsh.common.diagnostics import subpolicy_divergence
from sb3_mlsh.common.observations import concatenate, stack, take
from sb3_mlsh.common.tasks import finite_tasks, has_task_protocol, sample_task, set_task
from sb3_mlsh.mlsh import MLSH

MAX_STORED_OBSERVATIONS = 2000


@dataclass
class AdaptationResult:
    """
    What ``evaluate_adaptation`` measured, one entry per evaluated task.

    :param tasks: The tasks, in order.
    :param total_rewards: Reward collected during the first ``adaptation_timesteps`` steps of
        master-only learning on each task (summed over all envs): the paper's figure of merit. The env's
        own rewards (as ``Monitor`` records them), whatever ``VecNormalize`` scaling the learner saw.
    :param per_episode_rewards: The same per episode, the unit the results pages use: ``total_rewards``
        divided by the episodes those steps hold (the steps over the mean length of the episodes that
        ended in them; with none ended, the steps per env).
    :param curves: Per task, ``(timesteps, episode_returns)``: the return of each episode that ended
        during adaptation and the step count at which it ended.
    :param episode_ends: Per task, the last observation of each episode of ``curves``, one row per
        episode, in the same order (e.g. whether KeyDoor's agent held the key as that episode ended).
    :param usage: ``[task, k]``: fraction of the adaptation steps on which sub-policy ``k`` acted.
    :param divergence: Mean KL divergence between the sub-policies' action distributions on the
        states visited during adaptation (near 0: the sub-policies act alike).
    :param final_returns: Per task, the adapted hierarchy's mean episode return in a deterministic
        evaluation after adaptation (``None`` unless ``n_eval_episodes > 0``).
    :param final_observations: Per task, the last observation of each episode of that evaluation, one
        row per episode (e.g. whether KeyDoor's agent holds the key at the end; ``None`` unless
        ``n_eval_episodes > 0``).
    :param final_episodes: Per task, each episode of that evaluation step by step, as ``(observations,
        subpolicies)``: the observation each action was taken at, one row per step, and for MLSH the
        sub-policy that took it (``None`` for other learners): which sub-policy acts where once adapted
        (``None`` unless ``n_eval_episodes > 0``).
    :param success_rates: Per task, the share of the episodes that ended during adaptation with
        ``info["is_success"]`` true (SB3's convention; e.g. Meta-World's success), for envs that report it
        (else ``None``).
    :param confidence: Level of ``confidence_interval``.
    """

    tasks: list[Any]
    total_rewards: np.ndarray
    per_episode_rewards: np.ndarray
    curves: list[tuple[np.ndarray, np.ndarray]]
    usage: np.ndarray
    divergence: float
    final_returns: np.ndarray | None = None
    final_observations: list[np.ndarray | dict[str, np.ndarray]] | None = None
    final_episodes: list[list[tuple[Any, np.ndarray | None]]] | None = None
    episode_ends: list[np.ndarray | dict[str, np.ndarray]] = field(default_factory=list)
    success_rates: np.ndarray | None = None
    confidence: float = 0.95
    _seed: int = field(default=0, repr=False)
    _observations: np.ndarray | dict[str, np.ndarray] = field(default_factory=lambda: np.zeros((0,)), repr=False)

    @property
    def mean(self) -> float:
        """Mean of ``total_rewards`` over the tasks: reward summed over the first T steps (all envs')."""
        return float(np.mean(self.total_rewards))

    @property
    def confidence_interval(self) -> tuple[float, float]:
        """Percentile bootstrap interval (10,000 resamples) of ``mean``, at level ``confidence``."""
        return self._interval(self.total_rewards)

    @property
    def per_episode(self) -> float:
        """Mean of ``per_episode_rewards`` over the tasks: R per episode, as the results pages give it."""
        return float(np.mean(self.per_episode_rewards))

    @property
    def per_episode_interval(self) -> tuple[float, float]:
        """Percentile bootstrap interval (10,000 resamples) of ``per_episode``, at level ``confidence``."""
        return self._interval(self.per_episode_rewards)

    def _interval(self, values: np.ndarray) -> tuple[float, float]:
        if len(values) == 1:
            return (float(values[0]), float(values[0]))
        rng = np.random.default_rng(self._seed)
        resamples = rng.choice(values, size=(10_000, len(values)), replace=True).mean(axis=1)
        tail = (1.0 - self.confidence) / 2 * 100
        low, high = np.percentile(resamples, [tail, 100 - tail])
        return float(low), float(high)


class _AdaptationRecorder(BaseCallback):
    """
    Counts the first ``timesteps`` steps' rewards and episode ends (and, for MLSH, the active
    sub-policies and the visited states); then stops training.
    """

    def __init__(self, timesteps: int) -> None:
        super().__init__()
        self.timesteps = timesteps
        self.steps = 0
        self.total_reward = 0.0
        self.episode_steps: list[int] = []
        self.episode_returns: list[float] = []
        self.episode_lengths: list[int] = []
        self.successes: list[bool] = []  # where the env reports info["is_success"] as episodes end
        self.episode_ends: list[Any] = []  # the last observation of each of those episodes
        self.usage: np.ndarray | None = None
        self.observations: list[Any] = []  # batches of observations (dicts of arrays for Dict spaces)
        self.n_observations = 0

    def _on_step(self) -> bool:
        rewards, infos, obs = self.locals["rewards"], self.locals["infos"], self.locals.get("last_inputs")
        normalizer = unwrap_vec_normalize(self.training_env)
        if normalizer is not None:  # the env's own rewards, not those VecNormalize scaled for the learner
            rewards = normalizer.get_original_reward()
        n_envs = len(rewards)
        within = min(n_envs, self.timesteps - self.steps)  # envs whose step is within the first T
        self.total_reward += float(np.sum(rewards[:within]))
        if isinstance(self.model, MLSH):
            active = self.model._macro_state.active  # type: ignore[union-attr]
            counts = np.bincount(active[:within], minlength=self.model.n_subpolicies)
            self.usage = counts if self.usage is None else self.usage + counts
            if self.n_observations < MAX_STORED_OBSERVATIONS:
                self.observations.append(take(obs, slice(0, within)))
                self.n_observations += within
        for index, info in enumerate(infos[:within]):
            if "episode" in info:
                self.episode_steps.append(self.steps + index + 1)
                self.episode_returns.append(float(info["episode"]["r"]))
                self.episode_lengths.append(int(info["episode"]["l"]))
                if "is_success" in info:
                    self.successes.append(bool(info["is_success"]))
                self.episode_ends.append(info["terminal_observation"])
        self.steps += within
        return self.steps < self.timesteps

    def per_episode_reward(self, n_envs: int) -> float:
        """``total_reward`` per episode: over the episodes the steps hold (see ``AdaptationResult``)."""
        length = np.mean(self.episode_lengths) if self.episode_lengths else self.steps / n_envs
        return self.total_reward * float(length) / max(self.steps, 1)


def copier(model: BaseAlgorithm) -> Callable[..., Any]:
    """
    :param model: A model to copy (as it is now; later changes to it do not reach the copies).
    :return: A function that loads a new copy, quietly (no output, no tensorboard), with the keyword
        arguments it is given (``env``, ``seed``, ...), as ``load`` takes them.
    """
    saved = io.BytesIO()
    model.save(saved)

    def load_copy(**kwargs: Any) -> Any:
        saved.seek(0)
        return type(model).load(saved, device=model.device, verbose=0, tensorboard_log=None, **kwargs)

    return load_copy


def _choose_tasks(env: VecEnv, n_tasks: int, rng: np.random.Generator) -> list[Any]:
    """
    The env's held-out tasks where it has some, else its finite task set, each enumerated in random
    order (every task once before any repeats); else ``n_tasks`` draws of ``sample_task``.
    """
    held_out: Sequence[Any] = env.get_attr("held_out_tasks")[0] if env.has_attr("held_out_tasks") else ()
    candidates = list(held_out) if len(held_out) > 0 else finite_tasks(env)
    if candidates:
        rounds = -(-n_tasks // len(candidates))
        order = np.concatenate([rng.permutation(len(candidates)) for _ in range(rounds)])
        return [candidates[int(i)] for i in order[:n_tasks]]
    return [sample_task(env, rng) for _ in range(n_tasks)]


def adaptation_seeds(seed: int | None, n_tasks: int, n_envs: int) -> list[int]:
    """
    :param seed: The evaluation's seed.
    :param n_tasks: Number of tasks.
    :param n_envs: Number of envs.
    :return: Per task, the seed of its learner; env ``i`` of task ``j`` is seeded with ``seeds[j] + i``
        (``VecEnv.seed``), so that no two (task, env) pairs share a random stream. The first seed is
        hashed from ``seed`` (``numpy.random.SeedSequence``), so different evaluation seeds do not
        share streams either, except by chance.
    """
    start = int(np.random.SeedSequence(0 if seed is None else seed).generate_state(1)[0]) % 2**31
    return [start + j * n_envs for j in range(n_tasks)]


class _EvaluationRecorder:
    """
    ``evaluate_policy``'s per-step callback: the last observation of each episode it counts (``ends``) and each such
    episode step by step (``episodes``: the observations acted on and, for MLSH, the active sub-policy of each step,
    from ``predict``'s state).
    """

    def __init__(self) -> None:
        self.ends: list[Any] = []
        self.episodes: list[tuple[Any, np.ndarray | None]] = []
        self._steps: dict[int, list[tuple[Any, int | None]]] = {}

    def __call__(self, local: dict[str, Any], _: dict[str, Any]) -> None:
        i, states = local["i"], local["states"]
        subpolicy = int(states[0][i]) if isinstance(local["model"], MLSH) else None  # its state: (active, steps left)
        self._steps.setdefault(i, []).append((take(local["observations"], i), subpolicy))
        # evaluate_policy counts an episode where it ends, as Monitor says when the env is wrapped in one
        if local["done"] and ("episode" in local["info"] or not local["is_monitor_wrapped"]):
            steps = self._steps.pop(i)
            self.ends.append(local["info"]["terminal_observation"])
            subpolicies = [k for _, k in steps]
            chosen = None if subpolicies[0] is None else np.array(subpolicies, dtype=np.int64)
            self.episodes.append((stack([obs for obs, _ in steps]), chosen))


def run_adaptation(
    make_learner: Callable[[VecEnv, int], BaseAlgorithm],
    env: GymEnv | str,
    n_tasks: int,
    adaptation_timesteps: int,
    seed: int | None = None,
    tasks: Sequence[Any] | None = None,
    n_eval_episodes: int = 0,
) -> AdaptationResult:
    """
    The adaptation protocol, for any learner: for each task, set it on the env, make a learner with
    ``make_learner(env, seed)`` (seeds from ``adaptation_seeds``: every (task, env) pair has its own
    random stream), let it learn for exactly ``adaptation_timesteps`` environment steps, and record
    what it collected. ``evaluate_adaptation`` runs it for MLSH; the baselines of
    ``sb3_mlsh.baselines`` run it for PPO, so that every method is measured the same way.
    The global random state is left untouched.

    :param make_learner: Builds the learner of one task, given the env (its task set) and a seed.
    :param env: The evaluation env (id, ``gym.Env`` or ``VecEnv``) with the task protocol.
    :param n_tasks: Number of tasks.
    :param adaptation_timesteps: T, environment steps of learning per task.
    :param seed: Seed of the task choice, the envs and the learners.
    :param tasks: Explicit tasks (else held-out or sampled ones, see ``evaluate_adaptation``).
    :param n_eval_episodes: If > 0, also evaluate each adapted learner deterministically.
    :return: An ``AdaptationResult`` (``usage`` and ``divergence`` are MLSH's only: empty and NaN otherwise).
    """
    if n_tasks < 1:
        raise ValueError(f"evaluate_adaptation: n_tasks={n_tasks}; use an integer >= 1.")
    if adaptation_timesteps < 1:
        raise ValueError(f"evaluate_adaptation: adaptation_timesteps={adaptation_timesteps}; use an integer >= 1.")
    vec_env = MLSH._wrap_env(maybe_make_env(env, 0))
    if not has_task_protocol(vec_env):
        raise ValueError(
            "evaluate_adaptation: the env has no task protocol (sample_task(), set_task(task), task); "
            "wrap it in sb3_mlsh.TaskSamplerWrapper."
        )
    random_state = (random.getstate(), np.random.get_state(), th.random.get_rng_state())
    try:
        base_seed = 0 if seed is None else seed
        if tasks is None:
            chosen = _choose_tasks(vec_env, n_tasks, np.random.default_rng(base_seed))
        else:
            chosen = [tasks[i % len(tasks)] for i in range(n_tasks)]
        totals, per_episode, curves, usage, observations, final_returns, final_observations = [], [], [], [], [], [], []
        final_episodes: list[list[tuple[Any, np.ndarray | None]]] = []
        successes: list[float] = []
        episode_ends: list[Any] = []
        for task, learner_seed in zip(chosen, adaptation_seeds(seed, n_tasks, vec_env.num_envs), strict=True):
            set_task(vec_env, task)
            learner = make_learner(vec_env, learner_seed)
            recorder = _AdaptationRecorder(adaptation_timesteps)
            learner.learn(adaptation_timesteps, callback=recorder)
            totals.append(recorder.total_reward)
            per_episode.append(recorder.per_episode_reward(vec_env.num_envs))
            successes.append(float(np.mean(recorder.successes)) if recorder.successes else float("nan"))
            curves.append((np.array(recorder.episode_steps), np.array(recorder.episode_returns)))
            episode_ends.append(stack(recorder.episode_ends) if recorder.episode_ends else np.zeros((0,)))
            if recorder.usage is not None:
                usage.append(recorder.usage / max(recorder.usage.sum(), 1))
            observations.extend(recorder.observations)
            if n_eval_episodes > 0:
                evaluation = _EvaluationRecorder()
                learned_in = learner.get_env()  # the env itself, or a wrapper the learner made (``VecNormalize``)
                assert learned_in is not None
                if isinstance(learned_in, VecNormalize):
                    learned_in.training = False  # statistics frozen while evaluating, as SB3's EvalCallback does
                final_returns.append(
                    evaluate_policy(
                        learner, learned_in, n_eval_episodes=n_eval_episodes, deterministic=True, callback=evaluation
                    )[0]
                )
                final_observations.append(stack(evaluation.ends))
                final_episodes.append(evaluation.episodes)
    finally:
        random.setstate(random_state[0])
        np.random.set_state(random_state[1])
        th.random.set_rng_state(random_state[2])
    return AdaptationResult(
        chosen,
        np.array(totals),
        np.array(per_episode),
        curves,
        np.array(usage) if usage else np.zeros((len(chosen), 0)),
        float("nan"),
        final_returns=np.array(final_returns) if n_eval_episodes > 0 else None,
        final_observations=final_observations if n_eval_episodes > 0 else None,
        final_episodes=final_episodes if n_eval_episodes > 0 else None,
        episode_ends=episode_ends,
        success_rates=np.array(successes) if not np.isnan(successes).all() else None,
        _seed=base_seed,
        _observations=concatenate(observations) if observations else np.zeros((0,)),
    )


def evaluate_adaptation(
    model: MLSH,
    env: GymEnv | str,
    n_tasks: int,
    adaptation_timesteps: int,
    seed: int | None = None,
    tasks: Sequence[Any] | None = None,
    n_eval_episodes: int = 0,
    master_exploration: float | None = None,
) -> AdaptationResult:
    """
    The paper's meta-test. For each of ``n_tasks`` tasks: copy the model, keep its sub-policies
    frozen, start a fresh master, train the master alone for ``adaptation_timesteps`` environment
    steps, and record the reward collected during those steps and the episode returns. ``model``
    is not changed, nor is the global random state.

    Tasks are ``tasks`` if given; else the env's ``held_out_tasks`` where it has some (e.g.
    ``FourRooms-v0`` or ``AntMaze-v0`` made with ``held_out_tasks=...``); else its finite task set
    (``train_tasks`` or ``tasks``); either is enumerated in a random order, each task once before any
    repeats. Otherwise tasks are drawn with the env's ``sample_task(rng)``. Whatever the model's
    number of task groups, each task is learned by one fresh master on all of ``env``'s envs.

    :param model: A (meta-)trained MLSH model.
    :param env: The evaluation env (id, ``gym.Env`` or ``VecEnv``) with the task protocol.
    :param n_tasks: Number of tasks to evaluate on.
    :param adaptation_timesteps: T, environment steps of master-only learning per task.
    :param seed: Seed of the task draws, the envs and the fresh masters.
    :param tasks: Explicit tasks (``n_tasks`` of them are used, cycling).
    :param n_eval_episodes: If > 0, also evaluate each adapted hierarchy deterministically for this
        many episodes (``AdaptationResult.final_returns``).
    :param master_exploration: Probability that the fresh master's choice is replaced by a random
        sub-policy, during adaptation and evaluation (``None``: the model's own ``master_exploration``).
    :return: An ``AdaptationResult``.
    """
    load_copy = copier(model)
    exploration = model.master_exploration if master_exploration is None else master_exploration

    def fresh_master(vec_env: VecEnv, learner_seed: int) -> MLSH:
        return load_copy(
            env=vec_env,
            seed=learner_seed,
            train_subpolicies=False,
            n_task_groups=1,
            reset_master_on_load=True,
            master_exploration=exploration,
        )

    result = run_adaptation(fresh_master, env, n_tasks, adaptation_timesteps, seed, tasks, n_eval_episodes)
    result.divergence = subpolicy_divergence(model.policy, result._observations)
    return result
