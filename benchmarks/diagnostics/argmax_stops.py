"""
Why a MovementBandits sub-policy earns less alone with its most likely action than with sampled actions.

    python -m benchmarks.diagnostics.argmax_stops MODEL.zip [MODEL.zip ...] [--episodes 200] [--write]

For each saved MLSH model (``benchmarks/reproduce.py movement_bandits`` keeps them under ``<out>/models``) and
each sub-policy, on the task whose goal it walks to (the one where it earns more alone, sampled): its mean episode
reward alone with sampled actions and with its most likely action, the share of most-likely-action episodes that
never reach the reward disc, and, in those, where the agent comes to rest: its distance to the goal and the
probability the sub-policy gives to "stay" there. The page is ``docs/benchmarks/argmax_stops.md`` (``--write``).
"""

import pathlib
from typing import Any

import numpy as np

from benchmarks.experiments import EXPERIMENTS, models_arguments, models_page, publish, shown

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "benchmarks" / "argmax_stops.md"
SPEC = EXPERIMENTS["movement_bandits"]


def episodes(subpolicy: Any, task: int, deterministic: bool, n_episodes: int, seed: int) -> list[dict[str, float]]:
    """
    ``n_episodes`` episodes of ``subpolicy`` alone on ``task``.

    :return: Per episode: its reward, and where it ended: the distance to the paying goal and P(stay) there.
    """
    import torch as th

    from sb3_mlsh.envs.movement_bandits import MovementBanditsEnv

    env = MovementBanditsEnv()
    env.set_task(task)
    generator = th.Generator().manual_seed(seed)
    results = []
    for episode in range(n_episodes):
        obs, _ = env.reset(seed=seed + episode)
        total = 0.0
        for _ in range(SPEC.episode_steps):
            with th.no_grad():
                probs = subpolicy.get_distribution(th.as_tensor(obs[None])).distribution.probs[0]
            action = int(probs.argmax()) if deterministic else int(th.multinomial(probs, 1, generator=generator))
            obs, reward, *_ = env.step(action)
            total += float(reward)
        with th.no_grad():
            stay = float(subpolicy.get_distribution(th.as_tensor(obs[None])).distribution.probs[0, 0])
        distance = float(np.linalg.norm((obs[:2] - obs[2 + 2 * task : 4 + 2 * task]) * MovementBanditsEnv.ARENA))
        results.append(dict(reward=total, distance=distance, stay=stay))
    return results


def measure(path: pathlib.Path, n_episodes: int) -> list[str]:
    """:return: One table row per sub-policy of the model saved at ``path``."""
    import torch as th

    from sb3_mlsh import MLSH

    th.set_num_threads(1)
    model = MLSH.load(path, device="cpu")
    if model.policy.normalize_observations:
        raise SystemExit(f"{path}: normalises observations; this diagnostic feeds raw MovementBandits observations.")
    rows = []
    for k, subpolicy in enumerate(model.policy.subpolicies):
        sampled = {task: episodes(subpolicy, task, False, n_episodes, seed=1000) for task in SPEC.evaluation_tasks()}
        task = max(sampled, key=lambda t: np.mean([e["reward"] for e in sampled[t]]))
        argmax = episodes(subpolicy, task, True, n_episodes, seed=1000)
        missed = [e for e in argmax if e["reward"] == 0]
        where = (
            f"{np.median([e['distance'] for e in missed]):.0f} | {np.median([e['stay'] for e in missed]):.2f}"
            if missed
            else "- | -"
        )
        rows.append(
            f"| {shown(path)} | {k} | {task} | {np.mean([e['reward'] for e in sampled[task]]):.1f} "
            f"| {np.mean([e['reward'] for e in argmax]):.1f} | {len(missed) / n_episodes:.0%} | {where} |"
        )
    return rows


def main() -> None:
    args = models_arguments(__doc__, PAGE, 200, "episodes per measurement")
    rows = [row for path in args.models for row in measure(path, args.episodes)]
    page = models_page(
        "MovementBandits: where a sub-policy's most likely action stops",
        "argmax_stops.py",
        f"{args.episodes} episodes per measurement (the same start and goals for both ways of acting)",
        "Each sub-policy acts alone on the task whose goal it walks to (where it earns more with sampled actions). "
        "*Sampled*, *most likely*: mean episode reward (a policy that walks straight to the paying goal earns about "
        "44). *No reward*: the share of most-likely-action episodes that never enter the 50-unit reward disc; in "
        "those, where the agent rests at the end: the median distance to the goal and the median probability of "
        '"stay" there.',
        ["model", "sub-policy", "task", "sampled", "most likely", "no reward", "distance at rest", "P(stay) there"],
        rows,
    )
    publish(page, PAGE, args.write)


if __name__ == "__main__":
    main()
