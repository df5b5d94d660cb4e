"""Shared helpers of the numba kernel tests: tolerances, the tiles switch, layouts, canaries, a child
process that reports in JSON.

Tolerances (relative: max|difference| / max|reference|): 1e-12 in float64, 1e-5 in float32.
Max-pooling argmax and the relu/pool gradients must be *exactly* equal.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, settings

pytest.importorskip("numba")

from minicnn.kernels.numba import config  # noqa: E402

TOL = {np.float32: 1e-5, np.float64: 1e-12}
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def child_json(code, *argv, env=None, timeout=600):
    """Run ``code`` in a fresh interpreter (``argv`` after ``-c``; ``env`` the whole environment,
    default this process's) and return the JSON its last line of output prints; a child that fails
    fails the test with the tail of its stderr."""
    out = subprocess.run([sys.executable, "-c", code, *argv], env=os.environ if env is None else env,
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def tiles(on):
    """The FMA tiles on (where they are on: the CPU has them, MINICNN_NUMBA_TILES allows them) or
    off (im2col/BLAS paths) inside the block."""
    saved, config.TILES = config.TILES, on and config.TILES
    try:
        yield
    finally:
        config.TILES = saved


#: config.FANOUT_MIN_FLOPS as shipped (read at import, before conftest's fixture sets it to 0)
SHIPPED_FANOUT_MIN_FLOPS = config.FANOUT_MIN_FLOPS


@contextlib.contextmanager
def fanout_threshold(flops):
    """config.FANOUT_MIN_FLOPS set to ``flops`` inside the block: 0 splits every call over the
    threads, a huge value keeps every call on the calling thread (one call over all the items)."""
    saved, config.FANOUT_MIN_FLOPS = config.FANOUT_MIN_FLOPS, flops
    try:
        yield
    finally:
        config.FANOUT_MIN_FLOPS = saved


def one_thread(fn):
    """``fn()`` run with numba's thread count set to 1, the count restored afterwards (the
    determinism tests compare its result with a run on every thread, bit for bit)."""
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        return fn()
    finally:
        numba.set_num_threads(threads)


def rel_err(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    scale = np.abs(want).max() if want.size else 0.0
    diff = np.abs(got - want).max() if want.size else 0.0
    return diff / scale if scale > 0 else diff


def assert_close(got, want, dtype, what):
    assert got.dtype == np.dtype(dtype), f"{what}: dtype {got.dtype}, expected {np.dtype(dtype)}"
    err = rel_err(got, want)
    assert err <= TOL[dtype], f"{what}: relative error {err:.3g} > {TOL[dtype]:g}"


def layout(a, how):
    """The same values as ``a`` in a non-contiguous array ('slice': every other element of a wider
    array along W; 'transpose': a transposed view of an array stored in another order)."""
    if how == "slice":
        wide = np.zeros(a.shape[:2] + (2 * a.shape[2],) + a.shape[3:], dtype=a.dtype)
        wide[:, :, ::2] = a
        v = wide[:, :, ::2]
    elif how == "transpose":
        v = np.ascontiguousarray(np.moveaxis(a, -1, 0))
        v = np.moveaxis(v, 0, -1)
    else:
        return a
    assert np.array_equal(v, a, equal_nan=True)
    return v


def model_like_case(n=6, seed=3, dt=np.float32, f=32):
    """x, kernel and dy shaped like the seed model's second conv (smaller batch)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 14, 14, 16)).astype(dt)
    k = rng.standard_normal((3, 3, 16, f)).astype(dt)
    dy = rng.standard_normal((n, 12, 12, f)).astype(dt)
    return x, k, dy


# ----------------------------------------------------------------------------- canaries
#: elements of margin before and after a canaried array: more than any tile reaches past a
#: row (64 columns) or a loop step in these tests
MARGIN = 4096
#: the margin of an output or scratch buffer: a value no kernel computes here
SENTINEL = -7.25e30


class Canary:
    """A C-contiguous array ``.a`` that is a view into a larger buffer, with ``MARGIN`` elements
    before and after it filled with ``fill``: NaN around an input (a read outside the array leaks
    into the results), :data:`SENTINEL` around an output or scratch buffer (a write outside it
    changes the margin). :meth:`intact` checks the margins bit for bit."""

    def __init__(self, shape, dtype, fill=SENTINEL):
        size = int(np.prod(shape, dtype=np.int64))
        self.fill = np.full(MARGIN, fill, dtype=dtype)
        self.buffer = np.full(size + 2 * MARGIN, fill, dtype=dtype)
        self.a = self.buffer[MARGIN:MARGIN + size].reshape(shape)
        assert self.a.flags.c_contiguous and (size == 0 or np.shares_memory(self.a, self.buffer))

    @classmethod
    def holding(cls, values, fill=np.nan):
        """A copy of ``values`` (NaN margins by default)."""
        values = np.asarray(values)
        c = cls(values.shape, values.dtype, fill)
        c.a[...] = values
        return c

    def intact(self) -> bool:
        return (self.buffer[:MARGIN].tobytes() == self.fill.tobytes()
                and self.buffer[-MARGIN:].tobytes() == self.fill.tobytes())
