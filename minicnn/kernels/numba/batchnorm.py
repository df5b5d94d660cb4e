"""Batch normalisation on numba: the statistics in one read of ``x``, the normalisation in another.

The twins of :mod:`minicnn.kernels.numpy_batchnorm` (shapes, return conventions and Keras's order
of operations are documented there). ``x`` (N, ..., C) is walked as its (M, C) matrix, M = N*H*W
rows, cut into **fixed row blocks** of ``R = max(1, BN_BLOCK // C)`` rows (the last one shorter):
the blocks depend on the shape only, so every result is bitwise the same for any thread count and
on the serial path that small inputs take.

* **Statistics** (training forward). Each block (one parallel iteration; R*C values, in L2) gets
  its per-channel sum and its *centred* sum of squares ``sum((x - block_mean)**2)``, both in
  float64: the block is read from memory once and a second time from cache. The blocks' results
  are merged in block order (Chan et al.'s pairwise update, in its two-level form)::

      mean = sum_b S_b / M;   M2 = sum_b (M2_b + n_b * (S_b / n_b - mean)**2);   var = M2 / M

  which is exact algebra for the biased variance and, unlike ``E[x^2] - mean^2``, loses nothing
  to cancellation when ``|mean| >> std``. numpy computes ``sum((x - mean)**2)`` over the whole
  batch in float64 after a first pass for the mean: the same values up to the summation order
  (float64 1e-15 relative) and, in float32, up to numpy's rounding of ``x - mean`` in float32
  (this twin stays in float64 from the load on: a few float32 ulps closer to the exact moments).
* **Per channel** (C values, serial): ``inv = 1 / sqrt(var + eps)`` (times gamma),
  ``shift = beta - mean * inv``, rounded in the input's dtype exactly where numpy rounds.
* **Normalisation** ``y = x * inv + shift``: one more read of ``x``, parallel over the same blocks;
  the same two roundings as numpy (no FMA: no ``fastmath``, so LLVM does not contract), hence
  bitwise numpy's ``y`` for the same ``mean`` and ``var`` (inference: always).
* **Backward**: one pass over ``(dy, x)`` for the two channel sums ``dbeta = sum(dy)`` and
  ``dgamma = sum(dy * xhat)`` (per-block float64 partials merged in block order, the products
  rounded as numpy rounds them), then with the batch statistics one pass for
  ``dx = (dy - dbeta / M - xhat * (dgamma / M)) * scale``; with fixed statistics ``dx = dy * scale``
  is written in the first pass (one pass in all).

Denormals are flushed (:mod:`.fpu`) inside the block work, as in the other kernels: a gradient
``dy`` of 1e-40 (a confidently classified batch) would otherwise cost a microcode assist per
product. The per-channel steps and :func:`batchnorm_update_moving` are not flushed: they touch C
values (no speed to gain), and the moving statistics stay bitwise numpy's.

Tiers: ``@njit(inline="always")`` block and per-channel helpers; the parallel kernels
:func:`_train_forward`, :func:`_forward`, :func:`_backward` and their serial twins (``_serial``:
inputs of fewer than ``config.BN_SMALL`` values run on the calling thread, where waking the pool
would cost more than the work), and :func:`_update_moving`; then the public functions, which
check shapes, coerce inputs (any layout; gamma etc. cast to ``x``'s dtype; other dtypes and empty
inputs go to the numpy kernels), pick a path and allocate the outputs.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .. import numpy_batchnorm as _ref
from . import checks, config
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
@njit(inline="always", cache=True)
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


@njit(inline="always", cache=True)
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


@njit(inline="always", cache=True)
def _inv_std(var, eps, inv):
    """``inv = 1 / sqrt(var + eps)`` rounded as numpy rounds it in var's dtype: ``var + eps`` and
    the sqrt in that dtype (``eps`` is of it), the division in float64 rounded once on the store
    (a correctly rounded float32 quotient: float64 has more than 2*24 + 2 bits)."""
    for j in range(inv.size):
        inv[j] = 1 / np.sqrt(var[j] + eps)


@njit(inline="always", cache=True)
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


@njit(inline="always", cache=True)
def _normalise_block(xb, inv, shift, yb):
    """``yb = xb * inv + shift`` per channel (two roundings, as numpy); xb, yb (R, C), inv, shift (C,)."""
    rows, c = xb.shape
    for r in range(rows):
        xr, yr = xb[r], yb[r]
        for j in range(c):
            yr[j] = xr[j] * inv[j] + shift[j]


@njit(inline="always", cache=True)
def _grad_sums_block(dyb, xb, mean, inv_std, scale, sb, sg, dxb, write_dx):
    """The block's float64 partials ``sb = sum(dy)``, ``sg = sum(dy * xhat)``, and with
    ``write_dx`` the fixed-statistics gradient ``dxb = dy * scale`` in the same pass.

    Parameters
    ----------
    dyb, xb : (R, C) arrays
        One block of rows of dy and x.
    mean, inv_std, scale : (C,) arrays of their dtype
        ``xhat = (x - mean) * inv_std`` (numpy's roundings); ``scale = inv_std * gamma``.
    sb, sg : (C,) float64 arrays
        The partial sums (outputs); ``dy * xhat`` is rounded in the dtype before it is added.
    dxb : (R, C) array
        ``dy * scale`` (output, only when ``write_dx``).
    """
    rows, c = xb.shape
    for j in range(c):
        sb[j] = 0.0
        sg[j] = 0.0
    for r in range(rows):
        dr, xr = dyb[r], xb[r]
        for j in range(c):
            d = dr[j]
            xh = (xr[j] - mean[j]) * inv_std[j]
            sb[j] += d
            sg[j] += d * xh
        if write_dx:
            dxr = dxb[r]
            for j in range(c):
                dxr[j] = dr[j] * scale[j]


@njit(inline="always", cache=True)
def _dx_block(dyb, xb, mean, inv_std, a, b, scale, dxb):
    """``dx = (dy - a - xhat * b) * scale`` per channel (numpy's roundings), ``a = dbeta / M``,
    ``b = dgamma / M``, ``xhat = (x - mean) * inv_std``; all (R, C) or (C,) of one dtype."""
    rows, c = xb.shape
    for r in range(rows):
        dr, xr, dxr = dyb[r], xb[r], dxb[r]
        for j in range(c):
            xh = (xr[j] - mean[j]) * inv_std[j]
            dxr[j] = (dr[j] - a[j] - xh * b[j]) * scale[j]


@njit(inline="always", cache=True)
def _grad_prep(gamma, var, eps, inv_std, scale):
    """``inv_std = 1 / sqrt(var + eps)``, ``scale = inv_std * gamma`` (or inv_std), (C,) each."""
    _inv_std(var, eps, inv_std)
    for j in range(scale.size):
        scale[j] = inv_std[j] * gamma[j] if gamma.size else inv_std[j]


@njit(inline="always", cache=True)
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
@njit(parallel=True, cache=True, error_model="numpy")
def _train_forward(x, rows, gamma, beta, eps, y, mean, var):
    """Training forward: the batch statistics, then the normalisation, each parallel over blocks.

    Parameters
    ----------
    x : (M, C) array
        The input (M >= 1).
    rows : int
        Rows per block (:func:`block_rows`).
    gamma, beta : (C,) arrays or empty ones; eps : scalar of x's dtype.
    y : (M, C) array
        The output.
    mean, var : (C,) arrays of x's dtype
        The batch's mean and biased variance (outputs).
    """
    m, c = x.shape
    groups = (m + rows - 1) // rows
    ps, pm2 = np.empty((groups, c)), np.empty((groups, c))
    for g in prange(groups):
        fpu = denormals_off()  # (see fpu)
        r0 = g * rows
        _moments_block(x[r0:min(m, r0 + rows)], ps[g], pm2[g], np.empty(c))
        denormals_restore(fpu)
    _merge_moments(ps, pm2, rows, m, mean, var)
    inv, shift = np.empty_like(mean), np.empty_like(mean)
    _affine(gamma, beta, mean, var, eps, inv, shift)
    for g in prange(groups):
        fpu = denormals_off()
        r0 = g * rows
        r1 = min(m, r0 + rows)
        _normalise_block(x[r0:r1], inv, shift, y[r0:r1])
        denormals_restore(fpu)


@njit(cache=True, error_model="numpy")
def _train_forward_serial(x, rows, gamma, beta, eps, y, mean, var):
    """:func:`_train_forward` on the calling thread (same blocks, same bits)."""
    m, c = x.shape
    groups = (m + rows - 1) // rows
    ps, pm2, mu = np.empty((groups, c)), np.empty((groups, c)), np.empty(c)
    fpu = denormals_off()
    for g in range(groups):
        r0 = g * rows
        _moments_block(x[r0:min(m, r0 + rows)], ps[g], pm2[g], mu)
    denormals_restore(fpu)
    _merge_moments(ps, pm2, rows, m, mean, var)
    inv, shift = np.empty_like(mean), np.empty_like(mean)
    _affine(gamma, beta, mean, var, eps, inv, shift)
    fpu = denormals_off()
    _normalise_block(x, inv, shift, y)
    denormals_restore(fpu)


@njit(parallel=True, cache=True, error_model="numpy")
def _forward(x, rows, gamma, beta, mean, var, eps, y):
    """Inference forward ``y = x * inv + shift`` with the given statistics, parallel over blocks;
    arguments as in :func:`_train_forward` (``mean``, ``var`` inputs here)."""
    m, c = x.shape
    inv, shift = np.empty_like(mean), np.empty_like(mean)
    _affine(gamma, beta, mean, var, eps, inv, shift)
    for g in prange((m + rows - 1) // rows):
        fpu = denormals_off()
        r0 = g * rows
        r1 = min(m, r0 + rows)
        _normalise_block(x[r0:r1], inv, shift, y[r0:r1])
        denormals_restore(fpu)


@njit(cache=True, error_model="numpy")
def _forward_serial(x, gamma, beta, mean, var, eps, y):
    """:func:`_forward` on the calling thread (elementwise: no blocks needed)."""
    inv, shift = np.empty_like(mean), np.empty_like(mean)
    _affine(gamma, beta, mean, var, eps, inv, shift)
    fpu = denormals_off()
    _normalise_block(x, inv, shift, y)
    denormals_restore(fpu)


@njit(parallel=True, cache=True, error_model="numpy")
def _backward(dy, x, rows, gamma, mean, var, eps, count, batch_stats, dx, dgamma, dbeta):
    """Backward, parallel over blocks: the channel sums (and without batch statistics dx) in one
    pass, then with ``batch_stats`` dx in a second.

    Parameters
    ----------
    dy, x : (M, C) arrays
        The upstream gradient and the forward's input (M >= 1).
    rows : int
        Rows per block (:func:`block_rows`).
    gamma : (C,) array or an empty one; mean, var : (C,) the forward's statistics.
    eps, count : scalars of x's dtype
        The forward's epsilon and M.
    batch_stats : bool
        The statistics were the batch's own (the gradient flows through them).
    dx : (M, C) array; dgamma, dbeta : (C,) arrays of x's dtype
        The gradients (outputs).
    """
    m, c = x.shape
    groups = (m + rows - 1) // rows
    inv_std, scale = np.empty_like(mean), np.empty_like(mean)
    _grad_prep(gamma, var, eps, inv_std, scale)
    psb, psg = np.empty((groups, c)), np.empty((groups, c))
    for g in prange(groups):
        fpu = denormals_off()
        r0 = g * rows
        r1 = min(m, r0 + rows)
        _grad_sums_block(dy[r0:r1], x[r0:r1], mean, inv_std, scale, psb[g], psg[g], dx[r0:r1], not batch_stats)
        denormals_restore(fpu)
    a, b = np.empty_like(mean), np.empty_like(mean)
    _grad_merge(psb, psg, count, dgamma, dbeta, a, b)
    if batch_stats:
        for g in prange(groups):
            fpu = denormals_off()
            r0 = g * rows
            r1 = min(m, r0 + rows)
            _dx_block(dy[r0:r1], x[r0:r1], mean, inv_std, a, b, scale, dx[r0:r1])
            denormals_restore(fpu)


@njit(cache=True, error_model="numpy")
def _backward_serial(dy, x, rows, gamma, mean, var, eps, count, batch_stats, dx, dgamma, dbeta):
    """:func:`_backward` on the calling thread (same blocks, same bits)."""
    m, c = x.shape
    groups = (m + rows - 1) // rows
    inv_std, scale = np.empty_like(mean), np.empty_like(mean)
    _grad_prep(gamma, var, eps, inv_std, scale)
    psb, psg = np.empty((groups, c)), np.empty((groups, c))
    fpu = denormals_off()
    for g in range(groups):
        r0 = g * rows
        r1 = min(m, r0 + rows)
        _grad_sums_block(dy[r0:r1], x[r0:r1], mean, inv_std, scale, psb[g], psg[g], dx[r0:r1], not batch_stats)
    denormals_restore(fpu)
    a, b = np.empty_like(mean), np.empty_like(mean)
    _grad_merge(psb, psg, count, dgamma, dbeta, a, b)
    if batch_stats:
        fpu = denormals_off()
        _dx_block(dy, x, mean, inv_std, a, b, scale, dx)
        denormals_restore(fpu)


@njit(cache=True)
def _update_moving(moving_mean, moving_var, mean, var, momentum, one_minus):
    """In place, per element: ``moving = moving * momentum + batch * one_minus`` (numpy's three
    roundings; no flush: C values, bitwise numpy's). All (C,) of one dtype, scalars of it."""
    for j in range(moving_mean.size):
        moving_mean[j] = moving_mean[j] * momentum + mean[j] * one_minus
        moving_var[j] = moving_var[j] * momentum + var[j] * one_minus


# ----------------------------------------------------------------------------- public functions
def _channels(where, x, **vectors):
    """x is (N, ..., C) with C >= ... and every given (C,) vector (None: absent) has shape (C,);
    returns C."""
    shape = np.shape(x)
    if len(shape) < 2:
        raise ValueError(f"{where}: x must be (N, ..., C) with at least 2 axes, got {shape}")
    c = shape[-1]
    for name, v in vectors.items():
        if v is not None and np.shape(v) != (c,):
            raise ValueError(f"{where}: {name} must have shape ({c},) for x of shape {shape}, got {np.shape(v)}")
    return c


def _vector(v, dtype):
    """A (C,) vector as a C-contiguous array of x's dtype, or the empty placeholder for None."""
    return _NONE[dtype] if v is None else as_c(v, dtype)


def batchnorm_forward(x, gamma, beta, mean, var, epsilon):
    """As :func:`minicnn.kernels.numpy_batchnorm.batchnorm_forward` (numba)."""
    x = np.ascontiguousarray(x)
    c = _channels("batchnorm_forward", x, gamma=gamma, beta=beta, mean=mean, var=var)
    dt = x.dtype
    if dt not in FLOATS or x.size == 0:
        return _ref.batchnorm_forward(x, gamma, beta, mean, var, epsilon)
    x2 = x.reshape(-1, c)
    y = np.empty_like(x)
    args = (_vector(gamma, dt), _vector(beta, dt), as_c(mean, dt), as_c(var, dt), dt.type(epsilon))
    if x.size < config.BN_SMALL:
        _forward_serial(x2, *args, y.reshape(x2.shape))
    else:
        _forward(x2, block_rows(*x2.shape), *args, y.reshape(x2.shape))
    return y


def batchnorm_train_forward(x, gamma, beta, epsilon):
    """As :func:`minicnn.kernels.numpy_batchnorm.batchnorm_train_forward` (numba): ``(y, mean, var)``."""
    x = np.ascontiguousarray(x)
    c = _channels("batchnorm_train_forward", x, gamma=gamma, beta=beta)
    dt = x.dtype
    if dt not in FLOATS or x.size == 0:
        return _ref.batchnorm_train_forward(x, gamma, beta, epsilon)
    x2 = x.reshape(-1, c)
    y, mean, var = np.empty_like(x), np.empty(c, dt), np.empty(c, dt)
    kernel = _train_forward_serial if x.size < config.BN_SMALL else _train_forward
    kernel(x2, block_rows(*x2.shape), _vector(gamma, dt), _vector(beta, dt), dt.type(epsilon),
           y.reshape(x2.shape), mean, var)
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


def batchnorm_backward(dy, x, gamma, mean, var, epsilon, batch_stats=True):
    """As :func:`minicnn.kernels.numpy_batchnorm.batchnorm_backward` (numba): ``(dx, dgamma, dbeta)``."""
    dy = np.ascontiguousarray(dy)
    checks.same_shape("batchnorm_backward", ("dy", "x"), dy, x)
    c = _channels("batchnorm_backward", dy, gamma=gamma, mean=mean, var=var)
    dt = dy.dtype
    if dt not in FLOATS or dy.size == 0:
        return _ref.batchnorm_backward(dy, np.asarray(x, dtype=dt), gamma, mean, var, epsilon, batch_stats)
    dy2 = dy.reshape(-1, c)
    x2 = as_c(x, dt).reshape(dy2.shape)
    dx, dgamma, dbeta = np.empty_like(dy), np.empty(c, dt), np.empty(c, dt)
    kernel = _backward_serial if dy.size < config.BN_SMALL else _backward
    kernel(dy2, x2, block_rows(*dy2.shape), _vector(gamma, dt), as_c(mean, dt), as_c(var, dt), dt.type(epsilon),
           dt.type(dy2.shape[0]), bool(batch_stats), dx.reshape(dy2.shape), dgamma, dbeta)
    return dx, dgamma, dbeta
