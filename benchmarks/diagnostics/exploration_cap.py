"""
How much does the master's random exploration cost a perfect hierarchy on MovementBandits?

    python -m benchmarks.diagnostics.exploration_cap [--explorations 0 0.1] [--episodes 400]

Scripted, perfect sub-policies (sub-policy k walks straight to goal k) and a converged master (it
always chooses the paying goal's sub-policy) whose choice, every N = 10 steps, is replaced by a
uniformly random sub-policy with probability ``master_exploration``. Prints the mean episode return
and its ratio to the one-goal reference (always walk to goal 0): the most an MLSH model evaluated
with that exploration can reach after adaptation, whatever its sub-policies.
"""

import argparse

import numpy as np

from benchmarks.experiments import EXPERIMENTS, scripted_return

MACRO_DURATION = 10  # N of the paper's bandits; episodes of 50 steps start on a decision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--explorations", type=float, nargs="+", default=[0.0, 0.1])
    parser.add_argument("--episodes", type=int, default=400, help="episodes per task")
    args = parser.parse_args()
    spec = EXPERIMENTS["movement_bandits"]
    one_goal = scripted_return(spec, lambda env, obs, task: type(env).greedy_action(obs, 0), args.episodes, seed=0)
    print(f"one-goal reference (always goal 0): {one_goal:.2f} per episode, {args.episodes} episodes per task")
    print("| master exploration | converged master over perfect sub-policies | ratio to the one-goal reference |")
    print("|---|---|---|")
    for exploration in args.explorations:
        rng = np.random.default_rng(0)
        decision = {"step": 0, "goal": 0}

        def master(env, obs, task, exploration=exploration, rng=rng, decision=decision):  # type: ignore[no-untyped-def]
            if decision["step"] % MACRO_DURATION == 0:
                explore = rng.random() < exploration
                decision["goal"] = int(rng.integers(2)) if explore else task
            decision["step"] += 1
            return type(env).greedy_action(obs, decision["goal"])

        value = scripted_return(spec, master, args.episodes, seed=0)
        print(f"| {exploration:g} | {value:.2f} | {value / one_goal:.2f}x |")


if __name__ == "__main__":
    main()
