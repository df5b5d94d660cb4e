"""Test helpers and the tolerance table (one place; every override elsewhere says why).

- GRADCHECK_RTOL 1e-6: the share of a directional derivative that minicnn.gradcheck's error model
  (Richardson-extrapolated differences, measured truncation + rounding noise) does not explain.
  Correct gradients give ~0 on any BLAS kernel; a wrong one gives its own relative error (a
  transposition or a missing term: O(1); tests/test_gradcheck.py catches 1e-4).
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


def write_idx(path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (magic 0x08 type byte, big-endian dims), raw."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with open(path, "wb") as f:
        f.write(header + array.tobytes())


def write_fake_mnist(directory, n_train=200, n_test=50, seed=0):
    """A tiny MNIST-shaped dataset whose classes are learnable: class c lights up band c."""
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        y = rng.integers(0, 10, n).astype(np.uint8)
        x = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(y):
            x[i, 2 + 2 * c: 4 + 2 * c, 4:24] = 255
        write_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte"), x)
        write_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte"), y)
    return directory
