"""conv2d on numba: direct convolution on the FMA tiles, or im2col + in-loop GEMM.

Layouts: NHWC activations, HWIO kernels, ``pads`` = (top, bottom, left, right). Algorithm,
chosen by measurement on the seed model's shapes (``benchmarks/README.md``):

* **on the tiles** (float32 and float64 whenever :data:`config.TILES` is on, any channel count:
  :func:`conv_tiles_fit`): direct convolution with the register-blocked tiles (:mod:`.tiles`): up
  to 6 output pixels x 64 channels accumulate in 24 AVX-512 registers over the whole (kh, kw, c)
  reduction; no im2col. Channel counts that do not fill whole vectors (LeNet's 6, a 3-channel
  input's dx, 10 classes) end in one vector masked to the columns left over. Forward: parallel
  over output rows, bias + relu fused into the store. Backward: one pass over dy per image
  (images in fixed groups, one group per parallel iteration): dz = dy * (y > 0) (relu's gradient,
  fused) goes into a per-thread zero-bordered buffer while dbias sums it; dx correlates that
  buffer with the flipped, transposed kernel, per dx row and, for a strided conv, per column
  phase of the stride (pixels q, q + sw, ... share their taps: only the taps that meet the row's
  dz rows and the phase's dz columns are multiplied, none of the zeros a dilated dz would hold;
  :func:`dx_buffer`); dkernel, per kernel row, is a tile of (kw, c) rows x filters accumulated
  over the image's pixels and added to the group's partial sum; the group partials are added
  in order. dz is never written to memory. ~90% of the machine's measured matmul peak for the
  seed model's forward, versus ~75% for im2col + OpenBLAS on the same shapes. Measured against
  im2col + GEMM (batch 100, float32, A/B in one process): LeNet-5's conv1 (5x5, 1 -> 6, 'same')
  forward 6.7 -> 1.1 ms, backward 6.6 -> 2.0; allconv's stride-2 64-channel backward 10.3 -> 8.6
  ms of CPU time.
* **otherwise** (the tiles off, i.e. no AVX-512 or ``MINICNN_NUMBA_TILES=0``; dilated backward):
  im2col + GEMM on chunks of whole images (``config.CHUNK_ROWS`` output rows, so the chunk's
  im2col matrix stays in L2); backward rebuilds the chunk, ``cols.T @ dz`` and ``dz @ W.T`` + a
  *gathering* col2im (each input cell sums its patch entries in a fixed (kh, kw) order: no
  scatter, no race); dz = dy masked by relu's output per chunk, in a per-thread buffer (seed
  conv2 backward 31.4 -> 30.1 ms on a Zen 3 without AVX-512, against a whole-array pass first).
  Except a single-channel input at stride 1 with few filters (a first layer on MNIST): the
  forward and dkernel/dbias work on shifted copies of the flattened padded image, no im2col
  (:mod:`.conv_planar`).

**Dilation** (``dilation=(DH, DW)``, Keras's ``dilation_rate``: tap (di, dj) of output pixel (i, j)
reads input cell (i*SH + di*DH - top, j*SW + dj*DW - left)). The forward tiles take it as the
strides of their (kh, kw) reduction loops over the padded input; im2col/col2im take it in their
index arithmetic. The backward tiles stay undilated: a dilated conv's backward takes im2col +
GEMM (the chunking, the GEMMs and the ordered group sums of the undilated path). Output sizes and
pads come from :mod:`minicnn.kernels.shapes` with the dilated span, as in the numpy backend.

Tiers: ``@njit`` kernels (:func:`_conv_tiles`, :func:`_conv_fwd_gemm`, :func:`_conv_bwd_gemm`:
serial over a range of output rows, images, chunks or groups, run on every thread by
:func:`.fanout.run`, which compiles them in a third of a parfor's time (the tiles, the seed's
first step on a cold cache: 6.1 -> 2.8 s; ``benchmarks/README.md``, "The FMA tile kernels left
the parfors"); :func:`_bias_act_rows` and :mod:`.im2col`'s im2col_imgs, col2im_imgs serial,
called per chunk), Python launchers of the tile kernel's two modes (:func:`tiles_forward`,
:func:`tiles_backward`: arguments by name, the unused ones filled in), and the public
:func:`conv2d_forward` / :func:`conv2d_backward`.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit

from .. import numpy_backend as _ref
from . import blas, checks, config, fanout
from .arrays import EMPTY2, EMPTY4, FLOATS, as_c, bias_or_zeros
from .conv_planar import MAX_FILTERS_BACKWARD, planar_backward, planar_fits, planar_forward
from .elementwise import relu_bwd_range, sum_groups
from .fpu import denormals_off, denormals_restore
from .im2col import col2im_imgs, im2col_imgs
from .tiles import Loop, TileA, TileOut, tile_grid, uses_tiles

__all__ = ["conv2d_forward", "conv2d_backward", "conv_tiles_fit", "tiles_forward", "tiles_backward"]


# ----------------------------------------------------------------------------- tile kernel
@njit(cache=True)
def dx_buffer(h, w, oh, ow, kh, kw, sw, left):
    """The geometry (PH, PW, PT, PL) of the tiles' per-thread dz buffer when dx is computed: dz
    (OH, OW) sits at rows PT.., columns PL.., zeros around it. Rows need no border (the dx rows
    skip the kernel rows that would meet none: PT = 0, PH = OH); columns do, since a run of dx
    pixels shares its taps: dx column s = q + t*sw (phase q) reads dz column
    t + jb(q) + m for its m-th tap, jb(q) = (e + (-e mod sw)) / sw with e = q + left - kw + 1, so
    PL = max(0, -min_q jb(q)), and the last column read is (W - 1 + left) // sw. Stride 1, pads
    below the kernel size: (OH, W + KW - 1, 0, KW - 1 - left), within the (H + KH - 1, W + KW - 1)
    that the callers of the stride-1 version allocated."""
    pl = 0
    for q in range(sw):
        e = q + left - kw + 1
        pl = max(pl, -((e + (-e) % sw) // sw))
    return oh, pl + max(ow, (w - 1 + left) // sw + 1), 0, pl


def conv_tiles_fit(dtype) -> bool:
    """Whether the conv kernels run on the FMA tiles for ``dtype``: float32 whenever
    :data:`config.TILES` is on, for any channel count (the tiles' last vector is masked to the
    columns left over, :func:`.tiles.tile_grid`)."""
    return config.TILES and dtype in (np.float32, np.float64)


@uses_tiles
@njit(nogil=True, cache=True)
def _conv_tiles(mode, src, wgt, out, vec, zeros, scratch, part, sh, sw, dh, dw, top, left, gimg, ngroups, relu,
                xpad, mask, pbias, u_lo, u_hi, worker):
    """The conv kernels built on the FMA tiles, in one function so that the tile code is compiled
    once per dtype (each kernel would otherwise re-optimise all of it). Launch it through
    :func:`tiles_forward` or :func:`tiles_backward`.

    Parameters
    ----------
    mode : int
        0 forward, 2 the whole backward (below). (A mode 1, dx alone beside a dkernel by GEMM,
        was dropped: with the tiles on, dkernel leaves them only for a dilated conv, and then dx
        leaves them too; it cost compile time on every first run.)
    src : 4-D array
        mode 0: padded x (N, Hp, Wp, C); mode 2: dy (N, OH, OW, F).
    wgt : 4-D array
        mode 0: the kernel (KH, KW, C, F); mode 2: the flipped, transposed kernel (KH, KW, F, C)
        (without dx: an empty (KH, KW, 0, 0) placeholder giving the kernel size).
    out : 4-D array
        mode 0: y (N, OH, OW, F); mode 2: dx (N, H, W, C), empty when dx is not wanted.
    vec : 1-D array
        mode 0: the bias (F,).
    zeros : 1-D array
        At least max(C, F) zeros of the working dtype: the tiles' bias when there is none (mode 0
        passes the bias here too: only its dtype and address are used there).
    scratch : (threads, PH, PW, F) array
        mode 2: one dz buffer per numba thread, ``PH, PW`` from :func:`dx_buffer` when dx is
        computed (dz with a zero border left and right), else OH, OW.
    part : (G, KH*KW*C*F) array
        mode 2: the per-group partial sums of dkernel.
    sh, sw : int
        Strides.
    dh, dw : int
        mode 0: the dilation (tap (di, dj) reads padded row i*sh + di*dh, column j*sw + dj*dw);
        mode 2: 1.
    top, left : int
        mode 2: the forward's padding at the top and left.
    gimg, ngroups : int
        mode 2: images per group and the number of groups G.
    relu : int
        mode 0: 1 fuses relu into the store.
    xpad : 4-D array
        mode 2: padded x (N, Hp, Wp, C).
    mask : 4-D array
        mode 2: the layer's relu output y (dz = dy * (y > 0)), or empty: no relu.
    pbias : (G, F) array
        mode 2: the per-group partial sums of dbias.
    u_lo, u_hi, worker : int
        The work items to do (mode 0: output rows of all images, N*OH; mode 2: groups) and the
        index of this call's ``scratch`` buffer (:func:`.fanout.run`).

    What each mode does. 0: parallel over output rows, each a run of tiles of up to 6 pixels x
    64 channels, relu fused. 2 (one pass over dy, relu's gradient fused): per group of
    ``gimg`` images, one image at a time: dz = dy * (y > 0) goes into the thread's
    zero-bordered buffer while pbias[g] sums it; then the dx rows (dz correlated with ``wgt``, per
    column phase of the stride: the pixels q, q + sw, ... of a dx row share their taps; kernel
    rows that would meet no dz row are skipped) and, per kernel row di, a tile of the
    (kw, c) rows x f filters of dkernel[di] read dz from there (part[g] accumulates the group's
    images in order). dz never goes to memory.
    """
    isz = zeros.itemsize
    zb = np.int64(zeros.ctypes.data)
    sb, wb, ob, vb = (np.int64(src.ctypes.data), np.int64(wgt.ctypes.data), np.int64(out.ctypes.data),
                      np.int64(vec.ctypes.data))
    pkb = np.int64(part.ctypes.data)
    xb = np.int64(xpad.ctypes.data)
    has_dx = out.shape[0] > 0
    # one loop for all modes: the tile code is compiled once
    if mode == 0:
        n_img, hp, wp, c = src.shape
        kh, kw, _, f = wgt.shape
        oh, ow = out.shape[1], out.shape[2]
        total = n_img * oh
    else:
        n_img, oh, ow, f = src.shape
        kh, kw = wgt.shape[0], wgt.shape[1]
        c = xpad.shape[3]
        xh, xw = xpad.shape[1], xpad.shape[2]
        hp, wp = (out.shape[1], out.shape[2]) if has_dx else (oh, ow)  # dx's H, W
        total = ngroups
    # mode 2 buffer: dz of one image, (PH, PW, F), its interior at (pt, pl); without dx, no border
    if has_dx:
        ph, pw, pt, pl = dx_buffer(hp, wp, oh, ow, kh, kw, sw, left)
    else:
        ph, pw, pt, pl = oh, ow, 0, 0
    step = gimg if mode == 2 else 1  # images per iteration (mode 0: one output row)
    zero = zeros[0]  # a local: a load from zeros inside a loop that stores may alias the stores
    fpu = denormals_off()  # (see fpu)
    for u in range(u_lo, min(u_hi, total)):
        i0 = u * step
        for n in range(i0, min(n_img, i0 + step) if mode != 0 else i0 + 1):
            nrows = 1
            ndx = 0  # mode 2: the first ndx rows are dx rows, the kh after them dkernel rows
            if mode != 0:  # dz[n] into the buffer, masked, and summed for dbias
                buf = scratch[worker]
                if has_dx:
                    for r in range(ph):  # zero the border only; the interior is overwritten just below
                        if r < pt or r >= pt + oh:
                            buf[r] = 0
                        else:
                            buf[r, :pl] = 0
                            buf[r, pl + ow:] = 0
                pb = pbias[u]
                if n == i0:
                    pb[:] = 0
                masked = mask.shape[0] > 0
                for i in range(oh):
                    for j in range(ow):
                        row, dyr = buf[pt + i, pl + j], src[n, i, j]
                        # loops of one store each, a select at most: they vectorise (a
                        # loop storing to both row and pb did not, in a serial kernel)
                        if masked:
                            yr = mask[n, i, j]
                            for o in range(f):
                                row[o] = dyr[o] if yr[o] > 0 else zero
                        else:
                            for o in range(f):
                                row[o] = dyr[o]
                        for o in range(f):
                            pb[o] += row[o]
                ndx = hp * sw if has_dx else 0  # (dx row, column phase) pairs
                nrows = ndx + kh
            for r in range(nrows):  # a single tile call site (tile_grid is a call, not inlined IR)
                if mode == 0:  # output row (n_, i): ow pixels x f channels, reducing over (kh, kw, c)
                    n_ = u // oh
                    i = u - n_ * oh
                    count, width = ow, f
                    a = TileA(sb + ((n_ * hp + i * sh) * wp) * c * isz, sw * c)  # x at each pixel's window
                    b = wb
                    loops = (Loop(kh, dh * wp * c, kw * c * f), Loop(kw, dw * c, c * f), Loop(c, 1, f))
                    dst = TileOut(ob + (u * ow) * f * isz, f, vb, relu, 0, 0)
                elif r < ndx:  # dx row rr of image n, its pixels q, q + sw, ... x c channels
                    # flipped taps di' = di0 + mi*sh (mi0 <= mi < mi1: dz row ib + mi exists) and
                    # dj' = dj0 + mj*sw (dz column t + jb + mj for the pixel t of the phase)
                    rr = r // sw
                    q = r - rr * sw
                    er = rr + top - kh + 1
                    di0 = (-er) % sh
                    ib = (er + di0) // sh
                    mi0 = max(0, -ib)
                    mi1 = min((kh - di0 + sh - 1) // sh, oh - ib)
                    e = q + left - kw + 1
                    dj0 = (-e) % sw
                    jb = (e + dj0) // sw
                    count, width = (wp - q + sw - 1) // sw, c
                    a = TileA(np.int64(scratch[worker].ctypes.data)
                              + ((pt + ib + mi0) * pw + pl + jb) * f * isz, f)
                    b = wb + ((di0 + mi0 * sh) * kw + dj0) * f * c * isz
                    loops = (Loop(max(0, mi1 - mi0), pw * f, sh * kw * f * c),
                             Loop(max(0, (kw - dj0 + sw - 1) // sw), f, sw * f * c), Loop(f, 1, c))
                    dst = TileOut(ob + ((n * hp + rr) * wp + q) * c * isz, sw * c, zb, 0, 0, 0)
                else:  # mode 2, dkernel[di] of image n (dz from the buffer), added to part[u]: its kw * c
                    # rows (dj, c) are consecutive in x too: x[.., j + dj, c] is element dj * C + c
                    # after pixel j; the reduction runs over the image's output pixels
                    di = r - ndx
                    count, width = kw * c, f
                    a = TileA(xb + ((n * xh + di) * xw) * c * isz, 1)
                    b = np.int64(scratch[worker].ctypes.data) + (pt * pw + pl) * f * isz
                    loops = (Loop(1, 0, 0), Loop(oh, sh * xw * c, pw * f), Loop(ow, sw * c, f))
                    dst = TileOut(pkb + ((u * kh + di) * kw * c) * f * isz, f, zb, 0, 1 if n > i0 else 0, 0)
                tile_grid(zeros, count, width, a, b, loops, dst)
    denormals_restore(fpu)


def _tiles_run(mode, items, flops, *args):
    """:func:`_conv_tiles` in ``mode`` over ``items`` work items, split over numba's threads by
    :func:`.fanout.run` (``flops``: the call's work, which decides whether to split)."""
    if items > 0:
        fanout.run(_conv_tiles, items, mode, *args, work=flops)


def tiles_forward(xpad, kernel, bias, y, strides, relu, dilation=(1, 1)):
    """y (N, OH, OW, F) = conv(xpad, kernel) + bias [relu'd] on the tiles (mode 0 of
    :func:`_conv_tiles`), the kernel dilated by ``dilation``; ``xpad`` already padded, every
    array C-contiguous of one dtype."""
    dt = y.dtype
    n, oh, ow, f = y.shape
    _tiles_run(0, n * oh, 2 * y.size * kernel[..., 0].size, xpad, kernel, y, bias, bias, EMPTY4[dt], EMPTY2[dt],
               strides[0], strides[1], dilation[0], dilation[1], 0, 0, 0, 0, 1 if relu else 0, EMPTY4[dt], EMPTY4[dt],
               EMPTY2[dt])


def tiles_backward(dy, relu_y, xpad, kernel_t, dx, strides, pads, gimg, scratch, zeros, pk, pb):
    """The backward on the tiles in one pass over dy (mode 2): per group of ``gimg`` images, the
    partial sums pk[g] of dkernel and pb[g] of dbias; dx too unless ``dx`` is empty (then
    ``kernel_t`` is only a (KH, KW, 0, 0) placeholder). ``relu_y`` (or None) masks dy."""
    dt = dy.dtype
    taps = pk.shape[1] // dy.shape[3]  # KH * KW * C
    _tiles_run(2, pk.shape[0], 2 * dy.size * taps * (1 + (dx.shape[0] > 0)), dy, kernel_t, dx, zeros, zeros, scratch,
               pk, strides[0], strides[1], 1, 1, pads[0], pads[2], gimg, pk.shape[0], 0, xpad,
               EMPTY4[dt] if relu_y is None else relu_y, pb)


# ----------------------------------------------------------------------------- im2col + GEMM kernels
@njit(cache=True)
def _bias_act_rows(y2, r0, r1, b, relu):
    """In place on rows r0..r1-1 of y2 (M, F): y += b, then max(., 0) if relu (NaN stays NaN)."""
    f = y2.shape[1]
    for r in range(r0, r1):
        for o in range(f):
            v = y2[r, o] + b[o]
            if relu and v < 0:
                y2[r, o] = 0
            else:
                y2[r, o] = v


@njit(nogil=True, cache=True)
def _conv_fwd_gemm(x, k4, b, sh, sw, dh, dw, top, left, relu, identity, cimg, scratch, y, q_lo, q_hi, worker):
    """y = bias + im2col(x) @ W per chunk of ``cimg`` images, relu fused; one GEMM per chunk, for
    chunks q_lo..q_hi-1 (:func:`.fanout.run` over all of them).

    Parameters
    ----------
    x : (N, H, W, C) array, unpadded; k4 : (KH, KW, C, F) kernel; b : (F,) bias.
    sh, sw, dh, dw, top, left : int
        Strides, dilation, and the padding at the top and left (the far sides follow from y's shape).
    relu : bool
        Fuse relu.
    identity : bool
        1x1 kernel, stride 1, no padding: x's rows are the im2col matrix already (no scratch).
    cimg : int
        Images per chunk (one work item each).
    scratch : (threads, cimg*OH*OW, KH*KW*C) array
        One im2col buffer per numba thread.
    y : (N, OH, OW, F) array
        The output.
    q_lo, q_hi, worker : int
        The chunks to do; the index of this call's ``scratch`` buffer.
    """
    n_img = x.shape[0]
    kh, kw, c, f = k4.shape
    _, oh, ow, _ = y.shape
    kdim = kh * kw * c
    p = oh * ow
    single = x.itemsize == 4
    isz = x.itemsize
    y2 = y.reshape(n_img * p, f)
    cols = scratch[worker]
    fpu = denormals_off()  # (see fpu)
    for q in range(q_lo, q_hi):
        n0 = q * cimg
        n1 = min(n_img, n0 + cimg)
        if identity:
            src = np.int64(x.ctypes.data) + n0 * p * kdim * isz
        else:
            im2col_imgs(x, n0, n1, kh, kw, sh, sw, dh, dw, top, left, oh, ow, cols)
            src = np.int64(cols.ctypes.data)
        blas.gemm(single, False, False, (n1 - n0) * p, f, kdim, src, kdim,
                  np.int64(k4.ctypes.data), f, 0.0, np.int64(y.ctypes.data) + n0 * p * f * isz, f)
        _bias_act_rows(y2, n0 * p, n1 * p, b, relu)
    denormals_restore(fpu)


@njit(nogil=True, cache=True)
def _conv_bwd_gemm(dy, x, k4, sh, sw, dh, dw, top, left, need_dx, need_dw, identity, cimg, ngroups, scratch, pk,
                   pb, dx, relu_y, dzbuf, g_lo, g_hi, worker):
    """Per group of chunks: pk[g] = sum of im2col(x)^T @ dz, pb[g] = column sums of dz (chunks
    in order); and dx = col2im(dz @ W^T) per chunk when ``need_dx``. dz = dy, or with ``relu_y``
    relu's gradient dy * (relu_y > 0), made per chunk into the thread's ``dzbuf`` (in cache;
    never a whole array in memory).

    Parameters
    ----------
    dy : (N, OH, OW, F) array; x : (N, H, W, C) array, unpadded; k4 : (KH, KW, C, F) kernel.
    sh, sw, dh, dw, top, left, identity, cimg, scratch
        As in :func:`_conv_fwd_gemm`.
    need_dx, need_dw : bool
        Compute dx / the partial sums of dkernel and dbias.
    ngroups : int
        Groups of consecutive chunks (one work item each; the boundaries depend only on the
        chunk count).
    pk : (ngroups, KH*KW*C*F) array; pb : (ngroups, F) array
        The partial sums of dkernel and dbias.
    dx : (N, H, W, C) array
        The input gradient (untouched unless ``need_dx``).
    relu_y : (N, OH, OW, F) array, or (0, 0, 0, 0) for none
        The forward's relu output: dy is masked by relu_y > 0.
    dzbuf : (threads, cimg*OH*OW*F) array, or (threads, 0) without ``relu_y``
        One masked-dy chunk buffer per numba thread.
    g_lo, g_hi, worker : int
        The groups to do (:func:`.fanout.run` over all of them); the index of this call's
        ``scratch`` and ``dzbuf`` buffers.
    """
    n_img = x.shape[0]
    kh, kw, c, f = k4.shape
    _, oh, ow, _ = dy.shape
    kdim = kh * kw * c
    p = oh * ow
    single = x.itemsize == 4
    isz = x.itemsize
    nq = (n_img + cimg - 1) // cimg
    masked = relu_y.size > 0
    dy1 = dy.reshape(n_img * p * f)
    y1 = relu_y.reshape(relu_y.size)
    fpu = denormals_off()  # (see fpu)
    for g in range(g_lo, g_hi):
        q0 = g * nq // ngroups
        q1 = (g + 1) * nq // ngroups
        pkg = np.int64(pk.ctypes.data) + g * kdim * f * isz
        for o in range(f):
            pb[g, o] = 0
        for q in range(q0, q1):
            n0 = q * cimg
            n1 = min(n_img, n0 + cimg)
            rows = (n1 - n0) * p
            if masked:  # dz of the chunk: dy where relu's output was positive
                dz1 = dzbuf[worker]
                relu_bwd_range(dy1, y1, n0 * p * f, n1 * p * f, dz1)
            else:
                dz1 = dy1[n0 * p * f:n1 * p * f]
            dyp = np.int64(dz1.ctypes.data)
            cols = scratch[worker]
            if identity:
                src = np.int64(x.ctypes.data) + n0 * p * kdim * isz
            elif need_dw:
                im2col_imgs(x, n0, n1, kh, kw, sh, sw, dh, dw, top, left, oh, ow, cols)
                src = np.int64(cols.ctypes.data)
            if need_dw:
                blas.gemm(single, True, False, kdim, f, rows, src, kdim, dyp, f, 0.0 if q == q0 else 1.0, pkg, f)
                for r in range(rows):
                    for o in range(f):
                        pb[g, o] += dz1[r * f + o]
            if need_dx:
                if identity:
                    blas.gemm(single, False, True, rows, kdim, f, dyp, f, np.int64(k4.ctypes.data), f, 0.0,
                              np.int64(dx.ctypes.data) + n0 * p * kdim * isz, kdim)
                else:
                    blas.gemm(single, False, True, rows, kdim, f, dyp, f, np.int64(k4.ctypes.data), f, 0.0,
                              np.int64(cols.ctypes.data), kdim)
                    col2im_imgs(cols, n0, n1, kh, kw, sh, sw, dh, dw, top, left, oh, ow, dx)
    denormals_restore(fpu)


def _conv_chunking(n, oh, ow):
    """(images per chunk, number of chunks, number of groups): shapes only, never thread count."""
    cimg = max(1, config.CHUNK_ROWS // max(1, oh * ow))
    nq = -(-n // cimg)
    return cimg, nq, min(nq, config.MAX_GROUPS)


def _scratch(nrows, kdim, dtype):
    """One private im2col chunk buffer per numba thread (a fanout worker's index picks it)."""
    return np.empty((numba.get_num_threads(), nrows, kdim), dtype=dtype)


# ----------------------------------------------------------------------------- public
def conv2d_forward(x, kernel, bias, strides, pads, relu=False, cache=None, dilation=(1, 1)):
    """2-D cross-correlation, as :func:`minicnn.kernels.numpy_backend.conv2d_forward`.

    Returns y : (N, OH, OW, F) with ``x``'s dtype. ``cache`` is accepted for the contract; this
    backend keeps nothing in it (the backward needs only x).
    """
    x = np.asarray(x)
    oh, ow = checks.conv_args("conv2d_forward", x, kernel, bias, strides, pads, dilation)
    dh, dw = dilation
    on_tiles = conv_tiles_fit(x.dtype)
    if x.dtype not in FLOATS or not (blas.FAST or on_tiles):
        return _ref.conv2d_forward(x, kernel, bias, strides, pads, relu=relu, cache=cache, dilation=dilation)
    x = np.ascontiguousarray(x)
    dtype = x.dtype
    kernel = as_c(kernel, dtype)
    kh, kw, c, f = kernel.shape
    sh, sw = strides
    n = x.shape[0]
    b = bias_or_zeros(bias, f, dtype)
    y = np.empty((n, oh, ow, f), dtype=dtype)
    if on_tiles:
        tiles_forward(_ref.pad_nhwc(x, pads), kernel, b, y, (sh, sw), relu, (dh, dw))
    elif planar_fits(x.shape, kernel.shape, strides):  # one input channel: no im2col (conv_planar)
        planar_forward(x, kernel, b, pads, (dh, dw), relu, y)
    else:
        identity = kh == 1 and kw == 1 and sh == 1 and sw == 1 and not any(pads)
        cimg, nq, _ = _conv_chunking(n, oh, ow)
        scratch = _scratch(0 if identity else cimg * oh * ow, kh * kw * c, dtype)
        with blas.openblas:
            fanout.run(_conv_fwd_gemm, nq, x, kernel, b, sh, sw, dh, dw, pads[0], pads[2], bool(relu), identity, cimg,
                       scratch, y, work=2 * y.size * kh * kw * c)
    return y


def conv2d_backward(dy, x, kernel, strides, pads, need_dx=True, cache=None, relu_y=None, dilation=(1, 1)):
    """Gradients of :func:`conv2d_forward`: ``(dx | None, dkernel, dbias)``; with ``relu_y`` (the
    forward's relu output), of the relu'd convolution (dy masked by ``relu_y > 0``). A dilated
    conv takes im2col + GEMM (the backward tiles are not dilated)."""
    dy = np.asarray(dy)
    if dy.dtype not in FLOATS or (relu_y is not None and np.shape(relu_y) != dy.shape):
        return _ref.conv2d_backward(dy, x, kernel, strides, pads, need_dx=need_dx, cache=cache, relu_y=relu_y,
                                    dilation=dilation)
    checks.conv_grad_args("conv2d_backward", dy, x, kernel, strides, pads, dilation)
    dh, dw = dilation
    dilated = dh != 1 or dw != 1
    dy = np.ascontiguousarray(dy)
    dtype = dy.dtype
    x = as_c(x, dtype)
    kernel = as_c(kernel, dtype)
    kh, kw, c, f = kernel.shape
    sh, sw = strides
    n = x.shape[0]
    oh, ow = dy.shape[1:3]
    kdim = kh * kw * c
    if n == 0 or oh * ow == 0:  # an empty batch: zero gradients (nothing to reduce)
        return (np.zeros(x.shape, dtype) if need_dx else None), np.zeros(kernel.shape, dtype), np.zeros(f, dtype)
    # dkernel/dbias: FMA tiles, else planar GEMVs (one input channel, few filters) or im2col + GEMM
    dw_mode = "tiles" if conv_tiles_fit(dtype) and not dilated else "gemm"
    if (dw_mode == "gemm" and blas.FAST and planar_fits(x.shape, kernel.shape, strides, MAX_FILTERS_BACKWARD)
            and _ref.all_finite(x)):
        dw_mode = "planar"  # one input channel: no im2col (conv_planar; an x with NaN/inf stays on GEMM)
    # dx: FMA tiles (dz in a zero-bordered buffer correlated with the flipped kernel, per column
    # phase of the stride), else GEMM
    dx_mode = None
    if need_dx:
        fits = pads[0] < kh and pads[1] < kh and pads[2] < kw and pads[3] < kw
        dx_mode = "tiles" if conv_tiles_fit(dtype) and fits and not dilated else "gemm"
    if not blas.FAST and "gemm" in (dw_mode, dx_mode):  # no BLAS to call from numba: the numpy backend
        return _ref.conv2d_backward(dy, x, kernel, strides, pads, need_dx=need_dx, cache=cache, relu_y=relu_y,
                                    dilation=dilation)
    dx = np.empty(x.shape if need_dx else (0, 0, 0, 0), dtype=dtype)
    dkernel = np.empty(kdim * f, dtype=dtype)
    dbias = np.empty(f, dtype=dtype)
    zeros = np.zeros(max(c, f), dtype=dtype)
    if dx_mode == "tiles":
        wt = np.ascontiguousarray(kernel[::-1, ::-1].transpose(0, 1, 3, 2))  # (KH, KW, F, C), flipped
    else:
        wt = np.empty((kh, kw, 0, 0), dtype=dtype)  # (only its shape: the kernel size)
    if dw_mode == "tiles":  # dkernel, dbias and the tiles' dx in one pass over dy, relu fused
        gimg = -(-n // min(n, config.MAX_GROUPS))  # images per partial sum: from the shape only
        ng = -(-n // gimg)
        pk = np.empty((ng, kdim * f), dtype=dtype)
        pb = np.empty((ng, f), dtype=dtype)
        tiles_dx_here = dx_mode == "tiles"
        bh, bw = dx_buffer(x.shape[1], x.shape[2], oh, ow, kh, kw, sw, pads[2])[:2] if tiles_dx_here else (oh, ow)
        scratch = np.empty((numba.get_num_threads(), bh, bw, f), dtype=dtype)
        tiles_backward(dy, None if relu_y is None else as_c(relu_y, dtype), _ref.pad_nhwc(x, pads), wt,
                       dx if tiles_dx_here else EMPTY4[dtype], strides, pads, gimg, scratch, zeros, pk, pb)
        sum_groups(pk, dkernel)
        sum_groups(pb, dbias)
        if dx_mode != "gemm":
            return (dx if need_dx else None), dkernel.reshape(kernel.shape), dbias
    if dw_mode == "planar":
        planar_backward(dy, x, kernel, pads, dilation, None if relu_y is None else as_c(relu_y, dtype), dkernel, dbias)
        if dx_mode is None:
            return None, dkernel.reshape(kernel.shape), dbias
    # what is left, by GEMM: dx (of a dilated conv, beside the planar dkernel, or beside the tiles'
    # dkernel when a pad reaches the kernel size), or dkernel/dbias with the tiles off. (dx is
    # on the tiles only when dkernel is: both need the tiles for this dtype and no dilation.)
    cimg, _, ngroups = _conv_chunking(n, oh, ow)
    # relu's gradient fused: each chunk of dy masked into a cache-sized per-thread buffer
    relu_y = EMPTY4[dtype] if relu_y is None else as_c(relu_y, dtype)
    dzbuf = np.empty((numba.get_num_threads(), cimg * oh * ow * f if relu_y.size else 0), dtype=dtype)
    identity = kh == 1 and kw == 1 and sh == 1 and sw == 1 and not any(pads)
    scratch = _scratch(0 if identity else cimg * oh * ow, kdim, dtype)
    pk = np.empty((ngroups, kdim * f), dtype=dtype)
    pb = np.empty((ngroups, f), dtype=dtype)
    with blas.openblas:
        fanout.run(_conv_bwd_gemm, ngroups, dy, x, kernel, sh, sw, dh, dw, pads[0], pads[2], dx_mode == "gemm",
                   dw_mode == "gemm", identity, cimg, ngroups, scratch, pk, pb, dx, relu_y, dzbuf,
                   work=2 * dy.size * kdim * ((dx_mode == "gemm") + (dw_mode == "gemm")))
    if dw_mode == "gemm":
        sum_groups(pk, dkernel)
        sum_groups(pb, dbias)
    return (dx if need_dx else None), dkernel.reshape(kernel.shape), dbias
