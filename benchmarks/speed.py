"""
Wall-clock speed of MLSH against SB3's PPO at the same work, and where each spends its time.

    python -m benchmarks.speed [--rounds 10] [--cases bandits ant packaged workers] [--write]

The runs of a case (PPO, MLSH variants) live in one process and take turns, one iteration each,
``--rounds`` times, so that they share the machine's conditions; ratios compare the iterations of
one turn. PPO and MLSH share the networks (2 x 64 tanh, separate policy and value networks), n_envs,
n_steps, batch size (64) and epochs (10), with one torch thread unless a run says otherwise. "Same
work" is MLSH with W = 0: its sub-policies are updated every iteration, on all the steps, as PPO's
policy is (MLSH also updates its master, on the macro transitions). As SB3's PPO, MLSH runs here without
observation normalisation and without bootstrapping at time limits (both on by default in MLSH).

Per environment step, each run reports the time spent stepping the envs (``env``), collecting
outside ``env.step`` (inference, buffer writes, MLSH's bookkeeping: ``collect``), in updates
(``update``), and the peak resident memory of a fresh process training it.

Cases: ``bandits`` (MovementBandits-v0, 8 envs, K = 2, N = 10; also K = 8 and the paper's W = 9, U = 1),
``ant`` (AntTwoWalk-v0, 4 envs, K = 2, N = 200; also K = 8, and warm-up-only iterations, from which
the paper's W = 20, U = 40 schedule is derived), ``workers`` (MLSH on AntTwoWalk-v0 with its envs
in this process, ``DummyVecEnv``, or in worker processes, ``SubprocVecEnv``, with 1 or 2 torch
threads), ``packaged`` (MLSH with the packaged ``hyperparams/mlsh.yml`` AntTwoWalk-v0 entry, as the RL Zoo
builds it, in joint and in warm-up iterations, and in joint iterations with SB3's minibatch of 64, against MuJoCo
alone: ``mj_step(model, data, nstep=frame_skip)`` on each of as many Ants, with random controls, no Python env layer
and no policy, the physics limit; the entry's W : U mix is derived from the first two). ``--write`` saves the
tables to docs/benchmarks/speed.md: when every case ran, the whole page, ending with the speed issue's five
targets, each against its measurement; else the sections of the cases run, each with its own date and command,
the others' kept.
"""

import argparse
import datetime
import json
import math
import os
import pathlib
import platform
import re
import statistics
import subprocess
import sys
import time
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "benchmarks" / "speed.md"

BANDITS = dict(env_id="MovementBandits-v0", n_envs=8, n_steps=250)
ANT = dict(env_id="AntTwoWalk-v0", n_envs=4, n_steps=500)
MLSH_BANDITS = dict(n_subpolicies=2, macro_duration=10, warmup_iterations=0, joint_iterations=1)
MLSH_ANT = dict(n_subpolicies=2, macro_duration=200, warmup_iterations=0, joint_iterations=1)
# Warm-up only: the sub-policies are never updated within the run
WARMUP_ONLY = dict(warmup_iterations=10**6, joint_iterations=1)
# The Ant runs from which the paper's schedule is derived
SAME_WORK = "MLSH, same work (W = 0), K = 2"
SAME_WORK_K8 = "MLSH, same work (W = 0), K = 8"
WARMUP_ONLY_LABEL = "MLSH, warm-up iterations only, K = 2"
# The packaged AntTwoWalk-v0 entry of hyperparams/mlsh.yml (its envs, task groups and settings), against MuJoCo alone
PACKAGED_ENV = "AntTwoWalk-v0"
PACKAGED_JOINT = "MLSH, packaged settings, joint iterations only"
PACKAGED_WARMUP = "MLSH, packaged settings, warm-up iterations only"
PHYSICS = "MuJoCo alone: mj_step(frame_skip) on each Ant, random controls"
# Adam's fused implementation (the same update in one kernel), MLSH's opt-in
FUSED_ADAM = dict(optimizer_kwargs=dict(eps=1e-5, fused=True))


def fused_adam_run(mlsh: dict[str, Any], env: dict[str, Any]) -> dict[str, Any]:
    """MLSH at the same work with Adam's fused implementation (opt-in)."""
    label = "MLSH, same work (W = 0), K = 2, fused Adam (opt-in)"
    return dict(label=label, algo="MLSH", mlsh={**mlsh, "policy_kwargs": FUSED_ADAM}, **env)


def packaged_case() -> list[dict[str, Any]]:
    """
    The packaged AntTwoWalk-v0 settings (``hyperparams/mlsh.yml``: envs, task groups, batch size, ...) in joint and in
    warm-up iterations, and MuJoCo's own stepping of as many Ants (the physics limit).
    """
    from sb3_mlsh.zoo import mlsh_settings

    n_envs, settings = mlsh_settings(PACKAGED_ENV)
    schedule = [settings["warmup_iterations"], settings["joint_iterations"]]  # the mix of iterations to derive
    env = dict(env_id=PACKAGED_ENV, n_envs=n_envs, n_steps=settings["n_steps"], schedule=schedule)
    joint = {**settings, "warmup_iterations": 0, "joint_iterations": 1}
    return [
        dict(label=PACKAGED_JOINT, algo="MLSH", settings=joint, **env),
        dict(label=PACKAGED_WARMUP, algo="MLSH", settings={**settings, **WARMUP_ONLY}, **env),
        dict(label=f"{PACKAGED_JOINT}, SB3's minibatch of 64", algo="MLSH", settings={**joint, "batch_size": 64}, **env),
        dict(label=PHYSICS, algo="physics", **env),
    ]


CASES: dict[str, list[dict[str, Any]]] = {
    "bandits": [
        dict(label="PPO", algo="PPO", **BANDITS),
        dict(label="MLSH, same work (W = 0), K = 2", algo="MLSH", mlsh=MLSH_BANDITS, **BANDITS),
        dict(label=SAME_WORK_K8, algo="MLSH", mlsh={**MLSH_BANDITS, "n_subpolicies": 8}, **BANDITS),
        fused_adam_run(MLSH_BANDITS, BANDITS),
        dict(
            label="MLSH, the paper's schedule (W = 9, U = 1), K = 2",
            algo="MLSH",
            mlsh={**MLSH_BANDITS, "warmup_iterations": 9, "joint_iterations": 1},
            **BANDITS,
        ),
    ],
    "ant": [
        dict(label="PPO", algo="PPO", **ANT),
        dict(label=SAME_WORK, algo="MLSH", mlsh=MLSH_ANT, **ANT),
        dict(label=SAME_WORK_K8, algo="MLSH", mlsh={**MLSH_ANT, "n_subpolicies": 8}, **ANT),
        fused_adam_run(MLSH_ANT, ANT),
        dict(label=WARMUP_ONLY_LABEL, algo="MLSH", mlsh={**MLSH_ANT, **WARMUP_ONLY}, **ANT),
    ],
    "packaged": packaged_case(),
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


class PhysicsRun:
    """
    MuJoCo's own stepping rate, the limit of any learner on these envs: ``mj_step(model, data, nstep=frame_skip)`` on
    each of ``n_envs`` Ants in turn, with random controls, no Python env layer and no policy.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        import gymnasium as gym
        import numpy as np

        import sb3_mlsh  # noqa: F401  (registers the envs)

        self.config = config
        self.envs = [gym.make(config["env_id"]).unwrapped for _ in range(config["n_envs"])]
        for seed, env in enumerate(self.envs):
            env.reset(seed=seed)
        self.iteration = config["n_envs"] * config["n_steps"]
        size = (config["n_steps"], config["n_envs"], self.envs[0].model.nu)
        self.controls = np.random.default_rng(0).uniform(-1.0, 1.0, size)

    def iterate(self) -> dict[str, float]:
        """Step every Ant ``n_steps`` times; its seconds, all of them in the physics."""
        import mujoco

        start = time.perf_counter()
        for controls in self.controls:
            for env, control in zip(self.envs, controls, strict=True):
                env.data.ctrl[:] = control
                mujoco.mj_step(env.model, env.data, nstep=env.frame_skip)
        seconds = time.perf_counter() - start
        return dict(total=seconds, steps=self.iteration, env=seconds, collect=seconds, update=0.0)

    def close(self) -> None:
        for env in self.envs:
            env.close()


class TimedRun:
    """One configuration's model, its envs wrapped to time ``step``, and its collection and update timed."""

    def __init__(self, config: dict[str, Any]) -> None:
        import torch as th
        from stable_baselines3 import PPO
        from stable_baselines3.common.env_util import make_vec_env
        from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

        from sb3_mlsh import MLSH

        self.config = config
        self.timers = timers = dict(env=0.0, collect=0.0, update=0.0)
        self.threads = config.get("threads", 1)
        th.set_num_threads(self.threads)

        subproc = config.get("vec_env") == "subproc"
        # worker processes import sb3_mlsh (which registers the env) through the id's module prefix
        env_id = f"sb3_mlsh:{config['env_id']}" if subproc else config["env_id"]
        vec_env_cls = SubprocVecEnv if subproc else DummyVecEnv

        # a subclass, not a VecEnvWrapper: MLSH's task groups reset their envs through the vec env itself
        class TimedVecEnv(vec_env_cls):  # type: ignore[valid-type,misc]
            """Adds the time spent in the envs' ``step`` and ``reset`` to ``timers["env"]``."""

            def reset(self):  # type: ignore[no-untyped-def]
                start = time.perf_counter()
                obs = super().reset()
                timers["env"] += time.perf_counter() - start
                return obs

            def step_async(self, actions):  # type: ignore[no-untyped-def]
                start = time.perf_counter()
                super().step_async(actions)
                timers["env"] += time.perf_counter() - start

            def step_wait(self):  # type: ignore[no-untyped-def]
                start = time.perf_counter()
                result = super().step_wait()
                timers["env"] += time.perf_counter() - start
                return result

        self.env = make_vec_env(env_id, n_envs=config["n_envs"], seed=0, vec_env_cls=TimedVecEnv)
        shared = dict(n_steps=config["n_steps"], batch_size=64, n_epochs=10, seed=0)
        if "settings" in config:  # a packaged entry, as rl_zoo3.train --algo mlsh builds it
            from sb3_mlsh.zoo import with_schedules

            self.model = MLSH("MlpPolicy", self.env, seed=0, **with_schedules(config["settings"]))
        elif config["algo"] == "PPO":
            self.model: Any = PPO("MlpPolicy", self.env, policy_kwargs=config.get("policy_kwargs"), **shared)
        else:
            self.model = MLSH(
                "MlpPolicy", self.env, bootstrap_truncation=False, normalize_observations=False, **config["mlsh"], **shared
            )
        self.iteration = config["n_envs"] * config["n_steps"]
        self.model.learn(self.iteration)  # the first iteration warms up, untimed
        self.model.collect_rollouts = self._timed("collect", self.model.collect_rollouts)
        self.model.train = self._timed("update", self.model.train)

    def _timed(self, name: str, method: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            result = method(*args, **kwargs)
            self.timers[name] += time.perf_counter() - start
            return result

        return wrapper

    def close(self) -> None:
        self.env.close()

    def iterate(self) -> dict[str, float]:
        """Run one iteration; its seconds in all, in the envs, collecting and updating."""
        import torch as th

        th.set_num_threads(self.threads)
        before = dict(self.timers)
        start = time.perf_counter()
        self.model.learn(self.iteration, reset_num_timesteps=False)
        seconds = {name: self.timers[name] - before[name] for name in self.timers}
        return dict(total=time.perf_counter() - start, steps=self.iteration, **seconds)


def measure_case(configs: list[dict[str, Any]], rounds: int) -> list[list[dict[str, float]]]:
    """Every configuration in this process, one iteration each in turn, ``rounds`` times: per configuration, its iterations."""
    runs = [PhysicsRun(config) if config["algo"] == "physics" else TimedRun(config) for config in configs]
    iterations: list[list[dict[str, float]]] = [[] for _ in configs]
    for round_index in range(rounds):
        for run, record in zip(runs, iterations, strict=True):
            record.append(run.iterate())
        print(f"round {round_index + 1}/{rounds}", file=sys.stderr, flush=True)
    for run in runs:
        run.close()
    return iterations


def peak_rss_mb(config: dict[str, Any]) -> float:
    """Peak resident memory of a fresh process that trains ``config`` for three iterations."""
    code = (
        "import json, resource, sys; from benchmarks.speed import TimedRun; "
        "run = TimedRun(json.loads(sys.argv[1])); run.iterate(); run.iterate(); run.close(); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    )
    output = subprocess.run(
        [sys.executable, "-c", code, json.dumps(config)],
        cwd=ROOT,  # where the benchmarks package is found
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    ).stdout
    return float(output.strip().splitlines()[-1])


def summarise(values: list[float], digits: int = 0) -> str:
    """Median and range of ``values``."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f} to {max(values):.{digits}f})"


def per_step(record: list[dict[str, float]]) -> dict[str, float]:
    """A run's seconds per environment step over its timed iterations: in all, in the envs, collecting outside them."""
    steps = sum(item["steps"] for item in record)
    seconds = {name: sum(item[name] for item in record) / steps for name in ("total", "env", "collect", "update")}
    return {**seconds, "outside": seconds["collect"] - seconds["env"]}


def table(case: str, configs: list[dict[str, Any]], iterations: list[list[dict[str, float]]], rss: list[float]) -> list[str]:
    """A case's results as markdown: speed, ratios to the case's PPO runs, time per step, memory."""
    # ratios to every PPO run of the case, or else to MuJoCo alone, or else to its first run
    bases = [index for index, config in enumerate(configs) if config["algo"] == "PPO"]
    bases = bases or [index for index, config in enumerate(configs) if config["algo"] == "physics"] or [0]
    lines = [
        f"### {case}: {configs[0]['env_id']}, {configs[0]['n_envs']} envs x {configs[0]['n_steps']} steps per iteration, "
        f"{len(iterations[0])} timed iterations per run",
        "",
        "| run | steps/s | "
        + " | ".join(f"ratio to {configs[index]['label']}" for index in bases)
        + " | collection steps/s | us per step: env | us per step: collect (outside env) | us per step: update "
        "| peak RSS MB |",
        "|---|---|" + "---|" * len(bases) + "---|---|---|---|---|",
    ]
    for config, record, memory in zip(configs, iterations, rss, strict=True):
        seconds = per_step(record)
        ratios = [
            summarise([base["total"] / item["total"] for item, base in zip(record, iterations[index], strict=True)], 2)
            for index in bases
        ]
        cells = [
            summarise([item["steps"] / item["total"] for item in record]),
            *ratios,
            f"{1 / seconds['collect']:.0f}",
            f"{1e6 * seconds['env']:.0f}",
            f"{1e6 * seconds['outside']:.0f}",
            f"{1e6 * seconds['update']:.0f}",
            "-" if math.isnan(memory) else f"{memory:.0f}",
        ]
        lines.append(f"| {config['label']} | " + " | ".join(cells) + " |")
    if case == "ant":
        lines += ["", derived_paper_schedule(configs, iterations)]
    if case == "packaged":
        lines += ["", derived_packaged_schedule(configs, iterations)]
    return lines


def ratio_to(record: list[dict[str, float]], base: list[dict[str, float]]) -> float:
    """Median over the turns of ``record``'s steps/s against ``base``'s (the base's time over the record's)."""
    return statistics.median(other["total"] / item["total"] for item, other in zip(record, base, strict=True))


def targets(results: dict[str, tuple[list[dict[str, Any]], list[list[dict[str, float]]], list[float]]]) -> list[str]:
    """The speed issue's targets, each with its measurement on this page and whether it is met."""
    runs = {
        (case, config["label"]): (record, memory)
        for case, (configs, iterations, rss) in results.items()
        for config, record, memory in zip(configs, iterations, rss, strict=True)
    }
    workers = [config["label"] for config in CASES["workers"]]

    def verdict(met: bool) -> str:
        return "met" if met else "not met"

    rows = []
    same_work = {case: ratio_to(runs[case, SAME_WORK][0], runs[case, "PPO"][0]) for case in ("bandits", "ant")}
    rows.append(
        (
            "1. same work, >= 0.95x PPO's steps/s",
            ", ".join(f"{case} {ratio:.2f}x" for case, ratio in same_work.items()),
            ", ".join(f"{case} {verdict(ratio >= 0.95)}" for case, ratio in same_work.items()),
        )
    )
    k_cost = {
        case: per_step(runs[case, SAME_WORK][0])["collect"] / per_step(runs[case, SAME_WORK_K8][0])["collect"]
        for case in ("bandits", "ant")
    }
    rows.append(
        (
            "2. K = 8 collection steps/s within 10 % of K = 2",
            ", ".join(f"{case} {100 * ratio:.0f} %" for case, ratio in k_cost.items()),
            ", ".join(f"{case} {verdict(ratio >= 0.9)}" for case, ratio in k_cost.items()),
        )
    )
    one_process = per_step(runs["workers", workers[0]][0])
    subproc = ratio_to(runs["workers", workers[1]][0], runs["workers", workers[0]][0])
    env_share = one_process["env"] / one_process["total"]
    cores = os.cpu_count() or 1
    rows.append(
        (
            "3. envs in worker processes, >= 1.6x one process (Ant)",
            f"{subproc:.2f}x; the envs take {100 * env_share:.0f} % of a step: stepped on all {cores} cores at once, "
            f"with nothing else overlapping them (the step waits for the workers), one run could reach "
            f"{1 / (1 - env_share + env_share / cores):.2f}x at most",
            f"{verdict(subproc >= 1.6)} on this layout; the layout that splits collection and updates too "
            "(`torchrun`) is measured in [distributed.md](distributed.md), and `reproduce.py` runs seeds side by side",
        )
    )
    outside = {
        case: (per_step(runs[case, SAME_WORK][0])["outside"], per_step(runs[case, "PPO"][0])["outside"])
        for case in ("bandits", "ant")
    }
    rows.append(
        (
            "4. MLSH's time per step outside `env.step` <= PPO's",
            ", ".join(f"{case} {1e6 * mlsh:.0f} vs {1e6 * ppo:.0f} us" for case, (mlsh, ppo) in outside.items()),
            ", ".join(
                f"{case} {verdict(mlsh <= ppo)} ({100 * (mlsh / ppo - 1):+.0f} %)" for case, (mlsh, ppo) in outside.items()
            ),
        )
    )
    memory = runs["ant", SAME_WORK][1] / runs["ant", "PPO"][1]
    rows.append(("5. peak RSS within 1.2x of PPO's (Ant)", f"{memory:.2f}x", verdict(memory <= 1.2)))
    return [
        "### Targets",
        "",
        "The speed issue's targets, from the tables above (medians; time per step over all timed iterations).",
        "",
        "| target | measured | |",
        "|---|---|---|",
        *(f"| {target} | {measured} | {met} |" for target, measured, met in rows),
    ]


def derived_paper_schedule(
    configs: list[dict[str, Any]], iterations: list[list[dict[str, float]]], warmup: int = 20, joint: int = 40
) -> str:
    """The paper's Ant schedule (W warm-up, U joint iterations per task), from the timed joint and warm-up-only iterations."""
    by_label = {config["label"]: record for config, record in zip(configs, iterations, strict=True)}
    ratios = []
    for ppo, joint_run, warmup_run in zip(by_label["PPO"], by_label[SAME_WORK], by_label[WARMUP_ONLY_LABEL], strict=True):
        schedule_seconds = (warmup * warmup_run["total"] + joint * joint_run["total"]) / (warmup + joint)
        ratios.append(ppo["total"] / schedule_seconds)
    return (
        f"The paper's Ant schedule (W = {warmup}, U = {joint}), derived from the W = 0 and warm-up-only runs "
        f"(time per step weighted {warmup}:{joint}): {summarise(ratios, 2)} x PPO's steps/s."
    )


def derived_packaged_schedule(configs: list[dict[str, Any]], iterations: list[list[dict[str, float]]]) -> str:
    """The packaged entry's W : U mix of iterations against MuJoCo alone, from its timed joint and warm-up iterations."""
    by_label = {config["label"]: record for config, record in zip(configs, iterations, strict=True)}
    warmup, joint = configs[0]["schedule"]
    runs = zip(by_label[PHYSICS], by_label[PACKAGED_JOINT], by_label[PACKAGED_WARMUP], strict=True)
    ratios = [
        physics["total"] / ((warmup * warmup_run["total"] + joint * joint_run["total"]) / (warmup + joint))
        for physics, joint_run, warmup_run in runs
    ]
    return (
        f"The packaged schedule (W = {warmup}, U = {joint}: each task group's steps train the sub-policies in {joint} of "
        f"{warmup + joint} iterations), derived from the joint and warm-up runs (time per step weighted {warmup}:{joint}): "
        f"{summarise(ratios, 2)} x "
        "MuJoCo's own stepping rate (the issue's target: >= 0.8)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10, help="timed iterations of each configuration, in turn")
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--write", action="store_true", help=f"save the tables to {PAGE.relative_to(ROOT)}")
    args = parser.parse_args()

    import torch as th

    import sb3_mlsh

    command = "python -m benchmarks.speed " + " ".join(sys.argv[1:])
    measured = (
        f"Measured on {datetime.date.today().isoformat()}: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, torch {th.__version__}, sb3-mlsh {sb3_mlsh.__version__}, "
        f"one torch thread unless the run says otherwise; load average {os.getloadavg()[0]:.1f} as it started (other jobs "
        "on the cores lower every speed, and the ratios less)."
    )
    provenance = [measured, "", f"```bash\n{command}\n```"]
    lines = [
        *provenance,
        "",
        "All runs of a case live in one process and take turns, one iteration each, so that they share the "
        "machine's conditions (its speed drifts by up to 2x over minutes). steps/s and the ratios: median over "
        "the timed iterations (a ratio compares the iterations of one turn), range in brackets. us per step: "
        "microseconds per environment step (all envs' steps counted), over all timed iterations. Peak RSS: a "
        "fresh process that trains the run for three iterations.",
    ]
    results, sections = {}, {}
    for case in args.cases:
        configs = CASES[case]
        iterations = measure_case(configs, args.rounds)
        rss = [float("nan") if config["algo"] == "physics" else peak_rss_mb(config) for config in configs]
        results[case] = (configs, iterations, rss)
        sections[case] = table(case, configs, iterations, rss)
        lines += ["", *sections[case]]
        print("\n".join(sections[case]), flush=True)
    if set(results) == set(CASES):
        lines += ["", *targets(results)]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        if set(results) != set(CASES) and PAGE.is_file():
            text = replace_sections(PAGE.read_text().partition("\n\n")[2], sections, provenance)
        PAGE.write_text("# Speed: MLSH and PPO side by side\n\n" + text)


def replace_sections(page: str, sections: dict[str, list[str]], provenance: list[str]) -> str:
    """
    :param page: The page's text below its title.
    :param sections: The tables of the cases this command ran, by case.
    :param provenance: This command's date, machine and command line.
    :return: ``page`` with each of those cases' sections replaced (or added before the targets), each naming its own
        provenance; the other cases' sections, measured earlier, as they were.
    """
    head, *parts = re.split(r"\n(?=### )", page)
    by_case = {part.split()[1].rstrip(":"): part.rstrip("\n") for part in parts}
    for case, section in sections.items():
        by_case[case] = "\n".join([section[0], "", *provenance, *section[1:]])
    order = [case for case in CASES if case in by_case] + [case for case in by_case if case not in CASES]
    return "\n\n".join([head.rstrip("\n"), *(by_case[case] for case in order)]) + "\n"


if __name__ == "__main__":
    main()
