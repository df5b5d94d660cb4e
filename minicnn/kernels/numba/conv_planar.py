"""conv2d of a single-channel input (MNIST's first layer) without im2col: the forward sums shifted
copies of the padded image, one long vectorised multiply-add per tap; the backward's dkernel
and dbias reduce the products of those copies with the output gradient laid out the same way.

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

The backward (:func:`planar_backward`) lays each image's dz out planar on the same flat grid
(``Z[f, e]``, zero at the thrown-away positions); tap (di, dj)'s dkernel row is then
``Z @ img[off : off + S]``, the tap's shifted copy of the flat image read in place: one GEMV
(F x S) per tap and image on numpy's OpenBLAS, no im2col matrix, and dbias is ``Z @ ones``. A
dot product written as a loop does not vectorise without fastmath's reassociation; a version
summing each (tap, filter) into 128 lanes and folding them did, and measured 1.2-1.6x slower than
the GEMVs. dx, when asked for, stays on im2col + GEMM. The thrown-away positions multiply a zero
dz by image cells outside the exact sum, so an image holding NaN/inf takes im2col + GEMM
(0 * inf would be NaN where the exact sum is not).

Measured (2-core AMD EPYC Zen 3 without AVX-512, where these replace im2col + OpenBLAS; batch
100, medians of A/Bs in one process, ``benchmarks/README.md``, "First layers on one channel"):
LeNet-5's conv1 (5x5, 1 -> 6, 'same') forward 6.2 -> 1.7 ms float32, 7.4 -> 2.8 ms float64
(relu fused); its backward (dkernel, dbias) 7.6 -> 2.6 ms float32, 7.9 -> 3.1 ms float64; the
seed's 3x3, 1 -> 32 backward 4.5 -> 3.5 ms float32. The forward pays only for few filters
(:data:`MAX_FILTERS`), the backward up to :data:`MAX_FILTERS_BACKWARD`; a 3-channel input
(CIFAR) and strided convs stay on im2col + GEMM. On AVX-512 machines the FMA tiles serve these
convs (``conv.conv_tiles_fit``), as before.

Numerics: each output is 0 + the taps' products in (di, dj) order, plus the bias, then relu:
one fixed order per element, computed by one worker (:func:`.fanout.run` splits the chunks,
and the backward's groups, over numba's threads). Each dkernel entry is a sum
over groups of consecutive images (:data:`MAX_GROUPS`, from the batch size alone), within a
group image by image (BLAS's beta = 1), the groups added in order; OpenBLAS runs single-threaded
inside the kernel. So the bits do not depend on the thread count (they do on OpenBLAS's kernel,
i.e. on ``OPENBLAS_CORETYPE``, as every GEMM path's do). A dkernel entry's rounding error is
within (m + 1) u sum|x dz| (u the dtype's unit roundoff, m = S + images per group + groups: the
longest chain of additions; tested). Layouts: x NHWC with C = 1, the kernel HWIO (KH, KW, 1, F),
y NHWC.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit

from . import blas, fanout
from .arrays import EMPTY4
from .elementwise import relu_bwd_range, sum_groups
from .fpu import denormals_off, denormals_restore

__all__ = ["planar_fits", "chunk_length", "planar_forward", "planar_backward"]

#: bytes of one chunk's accumulators (F rows of L positions): within a 32 KiB L1 data cache with
#: the image's rows beside them
ACC_BYTES = 16 * 1024
#: the chunk length's multiple and bounds, in positions (16: one AVX-512 float32 vector)
LANE, MIN_CHUNK, MAX_CHUNK = 16, 64, 512
#: more filters than this go to im2col + GEMM: every tap re-reads and re-writes the F accumulator
#: rows, which the GEMM keeps in registers (measured, batch 100: 6 filters 2.6-3.6x faster than
#: im2col + GEMM, 16 filters 1.4x, 32 even, 64 1.3-1.6x slower; the backward: 6 filters 2.7-3.8x,
#: 16 filters 1.1-1.5x, 32 even in float32 and 1.6x slower in float64)
MAX_FILTERS = 16
#: the backward takes up to this many filters (its GEMVs against im2col + GEMM, batch 100:
#: 6 filters 2.5-2.9x faster, 16 filters 1.3-2.2x, 32 1.05-1.3x, 64 1.1-1.2x)
MAX_FILTERS_BACKWARD = 64
#: at most this many partial dkernel/dbias sums (groups of consecutive images), added in order
MAX_GROUPS = 16


def planar_fits(x_shape, kernel_shape, strides, most=MAX_FILTERS) -> bool:
    """Whether the planar kernels serve this conv: one input channel, stride 1 (any padding and
    dilation), at most ``most`` filters (:data:`MAX_FILTERS` for the forward,
    :data:`MAX_FILTERS_BACKWARD` for dkernel/dbias)."""
    return (x_shape[3] == 1 and kernel_shape[2] == 1 and tuple(strides) == (1, 1)
            and kernel_shape[3] <= most)


def chunk_length(filters, itemsize) -> int:
    """Positions per chunk: F accumulator rows of L positions in :data:`ACC_BYTES`, a multiple of
    :data:`LANE` between :data:`MIN_CHUNK` and :data:`MAX_CHUNK` (LeNet's 6 filters: 512; 16
    filters: 256 float32, 128 float64)."""
    fit = ACC_BYTES // (max(1, filters) * itemsize) // LANE * LANE
    return min(MAX_CHUNK, max(MIN_CHUNK, fit))


def _flat_images(x, pads, kernel_shape, dilation, oh, run, dtype):
    """(xp, WP): xp[n] = image n of x (N, H, W, 1) padded (``pads``) and flattened row by row, WP
    columns a row, then zeros: long enough that every tap may read the OH*WP output positions,
    rounded up to whole runs of ``run``, from its offset."""
    n, h, w, _ = x.shape
    kh, kw = kernel_shape[:2]
    dh, dw = dilation
    wp = pads[2] + w + pads[3]
    positions = -(-(oh * wp) // run) * run
    hp = pads[0] + h + pads[1]
    flat = max(hp * wp, positions + (kh - 1) * dh * wp + (kw - 1) * dw)
    xp = np.zeros((n, flat), dtype=dtype)
    # (numpy's strided copy: nothing to compile; its speed against the numba loop it replaced
    # was not measured)
    xp[:, :hp * wp].reshape(n, hp, wp)[:, pads[0]:pads[0] + h, pads[2]:pads[2] + w] = x[..., 0]
    return xp, wp


@njit(nogil=True, cache=True)
def _planar_fwd(xp, k4, b, wp, dh, dw, relu, length, acc, y, u_lo, u_hi, worker):
    """y = conv(image, kernel) + bias [relu'd], in chunks of ``length`` flat positions: chunks
    u_lo..u_hi-1 of the N * chunks-per-image (:func:`.fanout.run` over all of them).

    Parameters
    ----------
    xp : (N, P) array
        The padded images flattened (:func:`_flat_images`), P >= chunks * length + the largest tap
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
    u_lo, u_hi, worker : int
        The chunks to do; the index of this call's ``acc`` block.
    """
    kh, kw, _, f = k4.shape
    _, oh, ow, _ = y.shape
    span = oh * wp
    nch = (span + length - 1) // length
    a = acc[worker]
    fpu = denormals_off()  # (see fpu)
    for u in range(u_lo, u_hi):
        q = u // nch
        e0 = (u - q * nch) * length
        for o in range(f):  # (loops, not a[:] = 0: see elementwise._sum_groups)
            row = a[o]
            for e in range(length):
                row[e] = 0
        for di in range(kh):
            for dj in range(kw):
                off = e0 + di * dh * wp + dj * dw
                src = xp[q, off:off + length]
                for o in range(f):
                    wv = k4[di, dj, 0, o]
                    row = a[o]
                    for e in range(length):  # the vectorised run
                        row[e] += src[e] * wv
        i = e0 // wp  # bias, relu, and back to NHWC; (i, j) stepped, not divided out of e per position
        j = e0 - i * wp
        for e in range(e0, min(span, e0 + length)):
            if j < ow:
                out = y[q, i, j]
                for o in range(f):
                    v = a[o, e - e0] + b[o]
                    out[o] = 0 if relu and v < 0 else v  # (NaN stays NaN)
            j += 1
            if j == wp:
                i += 1
                j = 0
    denormals_restore(fpu)


def planar_forward(x, kernel, b, pads, dilation, relu, y):
    """y (N, OH, OW, F) = conv(x, kernel) + b [relu'd] for a single-channel x (N, H, W, 1) at
    stride 1 (:func:`planar_fits`); every array C-contiguous of one dtype, ``pads`` = (top,
    bottom, left, right), y's shape from :mod:`minicnn.kernels.shapes`."""
    n = x.shape[0]
    kh, kw, _, f = kernel.shape
    oh, ow = y.shape[1:3]
    if n == 0 or oh * ow == 0:
        return y
    dh, dw = dilation
    length = chunk_length(f, y.itemsize)
    xp, wp = _flat_images(x, pads, kernel.shape, dilation, oh, length, y.dtype)  # (whole chunks)
    acc = np.empty((numba.get_num_threads(), f, length), dtype=y.dtype)
    chunks = n * -(-(oh * wp) // length)
    fanout.run(_planar_fwd, chunks, xp, kernel, b, wp, dh, dw, bool(relu), length, acc, y, work=2 * y.size * kh * kw)
    return y


@njit(nogil=True, cache=True)
def _planar_bwd(xp, dy, relu_y, kh, kw, wp, dh, dw, gimg, dzbuf, z, ones, pk, pb, g_lo, g_hi, worker):
    """Per group g_lo..g_hi-1 of ``gimg`` consecutive images (:func:`.fanout.run` over all the
    groups): pk[g] = that group's dkernel, pb[g] its dbias.

    For each image dz (dy, or relu's gradient of it) is laid out planar on the flat padded grid,
    ``Z[o, i*WP + j] = dz[i, j, o]`` (zero at j >= OW, never written); then for each tap (di, dj)
    ``pk[g, tap] += Z @ img[off : off + S]`` (off = di*DH*WP + dj*DW: the tap's shifted copy of the
    flat image, read in place), one GEMV of F x S; dbias is ``Z @ ones``. The first image of a
    group overwrites (beta 0), the others add (beta 1).

    Parameters
    ----------
    xp : (N, P) array
        The padded images flattened (:func:`_flat_images`), P >= S + the largest tap offset.
    dy : (N, OH, OW, F) array; relu_y : the same shape, or (0, 0, 0, 0) for no relu.
    kh, kw, wp, dh, dw : int
        The kernel size, the flat row length, the dilation.
    gimg : int
        Images per group (from the shapes only).
    dzbuf : (threads, OH*OW*F) array, or (threads, 0) without relu: one masked image per thread.
    z : (threads, F, S) array, zeros, S = OH*WP: one planar dz per thread.
    ones : (S,) array of ones.
    pk : (G, KH*KW*F) array; pb : (G, F) array
        The partial sums, in dkernel's (KH, KW, 1, F) order.
    g_lo, g_hi, worker : int
        The groups to do; the index of this call's ``dzbuf`` and ``z`` rows.
    """
    n_img, oh, ow, f = dy.shape
    p = oh * ow
    span = z.shape[2]
    single = xp.itemsize == 4
    isz = xp.itemsize
    masked = relu_y.size > 0
    dy1 = dy.reshape(n_img * p * f)
    y1 = relu_y.reshape(relu_y.size)
    zt = z[worker]
    zaddr = np.int64(zt.ctypes.data)
    fpu = denormals_off()  # (see fpu)
    for g in range(g_lo, g_hi):
        pkg = np.int64(pk.ctypes.data) + g * kh * kw * f * isz
        pbg = np.int64(pb.ctypes.data) + g * f * isz
        q0 = g * gimg
        for q in range(q0, min(n_img, q0 + gimg)):
            if masked:
                dq = dzbuf[worker]
                relu_bwd_range(dy1, y1, q * p * f, (q + 1) * p * f, dq)
            else:
                dq = dy1[q * p * f:(q + 1) * p * f]
            for i in range(oh):
                for j in range(ow):
                    px = dq[(i * ow + j) * f:(i * ow + j + 1) * f]
                    e = i * wp + j
                    for o in range(f):
                        zt[o, e] = px[o]
            beta = 0.0 if q == q0 else 1.0
            xq = np.int64(xp.ctypes.data) + q * xp.shape[1] * isz
            for di in range(kh):
                for dj in range(kw):
                    off = di * dh * wp + dj * dw
                    # one row of the tap's image copy times Z^T: blas.gemm's one-row case, a GEMV
                    blas.gemm(single, False, True, 1, f, span, xq + off * isz, span, zaddr, span, beta,
                              pkg + (di * kw + dj) * f * isz, f)
            blas.gemm(single, False, True, 1, f, span, np.int64(ones.ctypes.data), span, zaddr, span, beta, pbg, f)
    denormals_restore(fpu)


def planar_backward(dy, x, kernel, pads, dilation, relu_y, dkernel, dbias):
    """dkernel (KH*KW*F,) and dbias (F,) of :func:`planar_forward` [with relu's gradient when
    ``relu_y``, the forward's relu output, is not None], written in place; every array
    C-contiguous of one dtype. Calls BLAS (``blas.FAST`` must hold).

    Not for an ``x`` holding NaN/inf: the positions j >= OW of the flat grid multiply their zero
    dz by image cells outside the exact sum (0 * inf would be NaN); the caller checks."""
    n = x.shape[0]
    kh, kw, _, f = kernel.shape
    oh, ow = dy.shape[1:3]
    dh, dw = dilation
    xp, wp = _flat_images(x, pads, kernel.shape, dilation, oh, 1, dy.dtype)
    span = oh * wp
    gimg = -(-n // min(n, MAX_GROUPS))
    ng = -(-n // gimg)
    threads = numba.get_num_threads()
    masked = relu_y is not None
    relu_y = relu_y if masked else EMPTY4[dy.dtype]
    dzbuf = np.empty((threads, oh * ow * f if masked else 0), dtype=dy.dtype)
    z = np.zeros((threads, f, span), dtype=dy.dtype)
    pk = np.empty((ng, kh * kw * f), dtype=dy.dtype)
    pb = np.empty((ng, f), dtype=dy.dtype)
    with blas.openblas:
        fanout.run(_planar_bwd, ng, xp, dy, relu_y, kh, kw, wp, dh, dw, gimg, dzbuf, z, np.ones(span, dtype=dy.dtype),
                   pk, pb, work=2 * n * span * f * (kh * kw + 1))
    sum_groups(pk, dkernel)
    sum_groups(pb, dbias)
