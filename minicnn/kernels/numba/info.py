"""What the numba backend does in this process: threading layer, threads, BLAS, tiles."""

from __future__ import annotations

import os

import numba
import numpy as np

from . import blas, config
from .elementwise import _relu_fwd
from .fpu import X86

__all__ = ["threading_info"]


def threading_info() -> dict:
    """numba's threading layer and thread count, and how BLAS is used (runs a tiny parallel kernel
    first if none has run yet, because numba picks its layer lazily)."""
    try:
        layer = numba.threading_layer()
    except ValueError:
        z = np.zeros(4, dtype=np.float32)
        _relu_fwd(z, z.copy())
        layer = numba.threading_layer()
    return {
        "layer": layer,
        "num_threads": int(numba.get_num_threads()),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "omp_wait_policy_set_by_minicnn": config.OMP_POLICY_SET_HERE,
        "fma_tiles": bool(config.TILES),
        "denormals_flushed_in_kernels": bool(X86),
        "blas_in_numba": bool(blas.FAST),
        "blas_library": blas.openblas.path,
        "blas_corename": blas.openblas.corename,
        "blas_threads_outside_calls": blas.openblas.threads(),
    }
