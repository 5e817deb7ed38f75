"""Model files: atomic writes, reading a file's saved attributes, and loading files of earlier sb3-mlsh versions."""

import io
import json
import os
import pathlib
import re
import tempfile
import zipfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from stable_baselines3.common.save_util import open_path

if TYPE_CHECKING:
    from sb3_mlsh.mlsh.task_groups import TaskSchedule


def atomic_write(path: pathlib.Path, write: Callable[[io.BufferedIOBase], object]) -> None:
    """
    Write a file that replaces ``path`` only once complete: ``write`` fills a temporary file in the same folder,
    which is flushed to disk and then atomically takes the name. An interrupted write (an error, a full disk, a
    killed process) leaves an earlier file intact; the new file has the permissions a plain ``open()`` gives.

    :param path: The file to write (its folder is created if missing).
    :param write: Writes the content to the open binary file it is given.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as file:
            write(cast(io.BufferedIOBase, file))
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def atomic_write_json(path: pathlib.Path, content: dict[str, Any]) -> None:
    """Write ``content`` as JSON to ``path`` with ``atomic_write``."""
    atomic_write(path, lambda file: file.write((json.dumps(content, indent=1) + "\n").encode()))


def _umask() -> int:
    """:return: The process's file-creation mask."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def saved_data(path: str | pathlib.Path | io.BufferedIOBase) -> dict[str, Any] | None:
    """
    :return: The attributes saved in a model file's ``data`` entry, as SB3 wrote them (a file object's position is
        kept), or ``None`` if the file cannot be read so (``load`` then reports the problem as SB3 does).
    """
    try:
        file = open_path(path, "r", verbose=0, suffix="zip")
    except (OSError, ValueError):
        return None
    position = file.tell()
    try:
        with zipfile.ZipFile(file) as archive:
            data = json.loads(archive.read("data").decode())
            return data if isinstance(data, dict) else None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    finally:
        if isinstance(path, (str, os.PathLike)):
            file.close()
        else:
            file.seek(position)


def policy_name(saved: dict[str, Any]) -> str:
    """:return: The policy class a model file's ``data`` names (SB3 keeps its module and its methods' names)."""
    policy = saved.get("policy_class")
    if not isinstance(policy, dict):
        return "not recorded"
    names = re.findall(r"<function (\w+)\.__init__", str(policy.get("__init__", "")))
    return ".".join([str(policy.get("__module__", "?")), *names[:1]])


# ------------------------------------------------------------------ files of earlier versions
#
# sb3-mlsh 0.1.0 saved one master (``policy.master.*`` and its optimizer ``policy.master.optimizer``), the schedule's
# position as three attributes of the model, and trained without observation normalisation.


def rename_legacy_master_keys(state_dict: dict[str, Any], prefix: str = "") -> None:
    """
    Rename, in place, the keys of a state dict saved before task groups (one master, ``master.*``)
    to today's layout (``masters.0.*``).

    :param state_dict: An ``MLSHPolicy`` state dict.
    :param prefix: The policy's prefix in ``state_dict``.
    """
    for key in [key for key in state_dict if key.startswith(prefix + "master.")]:
        state_dict[prefix + "masters.0." + key[len(prefix + "master.") :]] = state_dict.pop(key)


def upgrade_legacy_parameters(params: dict[str, Any]) -> dict[str, Any]:
    """
    :param params: A model file's parameters (state dicts by name), as ``set_parameters`` reads them.
    :return: The same in today's layout: a single master's (and its optimizer's) keys are task group 0's.
    """
    params = dict(params)
    if "policy.master.optimizer" in params:
        params["policy.masters.0.optimizer"] = params.pop("policy.master.optimizer")
    if "policy" in params:
        params["policy"] = dict(params["policy"])
        rename_legacy_master_keys(params["policy"])
    return params


def upgrade_legacy_schedule(attributes: dict[str, Any], task_groups: "TaskSchedule") -> None:
    """
    Move the schedule's position that a file saved before task groups kept as attributes of the model
    (``current_task``, ``tasks_sampled``, ``iteration_in_task``, removed from ``attributes``) to task group 0.

    :param attributes: The loaded model's ``__dict__``.
    :param task_groups: Its task groups.
    """
    names = ("current_task", "tasks_sampled", "iteration_in_task")
    legacy = {name: attributes.pop(name) for name in names if name in attributes}
    if legacy:
        group = task_groups[0]
        group.task, group.tasks_sampled, group.iteration_in_task = (
            legacy["current_task"], legacy["tasks_sampled"], legacy["iteration_in_task"]
        )  # fmt: skip


def legacy_load_defaults(saved: dict[str, Any] | None) -> dict[str, Any]:
    """
    :param saved: A model file's saved attributes (``saved_data``).
    :return: Keyword arguments that a file saved before they existed needs to load as it was trained: no
        observation normalisation for a file of sb3-mlsh 0.1.0.
    """
    if saved is not None and "normalize_observations" not in saved:
        return {"normalize_observations": False}
    return {}
