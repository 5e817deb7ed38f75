"""
The RL Zoo with MLSH, without relying on the import hook:

    python -m sb3_mlsh.zoo train --algo mlsh --env MovementBandits-v0 [rl_zoo3.train options]
    python -m sb3_mlsh.zoo enjoy --algo mlsh --env MovementBandits-v0 -f logs/ [rl_zoo3.enjoy options]
"""

import sys

from sb3_mlsh.zoo import register

COMMANDS = ("train", "enjoy")


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: python -m sb3_mlsh.zoo {{{','.join(COMMANDS)}}} [rl_zoo3 options]\n{__doc__}")
    command = sys.argv[1]
    register()
    sys.argv = [f"rl_zoo3.{command}", *sys.argv[2:]]
    if command == "train":
        from rl_zoo3.train import train

        train()
    else:
        from rl_zoo3.enjoy import enjoy

        enjoy()


if __name__ == "__main__":
    main()
