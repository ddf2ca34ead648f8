"""Turn numpy, pandas and Arrow inputs into checked numpy arrays, copying only when needed."""

from __future__ import annotations

from typing import Any

import numpy as np

from lnds_spe.errors import SPEError


class AnalysisInputError(SPEError, ValueError):
    """An analysis helper was given an argument of the wrong shape, dtype or content."""


def one_arrow_array(value: Any) -> Any:
    """An Arrow ChunkedArray as one Array: its only chunk (no copy) or its chunks combined,
    dictionaries unified first; any other value unchanged."""
    import pyarrow as pa

    if not isinstance(value, pa.ChunkedArray):
        return value
    if value.num_chunks == 1:
        return value.chunk(0)
    if pa.types.is_dictionary(value.type):
        value = value.unify_dictionaries()
    return value.combine_chunks()


def _arrow_to_numpy(value: Any, name: str) -> np.ndarray | None:
    """A numpy view of an Arrow Array/ChunkedArray (zero-copy when it has one chunk, no nulls)."""
    module = type(value).__module__
    if not module.startswith("pyarrow"):
        return None
    value = one_arrow_array(value)
    if value.null_count:
        import pyarrow as pa

        if pa.types.is_floating(value.type):
            return value.to_numpy(zero_copy_only=False)
        raise AnalysisInputError(f"{name}: has {value.null_count} nulls; fill or drop them first")
    return value.to_numpy(zero_copy_only=False)


def to_numpy(value: Any, name: str) -> np.ndarray:
    """Any supported column-like input as a numpy array (views for numpy, pandas and Arrow)."""
    if isinstance(value, np.ndarray):
        return value
    arrow = _arrow_to_numpy(value, name)
    if arrow is not None:
        return arrow
    if hasattr(value, "to_numpy"):  # pandas Series / Index
        try:
            return value.to_numpy(copy=False)
        except TypeError:
            return value.to_numpy()
    try:
        return np.asarray(value)
    except Exception as exc:  # noqa: BLE001 - any failure to convert is the caller's input
        raise AnalysisInputError(f"{name}: cannot be read as an array ({exc})") from exc


def column(value: Any, name: str, kind: str, dtype: np.dtype | type | None = None,
           allow_nan: bool = True, length: int | None = None) -> np.ndarray:
    """A checked 1-D contiguous array of kind 'i' (integer), 'f' (float) or 'n' (number)."""
    arr = to_numpy(value, name)
    if arr.ndim != 1:
        raise AnalysisInputError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    if length is not None and arr.shape[0] != length:
        raise AnalysisInputError(f"{name}: expected length {length}, got {arr.shape[0]}")
    if kind == "i" and arr.dtype.kind not in "iu":
        raise AnalysisInputError(f"{name}: expected integer codes, got dtype {arr.dtype}")
    if kind in "fn" and arr.dtype.kind not in "iuf" + ("b" if kind == "n" else ""):
        raise AnalysisInputError(f"{name}: expected numbers, got dtype {arr.dtype}")
    if dtype is not None and arr.dtype != np.dtype(dtype):
        arr = arr.astype(dtype)
    arr = np.ascontiguousarray(arr)
    if not allow_nan and arr.dtype.kind == "f" and np.isnan(arr).any():
        raise AnalysisInputError(f"{name}: contains NaN; drop or fill missing values first")
    return arr


def positive_int(value: Any, name: str) -> int:
    """A positive Python int, or a clear error naming the argument."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise AnalysisInputError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


def thread_count(threads: int | None) -> int:
    """The thread count to pass into kernels: the given one, else numba's configured maximum."""
    import numba

    if threads is None:
        return numba.config.NUMBA_NUM_THREADS
    threads = positive_int(threads, "threads")
    return min(threads, numba.config.NUMBA_NUM_THREADS)
