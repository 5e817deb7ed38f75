"""
MLSH in the RL Zoo (rl-zoo3): ``--algo mlsh`` for ``rl_zoo3.train``, ``rl_zoo3.enjoy`` and ``-optimize``.

rl-zoo3 has no plugin mechanism, so ``register()`` adds MLSH to its tables: ``ALGOS``, the optuna
``HYPERPARAMS_SAMPLER`` and ``HYPERPARAMS_CONVERTER`` (each with ``setdefault``, so a user's own
``mlsh`` entry wins), and makes this package's ``hyperparams/mlsh.yml`` the default config of
``--algo mlsh`` when no ``--conf-file`` is given. It also registers this package's environments.

The ``sb3-mlsh-zoo`` command (``python -m sb3_mlsh.zoo``) calls it before running an rl-zoo3 command;
it also runs by itself when rl_zoo3 is imported, through the ``_sb3_mlsh_zoo_hook`` that a
(non-editable) install puts in site-packages.
"""

import functools
from importlib.resources import files
from pathlib import Path
from typing import Any

ALGO = "mlsh"


def hyperparams_path() -> Path:
    """:return: The ``mlsh.yml`` shipped in the wheel (or, in a source checkout, the repository's)."""
    packaged = Path(str(files("sb3_mlsh"))) / "hyperparams" / "mlsh.yml"
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parents[2] / "hyperparams" / "mlsh.yml"


def packaged_hyperparameters(env_id: str) -> dict[str, Any]:
    """
    :param env_id: An env with an entry in the packaged ``mlsh.yml``.
    :return: Its entry, with ``policy_kwargs`` given as a string evaluated and ``lin_<v>`` schedules made
        schedules (as the RL Zoo does).
    :raises KeyError: naming the envs that have an entry, if ``env_id`` has none.
    """
    import yaml

    entries = yaml.safe_load(hyperparams_path().read_text())
    if env_id not in entries:
        raise KeyError(f"{env_id} has no entry in {hyperparams_path()}; entries: {', '.join(entries)}")
    entry = dict(entries[env_id])
    if isinstance(entry.get("policy_kwargs"), str):
        entry["policy_kwargs"] = eval(entry["policy_kwargs"], {"dict": dict})
    return with_schedules(entry)


def mlsh_settings(env_id: str) -> tuple[int, dict[str, Any]]:
    """
    :param env_id: An env with an entry in the packaged ``mlsh.yml``.
    :return: Its ``n_envs`` and MLSH's keyword arguments (the entry without ``n_envs``, ``n_timesteps``, ``policy`` and
        ``env_kwargs``): what ``rl_zoo3.train --algo mlsh`` builds MLSH with.
    """
    entry = packaged_hyperparameters(env_id)
    n_envs = entry.pop("n_envs")
    for key in ("n_timesteps", "policy", "env_kwargs"):
        entry.pop(key, None)
    return n_envs, entry


def with_schedules(settings: dict[str, Any]) -> dict[str, Any]:
    """:return: ``settings``, with each schedule string of MLSH's schedulable settings made a ``schedule``."""
    scheduled = ("learning_rate", "master_learning_rate", "clip_range", "clip_range_vf")
    return {key: schedule(value) if key in scheduled else value for key, value in settings.items()}


def schedule(value: Any) -> Any:
    """
    :param value: A setting of ``mlsh.yml``.
    :return: ``value``, but the RL Zoo's ``"lin_<v>"`` as SB3's ``LinearSchedule`` from ``v`` (progress remaining 1)
        to 0 (progress remaining 0), the schedule the zoo makes of it.
    :raises ValueError: for another string, naming the accepted form.
    """
    if not isinstance(value, str):
        return value
    from stable_baselines3.common.utils import LinearSchedule

    kind, _, start = value.partition("_")
    try:
        if kind == "lin":
            return LinearSchedule(float(start), 0.0, 1.0)
    except ValueError:
        pass
    raise ValueError(f"schedule {value!r}: write a number, or lin_<initial value> (e.g. lin_1e-3) for a linear decay to 0")


def register() -> None:
    """Add MLSH to rl_zoo3's tables (idempotent)."""
    import rl_zoo3.exp_manager
    import rl_zoo3.hyperparams_opt
    import rl_zoo3.utils

    import sb3_mlsh  # noqa: F401  (registers the environments)
    from sb3_mlsh.mlsh import MLSH
    from sb3_mlsh.zoo.hyperparams_opt import convert_mlsh_params, sample_mlsh_params

    rl_zoo3.utils.ALGOS.setdefault(ALGO, MLSH)
    rl_zoo3.hyperparams_opt.HYPERPARAMS_SAMPLER.setdefault(ALGO, sample_mlsh_params)
    rl_zoo3.hyperparams_opt.HYPERPARAMS_CONVERTER.setdefault(ALGO, convert_mlsh_params)

    manager = rl_zoo3.exp_manager.ExperimentManager
    if not getattr(manager.__init__, "_sb3_mlsh_default_config", False):
        manager.__init__ = _with_default_config(manager.__init__)  # type: ignore[method-assign]
    if not getattr(manager.read_hyperparameters, "_sb3_mlsh_guidance", False):
        manager.read_hyperparameters = _with_guidance(manager.read_hyperparameters)  # type: ignore[method-assign]


def _with_default_config(init: Any) -> Any:
    """Wrap ``ExperimentManager.__init__``: ``--algo mlsh`` without ``--conf-file`` reads our ``mlsh.yml``."""

    @functools.wraps(init)
    def __init__(self: Any, args: Any, algo: str, *positional: Any, **keywords: Any) -> None:
        if algo == ALGO and keywords.get("config") is None:
            keywords["config"] = str(hyperparams_path())
        init(self, args, algo, *positional, **keywords)

    __init__._sb3_mlsh_default_config = True  # type: ignore[attr-defined]
    return __init__


def _with_guidance(read: Any) -> Any:
    """Wrap ``ExperimentManager.read_hyperparameters``: for ``--algo mlsh``, "not found" says how to give one's own."""

    @functools.wraps(read)
    def read_hyperparameters(self: Any) -> Any:
        try:
            return read(self)
        except ValueError as error:
            if self.algo != ALGO or "Hyperparameters not found" not in str(error):
                raise
            raise ValueError(
                f"{error}. Give MLSH's settings for this env in a file of your own, named with --conf-file "
                f"(copy an entry of {hyperparams_path()} under the env id, or under 'default'; a minimal entry is in "
                "sb3-mlsh's docs/zoo.md), and change single values with --hyperparams key:value."
            ) from None

    read_hyperparameters._sb3_mlsh_guidance = True  # type: ignore[attr-defined]
    return read_hyperparameters
