"""
How much of PPO's clipped gradient the value loss takes, with the env's rewards and with them scaled.

    python -m benchmarks.diagnostics.gradient_share [--envs walk crawl two_walk two_walk_far] [--timesteps 80000]
        [--write]

SB3's PPO clips the norm of the whole gradient (policy loss, ``vf_coef`` times value loss, entropy) to
``max_grad_norm``. Where returns run into the hundreds (the Humanoid's alive bonus of 5 per step, the Ant's velocity
toward a far target) the value loss's gradient dwarfs the policy loss's, and the clip then shrinks the policy's
share of each step with it. For each env (``benchmarks/calibration.py``'s: walk and crawl alone, Ant TwoWalk with one
task fixed, with the paper's targets and with the far ones), SB3's PPO with the env's MLSH entry's sub-policy
settings (``calibration.py``'s ``package``) learns ``--timesteps`` steps with the env's rewards and again with
``VecNormalize``'s reward scaling; then, on its last rollout's minibatches, the norms of the gradients of the policy
loss and of ``vf_coef`` times the value loss, and the factor by which the clip scales the policy loss's gradient in a
step, ``min(1, max_grad_norm / norm of the sum)`` (medians over the minibatches). The page is
``docs/benchmarks/gradient_share.md`` (``--write``).
"""

import argparse
import pathlib
from typing import Any

import numpy as np

from benchmarks.calibration import learner_settings, make_calibration_env
from benchmarks.experiments import models_page, publish

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "benchmarks" / "gradient_share.md"
ENVS = ("walk", "crawl", "two_walk", "two_walk_far")


def gradient_norms(model: Any) -> tuple[float, float, float]:
    """
    :return: Over the minibatches of ``model``'s last rollout, the median norms of the policy loss's gradient and of
        ``vf_coef`` times the value loss's, and the median factor by which clipping scales a step's gradient.
    """
    import torch as th

    policy = model.policy
    policy.set_training_mode(True)
    clip_range = model.clip_range(model._current_progress_remaining)
    parameters = [p for p in policy.parameters() if p.requires_grad]

    def norm(loss: th.Tensor) -> float:
        grads = th.autograd.grad(loss, parameters, retain_graph=True, allow_unused=True)
        return float(th.linalg.vector_norm(th.stack([th.linalg.vector_norm(g) for g in grads if g is not None])))

    measured = []
    for data in model.rollout_buffer.get(model.batch_size):
        values, log_prob, _ = policy.evaluate_actions(data.observations, data.actions)
        advantages = (data.advantages - data.advantages.mean()) / (data.advantages.std() + 1e-8)
        ratio = th.exp(log_prob - data.old_log_prob)
        policy_loss = -th.min(advantages * ratio, advantages * th.clamp(ratio, 1 - clip_range, 1 + clip_range)).mean()
        value_loss = model.vf_coef * th.nn.functional.mse_loss(data.returns, values.flatten())
        measured.append((norm(policy_loss), norm(value_loss), norm(policy_loss + value_loss)))
    policy_norm, value_norm, total = np.median(np.asarray(measured), axis=0)
    return float(policy_norm), float(value_norm), float(min(1.0, model.max_grad_norm / total))


def measure(env_name: str, scaled: bool, timesteps: int, seed: int) -> str:
    """:return: The table row of one env, rewards scaled or not."""
    import torch as th
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    th.set_num_threads(1)
    n_envs, ppo, normalize = learner_settings("package", env_name)
    assert normalize is not None
    env = VecNormalize(make_vec_env(make_calibration_env(env_name), n_envs=n_envs, seed=seed), **normalize)
    env.norm_reward = scaled
    model = PPO("MlpPolicy", env, seed=seed, **ppo).learn(timesteps)
    policy_norm, value_norm, factor = gradient_norms(model)
    returns = float(np.mean(model.rollout_buffer.returns))
    env.close()
    return (
        f"| {env_name} | {'scaled' if scaled else 'as the env pays them'} | {returns:.2f} | {policy_norm:.3g} "
        f"| {value_norm:.3g} | {factor:.3g} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", choices=ENVS, default=list(ENVS))
    parser.add_argument("--timesteps", type=int, default=80_000, help="PPO's training steps before the measurement")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help=f"write the page {PAGE.relative_to(ROOT)}")
    args = parser.parse_args()
    rows = [measure(env, scaled, args.timesteps, args.seed) for env in args.envs for scaled in (False, True)]
    page = models_page(
        "How much of PPO's clipped gradient the value loss takes",
        "gradient_share.py",
        f"SB3's PPO with each env's MLSH entry's sub-policy settings after {args.timesteps} steps (seed {args.seed})",
        "*Mean return target*: the mean of the last rollout's returns (GAE's targets of the value function), in the "
        "units the learner sees; *policy loss* and *value loss*: the median norm of the gradient of PPO's clipped "
        "surrogate and of `vf_coef` times the value loss over the rollout's minibatches; *clip factor*: the median "
        "factor by which clipping the sum's norm to `max_grad_norm` scales a step's gradient, the policy's share "
        "included (1: not clipped). Adam divides each parameter's step by a running scale of its own gradients, so "
        "a steady factor matters less than one that changes as the returns grow.",
        ["env", "rewards", "mean return target", "policy loss", "value loss", "clip factor"],
        rows,
    )
    publish(page, PAGE, args.write)


if __name__ == "__main__":
    main()
