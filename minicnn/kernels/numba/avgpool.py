"""The pooling zoo on numba: average pooling, global average/max pooling, zero padding.

The twins of :mod:`minicnn.kernels.numpy_pooling` (layouts, 'same' padding counting only real
cells, TensorFlow's tie rule of the global max gradient: documented there). Every result is
**bitwise** the numpy kernel's: the same operations in the same order.

* **Average pooling** forward: parallel over the N*OH output rows; each window's real cells are
  added in (di, dj) order onto 0 (numpy adds the padded copy's zeros too: ``acc + 0`` is ``acc``,
  the sum never being -0), then divided by the window's count (:func:`~minicnn.kernels.
  numpy_pooling.avgpool2d_counts`, in the dtype). Backward: ``share = dy / count`` (numpy's
  expression, once per window), then a gather, parallel over the N*H input rows: each cell adds
  the shares of the windows covering it in (di, dj) order onto 0, the order of numpy's
  scatter-adds (which window offset (di, dj) of a cell belongs to: small index tables, computed once).
  When no two windows share a cell (pool <= stride, LeNet-5's 2x2/2) and C < 16, one pass
  instead: each input row, flat, gathers ``0 + dy / count`` of its cells' windows
  (:func:`_avg_disjoint_row`; ``DISJOINT_MAX_C`` says why 16).
* **Global average pooling**: per (image, channel) the H*W values added in (h, w) order onto 0,
  which is what numpy's ``mean`` does when C > 1 (its reduction runs along the channels); for
  C = 1 numpy sums each image's contiguous H*W values pairwise (8 accumulators, halves above 128
  values), reproduced by :func:`_pairwise`. The sum is divided by H*W in float64 and rounded once,
  as numpy's ``true_divide`` by an integer count does. The backward is ``dy / (H*W)`` broadcast.
* **Global max pooling**: per (image, channel) the maximum (a NaN wins, as in numpy's reduction);
  the backward counts each channel's cells equal to its maximum and gives each ``(1 / count) *
  dy`` (0 elsewhere, NaN for a NaN channel: numpy's 0 / 0).
* **Zero padding** and its adjoint, the crop: copies of whole rows (W*C contiguous values),
  parallel over images.

Tiers: serial ``@njit`` helpers per output row or image; the kernels, serial ``nogil`` loops
over a range of rows or images that :func:`.fanout.run` splits over the threads when the call
has the work for it (:data:`POOL_WORK`, :data:`COPY_WORK`; the same helpers on any split: the same
bits); then the public functions (shape checks, any layout, non-float dtypes to the numpy
kernels). Not ``prange`` kernels with serial twins, as before: a parfor compiles its body twice
over and the twin a third time (the three average-pooling pairs cost LeNet-5 3.5 s cold).
Nothing here does arithmetic on denormals often enough to flush them.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .. import numpy_pooling as _ref
from . import checks, fanout
from .arrays import FLOATS

__all__ = ["avgpool2d_forward", "avgpool2d_backward", "global_avgpool2d_forward", "global_avgpool2d_backward",
           "global_maxpool2d_forward", "global_maxpool2d_backward", "zeropad2d_forward", "zeropad2d_backward"]

#: :func:`.fanout.run`'s work per float32 element read and written (in its unit, one GEMM FLOP's
#: time on one thread), set so that a call splits where the split measured to pay: average
#: pooling's passes (a window's adds per output, gathers per input; 1.5-2x on two cores at
#: LeNet-5's first pool) from ~100k elements; the copies and single reductions of global pooling
#: and zero padding, bound by the memory bandwidth the cores share (0.6-1.1x split at batch 256),
#: from ~0.8M. Medians of four runs of ``python -m benchmarks.fanout_work`` (2-core Zen 3),
#: rounded; float64 counts twice (:func:`.fanout.element_work`)
POOL_WORK = 40
COPY_WORK = 5


# ----------------------------------------------------------------------------- average pooling
@njit(cache=True, error_model="numpy")
def _avg_row(x, n, i, ph, pw, sh, sw, top, left, cnt, yr):
    """Output row (n, i): ``yr`` (OW, C) = window sums of ``x`` (N, H, W, C) / ``cnt`` (OH, OW)."""
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    ow = yr.shape[0]
    for j in range(ow):
        acc = yr[j]
        for ch in range(c):
            acc[ch] = 0
        for di in range(ph):
            r = i * sh + di - top
            if r < 0 or r >= h:
                continue
            for dj in range(pw):
                s = j * sw + dj - left
                if s < 0 or s >= w:
                    continue
                xr = x[n, r, s]
                for ch in range(c):
                    acc[ch] += xr[ch]
        q = cnt[i, j]
        for ch in range(c):
            acc[ch] = acc[ch] / q


@njit(nogil=True, cache=True, error_model="numpy")
def _avg_fwd(x, ph, pw, sh, sw, top, left, cnt, y, t_lo, t_hi, worker):
    """y (N, OH, OW, C) = average pooling of x, on the output rows t_lo..t_hi-1 of the N*OH."""
    oh = y.shape[1]
    for t in range(t_lo, t_hi):
        n = t // oh
        _avg_row(x, n, t - n * oh, ph, pw, sh, sw, top, left, cnt, y[n, t - n * oh])


@njit(cache=True, error_model="numpy")
def _avg_grad_row(share, n, r, rows, cols, dxr):
    """Input row (n, r): ``dxr`` (W, C) = the sum over the windows covering each cell of their
    ``share`` (N, OH, OW, C) (``dy / count``), in (di, dj) order onto 0. ``rows`` (H, PH) and
    ``cols`` (W, PW) hold the window row i / column j that offset di / dj of a cell belongs to, or -1."""
    ph, pw = rows.shape[1], cols.shape[1]
    c = dxr.shape[1]
    for s in range(dxr.shape[0]):
        acc = dxr[s]
        for ch in range(c):
            acc[ch] = 0
        for di in range(ph):
            i = rows[r, di]
            if i < 0:
                continue
            for dj in range(pw):
                j = cols[s, dj]
                if j < 0:
                    continue
                g = share[n, i, j]
                for ch in range(c):
                    acc[ch] += g[ch]


@njit(nogil=True, cache=True, error_model="numpy")
def _avg_bwd(share, rows, cols, dx, t_lo, t_hi, worker):
    """dx (N, H, W, C) from the windows' shares (N, OH, OW, C), on the input rows t_lo..t_hi-1
    of the N*H."""
    h = dx.shape[1]
    for t in range(t_lo, t_hi):
        n = t // h
        _avg_grad_row(share, n, t - n * h, rows, cols, dx[n, t - n * h])


@njit(cache=True, error_model="numpy")
def _avg_disjoint_row(dy, cnt, row_of, idx, valid, n, r, dxr):
    """Input row (n, r) when every cell lies in at most one window (pool <= stride on both axes):
    ``dxr`` (W*C,) = ``0 + dy / count`` of the cell's window (numpy's share added onto 0: the
    same bits, -0 included), 0 for a cell in none. dy (N, OH, OW*C), cnt (OH, OW*C) the counts
    tiled over the channels, row_of (H,) the window row or -1, idx (W*C,) the position in a window
    row, valid (W*C,) whether the cell has a window. One gathering loop along the whole row:
    per-cell loops of C = 6 values (LeNet-5) stay scalar."""
    zero = np.zeros(1, dtype=dxr.dtype)[0]
    i = row_of[r]
    if i < 0:
        for q in range(dxr.shape[0]):  # (a loop: a slice assignment compiles numba's general setitem)
            dxr[q] = zero
        return
    dyr, cr = dy[n, i], cnt[i]
    for q in range(dxr.shape[0]):
        k = idx[q]
        v = dyr[k] / cr[k]
        dxr[q] = zero + v if valid[q] else zero


@njit(nogil=True, cache=True, error_model="numpy")
def _avg_bwd_disjoint(dy, cnt, row_of, idx, valid, dx, t_lo, t_hi, worker):
    """dx (N, H, W*C) by :func:`_avg_disjoint_row`, on the input rows t_lo..t_hi-1 of the N*H."""
    h = dx.shape[1]
    for t in range(t_lo, t_hi):
        n = t // h
        _avg_disjoint_row(dy, cnt, row_of, idx, valid, n, t - n * h, dx[n, t - n * h])


#: the one-pass backward of disjoint windows (no cell in two) runs below this many channels:
#: measured one thread, batch 100, 2x2/2, float32 (interleaved, medians of 35): C = 6 (LeNet-5's
#: first pool) 0.78 -> 0.46 ms, C = 3 1.05 -> 0.39, but C = 16 (its second) 0.128 -> 0.140, where
#: the per-cell loop of whole vectors of the general gather is as fast and divides 4x less
DISJOINT_MAX_C = 16

#: the per-shape tables below, by (what, shape, pool, strides, pads, dtype); a layer asks for the
#: same few every call, and building one costs more than a small pass (the counts of a LeNet-5
#: pool: 21 us, the whole batch-1 forward around them 10 us; the disjoint tables as much as its
#: second pool's whole backward)
_TABLES = {}
#: shapes kept before the cache starts again (a model has a few pools, a study a few batch sizes)
MAX_TABLES = 64


def _per_shape(what, x_shape, pool_size, strides, pads, dtype, build):
    """``build()``, computed once per shape and kept (read by the kernels, never written)."""
    key = (what, tuple(x_shape[1:]), tuple(pool_size), tuple(strides), tuple(pads), np.dtype(dtype))
    table = _TABLES.get(key)
    if table is None:
        table = build()
        if len(_TABLES) >= MAX_TABLES:
            _TABLES.clear()
        _TABLES[key] = table
    return table


def _counts(x_shape, pool_size, strides, pads, dtype):
    """:func:`~minicnn.kernels.numpy_pooling.avgpool2d_counts` in ``dtype``: (OH, OW), kept per shape."""
    return _per_shape("counts", x_shape, pool_size, strides, pads, dtype,
                      lambda: _ref.avgpool2d_counts(x_shape, pool_size, strides, pads).astype(dtype))


def _windows(x_shape, pool_size, strides, pads, oh, ow):
    """(rows, cols) of :func:`_window_of` for the general backward, kept per shape."""
    return _per_shape("windows", x_shape, pool_size, strides, pads, np.int64,
                      lambda: (_window_of(x_shape[1], pool_size[0], strides[0], pads[0], oh),
                               _window_of(x_shape[2], pool_size[1], strides[1], pads[2], ow)))


def _disjoint_tables(x_shape, pool_size, strides, pads, dtype):
    """(cnt (OH, OW*C), row_of (H,), idx (W*C,), valid (W*C,)) of :func:`_avg_disjoint_row`, kept
    per shape."""
    def build():
        _, h, w, c = x_shape
        cnt = _counts(x_shape, pool_size, strides, pads, dtype)
        oh, ow = cnt.shape
        row_of = _window_of(h, pool_size[0], strides[0], pads[0], oh).max(axis=1)
        col_of = _window_of(w, pool_size[1], strides[1], pads[2], ow).max(axis=1)
        idx = (np.maximum(col_of, 0)[:, None] * c + np.arange(c)[None, :]).reshape(-1)
        return np.ascontiguousarray(np.repeat(cnt, c, axis=1)), row_of, idx, np.repeat(col_of >= 0, c)
    return _per_shape("disjoint", x_shape, pool_size, strides, pads, dtype, build)


def _disjoint_backward(dy, x_shape, pool_size, strides, pads):
    """dx of :func:`avgpool2d_backward` when no two windows share a cell (pool <= stride)."""
    n, h, w, c = x_shape
    oh, ow = dy.shape[1:3]
    dx = np.empty(x_shape, dtype=dy.dtype)
    fanout.run(_avg_bwd_disjoint, n * h, dy.reshape(n, oh, ow * c),
               *_disjoint_tables(x_shape, pool_size, strides, pads, dy.dtype), dx.reshape(n, h, w * c),
               work=fanout.element_work(POOL_WORK, dy, dx))
    return dx


def _window_of(n, k, s, before, out):
    """(n, k) int64: the window index o with ``o * s + d - before`` = the cell, for each cell and
    offset d, or -1 (no such window: the cell is not at offset d of any window)."""
    pos = np.arange(n)[:, None] + before - np.arange(k)[None, :]
    o = pos // s
    return np.where((pos >= 0) & (pos % s == 0) & (o < out), o, -1).astype(np.int64)


# ----------------------------------------------------------------------------- global pooling
@njit(cache=True, error_model="numpy")
def _pairwise_leaf(a, lo, n, zero):
    """numpy's ``pairwise_sum`` of ``a[lo:lo + n]`` for n <= 128: below 8 values in order onto 0,
    else eight running sums combined as ((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7)), then the rest in order."""
    if n < 8:
        res = zero
        for k in range(n):
            res += a[lo + k]
        return res
    r = a[lo:lo + 8].copy()
    k = 8
    while k < n - n % 8:
        for m in range(8):
            r[m] += a[lo + k + m]
        k += 8
    res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    while k < n:
        res += a[lo + k]
        k += 1
    return res


@njit(cache=True, error_model="numpy")
def _pairwise(a, n, zero):
    """numpy's pairwise sum of ``a[:n]``: above 128 values the sum of the two halves' (the first a
    multiple of 8 long), evaluated with an explicit stack (numba's cache cannot hold a recursive
    function: a cached one crashed here)."""
    if n <= 128:
        return _pairwise_leaf(a, 0, n, zero)
    los = np.empty(192, dtype=np.int64)
    ns = np.empty(192, dtype=np.int64)
    done = np.empty(192, dtype=np.int64)
    vals = np.empty(192, dtype=a.dtype)
    sp, vp = 1, 0
    los[0], ns[0], done[0] = 0, n, 0
    while sp > 0:
        sp -= 1
        lo, m, d = los[sp], ns[sp], done[sp]
        if m <= 128:
            vals[vp] = _pairwise_leaf(a, lo, m, zero)
            vp += 1
        elif d == 0:
            n2 = m // 2
            n2 -= n2 % 8
            los[sp], ns[sp], done[sp] = lo, m, 1  # revisited after both halves
            los[sp + 1], ns[sp + 1], done[sp + 1] = lo + n2, m - n2, 0
            los[sp + 2], ns[sp + 2], done[sp + 2] = lo, n2, 0  # popped first: the first half
            sp += 3
        else:
            vals[vp - 2] = vals[vp - 2] + vals[vp - 1]
            vp -= 1
    return vals[0]


@njit(cache=True, error_model="numpy")
def _gavg_image(xi, yi):
    """yi (C,) = mean of xi (H*W, C) over its rows, numpy's order (see the module docstring)."""
    m, c = xi.shape
    if c == 1:
        zero = np.zeros(1, dtype=yi.dtype)[0]
        s = zero + _pairwise(xi[:, 0], m, zero)
        yi[0] = np.float64(s) / m
        return
    acc = np.zeros(c, dtype=yi.dtype)
    for r in range(m):
        xr = xi[r]
        for ch in range(c):
            acc[ch] += xr[ch]
    for ch in range(c):
        yi[ch] = np.float64(acc[ch]) / m


@njit(nogil=True, cache=True, error_model="numpy")
def _gavg_fwd(x3, y, n_lo, n_hi, worker):
    """y (N, C) = means of x3 (N, H*W, C), on the images n_lo..n_hi-1."""
    for n in range(n_lo, n_hi):
        _gavg_image(x3[n], y[n])


@njit(cache=True, error_model="numpy")
def _broadcast_image(dyi, q, dxi):
    """dxi (H*W, C) = dyi (C,) / q at every row (``q``: H*W in the dtype)."""
    c = dyi.shape[0]
    g = dxi[0]
    for ch in range(c):
        g[ch] = dyi[ch] / q
    for r in range(1, dxi.shape[0]):
        dr = dxi[r]
        for ch in range(c):
            dr[ch] = g[ch]


@njit(nogil=True, cache=True, error_model="numpy")
def _gavg_bwd(dy, q, dx3, n_lo, n_hi, worker):
    """dx3 (N, H*W, C) = dy (N, C) / q broadcast, on the images n_lo..n_hi-1."""
    for n in range(n_lo, n_hi):
        _broadcast_image(dy[n], q, dx3[n])


@njit(cache=True, error_model="numpy")
def _gmax_image(xi, yi):
    """yi (C,) = max of xi (H*W, C) over its rows, a NaN winning (H*W >= 1)."""
    m, c = xi.shape
    for ch in range(c):
        yi[ch] = xi[0, ch]
    for r in range(1, m):
        xr = xi[r]
        for ch in range(c):
            v, best = xr[ch], yi[ch]
            yi[ch] = v if (v > best or v != v) and best == best else best


@njit(nogil=True, cache=True, error_model="numpy")
def _gmax_fwd(x3, y, n_lo, n_hi, worker):
    """y (N, C) = maxima of x3 (N, H*W, C), on the images n_lo..n_hi-1."""
    for n in range(n_lo, n_hi):
        _gmax_image(x3[n], y[n])


@njit(cache=True, error_model="numpy")
def _gmax_grad_image(dyi, xi, yi, dxi):
    """dxi (H*W, C): ``(hit / ties) * dy`` per cell, hit = (x == y) as 1 or 0, ties = the
    channel's number of hits (numpy's roundings: the quotient in the dtype, then the product)."""
    m, c = xi.shape
    ties = np.zeros(c, dtype=dxi.dtype)
    for r in range(m):
        xr = xi[r]
        for ch in range(c):
            if xr[ch] == yi[ch]:
                ties[ch] += 1
    one_q = np.empty(c, dtype=dxi.dtype)
    zero_q = np.empty(c, dtype=dxi.dtype)
    for ch in range(c):
        one_q[ch] = 1 / ties[ch]  # float64 quotient rounded once on the store: the dtype's quotient
        zero_q[ch] = 0 / ties[ch]  # 0, or NaN for a channel without a hit (its maximum is NaN)
    for r in range(m):
        xr, dr = xi[r], dxi[r]
        for ch in range(c):
            dr[ch] = (one_q[ch] if xr[ch] == yi[ch] else zero_q[ch]) * dyi[ch]


@njit(nogil=True, cache=True, error_model="numpy")
def _gmax_bwd(dy, x3, y, dx3, n_lo, n_hi, worker):
    """dx3 (N, H*W, C) of the global max, on the images n_lo..n_hi-1."""
    for n in range(n_lo, n_hi):
        _gmax_grad_image(dy[n], x3[n], y[n], dx3[n])


# ----------------------------------------------------------------------------- zero padding
@njit(nogil=True, cache=True)
def _pad(x3, top, left, y3, i_lo, i_hi, worker):
    """y3 (N, Hp, Wp*C) = x3 (N, H, W*C) zero-padded (``left`` in elements), on the images
    i_lo..i_hi-1. Each image is zeroed whole, then its rows copied: long loops (measured on
    (100, 28, 28, 1): 15 us, against 26 for zeroing only the border row by row and 23 with the
    image's work in a helper function; numpy 23)."""
    h, wc = x3.shape[1], x3.shape[2]
    for i in range(i_lo, i_hi):
        yf = y3[i].reshape(-1)
        for k in range(yf.size):
            yf[k] = 0
        for r in range(h):
            dst = y3[i, r + top, left:left + wc]
            src = x3[i, r]
            for k in range(wc):
                dst[k] = src[k]


@njit(nogil=True, cache=True)
def _crop(dy3, top, left, dx3, i_lo, i_hi, worker):
    """dx3 (N, H, W*C) = the interior of dy3 (N, Hp, Wp*C) from row ``top``, element ``left``, on
    the images i_lo..i_hi-1."""
    h, wc = dx3.shape[1], dx3.shape[2]
    for i in range(i_lo, i_hi):
        for r in range(h):
            src = dy3[i, r + top, left:left + wc]
            dst = dx3[i, r]
            for k in range(wc):
                dst[k] = src[k]


# ----------------------------------------------------------------------------- public functions
def _nhwc(where, a, name="x"):
    if np.ndim(a) != 4:
        raise ValueError(f"{where}: {name} must be (N, H, W, C), got {np.shape(a)}")


def avgpool2d_forward(x, pool_size, strides, pads):
    """As :func:`minicnn.kernels.numpy_pooling.avgpool2d_forward` (numba; the same bits)."""
    x = np.ascontiguousarray(x)
    oh, ow = checks.pool_args("avgpool2d_forward", x, pool_size, strides, pads)
    if x.dtype not in FLOATS or min(oh, ow) < 1 or x.shape[0] == 0 or x.shape[3] == 0:
        return _ref.avgpool2d_forward(x, pool_size, strides, pads)
    cnt = _counts(x.shape, pool_size, strides, pads, x.dtype)
    y = np.empty((x.shape[0], oh, ow, x.shape[3]), dtype=x.dtype)
    fanout.run(_avg_fwd, y.shape[0] * oh, x, pool_size[0], pool_size[1], strides[0], strides[1], pads[0], pads[2],
               cnt, y, work=fanout.element_work(POOL_WORK, x, y))
    return y


def avgpool2d_backward(dy, x_shape, pool_size, strides, pads):
    """As :func:`minicnn.kernels.numpy_pooling.avgpool2d_backward` (numba; the same bits)."""
    dy = np.ascontiguousarray(dy)
    x_shape = tuple(int(v) for v in x_shape)
    checks.pool_dy_args("avgpool2d_backward", dy, x_shape, pool_size, strides, pads)
    if dy.dtype not in FLOATS or dy.size == 0:
        return _ref.avgpool2d_backward(dy, x_shape, pool_size, strides, pads)
    if pool_size[0] <= strides[0] and pool_size[1] <= strides[1] and x_shape[3] < DISJOINT_MAX_C:
        return _disjoint_backward(dy, x_shape, pool_size, strides, pads)
    cnt = _counts(x_shape, pool_size, strides, pads, dy.dtype)
    rows, cols = _windows(x_shape, pool_size, strides, pads, *dy.shape[1:3])
    dx = np.empty(x_shape, dtype=dy.dtype)
    share = dy / cnt[None, :, :, None]  # numpy's own expression: one division per window and channel
    fanout.run(_avg_bwd, x_shape[0] * x_shape[1], share, rows, cols, dx, work=fanout.element_work(POOL_WORK, dy, dx))
    return dx


def global_avgpool2d_forward(x):
    """Mean over H and W, (N, H, W, C) -> (N, C): numpy's ``mean``, bit for bit."""
    x = np.ascontiguousarray(x)
    _nhwc("global_avgpool2d_forward", x)
    n, h, w, c = x.shape
    if x.dtype not in FLOATS or x.size == 0:
        return _ref.global_avgpool2d_forward(x)
    y = np.empty((n, c), dtype=x.dtype)
    fanout.run(_gavg_fwd, n, x.reshape(n, h * w, c), y, work=fanout.element_work(COPY_WORK, x))
    return y


def global_avgpool2d_backward(dy, x_shape):
    """dy (N, C) / (H*W) at every cell: (N, H, W, C), dy's dtype."""
    dy = np.ascontiguousarray(dy)
    x_shape = tuple(int(v) for v in x_shape)
    if len(x_shape) != 4 or dy.shape != (x_shape[0], x_shape[3]):
        raise ValueError(f"global_avgpool2d_backward: dy must be (N, C) of x_shape (N, H, W, C), got "
                         f"{dy.shape} and {x_shape}")
    n, h, w, c = x_shape
    if dy.dtype not in FLOATS or n * h * w * c == 0:
        return _ref.global_avgpool2d_backward(dy, x_shape)
    dx = np.empty(x_shape, dtype=dy.dtype)
    fanout.run(_gavg_bwd, n, dy, dy.dtype.type(h * w), dx.reshape(n, h * w, c), work=fanout.element_work(COPY_WORK, dx))
    return dx


def global_maxpool2d_forward(x):
    """Max over H and W, (N, H, W, C) -> (N, C) (NaN propagates): numpy's, bit for bit."""
    x = np.ascontiguousarray(x)
    _nhwc("global_maxpool2d_forward", x)
    n, h, w, c = x.shape
    if x.dtype not in FLOATS or x.size == 0:
        return _ref.global_maxpool2d_forward(x)
    y = np.empty((n, c), dtype=x.dtype)
    fanout.run(_gmax_fwd, n, x.reshape(n, h * w, c), y, work=fanout.element_work(COPY_WORK, x))
    return y


def global_maxpool2d_backward(dy, x, y):
    """TensorFlow's reduce_max gradient (ties share dy): the numpy kernel's, bit for bit."""
    dy = np.ascontiguousarray(dy)
    _nhwc("global_maxpool2d_backward", x)
    n, h, w, c = np.shape(x)
    if dy.shape != (n, c) or np.shape(y) != (n, c):
        raise ValueError(f"global_maxpool2d_backward: dy {dy.shape} and y {np.shape(y)} must be (N, C) of x "
                         f"{np.shape(x)}")
    dt = dy.dtype
    if dt not in FLOATS or n * h * w * c == 0 or np.asarray(x).dtype != dt or np.asarray(y).dtype != dt:
        return _ref.global_maxpool2d_backward(dy, np.asarray(x), np.asarray(y))
    x3 = np.ascontiguousarray(x).reshape(n, h * w, c)
    dx = np.empty((n, h, w, c), dtype=dt)
    fanout.run(_gmax_bwd, n, dy, x3, np.ascontiguousarray(y), dx.reshape(x3.shape), work=fanout.element_work(COPY_WORK, x3, dx))
    return dx


def zeropad2d_forward(x, pads):
    """(N, H, W, C) -> (N, H+top+bottom, W+left+right, C) with zeros around: a new array."""
    x = np.ascontiguousarray(x)
    _nhwc("zeropad2d_forward", x)
    top, bottom, left, right = pads
    if min(pads) < 0:
        raise ValueError(f"zeropad2d_forward: pads {tuple(pads)} must be non-negative")
    n, h, w, c = x.shape
    if x.dtype not in FLOATS or x.size == 0:
        return _ref.zeropad2d_forward(x, pads)
    y = np.empty((n, h + top + bottom, w + left + right, c), dtype=x.dtype)
    fanout.run(_pad, n, x.reshape(n, h, w * c), top, left * c, y.reshape(n, y.shape[1], -1), work=fanout.element_work(COPY_WORK, x, y))
    return y


def zeropad2d_backward(dy, pads):
    """The crop, (N, Hp, Wp, C) -> (N, Hp-top-bottom, Wp-left-right, C): a new contiguous array."""
    dy = np.ascontiguousarray(dy)
    _nhwc("zeropad2d_backward", dy, "dy")
    top, bottom, left, right = pads
    n, hp, wp, c = dy.shape
    h, w = hp - top - bottom, wp - left - right
    if min(pads) < 0 or h < 0 or w < 0:
        raise ValueError(f"zeropad2d_backward: pads {tuple(pads)} do not fit dy {dy.shape}")
    if dy.dtype not in FLOATS or n * h * w * c == 0:
        return _ref.zeropad2d_backward(dy, pads)
    dx = np.empty((n, h, w, c), dtype=dy.dtype)
    fanout.run(_crop, n, dy.reshape(n, hp, wp * c), top, left * c, dx.reshape(n, h, w * c), work=fanout.element_work(COPY_WORK, dx))
    return dx
