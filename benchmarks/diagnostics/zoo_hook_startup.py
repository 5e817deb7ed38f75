"""
What the rl-zoo3 import hook costs every Python process: interpreter start-up (``python -c pass``)
with the hook and with ``SB3_MLSH_NO_ZOO_HOOK=1``, interleaved, on the installed package.

    python -m benchmarks.diagnostics.zoo_hook_startup [--runs 40]
"""

import argparse
import os
import statistics
import subprocess
import sys
import time


def startup_seconds(disabled: bool) -> float:
    env = {**os.environ, "SB3_MLSH_NO_ZOO_HOOK": "1" if disabled else "0"}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.runs):
        for disabled in (False, True):
            times[disabled].append(startup_seconds(disabled))
    with_hook, without = statistics.median(times[False]), statistics.median(times[True])
    print(f"{sys.executable} -c pass, {args.runs} runs each, medians:")
    print(f"| hook | start-up (ms) |\n|---|---|\n| on | {1000 * with_hook:.1f} |\n| off | {1000 * without:.1f} |")
    print(f"difference: {1000 * (with_hook - without):+.2f} ms")


if __name__ == "__main__":
    main()
