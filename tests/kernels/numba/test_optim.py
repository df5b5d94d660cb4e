"""The fused numba Adam update (minicnn.kernels.numba.optim) equals the numpy one bit for bit (same
operations, same order)."""

from __future__ import annotations

import numpy as np
import pytest

from minicnn.kernels import numpy_backend

numba_optim = pytest.importorskip("minicnn.kernels.numba.optim")

from minicnn.kernels.numba import config  # noqa: E402
from tests.kernels.numba.kernelcheck import Canary  # noqa: E402


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 3, 1, 32), (257,), (40, 7), (300, 128)])  # the last: parallel loop
def test_adam_update_bitwise_equal(dtype, shape):
    rng = np.random.default_rng(0)
    p = rng.standard_normal(shape).astype(dtype)
    g = (rng.standard_normal(shape) * 1e-3).astype(dtype)
    m = (rng.standard_normal(shape) * 1e-4).astype(dtype)
    v = (np.abs(rng.standard_normal(shape)) * 1e-6).astype(dtype)
    g[..., 0] = 0  # exact zeros, as on MNIST's border pixels
    scalars = (dtype(1 - 0.9), dtype(1 - 0.999), dtype(3e-4), dtype(1e-7))
    a = [x.copy() for x in (p, g, m, v)]
    b = [x.copy() for x in (p, g, m, v)]
    for _ in range(3):
        numpy_backend.adam_update(*a, *scalars)
        numba_optim.adam_update(*b, *scalars)
    for name, x, y in zip("pgmv", a, b):
        np.testing.assert_array_equal(x, y, err_msg=name)
        assert x.dtype == y.dtype == dtype
    np.testing.assert_array_equal(b[1], g)  # the gradient is not touched


def test_adam_update_non_contiguous_gradient():
    rng = np.random.default_rng(1)
    p, m, v = (np.zeros((6, 5), np.float32) for _ in range(3))
    g = rng.standard_normal((5, 6)).astype(np.float32).T  # a transposed view
    q = p.copy()
    numba_optim.adam_update(p, g, m, v, *(np.float32(s) for s in (0.1, 0.001, 1e-3, 1e-7)))
    numpy_backend.adam_update(q, g, m.copy() * 0, v.copy() * 0, *(np.float32(s) for s in (0.1, 0.001, 1e-3, 1e-7)))
    np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("size", [config.EW_BLOCK - 1, 2 * config.EW_BLOCK + 5])  # one block; split over threads
def test_adam_update_touches_only_its_arrays(size):
    """p, g, m, v in buffers with margins (NaN around g, sentinels around the state): bitwise the
    numpy update, margins unchanged."""
    rng = np.random.default_rng(2)
    p, g, m, v = (rng.standard_normal(size).astype(np.float32) for _ in range(4))
    v = np.abs(v)
    want = [x.copy() for x in (p, g, m, v)]
    scalars = tuple(np.float32(s) for s in (0.1, 0.001, 3e-4, 1e-7))
    numpy_backend.adam_update(*want, *scalars)
    pc, mc, vc = (Canary.holding(x, fill=-7.25e30) for x in (p, m, v))
    gc = Canary.holding(g)
    numba_optim.adam_update(pc.a, gc.a, mc.a, vc.a, *scalars)
    for name, c, w in zip("pgmv", (pc, gc, mc, vc), want):
        np.testing.assert_array_equal(c.a, w, err_msg=name)
        assert c.intact(), name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_update_divides_by_zero_as_numpy_does(dtype):
    """eps = 0 and a weight whose gradient and moments are all 0: numpy's update is 0 / 0 = NaN
    there (inf elsewhere would be x / 0), and so is this one's, instead of numba's default
    ZeroDivisionError check (whose branch also kept the loop from vectorising)."""
    size = 2 * config.EW_BLOCK + 3
    rng = np.random.default_rng(3)
    p = rng.standard_normal(size).astype(dtype)
    g = rng.standard_normal(size).astype(dtype)
    g[::5] = 0
    m, v = np.zeros(size, dtype), np.zeros(size, dtype)
    scalars = (dtype(0.1), dtype(0.001), dtype(1e-3), dtype(0))
    a = [x.copy() for x in (p, g, m, v)]
    b = [x.copy() for x in (p, g, m, v)]
    with np.errstate(divide="ignore", invalid="ignore"):
        numpy_backend.adam_update(*a, *scalars)
    numba_optim.adam_update(*b, *scalars)
    assert np.isnan(a[0][::5]).all() and np.isfinite(a[0][1::5]).all()
    for name, x, y in zip("pgmv", a, b):
        np.testing.assert_array_equal(x, y, err_msg=name)


def test_the_update_loop_uses_numpy_division_semantics():
    """The kernel and its inlined element step compile with error_model='numpy' (see the kernel's
    comment: the Python model's zero check made the seed's dense1 update 4.5x slower)."""
    for kernel in (numba_optim._adam, numba_optim._adam_at):
        assert kernel.targetoptions.get("error_model") == "numpy", kernel
