"""Test helpers and the tolerance table (one place; every override elsewhere says why).

- GRADCHECK_RTOL 1e-6: float64 central differences along random directions (eps 1e-6) are good
  to ~1e-9; 1e-6 leaves room for curvature without hiding a wrong gradient (those are O(1)).
- ORACLE_RTOL 1e-12: float64 loop oracle vs BLAS-based kernels differ only by summation order.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

GRADCHECK_RTOL = 1e-6
ORACLE_RTOL = 1e-12


def rel_err(a, b):
    """max|a - b| / max|b| (0 when both are zero)."""
    if not np.size(b):
        return 0.0
    scale = np.max(np.abs(b))
    diff = np.max(np.abs(np.asarray(a, np.float64) - b))
    return diff / scale if scale else diff


def mnist_dir():
    """The real MNIST directory from MINICNN_DATA_DIR, or skip."""
    d = os.environ.get("MINICNN_DATA_DIR")
    if not d:
        pytest.skip("MINICNN_DATA_DIR is not set")
    return d
