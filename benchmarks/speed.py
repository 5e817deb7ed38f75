"""
Wall-clock speed of MLSH against SB3's PPO at the same work, and where each spends its time.

    python benchmarks/speed.py [--repeats 3] [--cases bandits ant workers] [--scale 1.0] [--write]

Each run is a fresh process with one torch thread, and the runs of a case alternate (PPO, MLSH
variants, PPO, ...), ``--repeats`` times; the tables give the median and the range. PPO and MLSH
share the networks (2 x 64 tanh, separate policy and value networks), n_envs, n_steps, batch size
(64) and epochs (10). "Same work" is MLSH with W = 0: its sub-policies are updated every iteration,
on all the steps, as PPO's policy is (MLSH also updates its master, on the macro transitions).

Per environment step, each run reports the time spent stepping the envs (``env``), collecting
outside ``env.step`` (inference, buffer writes, MLSH's bookkeeping: ``collect``), in updates
(``update``), and the peak resident memory of the training process.

Cases: ``bandits`` (MovementBandits-v0, 8 envs, K = 2, N = 10; also K = 8 and the paper's W = 9, U = 1),
``ant`` (AntTwoWalk-v0, 4 envs, K = 2, N = 200; also K = 8, and warm-up-only iterations, from which
the paper's W = 20, U = 40 schedule is derived), ``workers`` (MLSH on AntTwoWalk-v0 with its envs
in this process, ``DummyVecEnv``, or in worker processes, ``SubprocVecEnv``). ``--write`` saves the
tables to docs/benchmarks/speed.md.
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "benchmarks" / "speed.md"

BANDITS = dict(env_id="MovementBandits-v0", n_envs=8, n_steps=250, timesteps=20_000)
ANT = dict(env_id="AntTwoWalk-v0", n_envs=4, n_steps=500, timesteps=10_000)
MLSH_BANDITS = dict(n_subpolicies=2, macro_duration=10, warmup_iterations=0, joint_iterations=1)
MLSH_ANT = dict(n_subpolicies=2, macro_duration=200, warmup_iterations=0, joint_iterations=1)
# Warm-up only: the sub-policies are never updated within the run
WARMUP_ONLY = dict(warmup_iterations=10**6, joint_iterations=1)
# MLSH's default optimizer (Adam's fused implementation), given to PPO: the same update, compared like for like
FUSED_ADAM = dict(optimizer_kwargs=dict(eps=1e-5, fused=True))

CASES: dict[str, list[dict[str, Any]]] = {
    "bandits": [
        dict(label="PPO", algo="PPO", **BANDITS),
        dict(label="PPO, fused Adam (as MLSH)", algo="PPO", policy_kwargs=FUSED_ADAM, **BANDITS),
        dict(label="MLSH, same work (W = 0), K = 2", algo="MLSH", mlsh=MLSH_BANDITS, **BANDITS),
        dict(label="MLSH, same work (W = 0), K = 8", algo="MLSH", mlsh={**MLSH_BANDITS, "n_subpolicies": 8}, **BANDITS),
        dict(
            label="MLSH, the paper's schedule (W = 9, U = 1), K = 2",
            algo="MLSH",
            mlsh={**MLSH_BANDITS, "warmup_iterations": 9, "joint_iterations": 1},
            **BANDITS,
        ),
    ],
    "ant": [
        dict(label="PPO", algo="PPO", **ANT),
        dict(label="PPO, fused Adam (as MLSH)", algo="PPO", policy_kwargs=FUSED_ADAM, **ANT),
        dict(label="MLSH, same work (W = 0), K = 2", algo="MLSH", mlsh=MLSH_ANT, **ANT),
        dict(label="MLSH, same work (W = 0), K = 8", algo="MLSH", mlsh={**MLSH_ANT, "n_subpolicies": 8}, **ANT),
        dict(label="MLSH, warm-up iterations only, K = 2", algo="MLSH", mlsh={**MLSH_ANT, **WARMUP_ONLY}, **ANT),
    ],
    "workers": [
        dict(label="MLSH, W = 0, 4 envs in this process (DummyVecEnv)", algo="MLSH", mlsh=MLSH_ANT, **ANT),
        dict(
            label="MLSH, W = 0, 4 envs in 4 worker processes (SubprocVecEnv)",
            algo="MLSH",
            mlsh=MLSH_ANT,
            vec_env="subproc",
            **ANT,
        ),
        dict(label="MLSH, W = 0, DummyVecEnv, 2 torch threads", algo="MLSH", mlsh=MLSH_ANT, threads=2, **ANT),
        dict(
            label="MLSH, W = 0, SubprocVecEnv, 2 torch threads",
            algo="MLSH",
            mlsh=MLSH_ANT,
            vec_env="subproc",
            threads=2,
            **ANT,
        ),
    ],
}


def measure(config: dict[str, Any]) -> dict[str, float]:
    """One run (in this process): a first iteration to warm up, then ``timesteps`` steps, timed."""
    import resource

    import torch as th
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv, VecEnvWrapper

    from sb3_mlsh import MLSH

    th.set_num_threads(config.get("threads", 1))
    timers = dict(env=0.0, collect=0.0, update=0.0)

    class TimedVecEnv(VecEnvWrapper):
        """Adds the time spent in the envs' ``step`` and ``reset`` to ``timers["env"]``."""

        def reset(self):  # type: ignore[no-untyped-def]
            start = time.perf_counter()
            obs = self.venv.reset()
            timers["env"] += time.perf_counter() - start
            return obs

        def step_async(self, actions):  # type: ignore[no-untyped-def]
            start = time.perf_counter()
            self.venv.step_async(actions)
            timers["env"] += time.perf_counter() - start

        def step_wait(self):  # type: ignore[no-untyped-def]
            start = time.perf_counter()
            result = self.venv.step_wait()
            timers["env"] += time.perf_counter() - start
            return result

    def timed(name: str, method: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            result = method(*args, **kwargs)
            timers[name] += time.perf_counter() - start
            return result

        return wrapper

    subproc = config.get("vec_env") == "subproc"
    # worker processes import sb3_mlsh (which registers the env) through the id's module prefix
    env_id = f"sb3_mlsh:{config['env_id']}" if subproc else config["env_id"]
    env = TimedVecEnv(make_vec_env(env_id, n_envs=config["n_envs"], seed=0, vec_env_cls=SubprocVecEnv if subproc else None))
    shared = dict(n_steps=config["n_steps"], batch_size=64, n_epochs=10, seed=0)
    if config["algo"] == "PPO":
        model: Any = PPO("MlpPolicy", env, policy_kwargs=config.get("policy_kwargs"), **shared)
    else:
        model = MLSH("MlpPolicy", env, bootstrap_truncation=False, **config["mlsh"], **shared)
    iteration = config["n_envs"] * config["n_steps"]
    model.learn(iteration)
    model.collect_rollouts = timed("collect", model.collect_rollouts)
    model.train = timed("update", model.train)
    timers.update(env=0.0, collect=0.0, update=0.0)
    start = time.perf_counter()
    model.learn(config["timesteps"], reset_num_timesteps=False)
    total = time.perf_counter() - start
    steps = config["timesteps"]
    env.close()
    return dict(
        steps_per_second=steps / total,
        env_us=1e6 * timers["env"] / steps,
        collect_us=1e6 * (timers["collect"] - timers["env"]) / steps,
        update_us=1e6 * timers["update"] / steps,
        collect_steps_per_second=steps / timers["collect"],
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )


def run_in_process(config: dict[str, Any]) -> dict[str, float]:
    """``measure(config)`` in a fresh Python process (so that peak memory is the run's own)."""
    output = subprocess.run(
        [sys.executable, __file__, "--measure", json.dumps(config)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def summarise(values: list[float], digits: int = 0) -> str:
    """Median and range of ``values``."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f} to {max(values):.{digits}f})"


def table(case: str, configs: list[dict[str, Any]], results: list[list[dict[str, float]]]) -> list[str]:
    """A case's results as markdown: speed, ratio to the case's first configuration, time per step, memory."""
    # ratios to every PPO run of the case, or else to its first run
    bases = [(config["label"], results[i]) for i, config in enumerate(configs) if config["algo"] == "PPO"]
    bases = bases or [(configs[0]["label"], results[0])]
    lines = [
        f"### {case}: {configs[0]['env_id']}, {configs[0]['n_envs']} envs x {configs[0]['n_steps']} steps per iteration, "
        f"{configs[0]['timesteps']:,} timed steps per run",
        "",
        "| run | steps/s | "
        + " | ".join(f"ratio to {label}" for label, _ in bases)
        + " | collection steps/s | us per step: env | us per step: collect (outside env) | us per step: update "
        "| peak RSS MB |",
        "|---|---|" + "---|" * len(bases) + "---|---|---|---|---|",
    ]
    for config, runs in zip(configs, results, strict=True):
        cells = [
            summarise([run["steps_per_second"] for run in runs]),
            *(
                summarise([run["steps_per_second"] / b["steps_per_second"] for run, b in zip(runs, base, strict=True)], 2)
                for _, base in bases
            ),
            summarise([run["collect_steps_per_second"] for run in runs]),
            summarise([run["env_us"] for run in runs]),
            summarise([run["collect_us"] for run in runs]),
            summarise([run["update_us"] for run in runs]),
            summarise([run["peak_rss_mb"] for run in runs]),
        ]
        lines.append(f"| {config['label']} | " + " | ".join(cells) + " |")
    if case == "ant":
        lines += ["", derived_paper_schedule(results)]
    return lines


def derived_paper_schedule(results: list[list[dict[str, float]]], warmup: int = 20, joint: int = 40) -> str:
    """The paper's Ant schedule (W warm-up, U joint iterations per task), from the timed joint and warm-up-only runs."""
    ratios = []
    for ppo, joint_run, warmup_run in zip(results[0], results[2], results[4], strict=True):
        seconds_per_step = (warmup / warmup_run["steps_per_second"] + joint / joint_run["steps_per_second"]) / (warmup + joint)
        ratios.append(1.0 / seconds_per_step / ppo["steps_per_second"])
    return (
        f"The paper's Ant schedule (W = {warmup}, U = {joint}), derived from the W = 0 and warm-up-only runs "
        f"(time per step weighted {warmup}:{joint}): {summarise(ratios, 2)} x PPO's steps/s."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each configuration (alternating)")
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every run's timed steps")
    parser.add_argument("--write", action="store_true", help=f"save the tables to {PAGE.relative_to(ROOT)}")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # one run, in a worker process
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(json.loads(args.measure))))
        return

    import torch as th

    import sb3_mlsh

    command = "python benchmarks/speed.py " + " ".join(sys.argv[1:])
    lines = [
        f"Measured on {datetime.date.today().isoformat()}: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, torch {th.__version__}, sb3-mlsh {sb3_mlsh.__version__}, "
        "one torch thread per run, one run at a time.",
        "",
        f"```bash\n{command}\n```",
        "",
        "Median over the repetitions, range in brackets. us per step: microseconds per environment step "
        "(all envs' steps counted).",
    ]
    for case in args.cases:
        configs = [{**config, "timesteps": int(config["timesteps"] * args.scale)} for config in CASES[case]]
        results: list[list[dict[str, float]]] = [[] for _ in configs]
        for repeat in range(args.repeats):
            for index, config in enumerate(configs):
                results[index].append(run_in_process(config))
                print(f"{case} {repeat + 1}/{args.repeats} {config['label']}: {results[index][-1]}", flush=True)
        lines += ["", *table(case, configs, results)]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        PAGE.write_text("# Speed: MLSH and PPO side by side\n\n" + text)


if __name__ == "__main__":
    main()
