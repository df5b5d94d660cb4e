"""Depthwise conv2d on numba: direct loops over the kernel taps, no im2col, no padded copy.

Layouts as :mod:`minicnn.kernels.numpy_depthwise` (the twin the tests compare with): NHWC input,
kernel (KH, KW, C, M) seen as (KH, KW, C*M), output channel ``c * M + m`` from input channel ``c``
(Keras's order), ``pads`` = (top, bottom, left, right), tap (di, dj) of output pixel (i, j) reading
input cell (i*SH + di*DH - top, j*SW + dj*DW - left). Cells in the padding are skipped: for each
tap the loops run only over the output pixels whose input cell lies inside the image.

* **Forward** (:func:`_dw_fwd`): the N*OH output rows split over numba's threads; each row (OW x C*M, in L1) is
  zeroed, gets the taps added in (di, dj) order (the numpy twin's order: ``y += tap * k``), then
  the bias and, fused, relu.
* **Backward** (:func:`_dw_bwd`): over fixed groups of whole images (``gimg`` each, at most
  ``config.MAX_GROUPS`` groups; the boundaries depend on N only). Per image: dz = dy * (y > 0) when
  relu is fused (into the thread's scratch buffer), its sum into the group's dbias partial; then one
  sweep over the taps adds x * dz into the group's dkernel partial and, scattered into the image's
  own dx (no other iteration writes it), dz * k. A dx cell gets its taps in (di, dj) order. The
  group partials are added in group order (:func:`~.elementwise.sum_groups`).

* **Flat path** (:func:`_dw_fwd_flat`, :func:`_dw_bwd_flat`; multiplier 1 and column stride 1,
  every depthwise layer of the ``mobile`` preset but the stride-2 one): the input cells a tap
  reads for a run of output columns are contiguous, so each tap is one loop over (columns x C)
  values against the kernel tiled along the row. Measured one thread, batch 100, float32, 3x3
  (interleaved A/B, medians of 60): (14, 14, 16) forward 0.88 -> 0.36 ms, backward 1.97 -> 0.79;
  (7, 7, 64) 0.41 -> 0.33 and 0.86 -> 0.66 (loops of C = 16 values are one vector plus the loop
  overhead: 2.3x slower per value than C = 64 before).

Why no GEMM: a depthwise im2col matrix is block diagonal (C blocks of KH*KW x M), mostly zeros.
The reduction per output element is only KH*KW long, so the inner loops run along the C*M
contiguous channels instead (vectorised), the taps outside.

Threads: serial ``nogil`` kernels over ranges of their work items (rows, groups), split over
numba's threads by :func:`.fanout.run` (as numba's static schedule split the ``prange`` they were:
a parfor compiles its body twice over; the mobile preset's cold first step spent 12.4 s in these
four kernels).

Determinism: rows and image groups are shape-only partitions, every iteration writes its own
output rows / images / partial sums, and the partials are added in a fixed order: results are
bitwise equal for any thread count. Denormals are flushed inside each iteration (:mod:`.fpu`).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit

from .. import numpy_depthwise as _ref
from ..shapes import padded_output_hw
from . import checks, config, fanout
from .arrays import EMPTY4, FLOATS, as_c
from .elementwise import sum_groups
from .fpu import denormals_off, denormals_restore

__all__ = ["depthwise_conv2d_backward", "depthwise_conv2d_forward"]


# ----------------------------------------------------------------------------- kernels
@njit(cache=True)
def _tap_cols(off, sw, w, ow):
    """The output columns j0..j1-1 whose input column ``j * sw + off`` lies in 0..w-1."""
    j0 = 0 if off >= 0 else (sw - 1 - off) // sw
    j1 = 0 if w - 1 - off < 0 else min(ow, (w - 1 - off) // sw + 1)
    return j0, max(j0, j1)


@njit(nogil=True, cache=True)
def _dw_fwd(x, k3, b, sh, sw, dh, dw, top, left, use_bias, relu, y, t_lo, t_hi, worker):
    """y = depthwise(x, k3) [+ b] [relu'd] on the output rows t_lo..t_hi-1 (row t: image
    t // OH, row t % OH), launched by :func:`.fanout.run` over the N*OH rows.

    Parameters
    ----------
    x : (N, H, W, C) array
        The unpadded input.
    k3 : (KH, KW, C*M) array
        The kernel, channel ``c * M + m`` at index c*M + m.
    b : (C*M,) array
        The bias (read only when ``use_bias``).
    sh, sw, dh, dw : int
        Strides and dilation.
    top, left : int
        The padding at the top and left (the far sides follow from y's shape).
    use_bias, relu : bool
        Add ``b`` (the numpy twin adds nothing when there is no bias); fuse relu (NaN stays NaN).
    y : (N, OH, OW, C*M) array
        The output; one work item per row (n, i).
    t_lo, t_hi, worker : int
        The rows to do (:func:`.fanout.run`; ``worker`` unused).
    """
    n_img, h, w, c = x.shape
    kh, kw, cm = k3.shape
    m = cm // c
    oh, ow = y.shape[1], y.shape[2]
    fpu = denormals_off()  # (see fpu)
    for t in range(t_lo, min(t_hi, n_img * oh)):
        n = t // oh
        i = t - n * oh
        yr = y[n, i]
        yr[:] = 0
        for di in range(kh):
            r = i * sh + di * dh - top
            if r < 0 or r >= h:
                continue
            xr = x[n, r]
            for dj in range(kw):
                off = dj * dw - left
                j0, j1 = _tap_cols(off, sw, w, ow)
                kv = k3[di, dj]
                for j in range(j0, j1):
                    xp, yp = xr[j * sw + off], yr[j]
                    if m == 1:
                        for o in range(cm):
                            yp[o] += xp[o] * kv[o]
                    else:
                        for ch in range(c):
                            xv = xp[ch]
                            for q in range(m):
                                yp[ch * m + q] += xv * kv[ch * m + q]
        if use_bias or relu:
            for j in range(ow):
                yp = yr[j]
                for o in range(cm):
                    v = yp[o] + b[o] if use_bias else yp[o]
                    yp[o] = 0 if relu and v < 0 else v
    denormals_restore(fpu)


@njit(nogil=True, cache=True)
def _dw_bwd(dy, mask, x, k3, sh, sw, dh, dw, top, left, gimg, need_dx, scratch, pk, pb, dx, g_lo, g_hi, worker):
    """Per group g_lo..g_hi-1 of ``gimg`` images: pk[g] and pb[g], the group's partial sums of
    dkernel and dbias; dx of the group's images when ``need_dx`` (launched by :func:`.fanout.run`
    over the groups).

    Parameters
    ----------
    dy : (N, OH, OW, C*M) array
        The upstream gradient.
    mask : (N, OH, OW, C*M) array, or empty
        The forward's relu output: dz = dy where mask > 0, else 0 (empty: dz = dy).
    x : (N, H, W, C) array; k3 : (KH, KW, C*M) array
        The forward's input (unpadded) and kernel.
    sh, sw, dh, dw, top, left : int
        As in :func:`_dw_fwd`.
    gimg : int
        Images per group (one work item per group; G = pk.shape[0] groups).
    need_dx : bool
        Compute dx.
    scratch : (threads, OH, OW, C*M) array
        One dz buffer per numba thread (used only with a mask; this call's is ``scratch[worker]``).
    pk : (G, KH, KW, C*M) array; pb : (G, C*M) array
        The per-group partial sums (outputs), images added in order.
    dx : (N, H, W, C) array
        The input gradient (output; untouched unless ``need_dx``).
    g_lo, g_hi, worker : int
        The groups to do and this call's scratch buffer (:func:`.fanout.run`).
    """
    n_img, oh, ow, cm = dy.shape
    _, h, w, c = x.shape
    kh, kw = k3.shape[0], k3.shape[1]
    m = cm // c
    masked = mask.shape[0] > 0
    fpu = denormals_off()  # (see fpu)
    for g in range(g_lo, min(g_hi, pk.shape[0])):
        pkg, pbg = pk[g], pb[g]
        pkg[:] = 0
        pbg[:] = 0
        for n in range(g * gimg, min(n_img, g * gimg + gimg)):
            if masked:  # a select, not a branch: it vectorises
                dz = scratch[worker]
                for i in range(oh):
                    for j in range(ow):
                        dzp, dyp, yp = dz[i, j], dy[n, i, j], mask[n, i, j]
                        for o in range(cm):
                            dzp[o] = dyp[o] if yp[o] > 0 else 0
            else:
                dz = dy[n]
            for i in range(oh):
                for j in range(ow):
                    dzp = dz[i, j]
                    for o in range(cm):
                        pbg[o] += dzp[o]
            if need_dx:
                dx[n] = 0
            for di in range(kh):
                for i in range(oh):
                    r = i * sh + di * dh - top
                    if r < 0 or r >= h:
                        continue
                    xr = x[n, r]
                    dzr = dz[i]
                    for dj in range(kw):
                        off = dj * dw - left
                        j0, j1 = _tap_cols(off, sw, w, ow)
                        kv, acc = k3[di, dj], pkg[di, dj]
                        for j in range(j0, j1):
                            xp, dzp = xr[j * sw + off], dzr[j]
                            if m == 1:
                                for o in range(cm):
                                    acc[o] += xp[o] * dzp[o]
                                if need_dx:
                                    dxp = dx[n, r, j * sw + off]
                                    for o in range(cm):
                                        dxp[o] += dzp[o] * kv[o]
                            else:
                                for ch in range(c):
                                    xv = xp[ch]
                                    for q in range(m):
                                        acc[ch * m + q] += xv * dzp[ch * m + q]
                                if need_dx:
                                    dxp = dx[n, r, j * sw + off]
                                    for ch in range(c):
                                        s = dzp[ch * m] * kv[ch * m]
                                        for q in range(1, m):
                                            s += dzp[ch * m + q] * kv[ch * m + q]
                                        dxp[ch] += s
    denormals_restore(fpu)


# ----------------------------------------------------------------------------- the flat path
@njit(nogil=True, cache=True)
def _dw_fwd_flat(x, kt, bt, sh, dh, dw, top, left, c, use_bias, relu, y, t_lo, t_hi, worker):
    """:func:`_dw_fwd` for multiplier 1 and column stride 1, on rows seen as flat vectors.

    With ``M = 1`` and ``SW = 1`` the input cells a tap reads for the output columns j0..j1-1 are
    contiguous, so each tap is one long vectorised loop over ``(j1 - j0) * C`` values against the
    kernel tiled along the row, instead of ``j1 - j0`` loops of C (C = 16: a vector and the
    loop's remainder, 2.3x slower per value than C = 64). The same operations in the same order
    as :func:`_dw_fwd`: the same bits.

    Parameters
    ----------
    x : (N, H, W*C) array
        The unpadded input, each row flat.
    kt : (KH, KW, OW*C) array
        The kernel, each tap's C values repeated OW times (:func:`_tiled`).
    bt : (OW*C,) array
        The bias tiled likewise (read only when ``use_bias``).
    sh, dh, dw, top, left : int
        Row stride, dilation, the padding at the top and left.
    c : int
        Channels.
    use_bias, relu : bool
        As in :func:`_dw_fwd`.
    y : (N, OH, OW*C) array
        The output, one work item per row (n, i).
    t_lo, t_hi, worker : int
        The rows to do (:func:`.fanout.run`; ``worker`` unused).
    """
    n_img, h, wc = x.shape
    w = wc // c
    kh, kw, owc = kt.shape
    ow = owc // c
    oh = y.shape[1]
    fpu = denormals_off()  # (see fpu)
    for t in range(t_lo, min(t_hi, n_img * oh)):
        n = t // oh
        i = t - n * oh
        yr = y[n, i]
        yr[:] = 0
        for di in range(kh):
            r = i * sh + di * dh - top
            if r < 0 or r >= h:
                continue
            xr = x[n, r]
            for dj in range(kw):
                off = dj * dw - left
                j0, j1 = _tap_cols(off, 1, w, ow)
                a0, a1 = j0 * c, j1 * c
                ys, xs, ks = yr[a0:a1], xr[a0 + off * c:a1 + off * c], kt[di, dj, a0:a1]
                for q in range(a1 - a0):
                    ys[q] += xs[q] * ks[q]
        if use_bias or relu:
            for q in range(owc):
                v = yr[q] + bt[q] if use_bias else yr[q]
                yr[q] = 0 if relu and v < 0 else v
    denormals_restore(fpu)


@njit(nogil=True, cache=True)
def _dw_bwd_flat(dy, mask, x, kt, sh, dh, dw, top, left, c, gimg, need_dx, scratch, kacc, bacc, pk, pb, dx,
                 g_lo, g_hi, worker):
    """:func:`_dw_bwd` for multiplier 1 and column stride 1, on flat rows (as :func:`_dw_fwd_flat`).

    The dkernel and dbias sums run per output column too, in the thread's ``kacc`` (KH, KW, OW*C)
    and ``bacc`` (OW*C) (zeroed per group: one long vectorised loop per tap, no reduction inside
    it); at the end of the group the OW columns are added in order into ``pk[g]``, ``pb[g]``.
    Another summation order than the numpy twin's (within the tolerances), fixed by the shape:
    bitwise the same for any thread count. dx as :func:`_dw_bwd` (its bits).

    Parameters
    ----------
    dy, mask : (N, OH, OW*C) arrays (mask: the forward's relu output, or empty)
    x : (N, H, W*C) array; kt : (KH, KW, OW*C) the tiled kernel
    sh, dh, dw, top, left, c, gimg, need_dx : as in :func:`_dw_fwd_flat` and :func:`_dw_bwd`
    scratch : (threads, OH, OW*C) array
        dz per thread (used only with a mask).
    kacc : (threads, KH, KW, OW*C) array; bacc : (threads, OW*C) array
        The per-column sums of each thread's current group.
    pk : (G, KH, KW, C) array; pb : (G, C) array
        The per-group partial sums (outputs).
    dx : (N, H, W*C) array
        The input gradient (output; untouched unless ``need_dx``).
    g_lo, g_hi, worker : int
        The groups to do and this call's buffers (``scratch``, ``kacc``, ``bacc``: :func:`.fanout.run`).
    """
    n_img, oh, owc = dy.shape
    h, wc = x.shape[1], x.shape[2]
    w, ow = wc // c, owc // c
    kh, kw = kt.shape[0], kt.shape[1]
    masked = mask.shape[0] > 0
    fpu = denormals_off()  # (see fpu)
    for g in range(g_lo, min(g_hi, pk.shape[0])):
        ka, ba = kacc[worker], bacc[worker]
        ka[:] = 0
        ba[:] = 0
        for n in range(g * gimg, min(n_img, g * gimg + gimg)):
            if masked:
                dz = scratch[worker]
                for i in range(oh):
                    dzr, dyr, yr = dz[i], dy[n, i], mask[n, i]
                    for q in range(owc):
                        dzr[q] = dyr[q] if yr[q] > 0 else 0
            else:
                dz = dy[n]
            for i in range(oh):
                dzr = dz[i]
                for q in range(owc):
                    ba[q] += dzr[q]
            if need_dx:
                dx[n] = 0
            for di in range(kh):
                for i in range(oh):
                    r = i * sh + di * dh - top
                    if r < 0 or r >= h:
                        continue
                    xr, dzr = x[n, r], dz[i]
                    for dj in range(kw):
                        off = dj * dw - left
                        j0, j1 = _tap_cols(off, 1, w, ow)
                        a0, a1 = j0 * c, j1 * c
                        ks, xs, ds = ka[di, dj, a0:a1], xr[a0 + off * c:a1 + off * c], dzr[a0:a1]
                        for q in range(a1 - a0):
                            ks[q] += xs[q] * ds[q]
                        if need_dx:
                            dxs, kv = dx[n, r, a0 + off * c:a1 + off * c], kt[di, dj, a0:a1]
                            for q in range(a1 - a0):
                                dxs[q] += ds[q] * kv[q]
        pkg, pbg = pk[g], pb[g]
        pkg[:] = 0
        pbg[:] = 0
        for j in range(ow):
            for o in range(c):
                pbg[o] += ba[j * c + o]
            for di in range(kh):
                for dj in range(kw):
                    kr, kp = ka[di, dj], pkg[di, dj]
                    for o in range(c):
                        kp[o] += kr[j * c + o]
    denormals_restore(fpu)


def _flat(m, strides):
    """Whether the flat kernels apply: multiplier 1 and column stride 1."""
    return m == 1 and strides[1] == 1


def _tiled(v, ow):
    """``v`` (..., C) repeated ``ow`` times along its last axis: (..., OW*C), C-contiguous."""
    return np.ascontiguousarray(np.tile(v, (1,) * (v.ndim - 1) + (ow,)))


# ----------------------------------------------------------------------------- checks
def _fail(where, message):
    raise ValueError(f"{where}: {message}")


def _check(where, x, kernel, bias, strides, pads, dilation):
    """x (N, H, W, C), kernel (KH, KW, C, M), bias (C*M,) or None, 2 positive dilations; returns
    (OH, OW) of the dilated window."""
    checks.conv_args(where, x, kernel, None, strides, pads)  # layouts (M in F's place), window, strides, pads
    ks = np.shape(kernel)
    if bias is not None and np.shape(bias) != (ks[2] * ks[3],):
        _fail(where, f"bias must have shape ({ks[2] * ks[3]},) (C * M), got {np.shape(bias)}")
    if len(dilation) != 2 or min(dilation) < 1:
        _fail(where, f"dilation must be 2 positive ints, got {tuple(dilation)}")
    return padded_output_hw(np.shape(x), ks[:2], strides, pads, dilation)


# ----------------------------------------------------------------------------- public
def depthwise_conv2d_forward(x, kernel, bias, strides, pads, relu=False, cache=None, dilation=(1, 1)):
    """Depthwise cross-correlation, as :func:`minicnn.kernels.numpy_depthwise.depthwise_conv2d_forward`.

    Returns y : (N, OH, OW, C * M) with ``x``'s dtype, channel ``c * M + m`` from
    ``kernel[:, :, c, m]``. ``cache`` is accepted for the contract; this backend keeps nothing in
    it (the backward reads x, unpadded).
    """
    x = np.asarray(x)
    oh, ow = _check("depthwise_conv2d_forward", x, kernel, bias, strides, pads, dilation)
    if x.dtype not in FLOATS:
        return _ref.depthwise_conv2d_forward(x, kernel, bias, strides, pads, relu=relu, cache=cache,
                                             dilation=dilation)
    x = np.ascontiguousarray(x)
    dtype = x.dtype
    kh, kw, c, m = np.shape(kernel)
    k3 = as_c(kernel, dtype).reshape(kh, kw, c * m)
    b = as_c(bias, dtype) if bias is not None else np.zeros(c * m, dtype)
    y = np.empty((x.shape[0], max(oh, 0), max(ow, 0), c * m), dtype=dtype)
    if y.size and _flat(m, strides):
        n, h, w = x.shape[:3]
        fanout.run(_dw_fwd_flat, n * oh, x.reshape(n, h, w * c), _tiled(k3, ow), _tiled(b, ow), strides[0],
                   dilation[0], dilation[1], pads[0], pads[2], c, bias is not None, bool(relu),
                   y.reshape(n, oh, ow * c), work=2 * y.size * kh * kw)
    elif y.size:
        fanout.run(_dw_fwd, x.shape[0] * oh, x, k3, b, strides[0], strides[1], dilation[0], dilation[1], pads[0],
                   pads[2], bias is not None, bool(relu), y, work=2 * y.size * kh * kw)
    return y


def depthwise_conv2d_backward(dy, x, kernel, strides, pads, need_dx=True, cache=None, relu_y=None,
                              dilation=(1, 1)):
    """Gradients of :func:`depthwise_conv2d_forward`: ``(dx | None, dkernel, dbias)``; with
    ``relu_y`` (the forward's relu output), of the relu'd convolution (dy masked by ``relu_y > 0``)."""
    dy = np.asarray(dy)
    if dy.dtype not in FLOATS or (relu_y is not None and np.shape(relu_y) != dy.shape):
        return _ref.depthwise_conv2d_backward(dy, x, kernel, strides, pads, need_dx=need_dx, cache=cache,
                                              relu_y=relu_y, dilation=dilation)
    where = "depthwise_conv2d_backward"
    oh, ow = _check(where, x, kernel, None, strides, pads, dilation)
    kh, kw, c, m = np.shape(kernel)
    want = (np.shape(x)[0], max(oh, 0), max(ow, 0), c * m)
    if dy.shape != want:
        _fail(where, f"dy has shape {dy.shape}, the forward's output has {want}")
    dy = np.ascontiguousarray(dy)
    dtype = dy.dtype
    x = as_c(x, dtype)
    k3 = as_c(kernel, dtype).reshape(kh, kw, c * m)
    n = x.shape[0]
    if n == 0 or oh * ow <= 0:  # nothing to reduce: zero gradients
        return (np.zeros(x.shape, dtype) if need_dx else None), np.zeros((kh, kw, c, m), dtype), np.zeros(c * m, dtype)
    gimg = -(-n // min(n, config.MAX_GROUPS))  # images per partial sum: from the shape only
    ng = -(-n // gimg)
    pk = np.empty((ng, kh, kw, c * m), dtype=dtype)
    pb = np.empty((ng, c * m), dtype=dtype)
    dx = np.empty(x.shape if need_dx else (0, 0, 0, 0), dtype=dtype)
    threads = numba.get_num_threads()
    work = 2 * dy.size * kh * kw * (1 + bool(need_dx))
    if relu_y is not None:
        mask = as_c(relu_y, dtype)
        scratch = np.empty((threads, oh, ow, c * m), dtype=dtype)
    else:
        mask = scratch = EMPTY4[dtype]
    if _flat(m, strides):
        h, w = x.shape[1:3]
        if relu_y is not None:
            mask3, scratch3 = mask.reshape(n, oh, ow * c), scratch.reshape(threads, oh, ow * c)
        else:
            mask3 = scratch3 = mask.reshape(0, 0, 0)
        fanout.run(_dw_bwd_flat, ng, dy.reshape(n, oh, ow * c), mask3, x.reshape(n, h, w * c), _tiled(k3, ow),
                   strides[0], dilation[0], dilation[1], pads[0], pads[2], c, gimg, bool(need_dx), scratch3,
                   np.empty((threads, kh, kw, ow * c), dtype), np.empty((threads, ow * c), dtype),
                   pk, pb, dx.reshape(n, h, w * c) if need_dx else dx.reshape(0, 0, 0), work=work)
    else:
        fanout.run(_dw_bwd, ng, dy, mask, x, k3, strides[0], strides[1], dilation[0], dilation[1], pads[0], pads[2],
                   gimg, bool(need_dx), scratch, pk, pb, dx, work=work)
    dkernel = np.empty(kh * kw * c * m, dtype=dtype)
    dbias = np.empty(c * m, dtype=dtype)
    sum_groups(pk.reshape(ng, -1), dkernel)
    sum_groups(pb, dbias)
    return (dx if need_dx else None), dkernel.reshape(kh, kw, c, m), dbias
