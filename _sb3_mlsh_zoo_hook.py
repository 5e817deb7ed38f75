"""
Adds MLSH to rl-zoo3 when rl_zoo3 is imported, so that ``python -m rl_zoo3.train --algo mlsh`` works.

A non-editable install of sb3-mlsh puts ``sb3_mlsh_zoo.pth`` in site-packages; Python runs its one
line at start-up, which calls ``install()`` unless ``SB3_MLSH_NO_ZOO_HOOK=1``. ``install()`` imports
nothing heavy: it only puts a finder in ``sys.meta_path``. When ``rl_zoo3`` is later imported, the
finder lets the normal import run and then calls ``sb3_mlsh.zoo.register()``. Any failure only warns.
"""

import importlib.util
import os
import sys
import warnings
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType

DISABLE = "SB3_MLSH_NO_ZOO_HOOK"
TARGET = "rl_zoo3"


def _register() -> None:
    try:
        from sb3_mlsh.zoo import register

        register()
    except Exception as error:  # never break rl_zoo3 because of us
        warnings.warn(
            f"sb3-mlsh could not add `--algo mlsh` to rl_zoo3 ({error!r}); rl_zoo3 works as before. "
            f"Set {DISABLE}=1 to turn this hook off, or use the `sb3-mlsh-zoo` command, which needs no hook.",
            RuntimeWarning,
            stacklevel=2,
        )


class ZooHook(MetaPathFinder):
    """Finds ``rl_zoo3`` with the other finders, and runs ``_register`` once its module has executed."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname != TARGET:
            return None
        try:
            sys.meta_path.remove(self)  # one shot
            spec = importlib.util.find_spec(fullname)
            if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
                return spec
            loader_exec = spec.loader.exec_module

            def exec_module(module: ModuleType) -> None:
                loader_exec(module)
                _register()

            spec.loader.exec_module = exec_module  # type: ignore[method-assign]
            return spec
        except Exception:  # let the normal import machinery handle rl_zoo3
            return None


def install() -> None:
    """Put the hook in ``sys.meta_path`` (not with ``SB3_MLSH_NO_ZOO_HOOK=1``)."""
    if os.environ.get(DISABLE) == "1":
        return
    if TARGET in sys.modules:
        _register()
    elif not any(isinstance(finder, ZooHook) for finder in sys.meta_path):
        sys.meta_path.insert(0, ZooHook())
