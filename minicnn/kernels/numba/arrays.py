"""Array coercions shared by the numba backend's public functions (Python tier, no kernels)."""

from __future__ import annotations

import numpy as np

__all__ = ["FLOATS", "as_c", "bias_or_zeros", "EMPTY2", "EMPTY4"]

#: the dtypes the numba kernels compute in; others are delegated to the numpy backend
FLOATS = (np.dtype(np.float32), np.dtype(np.float64))

#: placeholders for a kernel's unused array arguments (one compiled signature per dtype)
EMPTY4 = {np.dtype(t): np.empty((0, 0, 0, 0), dtype=t) for t in (np.float32, np.float64)}
EMPTY2 = {np.dtype(t): np.empty((0, 0), dtype=t) for t in (np.float32, np.float64)}


def as_c(a, dtype):
    """C-contiguous array of ``dtype`` (no copy when it already is one)."""
    return np.ascontiguousarray(a, dtype=dtype)


def bias_or_zeros(bias, f, dtype):
    """``bias`` as a C-contiguous array of ``dtype``, or ``f`` zeros when it is None."""
    return np.zeros(f, dtype=dtype) if bias is None else as_c(bias, dtype)
