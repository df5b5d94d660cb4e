"""conv2d forward of a single-channel input (MNIST's first layer) without im2col: each filter's
output is a sum of shifted copies of the padded image, one long vectorised multiply-add per tap.

Why: im2col + GEMM is a poor fit for a first layer on one channel. The GEMM's inner dimension is
the tap count (9 for a 3x3 kernel, 25 for LeNet's 5x5) and its width the filter count (6 for
LeNet), shapes that OpenBLAS cannot block well, and the im2col matrix is 9-25x the input. Here the
padded image is flattened row by row (width ``WP``), and output pixel (i, j) is treated as
position e = i*WP + j of that flat image: tap (di, dj) of every pixel then reads the flat image at
e + di*DH*WP + dj*DW, so for one tap and one filter a whole run of positions is
``acc[f, e0:e0+L] += img[e0+off : e0+off+L] * w[di, dj, 0, f]``, a contiguous loop that LLVM
vectorises (no gathers, no short rows). The positions with j >= OW (the last ``WP - OW`` of each
row: 4 of 32 for LeNet's 'same' 5x5) are computed and thrown away. The chunk of L positions is
sized so that its F accumulator rows stay in L1 (:func:`chunk_length`).

Measured (2-core AMD EPYC Zen 3 without AVX-512, where this replaces im2col + OpenBLAS; batch
100, relu fused, medians of an A/B in one process, ``benchmarks/README.md``, "First layers on one
channel"): LeNet-5's conv1 (5x5, 1 -> 6, 'same') 6.2 -> 1.7 ms float32, 7.4 -> 2.8 ms float64; a
dilated 3x3, 1 -> 16 about 1.4x faster. It pays only for few filters (:data:`MAX_FILTERS`); a
3-channel input (CIFAR) and strided convs stay on im2col + GEMM. So does the backward (a planar
dkernel measured slower: its reductions over positions do not vectorise without reassociation).
On AVX-512 machines the FMA tiles serve these convs (``conv.conv_tiles_fit``), as before.

Numerics: each output is 0 + the taps' products in (di, dj) order, plus the bias, then relu:
one fixed order per element, computed by one parallel iteration, so the bits do not depend on
the thread count. Layouts: x NHWC with C = 1, the kernel HWIO (KH, KW, 1, F), y NHWC.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from .fpu import denormals_off, denormals_restore

__all__ = ["planar_fits", "chunk_length", "planar_forward"]

#: bytes of one chunk's accumulators (F rows of L positions): within a 32 KiB L1 data cache with
#: the image's rows beside them
ACC_BYTES = 16 * 1024
#: the chunk length's multiple and bounds, in positions (16: one AVX-512 float32 vector)
LANE, MIN_CHUNK, MAX_CHUNK = 16, 64, 512
#: more filters than this go to im2col + GEMM: every tap re-reads and re-writes the F accumulator
#: rows, which the GEMM keeps in registers (measured, batch 100: 6 filters 2.6-3.6x faster than
#: im2col + GEMM, 16 filters 1.4x, 32 even, 64 1.3-1.6x slower)
MAX_FILTERS = 16


def planar_fits(x_shape, kernel_shape, strides) -> bool:
    """Whether :func:`planar_forward` serves this conv: one input channel, stride 1 (any padding
    and dilation), at most :data:`MAX_FILTERS` filters."""
    return (x_shape[3] == 1 and kernel_shape[2] == 1 and tuple(strides) == (1, 1)
            and kernel_shape[3] <= MAX_FILTERS)


def chunk_length(filters, itemsize) -> int:
    """Positions per chunk: F accumulator rows of L positions in :data:`ACC_BYTES`, a multiple of
    :data:`LANE` between :data:`MIN_CHUNK` and :data:`MAX_CHUNK` (LeNet's 6 filters: 512; 16
    filters: 256 float32, 128 float64)."""
    fit = ACC_BYTES // (max(1, filters) * itemsize) // LANE * LANE
    return min(MAX_CHUNK, max(MIN_CHUNK, fit))


@njit(parallel=True, cache=True)
def _pad_flat(x, top, left, wp, xp):
    """xp[n] = image n of x (N, H, W, 1) padded (``top`` rows and ``left`` columns before it, zeros
    after it up to xp's length) and flattened row by row with ``wp`` columns per row."""
    n, h, w, _ = x.shape
    for q in prange(n):
        row = xp[q]
        row[:] = 0
        for r in range(h):
            base = (r + top) * wp + left
            for s in range(w):
                row[base + s] = x[q, r, s, 0]


@njit(parallel=True, cache=True)
def _planar_fwd(xp, k4, b, wp, dh, dw, relu, length, acc, y):
    """y = conv(image, kernel) + bias [relu'd], one chunk of ``length`` flat positions per
    parallel iteration.

    Parameters
    ----------
    xp : (N, P) array
        The padded images flattened (:func:`_pad_flat`), P >= chunks * length + the largest tap
        offset (zeros past the image: every chunk reads whole runs).
    k4 : (KH, KW, 1, F) kernel; b : (F,) bias.
    wp : int
        Columns of the padded image (the flat row length).
    dh, dw : int
        The dilation.
    relu : bool
        Fuse relu.
    length : int
        Positions per chunk (:func:`chunk_length`).
    acc : (threads, F, length) array
        One accumulator block per numba thread.
    y : (N, OH, OW, F) array
        The output: position e = i*wp + j is pixel (i, j) when j < OW.
    """
    n_img = xp.shape[0]
    kh, kw, _, f = k4.shape
    _, oh, ow, _ = y.shape
    span = oh * wp
    nch = (span + length - 1) // length
    for u in prange(n_img * nch):
        fpu = denormals_off()  # (see fpu)
        q = u // nch
        e0 = (u - q * nch) * length
        a = acc[numba.get_thread_id()]
        a[:] = 0
        for di in range(kh):
            for dj in range(kw):
                off = e0 + di * dh * wp + dj * dw
                src = xp[q, off:off + length]
                for o in range(f):
                    wv = k4[di, dj, 0, o]
                    row = a[o]
                    for e in range(length):  # the vectorised run
                        row[e] += src[e] * wv
        for e in range(e0, min(span, e0 + length)):  # bias, relu, and back to NHWC
            i = e // wp
            j = e - i * wp
            if j < ow:
                out = y[q, i, j]
                for o in range(f):
                    v = a[o, e - e0] + b[o]
                    out[o] = 0 if relu and v < 0 else v  # (NaN stays NaN)
        denormals_restore(fpu)


def planar_forward(x, kernel, b, pads, dilation, relu, y):
    """y (N, OH, OW, F) = conv(x, kernel) + b [relu'd] for a single-channel x (N, H, W, 1) at
    stride 1 (:func:`planar_fits`); every array C-contiguous of one dtype, ``pads`` = (top,
    bottom, left, right), y's shape from :mod:`minicnn.kernels.shapes`."""
    n, h, w, _ = x.shape
    kh, kw, _, f = kernel.shape
    oh, ow = y.shape[1:3]
    if n == 0 or oh * ow == 0:
        return y
    dh, dw = dilation
    wp = pads[2] + w + pads[3]
    length = chunk_length(f, y.itemsize)
    nch = -(-(oh * wp) // length)
    flat = max((pads[0] + h + pads[1]) * wp, nch * length + (kh - 1) * dh * wp + (kw - 1) * dw)
    xp = np.empty((n, flat), dtype=y.dtype)
    _pad_flat(x, pads[0], pads[2], wp, xp)
    acc = np.empty((numba.get_num_threads(), f, length), dtype=y.dtype)
    _planar_fwd(xp, kernel, b, wp, dh, dw, bool(relu), length, acc, y)
    return y
