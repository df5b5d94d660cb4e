"""dense (x @ kernel + bias) on numba: the FMA tiles, or GEMMs in fixed slices and blocks.

* **float32, out (and in, for the backward) a multiple of 16** (the seed model's dense1;
  :func:`tiles_fit`): the tiles (:mod:`.tiles`). Forward (up to ``config.DENSE_TILE_MAX_SAMPLES``
  samples): ``config.DENSE_KSPLIT`` fixed slices of the inner dimension, each 64-row blocks of the
  kernel swept by tiles of samples x 64 outputs, partial products added in order. Backward: per
  64-row block of the kernel, the block of x is packed (x's rows are ``in`` floats apart, a
  stride that maps them to a few cache sets), dkernel = packed^T @ dy, then the kernel block is
  transposed 16 x 16 in registers and dx = dy @ that. The tiles also check dkernel for NaN/inf
  while it is in registers (``check_finite``), which spares the training step's guard a pass
  over the model's largest gradient.
* **otherwise**: the forward cuts the inner dimension into the same fixed slices (one GEMM each,
  partial products added in order); the backward splits dkernel's rows and dx's columns into
  blocks; each block of dkernel is checked for NaN/inf right after its GEMM wrote it, while it is
  still in cache (``check_finite``), not by numpy in a pass over the whole gradient afterwards:
  the seed model's dense1 backward with the check 15.5 -> 14.5 ms on a 2-core Zen 3 without
  AVX-512 (the check itself 1.4 -> 0.4 ms; its step is 77 ms). Products under
  OpenBLAS's own threading threshold (``config.SMALL_GEMM``; dense2) go straight to numpy.

Slices and blocks depend on the shapes only: bitwise the same result for any thread count.

Tiers: the tile kernels :func:`_dense_fwd_tiles`, :func:`_dense_bwd_tiles` and the GEMM kernels
:func:`_dense_fwd`, :func:`_dense_bwd`, all serial over a range of slices or blocks and run on
every thread by :func:`.fanout.run` (cheaper to compile than a parfor), the serial
:func:`_dense_finish`, and the public :func:`dense_forward` / :func:`dense_backward`.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit

from .. import numpy_backend as _ref
from . import blas, checks, config, fanout
from .arrays import FLOATS, as_c, bias_or_zeros
from .fpu import denormals_off, denormals_restore
from .tiles import LANES, TileA, TileOut, one_loop, tile_grid, tiles_fit, transpose16, uses_tiles

__all__ = ["dense_forward", "dense_backward"]


@njit(nogil=True, cache=True)
def _dense_fwd(x, w, nparts, nrowblk, part, u_lo, u_hi, worker):
    """part[t] = x[:, K_t] @ w[K_t, :] for ``nparts`` fixed slices K_t of the inner dimension,
    each computed as ``nrowblk`` GEMMs over fixed blocks of rows: GEMMs u_lo..u_hi-1 of the
    nparts * nrowblk (:func:`.fanout.run` over all of them; ``worker`` unused).

    Parameters
    ----------
    x : (M, K) array; w : (K, N) array; part : (nparts, M, N) array, the output.
    """
    m, k = x.shape
    n = w.shape[1]
    isz = x.itemsize
    fpu = denormals_off()  # (see fpu)
    for u in range(u_lo, u_hi):
        t = u // nrowblk
        rb = u - t * nrowblk
        k0 = t * k // nparts
        k1 = (t + 1) * k // nparts
        r0 = rb * m // nrowblk
        r1 = (rb + 1) * m // nrowblk
        blas.gemm(isz == 4, False, False, r1 - r0, n, k1 - k0, np.int64(x.ctypes.data) + (r0 * k + k0) * isz, k,
                  np.int64(w.ctypes.data) + k0 * n * isz, n, 0.0,
                  np.int64(part.ctypes.data) + (t * m + r0) * n * isz, n)
    denormals_restore(fpu)


@uses_tiles
@njit(nogil=True, cache=True)
def _dense_fwd_tiles(x, w, nparts, kb, zeros, part, t_lo, t_hi, worker):
    """float32 ``part[t] = x[:, K_t] @ w[K_t, :]`` on the FMA tiles for ``nparts`` fixed slices K_t of
    the inner dimension (slices t_lo..t_hi-1 here: :func:`.fanout.run` splits them), each in
    blocks of ``kb`` rows of w (the block of w and of x stay in L2 while every tile of samples x
    64 sweeps them; the block results are added into part[t] in order).

    Parameters
    ----------
    x : (M, K) array; w : (K, N) array, N a multiple of 16.
    zeros : (N,) zeros (the tiles' bias); part : (nparts, M, N) array, the output.
    """
    m, k = x.shape
    n = w.shape[1]
    isz = x.itemsize
    xb, wb, pb, zb = np.int64(x.ctypes.data), np.int64(w.ctypes.data), np.int64(part.ctypes.data), \
        np.int64(zeros.ctypes.data)
    fpu = denormals_off()  # (see fpu)
    for t in range(t_lo, t_hi):
        k0 = t * k // nparts
        k1 = (t + 1) * k // nparts
        for b0 in range(k0, k1, kb):
            # samples x n outputs, reducing over the block's rows b0.. of w (x's columns b0..)
            tile_grid(zeros, m, n, TileA(xb + b0 * isz, k), wb + b0 * n * isz, one_loop(min(k1, b0 + kb) - b0, 1, n),
                      TileOut(pb + t * m * n * isz, n, zb, 0, 1 if b0 > k0 else 0, 0))
    denormals_restore(fpu)


@njit(cache=True)
def _dense_finish(part, b, relu, y):
    """y = part[0] + part[1] + ... (in order) + b, relu fused (small: N x out)."""
    nparts, m, n = part.shape
    fpu = denormals_off()
    for r in range(m):
        for o in range(n):
            v = part[0, r, o]
            for t in range(1, nparts):
                v += part[t, r, o]
            v += b[o]
            if relu and v < 0:
                y[r, o] = 0
            else:
                y[r, o] = v
    denormals_restore(fpu)


@njit(cache=True)
def _rows_nonfinite(a2, r0, r1) -> bool:
    """Whether rows r0..r1-1 of the 2-D ``a2`` hold a NaN or inf (v - v is NaN exactly then; an
    integer OR of comparisons, so LLVM vectorizes it without reordering any float sum)."""
    bad = False
    for r in range(r0, r1):
        for o in range(a2.shape[1]):
            d = a2[r, o] - a2[r, o]
            bad |= d != d
    return bad


@njit(nogil=True, cache=True)
def _dense_bwd(dy, x, w, need_dx, blk, dx, dw, nonfinite, t_lo, t_hi, worker):
    """dw = x^T @ dy by blocks of ``blk`` rows of dw; dx = dy @ w^T by the same blocks of dx's
    columns, for blocks t_lo..t_hi-1 (:func:`.fanout.run` over all of them; ``worker`` unused;
    dx untouched unless ``need_dx``).

    Parameters
    ----------
    dy : (M, N) array; x : (M, K) array; w : (K, N) array; dx : (M, K) array; dw : (K, N) array.
    nonfinite : (ceil(K / blk),) bool array, or (0,) for no check
        nonfinite[t] = whether block t of dw holds a NaN or inf, checked right after its GEMM.
    """
    m, k = x.shape
    n = w.shape[1]
    single = x.itemsize == 4
    isz = x.itemsize
    fpu = denormals_off()  # (see fpu)
    for t in range(t_lo, t_hi):
        r0 = t * blk
        r1 = min(k, r0 + blk)
        blas.gemm(single, True, False, r1 - r0, n, m, np.int64(x.ctypes.data) + r0 * isz, k,
                  np.int64(dy.ctypes.data), n, 0.0, np.int64(dw.ctypes.data) + r0 * n * isz, n)
        if nonfinite.size:
            nonfinite[t] = _rows_nonfinite(dw, r0, r1)
        if need_dx:
            blas.gemm(single, False, True, m, r1 - r0, n, np.int64(dy.ctypes.data), n,
                      np.int64(w.ctypes.data) + r0 * n * isz, n, 0.0, np.int64(dx.ctypes.data) + r0 * isz, k)
    denormals_restore(fpu)


@uses_tiles
@njit(nogil=True, cache=True)
def _dense_bwd_tiles(dy, x, w, need_dx, ib, scratch, xpack, zeros, dx, dw, nonfinite, t_lo, t_hi, worker):
    """float32 dense backward on the FMA tiles, per block of ``ib`` rows of w (``in`` and ``out``
    multiples of 16): x[:, block] is packed into the thread's ``xpack`` (samples x ib: x's rows are
    ``in`` floats apart, a stride that maps them all to a few cache sets), dw[block] = that^T @ dy
    (a tile of rows x 64 accumulates over the samples), then the block of w is transposed 16 x 16
    at a time into the thread's ``scratch`` (out x ib) and dx[:, block] = dy @ that (tiles of
    samples x 64 over ``out``). Each output element is one tile's sum in a fixed order:
    deterministic for any thread count.

    Parameters
    ----------
    dy : (M, N) array; x : (M, K) array; w : (K, N) array; dx : (M, K) array; dw : (K, N) array.
    need_dx : bool
        Compute dx (else it is untouched).
    ib : int
        Rows of w per block (one work item each: blocks t_lo..t_hi-1 here, on ``worker``'s buffers).
    scratch : (threads, N, ib) array; xpack : (threads, M, ib) array
        Per-thread buffers: the transposed block of w, the packed block of x.
    zeros : (max(N, ib),) zeros
        The tiles' bias.
    nonfinite : (ceil(K / ib),) int64 array, zeroed by the caller
        nonfinite[t] becomes 1 if block t of dw holds a NaN or inf (checked by the tiles while
        the values are in registers).
    """
    m, k = x.shape
    n = w.shape[1]
    isz = x.itemsize
    wb, dyb = np.int64(w.ctypes.data), np.int64(dy.ctypes.data)
    dxb, dwb, zb = np.int64(dx.ctypes.data), np.int64(dw.ctypes.data), np.int64(zeros.ctypes.data)
    fb = np.int64(nonfinite.ctypes.data)
    fpu = denormals_off()  # (see fpu)
    wt = np.int64(scratch[worker].ctypes.data)
    xp = xpack[worker]
    for t in range(t_lo, t_hi):
        i0 = t * ib
        rows = min(k, i0 + ib) - i0
        for phase in range(2 if need_dx else 1):  # one tile call site (keeps compiling cheap)
            if phase == 0:  # dw rows i0.. : A = x[s, i0 + r] packed (r along the tile), B = dy[s, :]
                # a loop over views indexed from 0 (numba then knows the index is non-negative:
                # no wraparound select), not a slice assignment, which in a serial kernel
                # compiles numba's shape-mismatch message (+1.7 s cold)
                for s_ in range(m):
                    src, dst = x[s_, i0:i0 + rows], xp[s_]
                    for r in range(rows):
                        dst[r] = src[r]
                count, width = rows, n
                a = TileA(np.int64(xp.ctypes.data), 1)
                b = dyb
                loops = one_loop(m, ib, n)  # over the samples
                dst = TileOut(dwb + i0 * n * isz, n, zb, 0, 0, fb + t * 8)  # and check dw's block
            else:  # dx columns i0.. : A = dy[s, j] (s along the tile), B = w[i0 + c, j] transposed
                for j0 in range(0, n, 16):
                    for r0 in range(0, rows, 16):
                        transpose16(wb + ((i0 + r0) * n + j0) * isz, n, wt + (j0 * ib + r0) * isz, ib)
                count, width = m, rows
                a = TileA(dyb, n)
                b = wt
                loops = one_loop(n, 1, ib)  # over the outputs
                dst = TileOut(dxb + i0 * isz, k, zb, 0, 0, 0)
            tile_grid(zeros, count, width, a, b, loops, dst)
    denormals_restore(fpu)


def dense_forward(x, kernel, bias, relu=False):
    """``x @ kernel + bias``: x (N, in), kernel (in, out), bias (out,) or None -> (N, out)."""
    x = np.asarray(x)
    checks.dense_args("dense_forward", x, kernel, bias)
    if x.dtype not in FLOATS or not blas.FAST or x.shape[0] * np.size(kernel) <= config.SMALL_GEMM:
        return _ref.dense_forward(x, np.asarray(kernel, dtype=x.dtype),
                                  None if bias is None else np.asarray(bias, dtype=x.dtype), relu=relu)
    x = np.ascontiguousarray(x)
    kernel = as_c(kernel, x.dtype)
    (m, k), n = x.shape, kernel.shape[1]
    # the inner dimension is cut into a fixed number of slices (shape-only: deterministic for
    # any thread count); each slice is one GEMM, the partial products are added in order
    nparts = max(1, min(config.DENSE_KSPLIT, k // config.DENSE_MIN_KSLICE))
    if tiles_fit(x.dtype, n) and m <= config.DENSE_TILE_MAX_SAMPLES:
        part = np.empty((nparts, m, n), dtype=x.dtype)
        fanout.run(_dense_fwd_tiles, nparts, x, kernel, nparts, config.DENSE_TILE_ROWS, np.zeros(n, x.dtype), part,
                   work=2 * m * n * k)
    else:
        nrowblk = 1 if nparts > 1 else max(1, min(config.DENSE_MAX_BLOCKS, m // config.DENSE_BLOCK))
        part = np.empty((nparts, m, n), dtype=x.dtype)
        with blas.openblas:
            fanout.run(_dense_fwd, nparts * nrowblk, x, kernel, nparts, nrowblk, part, work=2 * m * n * k + 8 * k * n)
    y = np.empty((m, n), dtype=x.dtype)
    _dense_finish(part, bias_or_zeros(bias, n, x.dtype), bool(relu), y)
    return y


def dense_backward(dy, x, kernel, need_dx=True, check_finite=False):
    """Returns dx (N, in) or None, dkernel (in, out), dbias (out,) [, finite] (see the numpy backend)."""
    dy = np.asarray(dy)
    checks.dense_grad_args("dense_backward", dy, x, kernel)
    if dy.dtype not in FLOATS or not blas.FAST or dy.shape[0] * np.size(kernel) <= config.SMALL_GEMM:
        return _ref.dense_backward(dy, np.asarray(x, dtype=dy.dtype), np.asarray(kernel, dtype=dy.dtype),
                                   need_dx=need_dx, check_finite=check_finite)
    dy = np.ascontiguousarray(dy)
    x = as_c(x, dy.dtype)
    kernel = as_c(kernel, dy.dtype)
    m, k = x.shape
    n = kernel.shape[1]
    dw = np.empty((k, n), dtype=dy.dtype)
    dx = np.empty((m, k) if need_dx else (0, 0), dtype=dy.dtype)
    db = dy.sum(axis=0)
    if tiles_fit(dy.dtype, n) and k % LANES[4] == 0:
        scratch = np.empty((numba.get_num_threads(), n, config.DENSE_TILE_ROWS), dtype=dy.dtype)
        xpack = np.empty((numba.get_num_threads(), m, config.DENSE_TILE_ROWS), dtype=dy.dtype)
        nonfinite = np.zeros(-(-k // config.DENSE_TILE_ROWS), dtype=np.int64)
        fanout.run(_dense_bwd_tiles, nonfinite.size, dy, x, kernel, bool(need_dx), config.DENSE_TILE_ROWS, scratch,
                   xpack, np.zeros(max(n, config.DENSE_TILE_ROWS), dy.dtype), dx, dw, nonfinite,
                   work=2 * m * n * k * (1 + bool(need_dx)))
        dw_finite = not nonfinite.any()  # checked by the tiles
    else:
        blk = max(config.DENSE_BLOCK, -(-k // config.DENSE_MAX_BLOCKS))
        nonfinite = np.zeros(-(-k // blk) if check_finite else 0, dtype=np.bool_)
        with blas.openblas:
            fanout.run(_dense_bwd, -(-k // blk), dy, x, kernel, bool(need_dx), blk, dx, dw, nonfinite,
                       work=2 * m * n * k * (1 + bool(need_dx)) + 8 * k * n)
        dw_finite = not nonfinite.any()  # checked per block (nothing to check unless check_finite)
    grads = (dx if need_dx else None), dw, db
    if not check_finite:
        return grads
    return (*grads, dw_finite and _ref.all_finite(db))
