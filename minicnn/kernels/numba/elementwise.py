"""Elementwise numba kernels: relu and its gradient, and the ordered sum of partial results.

Tiers: parallel ``@njit`` kernels on 1-D arrays (:func:`_relu_fwd`, :func:`_relu_bwd`), the
reduction :func:`sum_groups` (which the conv modules call on their partial sums: a serial kernel
over blocks, split over the threads by :func:`.fanout.run`), relu's
gradient rule on a range (:func:`relu_bwd_range`, serial: the conv backward's chunks), and the
public :func:`relu_forward` / :func:`relu_backward`, which take any layout and send small or
non-float inputs to the numpy backend (``config.SMALL_ELEMENTWISE``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .. import numpy_backend as _ref
from . import checks, config, fanout
from .arrays import FLOATS, as_c
from .config import EW_BLOCK, SUM_BLOCK
from .fpu import denormals_off, denormals_restore

__all__ = ["relu_forward", "relu_backward", "relu_bwd_range", "sum_groups"]


@njit(parallel=True, cache=True)
def _relu_fwd(x, y):
    """``y = max(x, 0)`` (NaN stays NaN) on 1-D ``x``, ``y`` of one size, a block of
    ``EW_BLOCK`` elements per parallel iteration."""
    size = x.shape[0]
    for t in prange((size + EW_BLOCK - 1) // EW_BLOCK):
        t0, t1 = t * EW_BLOCK, min(size, t * EW_BLOCK + EW_BLOCK)
        xs, ys = x[t0:t1], y[t0:t1]
        for i in range(xs.size):
            ys[i] = 0 if xs[i] < 0 else xs[i]


@njit(parallel=True, cache=True)
def _relu_bwd(dy, y, dx):
    """``dx = dy where y > 0, else 0`` on 1-D arrays of one size (``y``: relu's output)."""
    size = dy.shape[0]
    for t in prange((size + EW_BLOCK - 1) // EW_BLOCK):
        t0, t1 = t * EW_BLOCK, min(size, t * EW_BLOCK + EW_BLOCK)
        relu_bwd_range(dy, y, t0, t1, dx[t0:t1])


@njit(cache=True)
def relu_bwd_range(dy, y, t0, t1, out):
    """``out[i - t0] = dy[i] where y[i] > 0, else 0`` for t0 <= i < t1, on 1-D ``dy``, ``y`` (relu's
    output) and ``out`` (at least t1 - t0 long): relu's gradient rule, serial, for the parallel
    kernel above and for the conv backward's chunks (which mask dy into a cache-sized buffer)."""
    dys, ys = dy[t0:t1], y[t0:t1]
    for i in range(dys.size):
        out[i] = dys[i] if ys[i] > 0 else 0


@njit(nogil=True, cache=True)
def _sum_groups(p, out, b_lo, b_hi, worker):
    """:func:`sum_groups` on the blocks b_lo..b_hi-1 of ``SUM_BLOCK`` elements (``worker`` unused)."""
    ng, length = p.shape
    fpu = denormals_off()  # (see fpu)
    for blk in range(b_lo, b_hi):
        j0 = blk * SUM_BLOCK
        o = out[j0:min(length, j0 + SUM_BLOCK)]  # slices: indices from 0 vectorise (see EW_BLOCK)
        first = p[0, j0:j0 + o.size]
        for j in range(o.size):  # (loops, not o[:] = ...: a slice assignment outside a parfor
            o[j] = first[j]      # compiles numba's general setitem, 1-2 s cold)
        for g in range(1, ng):
            row = p[g, j0:j0 + o.size]
            for j in range(o.size):
                o[j] += row[j]
    denormals_restore(fpu)


def sum_groups(p, out):
    """``out[j] = p[0, j] + p[1, j] + ...`` in that order (deterministic for any thread count).

    Parameters
    ----------
    p : (G, M) array
        G partial results (of parallel groups) of M elements each.
    out : (M,) array of p's dtype
        The sum; blocks of ``SUM_BLOCK`` elements split over the threads (:func:`.fanout.run`:
        one such block, a first layer's dkernel, is one call on this thread).
    """
    # (an add streamed from memory takes about the time of 8 GEMM FLOPs: 64 x 18432 adds, 167 us on
    # one thread)
    fanout.run(_sum_groups, -(-p.shape[1] // SUM_BLOCK), p, out, work=8 * p.size)


def relu_forward(x):
    """max(x, 0), same dtype (NaN propagates)."""
    x = np.ascontiguousarray(x)
    if x.dtype not in FLOATS or x.size < config.SMALL_ELEMENTWISE:
        return _ref.relu_forward(x)
    y = np.empty_like(x)
    _relu_fwd(x.reshape(-1), y.reshape(-1))
    return y


def relu_backward(dy, y):
    """dy where the output was positive, 0 elsewhere (so the gradient at exactly 0 is 0)."""
    dy = np.ascontiguousarray(dy)
    checks.same_shape("relu_backward", ("dy", "y"), dy, y)
    if dy.dtype not in FLOATS or dy.size < config.SMALL_ELEMENTWISE:
        return _ref.relu_backward(dy, np.asarray(y, dtype=dy.dtype))
    y = as_c(y, dy.dtype)
    dx = np.empty_like(dy)
    _relu_bwd(dy.reshape(-1), y.reshape(-1), dx.reshape(-1))
    return dx
