"""
Reproduce a paper experiment: MLSH, its ablations and the paper's baselines, all measured with the
paper's figure of merit (reward collected by a fresh learner during its first T steps on a task),
over several seeds. Writes a CSV, PNG plots and a markdown page.

    pip install "sb3-mlsh[reproduce]"
    python benchmarks/reproduce.py movement_bandits [--seeds 0 1] [--out docs/results]

Methods: MLSH (fresh master, sub-policies frozen); MLSH without warm-up (W = 0); MLSH with the
master acting every step (N = 1); shared policy (one PPO policy trained on the whole task
distribution for the same budget, then fine-tuned on each task); single policy (PPO from scratch
on each task). Runs go two at a time, one process each.
"""

import argparse
import csv
import multiprocessing
import pathlib
import platform
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

EXPERIMENTS: dict[str, dict[str, Any]] = {
    "movement_bandits": dict(
        env_id="MovementBandits-v0",
        tasks=[0, 1],
        meta_timesteps=1_600_000,
        adaptation_timesteps=20_000,
        episode_steps=50,
    ),
}
METHODS = ("mlsh", "mlsh_no_warmup", "mlsh_n1", "shared_policy", "single_policy")
LABELS = {
    "mlsh": "MLSH",
    "mlsh_no_warmup": "MLSH, no warm-up (W = 0)",
    "mlsh_n1": "MLSH, master every step (N = 1)",
    "shared_policy": "Shared policy, fine-tuned",
    "single_policy": "Single policy, from scratch",
}


@dataclass
class Run:
    method: str
    seed: int
    tasks: list[Any]
    total_rewards: list[float]
    final_returns: list[float]
    curves: list[tuple[list[int], list[float]]]
    usage: list[list[float]]
    divergence: float
    subpolicy_paths: list[list[list[float]]]
    seconds: float


def run(config: tuple[str, str, int, int, int]) -> Run:
    """One (method, seed): meta-train if the method needs it, then adapt to every task."""
    import torch as th
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_mlsh import MLSH, evaluate_adaptation
    from sb3_mlsh.baselines import TaskPerEpisode, shared_policy_transfer, single_policy
    from sb3_mlsh.demo import HYPERPARAMS, N_ENVS

    experiment, method, seed, meta_timesteps, adaptation_timesteps = config
    spec = EXPERIMENTS[experiment]
    th.set_num_threads(1)
    start = time.perf_counter()
    eval_env = make_vec_env(spec["env_id"], n_envs=N_ENVS, seed=seed + 100)
    common = dict(n_tasks=len(spec["tasks"]), adaptation_timesteps=adaptation_timesteps, seed=seed + 100, tasks=spec["tasks"])
    paths: list[list[list[float]]] = []
    if method.startswith("mlsh"):
        overrides = {"mlsh_no_warmup": {"warmup_iterations": 0}, "mlsh_n1": {"macro_duration": 1}}.get(method, {})
        env = make_vec_env(spec["env_id"], n_envs=N_ENVS, seed=seed)
        model = MLSH("MlpPolicy", env, seed=seed, **{**HYPERPARAMS, **overrides})
        model.learn(meta_timesteps)
        result = evaluate_adaptation(model, eval_env, n_eval_episodes=48, **common)
        paths = subpolicy_paths(model, spec["env_id"], seed)
    elif method == "shared_policy":
        env = make_vec_env(spec["env_id"], n_envs=N_ENVS, seed=seed, wrapper_class=TaskPerEpisode)
        ppo = dict(n_steps=HYPERPARAMS["n_steps"], learning_rate=HYPERPARAMS["learning_rate"], gae_lambda=0.98)
        shared = PPO("MlpPolicy", env, seed=seed, **ppo).learn(meta_timesteps)
        result = shared_policy_transfer(shared, eval_env, n_eval_episodes=48, **common)
    else:
        result = single_policy(eval_env, n_eval_episodes=48, n_steps=HYPERPARAMS["n_steps"], gae_lambda=0.98, **common)
    assert result.final_returns is not None
    return Run(
        method,
        seed,
        list(result.tasks),
        result.total_rewards.tolist(),
        result.final_returns.tolist(),
        [(steps.tolist(), returns.tolist()) for steps, returns in result.curves],
        result.usage.tolist(),
        result.divergence,
        paths,
        time.perf_counter() - start,
    )


def subpolicy_paths(model: Any, env_id: str, seed: int) -> list[list[list[float]]]:
    """For a 2-D task: the agent's path, in arena units, when each sub-policy acts alone for a whole episode."""
    import gymnasium as gym

    paths = []
    for k in range(model.n_subpolicies):
        env = gym.make(env_id)
        obs, _ = env.reset(seed=seed + 1000)  # the same goals for every sub-policy
        state = (np.array([k]), np.array([10**9]))
        path, done = [obs[:2] * 400], False
        while not done:
            action, state = model.predict(obs[None], state=state, deterministic=True)
            obs, _, terminated, truncated, _ = env.step(int(action[0]))
            path.append(obs[:2] * 400)
            done = terminated or truncated
        paths.append([list(map(float, point)) for point in path])
    goals = (env.unwrapped._goals).tolist()
    return [*paths, goals]


def binned_curve(runs: list[Run], adaptation_timesteps: int, bins: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean episode return per step bin over every task and seed, with a 95 % normal band over the seed-task runs."""
    edges = np.linspace(0, adaptation_timesteps, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    per_run = []
    for item in runs:
        for steps, returns in item.curves:
            steps_arr, returns_arr = np.asarray(steps), np.asarray(returns)
            per_run.append(
                [
                    returns_arr[(steps_arr > lo) & (steps_arr <= hi)].mean()
                    for lo, hi in zip(edges[:-1], edges[1:], strict=True)
                ]
            )
    values = np.asarray(per_run)
    mean = np.nanmean(values, axis=0)
    half = 1.96 * np.nanstd(values, axis=0) / np.sqrt(max(len(values), 1))
    return centres, mean, half


def targets(runs: list[Run], methods: list[str], one_goal: float, episodes_in_t: float) -> list[str]:
    """The moving-bandits claims of the paper, checked against the measured runs."""

    def r_per_episode(method: str) -> float:
        return float(np.mean([np.mean(r.total_rewards) for r in runs if r.method == method]) / episodes_in_t)

    lines = []
    if "mlsh" in methods:
        ratio = r_per_episode("mlsh") / one_goal
        verdict = "met" if ratio >= 1.8 else "**not met**"
        lines.append(
            f"- MLSH's fresh master earns {ratio:.2f}x the always-goal-0 reference during adaptation "
            f"(aim: >= 1.8x): {verdict}."
        )
        for baseline in ("single_policy", "shared_policy"):
            if baseline in methods:
                better = r_per_episode("mlsh") > r_per_episode(baseline)
                verdict = "yes" if better else "**no**"
                lines.append(f"- MLSH beats {LABELS[baseline].lower()} at the same T: {verdict}.")
        separated = []
        for item in (r for r in runs if r.method == "mlsh"):
            *paths, goals = item.subpolicy_paths
            ends = [int(np.argmin([np.linalg.norm(np.subtract(path[-1], goal)) for goal in goals])) for path in paths]
            reached = all(
                np.linalg.norm(np.subtract(path[-1], goals[end])) < 50 for path, end in zip(paths, ends, strict=True)
            )
            separated.append(reached and len(set(ends)) == len(ends))
        lines.append(f"- The sub-policies go to different goals in {sum(separated)} of {len(separated)} seeds.")
    if "shared_policy" in methods:
        ratio = r_per_episode("shared_policy") / one_goal
        lines.append(
            f"- The shared policy earns {ratio:.2f}x the always-goal-0 reference (the paper: about half the optimum, 1x)."
        )
    return lines


def write_index(results: pathlib.Path) -> None:
    """``docs/results.md``: every experiment page in ``results``, as this script wrote it."""
    sections = [page.read_text().replace("](", f"]({results.name}/") for page in sorted(results.glob("*.md"))]
    header = [
        "# Results",
        "",
        "Generated by `benchmarks/reproduce.py` (one section per experiment it ran); nothing here is typed by hand.",
        "Experiments not listed here have not been run on this 2-core machine yet.",
        "",
        "",
    ]
    (results.parent / "results.md").write_text("\n".join(header) + "\n".join(sections))


def write_outputs(experiment: str, runs: list[Run], args: argparse.Namespace, seconds: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sb3_mlsh.demo import scripted_return

    spec = EXPERIMENTS[experiment]
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    episodes_in_t = args.adaptation_timesteps / spec["episode_steps"]

    with open(out / f"{experiment}.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "seed", "task", "reward_first_T", "reward_per_episode_first_T", "final_return", "seconds"])
        for item in runs:
            for task, total, final in zip(item.tasks, item.total_rewards, item.final_returns, strict=True):
                writer.writerow([item.method, item.seed, task, total, total / episodes_in_t, final, round(item.seconds)])

    methods = [method for method in METHODS if method in args.methods]
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for method in methods:
        centres, mean, half = binned_curve([r for r in runs if r.method == method], args.adaptation_timesteps)
        axis.plot(centres, mean, label=LABELS[method])
        axis.fill_between(centres, mean - half, mean + half, alpha=0.2)
    oracle = scripted_return(lambda task: task, n_episodes=48, seed=10)
    one_goal = scripted_return(lambda task: 0, n_episodes=48, seed=10)
    axis.axhline(oracle, color="grey", linestyle="--", label="scripted: walks to the paying goal")
    axis.axhline(one_goal, color="grey", linestyle=":", label="scripted: always goal 0")
    axis.set_xlabel("adaptation steps on the task")
    axis.set_ylabel("episode return")
    axis.set_title(f"{spec['env_id']}: learning a new task (mean, 95 % band)")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out / f"{experiment}_adaptation.png", dpi=110)

    mlsh_runs = [r for r in runs if r.method == "mlsh"]
    figure, axes = plt.subplots(1, len(mlsh_runs), figsize=(4 * len(mlsh_runs), 4), squeeze=False)
    for axis, item in zip(axes[0], mlsh_runs, strict=True):
        *paths, goals = item.subpolicy_paths
        for k, path in enumerate(paths):
            points = np.asarray(path)
            axis.plot(points[:, 0], points[:, 1], marker=".", label=f"sub-policy {k}")
        for index, goal in enumerate(goals):
            axis.add_patch(plt.Circle(goal, 50, alpha=0.3, color="C2" if index == 0 else "C3"))
            axis.annotate(f"goal {index}", goal, ha="center")
        axis.set_xlim(-50, 450)
        axis.set_ylim(-50, 450)
        axis.set_aspect("equal")
        axis.set_title(f"seed {item.seed}: where each sub-policy goes")
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out / f"{experiment}_subpolicies.png", dpi=110)

    figure, axis = plt.subplots(figsize=(6, 3.5))
    width = 0.8 / max(len(mlsh_runs), 1)
    for index, item in enumerate(mlsh_runs):
        usage = np.asarray(item.usage)
        for k in range(usage.shape[1]):
            axis.bar(np.arange(len(item.tasks)) + index * width, usage[:, k], width, bottom=usage[:, :k].sum(axis=1),
                     color=f"C{k}", label=f"sub-policy {k}" if index == 0 else None)  # fmt: skip
    axis.set_xticks(np.arange(len(mlsh_runs[0].tasks)), [f"task {t}" for t in mlsh_runs[0].tasks])
    axis.set_ylabel("fraction of adaptation steps")
    axis.set_title("MLSH sub-policy usage per task (one bar per seed)")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out / f"{experiment}_usage.png", dpi=110)

    lines = [
        f"## {spec['env_id']}",
        "",
        f"Command: `python benchmarks/reproduce.py {' '.join(sys.argv[1:])}`  ",
        f"Machine: {platform.machine()}, {multiprocessing.cpu_count()} cores, no GPU; two runs at a time, one thread each.  ",
        f"Seeds: {', '.join(map(str, args.seeds))}. Meta-training / shared-policy budget: {args.meta_timesteps} steps. "
        f"Adaptation: T = {args.adaptation_timesteps} steps per task, tasks {spec['tasks']}.  ",
        f"Wall-clock: {seconds / 60:.1f} min in all.",
        "",
        "R is the reward a fresh learner collects during its first T steps on a task (the paper's figure of merit), "
        'shown per episode; "after" is the adapted learner\'s mean return in 48 deterministic episodes. '
        "Means over seeds and tasks, with the range over seeds in brackets.",
        "",
        "| method | R per episode, first T steps | after adaptation | R / always-goal-0 |",
        "|---|---|---|---|",
    ]
    for method in methods:
        items = [r for r in runs if r.method == method]
        per_seed = np.array([np.mean(r.total_rewards) / episodes_in_t for r in items])
        after = np.array([np.mean(r.final_returns) for r in items])
        lines.append(
            f"| {LABELS[method]} | {per_seed.mean():.1f} [{per_seed.min():.1f}, {per_seed.max():.1f}] "
            f"| {after.mean():.1f} [{after.min():.1f}, {after.max():.1f}] | {per_seed.mean() / one_goal:.2f} |"
        )
    lines += [
        f"| scripted: walks to the paying goal | {oracle:.1f} | | {oracle / one_goal:.2f} |",
        f"| scripted: always goal 0 | {one_goal:.1f} | | 1.00 |",
        "",
        "Against the paper's claims (computed from the numbers above):",
        "",
        *targets(runs, methods, one_goal, episodes_in_t),
        "",
        "MLSH sub-policy divergence (mean KL between sub-policies on visited states) per seed: "
        + ", ".join(f"{r.divergence:.2f}" for r in mlsh_runs)
        + ".",
        "",
        f"![adaptation curves]({experiment}_adaptation.png)",
        "",
        f"![where each sub-policy goes]({experiment}_subpolicies.png)",
        "",
        f"![sub-policy usage]({experiment}_usage.png)",
        "",
    ]
    (out / f"{experiment}.md").write_text("\n".join(lines))
    write_index(out)
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", choices=sorted(EXPERIMENTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--meta-timesteps", type=int, default=None)
    parser.add_argument("--adaptation-timesteps", type=int, default=None)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--out", default="docs/results")
    args = parser.parse_args()
    spec = EXPERIMENTS[args.experiment]
    args.meta_timesteps = args.meta_timesteps or spec["meta_timesteps"]
    args.adaptation_timesteps = args.adaptation_timesteps or spec["adaptation_timesteps"]
    configs = [
        (args.experiment, method, seed, args.meta_timesteps, args.adaptation_timesteps)
        for method in args.methods
        for seed in args.seeds
    ]
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        runs = pool.map(run, configs, chunksize=1)
    write_outputs(args.experiment, runs, args, time.perf_counter() - start)


if __name__ == "__main__":
    main()
