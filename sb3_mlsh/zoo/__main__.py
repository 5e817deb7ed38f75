"""
The RL Zoo with ``--algo mlsh``: rl-zoo3's own commands, with MLSH registered first (no import hook needed).

    sb3-mlsh-zoo train --algo mlsh --env MovementBandits-v0 [rl_zoo3.train options]
    sb3-mlsh-zoo enjoy --algo mlsh --env MovementBandits-v0 -f logs/ [rl_zoo3.enjoy options]
    sb3-mlsh-zoo record_video --algo mlsh --env MovementBandits-v0 -f logs/ [rl_zoo3.record_video options]
    sb3-mlsh-zoo all_plots|plot_train|plot_from_file [rl_zoo3.plots options]

``python -m sb3_mlsh.zoo ...`` is the same. Each command takes the arguments of ``python -m rl_zoo3.<command>``.
"""

import runpy
import sys

from sb3_mlsh.zoo import register

# command: the rl_zoo3 module it runs as a script
COMMANDS = {
    "train": "rl_zoo3.train",
    "enjoy": "rl_zoo3.enjoy",
    "record_video": "rl_zoo3.record_video",
    "all_plots": "rl_zoo3.plots.all_plots",
    "plot_train": "rl_zoo3.plots.plot_train",
    "plot_from_file": "rl_zoo3.plots.plot_from_file",
}


def main() -> None:
    """Register MLSH with rl_zoo3, then run the rl_zoo3 command named by the first argument with the rest."""
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: sb3-mlsh-zoo {{{','.join(COMMANDS)}}} [rl_zoo3 options]\n{__doc__}")
    module = COMMANDS[sys.argv[1]]
    register()
    sys.argv = [module, *sys.argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
