"""The zoo's element-wise activations on numba: the twins of :mod:`minicnn.kernels.numpy_activations`.

Every forward and backward of tanh, sigmoid, softplus, silu, gelu, elu, selu, leaky_relu,
capped_relu (one fused pass each, where numpy makes one pass per operation) and PReLU, except
tanh's forward on AVX-512 CPUs, where numpy's is a SIMD ufunc pass already (see
:func:`tanh_forward`). The
formulas, the branch taken at every kink, the NaN propagation and the order of the roundings are
the numpy kernels' (their docstrings say why); where those are pure arithmetic and selects (the
backward of tanh, sigmoid, selu and the relu family, leaky and capped relu, PReLU's dz and
forward) the results are **bitwise** numpy's. Where numpy calls a transcendental function, these
call the vectorisable ones of :mod:`.vmath` (exp, expm1, log1p: within about 2 ulps, as
numpy's own SIMD versions, so a result may differ from numpy's by a few ulps). The exact GELU's
erfc: in float64 ``math.erfc`` (the C library's, which is CPython's ``math.erfc`` too: the numpy
kernel's bits; scalar, ~20 ns an element), in float32 a vectorised float64 approximation within
1.1e-7 relative (:func:`~.vmath.erfc_for`; about 2 float32 ulps from numpy's correctly rounded
value, 15x faster).

Denormals are *not* flushed here (the dense and conv kernels flush them): an activation is cheap
per element, its inputs come out of those flushed kernels, and keeping IEEE arithmetic keeps
the arithmetic ops bitwise numpy's for every input.

Tiers: :func:`_block` (serial, one op on 1-D slices; the op is chosen once per block, so every
element loop is a plain vectorised loop) and the driver :func:`_ew` over a range of blocks of
``config.EW_BLOCK`` elements, a serial ``nogil`` kernel that :func:`.fanout.run` splits over the
threads when the call has the work for it (:data:`_WORK`; a small input is one call on the
calling thread). One kernel for every op, and not a ``prange`` one: numba compiles a parfor's body
twice over, and this one holds every op (``_ew`` cost 4.9 s cold as a parfor, LeNet-5's largest).
The element-wise results do not depend on the blocks: the same bits for any split and thread
count. PReLU, whose alpha broadcasts over the batch and whose dalpha is a reduction, has its own
kernels (:func:`_prelu_fwd` over samples, :func:`_prelu_bwd` over fixed groups of samples, float
partials added in group order by :func:`~.elementwise.sum_groups`; dalpha differs from numpy's
only by the summation order), fanned out the same way.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numba.extending import register_jitable

from .. import numpy_activations as _ref
from . import checks, config, fanout
from .arrays import FLOATS, as_c
from .config import EW_BLOCK
from .elementwise import sum_groups
from .vmath import erfc_for, vexp, vexpm1, vlog1p

__all__ = list(_ref.__all__)

# ----------------------------------------------------------------------------- op codes
(TANH_F, TANH_B, SIGMOID_F, SIGMOID_B, SOFTPLUS_F, SOFTPLUS_B, SILU_F, SILU_B, GELU_F, GELU_B,
 ELU_F, ELU_B, SELU_F, SELU_B, LEAKY_F, LEAKY_B, CAPPED_F, CAPPED_B, PRELU_F, PRELU_B) = range(20)

#: each op's work per float32 element for :func:`.fanout.run` (in its unit, one GEMM FLOP's time on
#: one thread), set so that a call is split over the threads from where the split measured to pay
#: (``config.FANOUT_MIN_FLOPS``): the transcendental ops scale 1.4-2x on two cores and split from
#: ~100k elements (gelu's scalar erfc from ~12k); the arithmetic backwards and the relu family are
#: bound by the memory bandwidth the cores share (1.0-1.3x at 1M elements), so they split only
#: from ~0.4-1.3M. Medians of four runs of ``python -m benchmarks.fanout_work`` (2-core Zen 3:
#: benchmarks/README.md, "The element-wise kernels left the parfors too"), rounded
_WORK = {TANH_F: 40, TANH_B: 10, SIGMOID_F: 40, SIGMOID_B: 10, SOFTPLUS_F: 45, SOFTPLUS_B: 40,
         SILU_F: 45, SILU_B: 50, GELU_F: 320, GELU_B: 330, ELU_F: 30, ELU_B: 40, SELU_F: 35,
         SELU_B: 10, LEAKY_F: 3, LEAKY_B: 4, CAPPED_F: 10, CAPPED_B: 20, PRELU_F: 6, PRELU_B: 14}

#: slots of the scalar vector ``s`` every kernel gets (in the input's dtype): the op's parameters
#: p0..p3, then the constants (numba would promote ``float32 * 1.0`` to float64: typed ones here)
_P = 4
_CONSTS = (0.0, 1.0, 0.5, _ref.SELU_SCALE, _ref.SELU_SCALE_ALPHA, -_ref._PDF_CUTOFF, _ref._PDF_CUTOFF,
           _ref._INV_SQRT_PI)


_SCALARS = {}


def _scalars(dt, *params):
    """The scalar vector for ``params`` in ``dt`` (kept: a layer calls with the same few scalars every
    step, and building the vector costs as much as a small activation; the kernels never write it)."""
    key = (dt, *(float(p) for p in params))
    s = _SCALARS.get(key)
    if s is None:
        s = np.zeros(_P + len(_CONSTS), dtype=dt)
        s[:len(params)] = params
        s[_P:] = _CONSTS
        if len(_SCALARS) > 256:
            _SCALARS.clear()
        _SCALARS[key] = s
    return s


@register_jitable
def _sigmoid(z, zero, one):
    """numpy's sigmoid: e = exp(-|z|), r = 1 / (1 + e), r for z >= 0, e * r otherwise."""
    e = vexp(-z if z > zero else z)  # -|z| (NaN passes)
    r = one / (one + e)
    return r if z >= zero else e * r


@njit(cache=True, error_model="numpy")
def _block(op, a, b, out, s, f0, f1):
    """``out = op(a[, b])`` on 1-D slices of one size (``b`` is ``a`` for the forwards).

    Parameters
    ----------
    op : int
        The op code (module constants).
    a, b : arrays
        Forward: ``a = z``. Backward: ``a = dy`` and ``b`` = y or z, as the numpy kernel takes.
    out : array
        The result.
    s : array of the dtype
        p0..p3 (the op's scalars: gelu's c; elu's alpha; leaky's slope; capped's slope,
        max_value, threshold, cut), then the constants ``_CONSTS``.
    f0, f1 : int
        Flags: capped relu has a cap (f0) and a slope (f1 & 1), its gradient an open cap (f1 & 2).
    """
    p0, p1, p2, p3 = s[0], s[1], s[2], s[3]
    zero, one, half, sc, sca = s[_P], s[_P + 1], s[_P + 2], s[_P + 3], s[_P + 4]
    lo, hi, isp = s[_P + 5], s[_P + 6], s[_P + 7]
    n = out.shape[0]
    if op == TANH_F:  # tanh(|z|) = -m / (2 + m), m = expm1(-2|z|) in (-1, 0]: no cancellation near 0
        for i in range(n):
            z = a[i]
            m = vexpm1(-(z + z) if z > zero else z + z)  # -2|z| (NaN passes)
            out[i] = math.copysign(-m / (one + one + m), z)  # the sign of z, -0.0 and NaN's included
    elif op == TANH_B:
        for i in range(n):
            out[i] = a[i] * (one - b[i] * b[i])
    elif op == SIGMOID_F:
        for i in range(n):
            out[i] = _sigmoid(a[i], zero, one)
    elif op == SIGMOID_B:
        for i in range(n):
            y = b[i]
            out[i] = a[i] * (y * (one - y))
    elif op == SOFTPLUS_F:  # two loops: fused, LLVM left the loop scalar (8 ms against 2 on 2.5M float32)
        for i in range(n):
            z = a[i]
            out[i] = vexp(-z if z > zero else z)
        for i in range(n):
            z = a[i]
            m = zero if z < zero else z  # np.maximum(z, 0): NaN passes
            out[i] = m + vlog1p(out[i])
    elif op == SOFTPLUS_B:
        for i in range(n):
            out[i] = a[i] * _sigmoid(b[i], zero, one)
    elif op == SILU_F:
        for i in range(n):
            out[i] = a[i] * _sigmoid(a[i], zero, one)
    elif op == SILU_B:
        for i in range(n):
            z = b[i]
            sg = _sigmoid(z, zero, one)
            out[i] = a[i] * (sg * (one + z * (one - sg)))
    elif op == GELU_F:  # p0 = c; erfc in float64 of the dtype's -z*c, rounded to the dtype by the store
        for i in range(n):
            out[i] = erfc_for(zero, np.float64(-a[i] * p0))
        for i in range(n):
            out[i] = half * a[i] * out[i]
    elif op == GELU_B:  # p0 = c, p1 = c / sqrt(pi) (rounded in the dtype, as numpy's c * t(1/sqrt(pi)))
        for i in range(n):
            out[i] = erfc_for(zero, np.float64(-b[i] * p0))
        for i in range(n):
            z = b[i]
            zc = lo if z < lo else (hi if z > hi else z)  # np.clip: NaN passes
            u = zc * p0
            pdf = vexp(-(u * u)) * p1
            out[i] = a[i] * (half * out[i] + z * pdf)
    elif op == ELU_F:  # p0 = alpha
        for i in range(n):
            z = a[i]
            out[i] = z if z > zero else p0 * vexpm1(zero if z > zero else z)
    elif op == ELU_B:
        for i in range(n):
            z, dy = b[i], a[i]
            out[i] = dy if z > zero else dy * (p0 * vexp(zero if z > zero else z))
    elif op == SELU_F:
        for i in range(n):
            z = a[i]
            out[i] = sca * vexpm1(zero if z > zero else z) if z < zero else sc * z
    elif op == SELU_B:
        for i in range(n):
            y, dy = b[i], a[i]
            out[i] = dy * (y + sca) if y < zero else dy * sc
    elif op == LEAKY_F:  # p0 = slope
        for i in range(n):
            z = a[i]
            out[i] = z if z > zero else z * p0
    elif op == LEAKY_B:
        for i in range(n):
            dy = a[i]
            out[i] = dy if b[i] > zero else dy * p0
    elif op == CAPPED_F:  # p0 slope, p1 max_value, p2 threshold, p3 cut
        for i in range(n):
            z = a[i]
            p = z if z > p3 else zero
            if f0:
                p = p1 if p1 < p else p  # np.minimum(p, max_value): p is never NaN
            if f1 & 1:
                d = p2 - z
                p = p - p0 * (zero if d < zero else d)  # np.maximum(d, 0): NaN passes
            out[i] = p
    elif op == CAPPED_B:
        for i in range(n):
            z, dy = b[i], a[i]
            inside = z > p3
            if f0:
                inside = inside and ((z < p1) if f1 & 2 else (z <= p1))
            d = dy if inside else zero
            if f1 & 1:
                d = d + (dy * p0 if z < p2 else zero)
            out[i] = d


@njit(nogil=True, cache=True, error_model="numpy")
def _ew(op, a, b, out, s, f0, f1, b_lo, b_hi, worker):
    """:func:`_block` on the blocks b_lo..b_hi-1 of ``EW_BLOCK`` elements (1-D arrays of one size;
    ``worker`` unused)."""
    size = out.shape[0]
    for t in range(b_lo, b_hi):
        t0, t1 = t * EW_BLOCK, min(size, t * EW_BLOCK + EW_BLOCK)
        _block(op, a[t0:t1], b[t0:t1], out[t0:t1], s, f0, f1)


# ----------------------------------------------------------------------------- prelu kernels
@njit(cache=True, error_model="numpy")
def _zero_like(a):
    """A zero of ``a``'s dtype (``a`` is a typed array; a literal 0 would be int64)."""
    return np.zeros(1, dtype=a.dtype)[0]


@njit(cache=True, error_model="numpy")
def _prelu_fwd_row(zr, alpha, yr, zero):
    for j in range(zr.shape[0]):
        v = zr[j]
        pos = zero if v < zero else v  # np.maximum(z, 0)
        nv = -v
        neg = zero if nv < zero else nv  # np.maximum(-z, 0)
        yr[j] = pos - alpha[j] * neg


@njit(cache=True, error_model="numpy")
def _prelu_bwd_rows(dy, z, alpha, dz, part, zero):
    """Rows of one group: dz (numpy's where(z > 0, dy, where(z < 0, dy * alpha, 0))) and the
    group's partial ``part = sum over its rows of dy * min(z, 0)`` (numpy's rounding of each
    product, the sum in the dtype, rows in order)."""
    rows, m = z.shape
    for j in range(m):
        part[j] = zero
    for r in range(rows):
        dr, zr, dzr = dy[r], z[r], dz[r]
        for j in range(m):
            v, d = zr[j], dr[j]
            dzr[j] = d if v > zero else (d * alpha[j] if v < zero else zero)
            mn = zero if v > zero else v  # np.minimum(z, 0): NaN passes
            part[j] += d * mn


@njit(nogil=True, cache=True, error_model="numpy")
def _prelu_fwd(z, alpha, y, t_lo, t_hi, worker):
    """``y = max(z, 0) - alpha * max(-z, 0)`` (numpy's roundings; NaN passes) on the samples
    t_lo..t_hi-1 of z, y (N, S), with the broadcast alpha (S,) (``worker`` unused)."""
    zero = _zero_like(alpha)
    for t in range(t_lo, t_hi):
        _prelu_fwd_row(z[t], alpha, y[t], zero)


@njit(nogil=True, cache=True, error_model="numpy")
def _prelu_bwd(dy, z, alpha, gsize, dz, part, g_lo, g_hi, worker):
    """dz (N, S), and ``part[g]`` (G, S) for the groups g_lo..g_hi-1 of ``gsize`` consecutive
    samples (fixed by the shapes only: the same bits for any split; ``worker`` unused)."""
    zero = _zero_like(alpha)
    for g in range(g_lo, g_hi):
        r0 = g * gsize
        r1 = min(z.shape[0], r0 + gsize)
        _prelu_bwd_rows(dy[r0:r1], z[r0:r1], alpha, dz[r0:r1], part[g], zero)


# ----------------------------------------------------------------------------- public functions
def _run(op, a, b, dt, s, f0=0, f1=0):
    """out = op(a[, b]) for C-contiguous a, b of dtype ``dt`` (one shape)."""
    out = np.empty_like(a)
    fanout.run(_ew, -(-a.size // EW_BLOCK), op, a.reshape(-1), b.reshape(-1), out.reshape(-1), s, f0, f1,
               work=fanout.element_work(_WORK[op], a))
    return out


def _unary(op, name, z, *params):
    """A forward: ``z`` any layout; non-float dtypes go to the numpy kernel."""
    z = np.ascontiguousarray(z)
    dt = z.dtype
    if dt not in FLOATS:
        return getattr(_ref, name)(z, *params)
    return _run(op, z, z, dt, _scalars(dt, *params))


def _binary(op, name, dy, other, what, *params):
    """A backward from ``dy`` and the forward's y or z (``what``), cast to dy's dtype."""
    dy = np.ascontiguousarray(dy)
    if getattr(other, "shape", None) != dy.shape:  # (the common case compared directly: microseconds)
        checks.same_shape(name, ("dy", what), dy, other)
    dt = dy.dtype
    if dt not in FLOATS:
        return getattr(_ref, name)(dy, np.asarray(other, dtype=dt), *params)
    return _run(op, dy, as_c(other, dt), dt, _scalars(dt, *params))


def _numpy_tanh_is_simd() -> bool:
    """Whether numpy's own tanh is vectorised here: its SVML kernels, dispatched on AVX512_SKX
    CPUs only (numpy's ``__cpu_features__``); elsewhere its float tanh is a scalar loop."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__ as features
    return bool(features.get("AVX512_SKX", False))


#: tanh's forward is numpy's ``np.tanh`` where that is vectorised (AVX-512), else :data:`TANH_F` here
NUMPY_TANH = _numpy_tanh_is_simd()


def tanh_forward(z):
    """y = tanh(z). On AVX-512 CPUs numpy's own ``np.tanh`` (the numpy kernel itself, so the same
    bits): its SVML tanh runs at memory speed, and an arithmetic tanh in numba measured 3-5 ms
    against its 1.3 ms on (100, 28, 28, 32) float32 on 2 cores. Elsewhere numpy's tanh is scalar
    and the fused op :data:`TANH_F` (vmath's expm1 and a quotient, within 3 ulps) wins: on a
    2-core Zen 3, (100, 28, 28, 6) 1.24 -> 0.23 ms float32, 6.29 -> 0.73 ms float64 (LeNet-5's
    first layer); (100, 28, 28, 32) 6.6 -> 1.1 and 33.6 -> 3.7 ms."""
    if NUMPY_TANH:
        return _ref.tanh_forward(np.ascontiguousarray(z))
    return _unary(TANH_F, "tanh_forward", z)


def tanh_backward(dy, y):
    """dz = dy * (1 - y^2) (bitwise numpy's)."""
    return _binary(TANH_B, "tanh_backward", dy, y, "y")


def sigmoid_forward(z):
    """y = 1 / (1 + exp(-z)), exp only seeing -|z| (as numpy's)."""
    return _unary(SIGMOID_F, "sigmoid_forward", z)


def sigmoid_backward(dy, y):
    """dz = dy * y * (1 - y) (bitwise numpy's)."""
    return _binary(SIGMOID_B, "sigmoid_backward", dy, y, "y")


def softplus_forward(z):
    """y = max(z, 0) + log1p(exp(-|z|))."""
    return _unary(SOFTPLUS_F, "softplus_forward", z)


def softplus_backward(dy, z):
    """dz = dy * sigmoid(z)."""
    return _binary(SOFTPLUS_B, "softplus_backward", dy, z, "z")


def silu_forward(z):
    """y = z * sigmoid(z)."""
    return _unary(SILU_F, "silu_forward", z)


def silu_backward(dy, z):
    """dz = dy * s * (1 + z (1 - s)), s = sigmoid(z)."""
    return _binary(SILU_B, "silu_backward", dy, z, "z")


def gelu_forward(z, inv_sqrt2):
    """Exact GELU 0.5 z erfc(-z c) (erfc: the C library's, as the numpy kernel's: the same bits)."""
    return _unary(GELU_F, "gelu_forward", z, inv_sqrt2)


def gelu_backward(dy, z, inv_sqrt2):
    """dz = dy * (0.5 erfc(-c z) + z c exp(-(c z)^2) / sqrt(pi)), z clipped to +-40 in the density."""
    dy = np.ascontiguousarray(dy)
    dt = dy.dtype
    if dt not in FLOATS:
        return _ref.gelu_backward(dy, np.asarray(z, dtype=dt), inv_sqrt2)
    c = dt.type(inv_sqrt2)
    checks.same_shape("gelu_backward", ("dy", "z"), dy, z)
    return _run(GELU_B, dy, as_c(z, dt), dt, _scalars(dt, c, c * dt.type(_ref._INV_SQRT_PI)))


def elu_forward(z, alpha):
    """y = z for z > 0, alpha * expm1(z) otherwise."""
    return _unary(ELU_F, "elu_forward", z, alpha)


def elu_backward(dy, z, alpha):
    """dz = dy for z > 0, dy * alpha * exp(z) otherwise."""
    return _binary(ELU_B, "elu_backward", dy, z, "z", alpha)


def selu_forward(z):
    """y = scale * z for z >= 0, scale * alpha * expm1(z) for z < 0."""
    return _unary(SELU_F, "selu_forward", z)


def selu_backward(dy, y):
    """dz = dy * (y + scale * alpha) where y < 0, dy * scale elsewhere (bitwise numpy's)."""
    return _binary(SELU_B, "selu_backward", dy, y, "y")


def leaky_relu_forward(z, negative_slope):
    """y = z for z > 0, negative_slope * z otherwise (bitwise numpy's)."""
    return _unary(LEAKY_F, "leaky_relu_forward", z, negative_slope)


def leaky_relu_backward(dy, y, negative_slope):
    """dz = dy where y > 0, dy * negative_slope elsewhere (bitwise numpy's)."""
    return _binary(LEAKY_B, "leaky_relu_backward", dy, y, "y", negative_slope)


def _capped(max_value, negative_slope, open_cap=False):
    """(params tail, f0, f1) of the capped relu: the cap (0 when None), the flags."""
    return (0.0 if max_value is None else max_value), int(max_value is not None), \
        (1 if negative_slope else 0) | (2 if open_cap else 0)


def capped_relu_forward(z, negative_slope, max_value, threshold, cut):
    """Keras's general ReLU (bitwise numpy's): see the numpy kernel."""
    z = np.ascontiguousarray(z)
    dt = z.dtype
    if dt not in FLOATS:
        return _ref.capped_relu_forward(z, negative_slope, max_value, threshold, cut)
    cap, f0, f1 = _capped(max_value, negative_slope)
    return _run(CAPPED_F, z, z, dt, _scalars(dt, negative_slope, cap, threshold, cut), f0, f1)


def capped_relu_backward(dy, z, negative_slope, max_value, threshold, cut, open_cap=False):
    """dz = dy where cut < z <= max_value (< with ``open_cap``), + slope * dy where z < threshold."""
    dy = np.ascontiguousarray(dy)
    checks.same_shape("capped_relu_backward", ("dy", "z"), dy, z)
    dt = dy.dtype
    if dt not in FLOATS:
        return _ref.capped_relu_backward(dy, np.asarray(z, dtype=dt), negative_slope, max_value, threshold, cut,
                                         open_cap)
    cap, f0, f1 = _capped(max_value, negative_slope, open_cap)
    return _run(CAPPED_B, dy, as_c(z, dt), dt, _scalars(dt, negative_slope, cap, threshold, cut), f0, f1)


def _prelu_alpha(where, z, alpha, dt):
    """alpha broadcast to one sample of ``z`` (N, ...), flattened, C-contiguous, in ``dt``."""
    if (isinstance(alpha, np.ndarray) and alpha.shape == z.shape[1:] and alpha.dtype == dt
            and alpha.flags.c_contiguous):  # PReLU without shared axes: nothing to do (a few us saved)
        return alpha.reshape(-1)
    try:
        return np.ascontiguousarray(np.broadcast_to(np.asarray(alpha, dtype=dt), z.shape[1:])).reshape(-1)
    except ValueError:
        raise ValueError(f"{where}: alpha of shape {np.shape(alpha)} does not broadcast to one sample "
                         f"{z.shape[1:]} of z") from None


def prelu_forward(z, alpha):
    """y = max(z, 0) - alpha * max(-z, 0), alpha (one sample's shape, 1 on shared axes) broadcast
    over the batch (bitwise numpy's)."""
    z = np.ascontiguousarray(z)
    dt = z.dtype
    if dt not in FLOATS or z.ndim < 1 or z.size == 0:
        return _ref.prelu_forward(z, alpha)
    a = _prelu_alpha("prelu_forward", z, alpha, dt)
    z2 = z.reshape(z.shape[0], -1)
    y = np.empty_like(z)
    fanout.run(_prelu_fwd, z2.shape[0], z2, a, y.reshape(z2.shape), work=fanout.element_work(_WORK[PRELU_F], z))
    return y


def prelu_groups(n):
    """Samples per group of the PReLU backward's dalpha partials: at most ``config.MAX_GROUPS``
    groups of consecutive samples (shape only)."""
    return max(1, -(-n // config.MAX_GROUPS))


def prelu_backward(dy, z, alpha):
    """(dz, dalpha) as the numpy kernel: dz bitwise numpy's; dalpha = sum of dy * min(z, 0) over
    the batch (fixed groups of samples, added in group order) and the shared axes (numpy's sum)."""
    dy = np.ascontiguousarray(dy)
    checks.same_shape("prelu_backward", ("dy", "z"), dy, z)
    dt = dy.dtype
    alpha_arr = np.asarray(alpha)
    if dt not in FLOATS or dy.ndim < 2 or dy.size == 0 or alpha_arr.ndim != dy.ndim - 1:
        return _ref.prelu_backward(dy, np.asarray(z, dtype=dt), alpha)
    a = _prelu_alpha("prelu_backward", dy, alpha_arr, dt)
    dy2 = dy.reshape(dy.shape[0], -1)
    z2 = as_c(z, dt).reshape(dy2.shape)
    gsize = prelu_groups(dy2.shape[0])
    part = np.empty((-(-dy2.shape[0] // gsize), dy2.shape[1]), dtype=dt)
    dz = np.empty_like(dy)
    fanout.run(_prelu_bwd, part.shape[0], dy2, z2, a, gsize, dz.reshape(dy2.shape), part, work=fanout.element_work(_WORK[PRELU_B], dy))
    da = np.empty(dy2.shape[1], dtype=dt)
    sum_groups(part, da)
    da = da.reshape(dy.shape[1:])
    shared = tuple(i for i, (s, n) in enumerate(zip(alpha_arr.shape, da.shape)) if s == 1 and n != 1)
    if shared:
        da = da.sum(axis=shared, keepdims=True)
    return dz, da.reshape(alpha_arr.shape).astype(dt, copy=False)
