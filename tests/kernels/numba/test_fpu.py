"""Denormals are flushed inside the numba kernels (minicnn.kernels.numba.fpu), and only there (the
caller's FP state is kept)."""

from __future__ import annotations

import numpy as np
import pytest

from minicnn.kernels import numpy_backend as ref

nb = pytest.importorskip("minicnn.kernels.numba_backend")
fpu = pytest.importorskip("minicnn.kernels.numba.fpu")
numba_optim = pytest.importorskip("minicnn.kernels.numba.optim")

pytestmark = pytest.mark.skipif(not fpu.X86, reason="FTZ/DAZ are x86 MXCSR flags")

TINY = np.float32(1e-39)  # denormal in float32 (the smallest normal is 1.18e-38)


@pytest.fixture(scope="module")
def mxcsr():
    from numba import njit

    @njit
    def read():
        old = fpu.denormals_off()
        fpu.denormals_restore(old)
        return old

    return read


def test_the_switch_sets_ftz_and_daz_and_restores(mxcsr):
    from numba import njit

    @njit
    def inside():
        old = fpu.denormals_off()
        now = fpu.denormals_off()
        fpu.denormals_restore(old)
        return old, now

    before = mxcsr()
    old, now = inside()
    assert old == before and now == before | fpu.FTZ_DAZ
    assert mxcsr() == before


def test_adam_flushes_denormal_moments_and_keeps_the_rest_bitwise(mxcsr):
    rng = np.random.default_rng(0)
    n = 40000  # the parallel loop
    p = rng.standard_normal(n).astype(np.float32)
    g = (rng.standard_normal(n) * 1e-3).astype(np.float32)
    m = (rng.standard_normal(n) * 1e-4).astype(np.float32)
    v = (np.abs(rng.standard_normal(n)) * 1e-6).astype(np.float32)
    g[:100], m[:100] = 0, TINY * 10  # decaying first moments: (1 - 0.1) * 1e-38 is denormal
    a = [x.copy() for x in (p, g, m, v)]
    b = [x.copy() for x in (p, g, m, v)]
    scalars = tuple(np.float32(s) for s in (0.1, 0.001, 3e-4, 1e-7))
    before = mxcsr()
    ref.adam_update(*a, *scalars)
    numba_optim.adam_update(*b, *scalars)
    assert mxcsr() == before
    smallest_normal = np.finfo(np.float32).tiny
    assert ((0 < a[2][:100]) & (a[2][:100] < smallest_normal)).all()  # numpy keeps the denormal
    assert (b[2][:100] == 0).all()  # numba flushes it
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x[100:], y[100:])


def test_conv_and_dense_kernels_flush_and_leave_the_callers_state(mxcsr):
    before = mxcsr()
    x = np.full((2, 4, 4, 16), TINY, np.float32)
    k = np.zeros((1, 1, 16, 16), np.float32)
    k[0, 0, 0, :] = 1  # each output = x[..., 0]: a denormal
    y = nb.conv2d_forward(x, k, None, (1, 1), (0, 0, 0, 0))
    assert (ref.conv2d_forward(x, k, None, (1, 1), (0, 0, 0, 0)) == TINY).all() and (y == 0).all()
    xd = np.full((300, 64), TINY, np.float32)
    kd = np.eye(64, 32, dtype=np.float32)
    assert (nb.dense_forward(xd, kd, None) == 0).all()
    assert mxcsr() == before
    assert np.float32(1e-38) * np.float32(0.1) != 0  # numpy on this thread still makes denormals
