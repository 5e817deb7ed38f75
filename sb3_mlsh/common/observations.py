"""Row operations on a batch of observations that is one array (or tensor) or, for a ``Dict`` space, a dict of them."""

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

Batch = TypeVar("Batch")
# What a VecEnv returns for the spaces MLSH supports (VecEnvObs less tuples)
Observations = np.ndarray | dict[str, np.ndarray]


def apply(fn: Callable[[Any], Any], obs: Batch) -> Batch:
    """:return: ``fn`` applied to the array, or to each array of a dict."""
    if isinstance(obs, dict):
        return {key: fn(value) for key, value in obs.items()}  # type: ignore[return-value]
    return fn(obs)


def take(obs: Batch, rows: Any) -> Batch:
    """:return: The rows ``rows`` (an index array, mask or tensor) of every array."""
    return apply(lambda value: value[rows], obs)


def put(target: Any, rows: Any, values: Any) -> None:
    """Write ``values`` into the rows ``rows`` of ``target``, in place (per key for a dict)."""
    if isinstance(target, dict):
        for key, array in target.items():
            array[rows] = values[key]
    else:
        target[rows] = values


def stack(observations: Sequence[Any]) -> Any:
    """:return: One batch from single observations (a dict of stacked arrays for dict observations)."""
    if isinstance(observations[0], dict):
        return {key: np.stack([np.asarray(obs[key]) for obs in observations]) for key in observations[0]}
    return np.stack([np.asarray(obs) for obs in observations])


def n_rows(obs: Any) -> int:
    """:return: The number of rows of a batch."""
    if isinstance(obs, dict):
        return len(next(iter(obs.values())))
    return len(obs)


def concatenate(batches: Sequence[Any]) -> Any:
    """:return: One batch from several (per key for dict observations)."""
    if isinstance(batches[0], dict):
        return {key: np.concatenate([batch[key] for batch in batches]) for key in batches[0]}
    return np.concatenate(batches)


def non_finite_rows(obs: Any) -> np.ndarray:
    """:return: The indices of the rows with a NaN or infinite value (floating-point arrays only)."""
    arrays = obs.values() if isinstance(obs, dict) else [obs]
    bad = np.zeros(n_rows(obs), dtype=bool)
    for array in arrays:
        if np.issubdtype(array.dtype, np.floating):
            bad |= ~np.isfinite(array.reshape(len(array), -1)).all(axis=1)
    return np.flatnonzero(bad)
