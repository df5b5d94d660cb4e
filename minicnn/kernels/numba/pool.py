"""Max pooling on numba: one pass computing max + first argmax; the backward is a gather.

Tiers: the serial ``nogil`` kernels :func:`_maxpool_fwd` / :func:`_maxpool_bwd` over ranges of
rows, split over numba's threads by :func:`.fanout.run` (a ``prange`` kernel compiles its body
twice over: 1.8 s each of the vgg_bn preset's cold first step), and the public
:func:`maxpool2d_forward` / :func:`maxpool2d_backward` (any layout; non-float dtypes go to the
numpy backend). Results equal the numpy backend's exactly (argmax included).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .. import numpy_backend as _ref
from . import checks, fanout
from .arrays import FLOATS

__all__ = ["maxpool2d_forward", "maxpool2d_backward"]

#: :func:`.fanout.run`'s work per window cell visited, in FLOPs of the kernels its threshold
#: (``config.FANOUT_MIN_FLOPS``, ~50 us of one thread's GEMM work) was set for. Measured on one
#: thread, float32, 2x2 windows (Zen 4): 0.15-0.5 ns a cell forward, 0.25-0.6 backward, (100, 16,
#: 16, 64) 0.35 / 0.47 ms: a cell costs about what 20 FLOPs of a tile kernel do, so calls of about
#: 200,000 cells and up (batch 32 at (16, 16, 64)) are split, a batch of one is not
POOL_WORK = 20


@njit(nogil=True, cache=True)
def _maxpool_fwd(x, ph, pw, sh, sw, top, left, y, arg, t_lo, t_hi, worker):
    """Max and first argmax per window, np.argmax's rule: a NaN wins, padded cells are -inf.

    The window loop is outside the channel loop, so the compare-and-select is vectorised over C.

    Parameters
    ----------
    x : (N, H, W, C) array
        The unpadded input.
    ph, pw, sh, sw : int
        Window size and strides.
    top, left : int
        Padding at the top and left (the far sides follow from y's shape).
    y : (N, OH, OW, C) array
        The maxima (output; one work item per output row, N*OH of them).
    arg : (N, OH, OW, C) int32 array
        The window-local index ``i * PW + j`` of each maximum (output).
    t_lo, t_hi, worker : int
        The output rows to do (:func:`.fanout.run`; ``worker`` unused).
    """
    n_img, h, w, c = x.shape
    _, oh, ow, _ = y.shape
    for t in range(t_lo, min(t_hi, n_img * oh)):
        n = t // oh
        i = t - n * oh
        for j in range(ow):
            for di in range(ph):
                r = i * sh + di - top
                for dj in range(pw):
                    s = j * sw + dj - left
                    kk = di * pw + dj
                    inside = 0 <= r < h and 0 <= s < w
                    if kk == 0:
                        for ch in range(c):
                            y[n, i, j, ch] = x[n, r, s, ch] if inside else -np.inf
                            arg[n, i, j, ch] = 0
                    elif inside:  # a padded cell (-inf) never replaces the current best
                        for ch in range(c):
                            v = x[n, r, s, ch]
                            best = y[n, i, j, ch]
                            if (v > best or np.isnan(v)) and not np.isnan(best):
                                y[n, i, j, ch] = v
                                arg[n, i, j, ch] = kk


@njit(nogil=True, cache=True)
def _maxpool_bwd(dy, arg, ph, pw, sh, sw, top, left, dx, t_lo, t_hi, worker):
    """Gather: each input cell sums dy of the windows whose argmax is it, in (di, dj) order.

    Parameters
    ----------
    dy : (N, OH, OW, C) array; arg : (N, OH, OW, C) int32 array (from :func:`_maxpool_fwd`).
    ph, pw, sh, sw, top, left : int
        As in :func:`_maxpool_fwd`.
    dx : (N, H, W, C) array
        The input gradient (output; one work item per input row, N*H of them).
    t_lo, t_hi, worker : int
        The input rows to do (:func:`.fanout.run`; ``worker`` unused).
    """
    n_img, h, w, c = dx.shape
    _, oh, ow, _ = dy.shape
    for t in range(t_lo, min(t_hi, n_img * h)):
        n = t // h
        r = t - n * h
        for s in range(w):
            for ch in range(c):
                dx[n, r, s, ch] = 0
            for di in range(ph):
                ii = r + top - di
                if ii < 0 or ii % sh != 0 or ii // sh >= oh:
                    continue
                i = ii // sh
                for dj in range(pw):
                    jj = s + left - dj
                    if jj < 0 or jj % sw != 0 or jj // sw >= ow:
                        continue
                    j = jj // sw
                    kk = di * pw + dj
                    for ch in range(c):
                        if arg[n, i, j, ch] == kk:
                            dx[n, r, s, ch] += dy[n, i, j, ch]


def maxpool2d_forward(x, pool_size, strides, pads):
    """Max over each window; returns ``(y, argmax)`` exactly as the numpy backend does
    (argmax: int32 window-local ``i * PW + j`` of the first maximum in row-major order)."""
    x = np.ascontiguousarray(x)
    oh, ow = checks.pool_args("maxpool2d_forward", x, pool_size, strides, pads)
    if x.dtype not in FLOATS:
        return _ref.maxpool2d_forward(x, pool_size, strides, pads)
    ph, pw = pool_size
    n, _, _, c = x.shape
    y = np.empty((n, oh, ow, c), dtype=x.dtype)
    arg = np.empty((n, oh, ow, c), dtype=np.int32)
    fanout.run(_maxpool_fwd, n * oh, x, ph, pw, strides[0], strides[1], pads[0], pads[2], y, arg,
               work=POOL_WORK * y.size * ph * pw)
    return y, arg


def maxpool2d_backward(dy, argmax, x_shape, pool_size, strides, pads):
    """Route each upstream gradient to the input cell that won its window. Returns dx (x_shape)."""
    dy = np.ascontiguousarray(dy)
    checks.pool_grad_args("maxpool2d_backward", dy, argmax, x_shape, pool_size, strides, pads)
    if dy.dtype not in FLOATS:
        return _ref.maxpool2d_backward(dy, argmax, x_shape, pool_size, strides, pads)
    argmax = np.ascontiguousarray(argmax, dtype=np.int32)
    dx = np.empty(tuple(x_shape), dtype=dy.dtype)
    fanout.run(_maxpool_bwd, dx.shape[0] * dx.shape[1], dy, argmax, pool_size[0], pool_size[1], strides[0],
               strides[1], pads[0], pads[2], dx, work=POOL_WORK * dy.size * pool_size[0] * pool_size[1])
    return dx
