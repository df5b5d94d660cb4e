"""Batch normalisation on numba: the statistics in one read of ``x``, the normalisation in another.

The twins of :mod:`minicnn.kernels.numpy_batchnorm` (shapes, return conventions and Keras's order
of operations are documented there). ``x`` (N, ..., C) is walked as its (M, C) matrix, M = N*H*W
rows, cut into **fixed row blocks** of ``R = max(1, BN_BLOCK // C)`` rows (the last one shorter):
the blocks depend on the shape only, so every result is bitwise the same for any thread count and
on the serial path that small inputs take.

* **Statistics** (training forward). Each block (one work item; R*C values, in L2) gets
  its per-channel sum and its *centred* sum of squares ``sum((x - block_mean)**2)``, both in
  float64: the block is read from memory once and a second time from cache. The blocks' results
  are merged in block order (Chan et al.'s pairwise update, in its two-level form)::

      mean = sum_b S_b / M;   M2 = sum_b (M2_b + n_b * (S_b / n_b - mean)**2);   var = M2 / M

  which is exact algebra for the biased variance and, unlike ``E[x^2] - mean^2``, loses nothing
  to cancellation when ``|mean| >> std``. numpy computes ``sum((x - mean)**2)`` over the whole
  batch in float64 after a first pass for the mean: the same values up to the summation order and,
  in float32, numpy's rounding of ``x - mean`` to float32 (kept in float64 here). Measured on
  (100, 28, 28, 32): float64 variance within 7e-16 of the exact one (numpy's long running sums:
  2e-14); float32 within the final rounding (5e-8, numpy 7e-8).
* **Per channel** (C values, serial): ``inv = 1 / sqrt(var + eps)`` (times gamma),
  ``shift = beta - mean * inv``, rounded in the input's dtype exactly where numpy rounds.
* **Normalisation** ``y = x * inv + shift``: one more read of ``x``, over the same blocks;
  the same two roundings as numpy (no FMA: no ``fastmath``, so LLVM does not contract), hence
  bitwise numpy's ``y`` for the same ``mean`` and ``var`` (so the inference forward is numpy's,
  denormals aside).
* **Backward**: one pass over ``(dy, x)`` for the two channel sums ``dbeta = sum(dy)`` and
  ``dgamma = sum(dy * xhat)`` (per-block float64 partials merged in block order, the products
  rounded as numpy rounds them), then with the batch statistics one pass for
  ``dx = (dy - dbeta / M - xhat * (dgamma / M)) * scale``; with fixed statistics ``dx = dy * scale``
  is written in the first pass (one pass in all).

Denormals are flushed (:mod:`.fpu`) inside the block work, as in the other kernels: a gradient
``dy`` of 1e-40 (a confidently classified batch) would otherwise cost a microcode assist per
product. The per-channel steps and :func:`batchnorm_update_moving` are not flushed: they touch C
values (no speed to gain), and the moving statistics stay bitwise numpy's.

Tiers: serial ``@njit`` helpers per block (``_*_block``) and per channel, dispatched by mode
(FORWARD, TRAIN, BACKWARD, FROZEN) in :func:`_block`; :func:`_bn_serial`, every mode in one call
on the calling thread (inputs of fewer than ``config.BN_SMALL`` values, where waking the other
threads would cost more than the work); :func:`_bn_pass`, one pass's blocks over a range, which
:func:`_run` splits over numba's threads with :func:`.fanout.run` (serial ``nogil`` kernels: a
``prange`` kernel's body is compiled twice over, seconds per loop); :func:`_update_moving`; then
the public functions, which check shapes, coerce inputs (any layout; gamma etc. cast to ``x``'s
dtype; other dtypes and empty inputs go to the numpy kernels), pick a path and allocate the
outputs.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .. import numpy_batchnorm as _ref
from . import checks, config, fanout
from .arrays import FLOATS, as_c
from .fpu import denormals_off, denormals_restore

__all__ = ["batchnorm_forward", "batchnorm_train_forward", "batchnorm_update_moving", "batchnorm_backward",
           "block_rows"]

#: a placeholder for an absent gamma or beta (one compiled signature per dtype)
_NONE = {dt: np.empty(0, dtype=dt) for dt in FLOATS}


def block_rows(m, c):
    """Rows per block of an (M, C) input: ``max(1, BN_BLOCK // C)``, at most M (shape only)."""
    return max(1, min(m, config.BN_BLOCK // max(c, 1)))


# ----------------------------------------------------------------------------- block helpers
@njit(cache=True, error_model="numpy")
def _moments_block(xb, s, m2, mu):
    """Per-channel sum ``s`` and centred sum of squares ``m2`` of the block ``xb``, in float64.

    Parameters
    ----------
    xb : (R, C) array
        One block of rows of x (R >= 1).
    s, m2 : (C,) float64 arrays
        ``sum(x)`` and ``sum((x - s / R)**2)`` over the block's rows (outputs).
    mu : (C,) float64 array
        Scratch: the block's mean.
    """
    rows, c = xb.shape
    for j in range(c):
        s[j] = 0.0
        m2[j] = 0.0
    for r in range(rows):
        xr = xb[r]
        for j in range(c):
            s[j] += xr[j]
    for j in range(c):
        mu[j] = s[j] / rows
    for r in range(rows):  # the block again, from cache
        xr = xb[r]
        for j in range(c):
            d = xr[j] - mu[j]
            m2[j] += d * d


@njit(cache=True, error_model="numpy")
def _merge_moments(ps, pm2, rows, m, mean, var):
    """The batch's mean and biased variance from the blocks' partials, added in block order.

    Parameters
    ----------
    ps, pm2 : (G, C) float64 arrays
        Each block's ``s`` and ``m2`` (:func:`_moments_block`).
    rows, m : int
        Rows per block (the last block has the rest) and the total M.
    mean, var : (C,) arrays of x's dtype
        ``sum(s) / M`` and ``sum(m2 + n_b * (s / n_b - mean)**2) / M`` (outputs; rounded once
        from float64, as numpy rounds its float64 sums).
    """
    groups, c = ps.shape
    tot = np.zeros(c)
    for g in range(groups):
        for j in range(c):
            tot[j] += ps[g, j]
    mu = np.empty(c)
    for j in range(c):
        mu[j] = tot[j] / m
    acc = np.zeros(c)
    for g in range(groups):
        nb = min(rows, m - g * rows)
        for j in range(c):
            d = ps[g, j] / nb - mu[j]
            acc[j] += pm2[g, j] + nb * d * d
    for j in range(c):
        mean[j] = mu[j]
        var[j] = acc[j] / m


@njit(cache=True, error_model="numpy")
def _inv_std(var, eps, inv):
    """``inv = 1 / sqrt(var + eps)`` rounded as numpy rounds it in var's dtype: ``var + eps`` and
    the sqrt in that dtype (``eps`` is of it), the division in float64 rounded once on the store
    (a correctly rounded float32 quotient: float64 has more than 2*24 + 2 bits)."""
    for j in range(inv.size):
        inv[j] = 1 / np.sqrt(var[j] + eps)


@njit(cache=True, error_model="numpy")
def _affine(gamma, beta, mean, var, eps, inv, shift):
    """The forward's per-channel map ``y = x * inv + shift`` (numpy's ``batchnorm_forward``).

    Parameters
    ----------
    gamma, beta : (C,) arrays or empty ones (``scale`` / ``center`` off).
    mean, var : (C,) the statistics; eps : a scalar of their dtype.
    inv, shift : (C,) arrays of their dtype
        ``inv = gamma / sqrt(var + eps)``, ``shift = beta - mean * inv`` (or ``-mean * inv``),
        rounded at numpy's steps (outputs).
    """
    _inv_std(var, eps, inv)
    if gamma.size:
        for j in range(inv.size):
            inv[j] = inv[j] * gamma[j]
    if beta.size:
        for j in range(inv.size):
            shift[j] = beta[j] - mean[j] * inv[j]
    else:
        for j in range(inv.size):
            shift[j] = -mean[j] * inv[j]


@njit(cache=True, error_model="numpy")
def _normalise_block(xb, inv, shift, yb, relu):
    """``yb = xb * inv + shift`` per channel (two roundings, as numpy), with ``relu`` then
    ``max(., 0)`` (NaN stays NaN, as the relu kernel); xb, yb (R, C), inv, shift (C,)."""
    rows, c = xb.shape
    for r in range(rows):
        xr, yr = xb[r], yb[r]
        if relu:
            for j in range(c):
                v = xr[j] * inv[j] + shift[j]
                yr[j] = 0 if v < 0 else v
        else:
            for j in range(c):
                yr[j] = xr[j] * inv[j] + shift[j]


@njit(cache=True, error_model="numpy")
def _grad_sums_block(dyb, xb, ryb, mean, inv_std, scale, sb, sg, dxb, write_dx):
    """The block's float64 partials ``sb = sum(dy)``, ``sg = sum(dy * xhat)``, and with
    ``write_dx`` the fixed-statistics gradient ``dxb = dy * scale`` in the same pass.

    Parameters
    ----------
    dyb, xb : (R, C) arrays
        One block of rows of dy and x.
    ryb : (R, C) array or an empty one
        A fused relu's output: dy is used where it is > 0, 0 elsewhere (relu's gradient).
    mean, inv_std, scale : (C,) arrays of their dtype
        ``xhat = (x - mean) * inv_std`` (numpy's roundings); ``scale = inv_std * gamma``.
    sb, sg : (C,) float64 arrays
        The partial sums (outputs); ``dy * xhat`` is rounded in the dtype before it is added.
    dxb : (R, C) array
        ``dy * scale`` (output, only when ``write_dx``).
    """
    rows, c = xb.shape
    relu = ryb.shape[0] > 0
    zero = np.zeros(1, dtype=dyb.dtype)[0]  # a literal 0 would make d a float64 (and d * xh unrounded)
    for j in range(c):
        sb[j] = 0.0
        sg[j] = 0.0
    for r in range(rows):
        dr, xr = dyb[r], xb[r]
        if relu:
            yr = ryb[r]
            for j in range(c):
                d = dr[j] if yr[j] > 0 else zero
                xh = (xr[j] - mean[j]) * inv_std[j]
                sb[j] += d
                sg[j] += d * xh
        else:
            for j in range(c):
                d = dr[j]
                xh = (xr[j] - mean[j]) * inv_std[j]
                sb[j] += d
                sg[j] += d * xh
        if write_dx:
            dxr = dxb[r]
            if relu:
                yr = ryb[r]
                for j in range(c):
                    dxr[j] = (dr[j] if yr[j] > 0 else zero) * scale[j]
            else:
                for j in range(c):
                    dxr[j] = dr[j] * scale[j]


@njit(cache=True, error_model="numpy")
def _dx_block(dyb, xb, ryb, mean, inv_std, a, b, scale, dxb):
    """``dx = (dy - a - xhat * b) * scale`` per channel (numpy's roundings), ``a = dbeta / M``,
    ``b = dgamma / M``, ``xhat = (x - mean) * inv_std``; all (R, C) or (C,) of one dtype; with a
    fused relu's output ``ryb`` (non-empty), dy is 0 where ``ryb`` is not > 0."""
    rows, c = xb.shape
    relu = ryb.shape[0] > 0
    zero = np.zeros(1, dtype=dyb.dtype)[0]  # (see _grad_sums_block)
    for r in range(rows):
        dr, xr, dxr = dyb[r], xb[r], dxb[r]
        if relu:
            yr = ryb[r]
            for j in range(c):
                xh = (xr[j] - mean[j]) * inv_std[j]
                dxr[j] = ((dr[j] if yr[j] > 0 else zero) - a[j] - xh * b[j]) * scale[j]
        else:
            for j in range(c):
                xh = (xr[j] - mean[j]) * inv_std[j]
                dxr[j] = (dr[j] - a[j] - xh * b[j]) * scale[j]


@njit(cache=True, error_model="numpy")
def _grad_prep(gamma, var, eps, inv_std, scale):
    """``inv_std = 1 / sqrt(var + eps)``, ``scale = inv_std * gamma`` (or inv_std), (C,) each."""
    _inv_std(var, eps, inv_std)
    for j in range(scale.size):
        scale[j] = inv_std[j] * gamma[j] if gamma.size else inv_std[j]


@njit(cache=True, error_model="numpy")
def _grad_merge(psb, psg, count, dgamma, dbeta, a, b):
    """``dbeta``, ``dgamma`` (C,) = the blocks' float64 partials added in block order, rounded to
    the dtype; ``a = dbeta / count``, ``b = dgamma / count`` (``count``: M in that dtype)."""
    groups, c = psb.shape
    tb, tg = np.zeros(c), np.zeros(c)
    for g in range(groups):
        for j in range(c):
            tb[j] += psb[g, j]
            tg[j] += psg[g, j]
    for j in range(c):
        dbeta[j] = tb[j]
        dgamma[j] = tg[j]
        a[j] = dbeta[j] / count
        b[j] = dgamma[j] / count


# ----------------------------------------------------------------------------- kernels
#: the kernels' modes: which passes they make (:func:`_bn_serial`)
FORWARD, TRAIN, BACKWARD, FROZEN = 0, 1, 2, 3


@njit(cache=True, error_model="numpy")
def _prologue(mode, gamma, beta, mean, var, eps, vec):
    """The per-channel vectors known before the first pass: FORWARD ``vec[0], vec[1] = inv, shift``
    (:func:`_affine`); BACKWARD, FROZEN ``vec[0], vec[1] = inv_std, scale`` (:func:`_grad_prep`)."""
    if mode == FORWARD:
        _affine(gamma, beta, mean, var, eps, vec[0], vec[1])
    elif mode >= BACKWARD:
        _grad_prep(gamma, var, eps, vec[0], vec[1])


@njit(cache=True, error_model="numpy")
def _block(mode, phase, g, rows, x, dy, ry, relu, mean, vec, part, out):
    """Block ``g`` (rows ``g * rows`` on) of pass ``phase`` of ``mode`` (arguments as in :func:`_bn_serial`):
    pass 0 the statistics (TRAIN) or the channel sums (BACKWARD; FROZEN: and dx) into ``part[:, g]``;
    pass 1 the normalisation (FORWARD, TRAIN) or dx (BACKWARD) into ``out``."""
    m, c = x.shape
    r0 = g * rows
    r1 = min(m, r0 + rows)
    if phase == 0:
        if mode == TRAIN:
            _moments_block(x[r0:r1], part[0, g], part[1, g], np.empty(c))
        else:
            _grad_sums_block(dy[r0:r1], x[r0:r1], ry[r0:r1] if relu else ry, mean, vec[0], vec[1], part[0, g],
                             part[1, g], out[r0:r1], mode == FROZEN)
    elif mode <= TRAIN:
        _normalise_block(x[r0:r1], vec[0], vec[1], out[r0:r1], relu)
    else:
        _dx_block(dy[r0:r1], x[r0:r1], ry[r0:r1] if relu else ry, mean, vec[0], vec[2], vec[3], vec[1], out[r0:r1])


@njit(cache=True, error_model="numpy")
def _merge(mode, part, rows, m, gamma, beta, eps, count, mean, var, vec, dgamma, dbeta):
    """Between the passes (serial, C values): TRAIN the batch's ``mean``, ``var`` from the partials
    (M rows), then ``vec[0], vec[1] = inv, shift``; BACKWARD, FROZEN ``dgamma``, ``dbeta`` and
    ``vec[2], vec[3] = dbeta / count, dgamma / count``."""
    if mode == TRAIN:
        _merge_moments(part[0], part[1], rows, m, mean, var)
        _affine(gamma, beta, mean, var, eps, vec[0], vec[1])
    else:
        _grad_merge(part[0], part[1], count, dgamma, dbeta, vec[2], vec[3])


@njit(nogil=True, cache=True, error_model="numpy")
def _bn_pass(mode, phase, x, dy, ry, relu, rows, groups, mean, vec, part, out, g_lo, g_hi, worker):
    """Blocks g_lo..g_hi-1 (of ``groups``) of pass ``phase`` of ``mode`` (:func:`_block`, arguments as
    in :func:`_bn_serial`; ``vec``, ``part`` as :func:`_run` allocates them), launched by
    :func:`.fanout.run` over the blocks (``worker`` unused: the blocks write their own ``part``
    column and ``out`` rows)."""
    fpu = denormals_off()  # (see fpu)
    for g in range(g_lo, min(g_hi, groups)):
        _block(mode, phase, g, rows, x, dy, ry, relu, mean, vec, part, out)
    denormals_restore(fpu)


@njit(cache=True, error_model="numpy")
def _bn_serial(mode, x, dy, ry, relu, rows, gamma, beta, mean, var, eps, count, out, dgamma, dbeta):
    """Every batch normalisation kernel, in one call on the calling thread (small inputs: one
    dispatch instead of four; the parallel path, :func:`_run`, makes the same blocks in the same
    passes: the same bits).

    Parameters
    ----------
    mode : int
        FORWARD ``out = x * inv + shift`` with the given ``mean``, ``var`` (one pass); TRAIN the
        batch's ``mean``, ``var`` (outputs), then ``out`` as FORWARD (two passes); BACKWARD
        ``dgamma``, ``dbeta``, then ``out = dx`` through the batch statistics (two passes);
        FROZEN ``dgamma``, ``dbeta`` and ``out = dy * scale`` (one pass).
    x, dy : (M, C) arrays
        The input (M >= 1) and, for the backward, the upstream gradient (the forward: x again).
    ry, relu : (M, C) array or an empty (0, C) one, bool
        A ReLU after the layer, fused: the forwards write ``max(y, 0)`` when ``relu``; the
        backwards (``relu`` and ``ry`` = that output) use dy only where ``ry > 0``.
    rows : int
        Rows per block (:func:`block_rows`).
    gamma, beta : (C,) arrays or empty ones (the backward: beta empty).
    mean, var : (C,) arrays of x's dtype
        The statistics: outputs in TRAIN, inputs otherwise (never written then).
    eps, count : scalars of x's dtype
        Epsilon and M (the forward: any).
    out : (M, C) array
        y or dx (output).
    dgamma, dbeta : (C,) arrays
        The backward's channel sums (outputs; the forward: empty).
    """
    m, c = x.shape
    groups = (m + rows - 1) // rows
    part = np.empty((2, 0 if mode == FORWARD else groups, c))
    vec = np.empty((4, c), dtype=out.dtype)
    _prologue(mode, gamma, beta, mean, var, eps, vec)
    for phase in range(1 if mode == FORWARD else 0, 1 if mode == FROZEN else 2):
        fpu = denormals_off()
        for g in range(groups):
            _block(mode, phase, g, rows, x, dy, ry, relu, mean, vec, part, out)
        denormals_restore(fpu)
        if phase == 0:
            _merge(mode, part, rows, m, gamma, beta, eps, count, mean, var, vec, dgamma, dbeta)


@njit(cache=True, error_model="numpy")
def _update_moving(moving_mean, moving_var, mean, var, momentum, one_minus):
    """In place, per element: ``moving = moving * momentum + batch * one_minus`` (numpy's three
    roundings; no flush: C values, bitwise numpy's). All (C,) of one dtype, scalars of it."""
    for j in range(moving_mean.size):
        moving_mean[j] = moving_mean[j] * momentum + mean[j] * one_minus
        moving_var[j] = moving_var[j] * momentum + var[j] * one_minus


# ----------------------------------------------------------------------------- public functions
def _channels(where, x, names, *vectors):
    """The channel count C of ``x`` (an array (N, ..., C)), after checking that each of the
    ``vectors`` (named by ``names``; None: absent) has shape (C,). (The shapes are compared directly:
    on BN after a Dense layer, np.shape's generality would cost a fifth of the whole call.)"""
    shape = x.shape
    if len(shape) < 2:
        raise ValueError(f"{where}: x must be (N, ..., C) with at least 2 axes, got {shape}")
    want = shape[-1:]
    for name, v in zip(names, vectors):
        if v is not None and getattr(v, "shape", None) != want and np.shape(v) != want:
            raise ValueError(f"{where}: {name} must have shape {want} for x of shape {shape}, got {np.shape(v)}")
    return want[0]


def _vector(v, dtype):
    """A (C,) vector as a C-contiguous array of x's dtype, or the empty placeholder for None."""
    return _NONE[dtype] if v is None else as_c(v, dtype)


def _run(mode, x2, dy2, gamma, beta, mean, var, eps, count, out, dgamma, dbeta, relu=False, ry=None):
    """``mode`` on 2-D arrays (``ry``: the backward's fused relu output, 2-D, or None): below
    ``config.BN_SMALL`` values one call of :func:`_bn_serial`; else the same steps from here, each
    pass's blocks split over numba's threads by :func:`.fanout.run` (serial ``nogil`` kernels, not a
    ``prange``: numba compiled the parallel kernel's body twice over, 9.6 s of the vgg_bn preset's
    cold first step)."""
    ry = x2[:0] if ry is None else ry
    relu = relu or ry.shape[0] > 0
    m, c = x2.shape
    rows = block_rows(m, c)
    if x2.size < config.BN_SMALL:
        _bn_serial(mode, x2, dy2, ry, relu, rows, gamma, beta, mean, var, eps, count, out, dgamma, dbeta)
        return
    groups = -(-m // rows)
    part = np.empty((2, 0 if mode == FORWARD else groups, c))  # float64 partials per block
    vec = np.empty((4, c), dtype=out.dtype)  # per-channel vectors (_prologue, _merge)
    _prologue(mode, gamma, beta, mean, var, eps, vec)
    for phase in range(1 if mode == FORWARD else 0, 1 if mode == FROZEN else 2):
        # BN_SMALL decided that these passes are worth the threads: the fan-out's own threshold
        # (in FLOPs, for GEMM-sized work) is passed as the work so that it agrees
        fanout.run(_bn_pass, groups, mode, phase, x2, dy2, ry, relu, rows, groups, mean, vec, part, out,
                   work=config.FANOUT_MIN_FLOPS)
        if phase == 0:
            _merge(mode, part, rows, m, gamma, beta, eps, count, mean, var, vec, dgamma, dbeta)


def batchnorm_forward(x, gamma, beta, mean, var, epsilon, relu=False):
    """As :func:`minicnn.kernels.numpy_batchnorm.batchnorm_forward` (numba; ``relu`` fused into the
    normalisation pass: bitwise the relu kernel applied to the unfused output)."""
    x = np.ascontiguousarray(x)
    c = _channels("batchnorm_forward", x, ("gamma", "beta", "mean", "var"), gamma, beta, mean, var)
    dt = x.dtype
    if dt not in FLOATS or x.size == 0:
        return _ref.batchnorm_forward(x, gamma, beta, mean, var, epsilon, relu=relu)
    x2, y = x.reshape(-1, c), np.empty_like(x)
    eps = dt.type(epsilon)
    _run(FORWARD, x2, x2, _vector(gamma, dt), _vector(beta, dt), as_c(mean, dt), as_c(var, dt), eps, eps,
         y.reshape(x2.shape), _NONE[dt], _NONE[dt], relu=bool(relu))
    return y


def batchnorm_train_forward(x, gamma, beta, epsilon, relu=False):
    """As :func:`minicnn.kernels.numpy_batchnorm.batchnorm_train_forward` (numba): ``(y, mean, var)``."""
    x = np.ascontiguousarray(x)
    c = _channels("batchnorm_train_forward", x, ("gamma", "beta"), gamma, beta)
    dt = x.dtype
    if dt not in FLOATS or x.size == 0:
        return _ref.batchnorm_train_forward(x, gamma, beta, epsilon, relu=relu)
    x2, y, mean, var = x.reshape(-1, c), np.empty_like(x), np.empty(c, dt), np.empty(c, dt)
    eps = dt.type(epsilon)
    _run(TRAIN, x2, x2, _vector(gamma, dt), _vector(beta, dt), mean, var, eps, eps, y.reshape(x2.shape),
         _NONE[dt], _NONE[dt], relu=bool(relu))
    return y, mean, var


def batchnorm_update_moving(moving_mean, moving_var, mean, var, momentum):
    """As :func:`minicnn.kernels.numpy_batchnorm.batchnorm_update_moving` (numba): in place, the
    same bits. Statistics of another dtype than float32/64 or of mixed dtypes (numpy computes those
    in the wider one), and read-only moving statistics (numpy refuses them), go to the numpy kernel."""
    arrays = (moving_mean, moving_var, mean, var)
    # the shapes compared directly (C values: checks.same_shape's generality would cost as much as the update)
    if not (all(isinstance(a, np.ndarray) for a in arrays)
            and moving_mean.shape == moving_var.shape == mean.shape == var.shape):
        checks.same_shape("batchnorm_update_moving", ("moving_mean", "moving_var", "mean", "var"), *arrays)
        return _ref.batchnorm_update_moving(*arrays, momentum)
    dt = moving_mean.dtype
    if (dt not in FLOATS or not (moving_var.dtype == mean.dtype == var.dtype == dt) or moving_mean.ndim != 1
            or not (moving_mean.flags.writeable and moving_var.flags.writeable)):
        return _ref.batchnorm_update_moving(*arrays, momentum)
    _update_moving(moving_mean, moving_var, mean, var, dt.type(momentum), dt.type(1.0 - momentum))
    return None


def batchnorm_backward(dy, x, gamma, mean, var, epsilon, batch_stats=True, relu_y=None):
    """As :func:`minicnn.kernels.numpy_batchnorm.batchnorm_backward` (numba): ``(dx, dgamma, dbeta)``;
    relu's gradient (``relu_y``) is applied to dy inside both passes, never stored."""
    dy = np.ascontiguousarray(dy)
    checks.same_shape("batchnorm_backward", ("dy", "x"), dy, x)
    if relu_y is not None:
        checks.same_shape("batchnorm_backward", ("dy", "relu_y"), dy, relu_y)
    c = _channels("batchnorm_backward", dy, ("gamma", "mean", "var"), gamma, mean, var)
    dt = dy.dtype
    if dt not in FLOATS or dy.size == 0:
        return _ref.batchnorm_backward(dy, np.asarray(x, dtype=dt), gamma, mean, var, epsilon, batch_stats,
                                       relu_y=relu_y)
    dy2 = dy.reshape(-1, c)
    dx, dgamma, dbeta = np.empty_like(dy), np.empty(c, dt), np.empty(c, dt)
    _run(BACKWARD if batch_stats else FROZEN, as_c(x, dt).reshape(dy2.shape), dy2, _vector(gamma, dt), _NONE[dt],
         as_c(mean, dt), as_c(var, dt), dt.type(epsilon), dt.type(dy2.shape[0]), dx.reshape(dy2.shape), dgamma, dbeta,
         ry=None if relu_y is None else as_c(relu_y, dt).reshape(dy2.shape))
    return dx, dgamma, dbeta
