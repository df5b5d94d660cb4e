"""Small checks on arrays and arguments shared by the model and the training loop."""

from __future__ import annotations

import math
import numbers

import numpy as np

from .kernels.numpy_backend import all_finite  # one definition, shared with the kernels


def as_array(x, what) -> np.ndarray:
    """``x`` as an ndarray, or a ValueError naming ``what`` could not be turned into one."""
    if isinstance(x, np.ndarray):
        return x
    try:
        return np.asarray(x)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{what} cannot be turned into an array: {e}") from None


def int_arg(value, name, minimum) -> int:
    """An integer argument >= ``minimum`` (bools refused), or a ValueError naming it."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_finite_chunks(x, what, dtype=None, chunk_elements=1 << 18):
    """NaN/inf check over the whole array, a bounded chunk at a time (no full-size temporary).
    With ``dtype``, values that would overflow when cast to it count as non-finite."""
    if x.dtype.kind != "f" or x.size == 0:
        return
    narrowing = dtype is not None and np.dtype(dtype).itemsize < x.dtype.itemsize
    rows = max(1, chunk_elements // max(1, math.prod(x.shape[1:])))
    for start in range(0, x.shape[0], rows):
        part = x[start:start + rows]
        if narrowing:
            with np.errstate(over="ignore"):
                part = part.astype(dtype)
        if not all_finite(part):
            bad = int(np.flatnonzero(~np.isfinite(part.reshape(part.shape[0], -1)).all(axis=1))[0])
            if narrowing and np.isfinite(x[start + bad]).all():
                raise ValueError(f"{what} has values beyond the {np.dtype(dtype)} range (first at sample {start + bad})")
            raise ValueError(f"{what} contains NaN or inf (first at sample {start + bad})")


__all__ = ["all_finite", "as_array", "int_arg", "check_finite_chunks"]
