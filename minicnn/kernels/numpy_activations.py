"""Element-wise activations, pure NumPy: the reference kernels behind :mod:`minicnn.activations`.

Every forward function takes the pre-activation ``z`` (any shape) and returns ``y`` of the same
shape and dtype; every backward function takes the upstream gradient ``dy`` and what it needs
from the forward pass (``y`` or ``z``, as named) and returns ``dz``. Inputs are never written.
Scalars (slopes, caps) arrive already in the dtype the caller chose; what Keras rounds where is
decided in :mod:`minicnn.activations`, not here.

Gradients at the kinks are TensorFlow's (its ``*Grad`` kernels): relu, leaky_relu and PReLU
compare with ``z > 0`` (or ``y > 0``), elu with ``z > 0``, selu with ``y < 0``. Nothing here
overflows for large |z|: exponentials only ever see non-positive arguments, and squares are
taken of clipped values.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "tanh_forward", "tanh_backward", "sigmoid_forward", "sigmoid_backward",
    "softplus_forward", "softplus_backward", "silu_forward", "silu_backward",
    "gelu_forward", "gelu_backward", "elu_forward", "elu_backward", "selu_forward", "selu_backward",
    "leaky_relu_forward", "leaky_relu_backward", "capped_relu_forward", "capped_relu_backward",
    "prelu_forward", "prelu_backward",
]

#: SELU's constants, as TensorFlow's ``relu_op_functor.h`` writes them (``scale * alpha`` is its
#: own literal there, one ulp away from the product of the two doubles)
SELU_SCALE = 1.0507009873554804934193349852946
SELU_SCALE_ALPHA = 1.7580993408473768599402175208123
#: beyond this |z| the normal density is 0 in float64 (exp(-800) underflows) and float32
_PDF_CUTOFF = 40.0
_INV_SQRT_PI = 1.0 / math.sqrt(math.pi)
_erfc_objects = np.frompyfunc(math.erfc, 1, 1)


def _t(z, value):
    """A Python number as a scalar of ``z``'s dtype (so float32 stays float32)."""
    return z.dtype.type(value)


# ----------------------------------------------------------------------------- tanh, sigmoid
def tanh_forward(z):
    """y = tanh(z)."""
    return np.tanh(z)


def tanh_backward(dy, y):
    """dz = dy * (1 - y^2) (TensorFlow's TanhGrad)."""
    return dy * (1 - y * y)


def sigmoid_forward(z):
    """y = 1 / (1 + exp(-z)), as exp(z) / (1 + exp(z)) for z < 0: exp only sees -|z|."""
    e = np.exp(-np.abs(z))
    r = 1 / (1 + e)
    return np.where(z >= 0, r, e * r)


def sigmoid_backward(dy, y):
    """dz = dy * y * (1 - y) (TensorFlow's SigmoidGrad)."""
    return dy * (y * (1 - y))


# ----------------------------------------------------------------------------- softplus, silu, gelu
def softplus_forward(z):
    """y = log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|)): no overflow, no loss for z << 0."""
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


def softplus_backward(dy, z):
    """dz = dy * sigmoid(z)."""
    return dy * sigmoid_forward(z)


def silu_forward(z):
    """y = z * sigmoid(z) (SiLU, also called swish)."""
    return z * sigmoid_forward(z)


def silu_backward(dy, z):
    """dz = dy * s * (1 + z (1 - s)) with s = sigmoid(z) (TensorFlow's swish gradient)."""
    s = sigmoid_forward(z)
    return dy * (s * (1 + z * (1 - s)))


def _erfc(u):
    """erfc, element-wise, from ``math.erfc`` (correctly rounded in float64; numpy has none).
    About 0.4 us per element: the numba twin calls the same C erfc in compiled code."""
    out = np.asarray(_erfc_objects(np.asarray(u, dtype=np.float64)), dtype=np.float64)
    return out.astype(u.dtype, copy=False)


def gelu_forward(z, inv_sqrt2):
    """Exact GELU as TensorFlow's ``gelu`` (approximate=False) computes it:
    y = 0.5 z erfc(-z c), c = ``inv_sqrt2`` ~ 1/sqrt(2); erfc, unlike 1 + erf, keeps its
    relative precision for z << 0."""
    return _t(z, 0.5) * z * _erfc(-z * inv_sqrt2)


def gelu_backward(dy, z, inv_sqrt2):
    """dz = dy * (0.5 erfc(-c z) + z c exp(-(c z)^2) / sqrt(pi)) (Phi(z) + z phi(z) for c = 1/sqrt 2)."""
    u = np.clip(z, -_PDF_CUTOFF, _PDF_CUTOFF) * inv_sqrt2  # u^2 overflows for |z| > 1e154; exp(-u^2) is 0 there
    pdf = np.exp(-(u * u)) * (inv_sqrt2 * _t(z, _INV_SQRT_PI))
    return dy * (_t(z, 0.5) * _erfc(-z * inv_sqrt2) + z * pdf)


# ----------------------------------------------------------------------------- elu, selu
def elu_forward(z, alpha):
    """y = z for z > 0, alpha * (exp(z) - 1) otherwise (expm1: accurate as z -> 0-;
    TensorFlow computes exp(z) - 1, which differs by ~1e-16 / |z| relative)."""
    return np.where(z > 0, z, alpha * np.expm1(np.minimum(z, 0)))


def elu_backward(dy, z, alpha):
    """dz = dy for z > 0, dy * alpha * exp(z) otherwise (so alpha at z = 0, as Keras's
    ``where(z > 0, elu(z), alpha * elu(z))`` differentiates). Takes ``z``: any alpha works."""
    return np.where(z > 0, dy, dy * (alpha * np.exp(np.minimum(z, 0))))


def selu_forward(z):
    """y = scale * z for z >= 0, scale * alpha * (exp(z) - 1) for z < 0."""
    return np.where(z < 0, _t(z, SELU_SCALE_ALPHA) * np.expm1(np.minimum(z, 0)), _t(z, SELU_SCALE) * z)


def selu_backward(dy, y):
    """dz = dy * (y + scale * alpha) where y < 0, dy * scale elsewhere (TensorFlow's SeluGrad)."""
    return np.where(y < 0, dy * (y + _t(y, SELU_SCALE_ALPHA)), dy * _t(y, SELU_SCALE))


# ----------------------------------------------------------------------------- relu variants
def leaky_relu_forward(z, negative_slope):
    """y = z for z > 0, negative_slope * z otherwise (TensorFlow's LeakyRelu: a select, so any
    slope works, also > 1)."""
    return np.where(z > 0, z, z * negative_slope)


def leaky_relu_backward(dy, y, negative_slope):
    """dz = dy where y > 0, dy * negative_slope elsewhere (so negative_slope at z = 0). From
    ``y``: needs negative_slope >= 0, which Keras's layers require."""
    return np.where(y > 0, dy, dy * negative_slope)


def capped_relu_forward(z, negative_slope, max_value, threshold, cut):
    """Keras's general ReLU: ``where(z > cut, min(z, max_value), 0) - negative_slope *
    max(threshold - z, 0)``. ``cut`` is the threshold as the comparison sees it (Keras's TF
    backend rounds that copy through float32); ``max_value`` None means no cap."""
    p = np.where(z > cut, z, 0)
    if max_value is not None:
        p = np.minimum(p, max_value)
    if negative_slope:
        p = p - negative_slope * np.maximum(threshold - z, 0)
    return p


def capped_relu_backward(dy, z, negative_slope, max_value, threshold, cut, open_cap=False):
    """dz = dy where cut < z <= max_value (z < max_value with ``open_cap``: relu6's gradient is 0
    at 6, clip's is 1 at its bound), + negative_slope * dy where z < threshold, 0 elsewhere."""
    inside = z > cut
    if max_value is not None:
        inside &= (z < max_value) if open_cap else (z <= max_value)
    dz = np.where(inside, dy, 0)
    if negative_slope:
        dz = dz + np.where(z < threshold, dy * negative_slope, 0)
    return dz.astype(dy.dtype, copy=False)


def prelu_forward(z, alpha):
    """y = max(z, 0) - alpha * max(-z, 0), as Keras's PReLU computes it; ``alpha`` has the shape
    of one sample with 1 on shared axes and broadcasts over the batch."""
    return np.maximum(z, 0) - alpha * np.maximum(-z, 0)


def prelu_backward(dy, z, alpha):
    """(dz, dalpha): dz = dy where z > 0, dy * alpha where z < 0, 0 at z = 0 (both relus are
    flat there); dalpha = sum of dy * min(z, 0) over the batch and the shared axes."""
    dz = np.where(z > 0, dy, np.where(z < 0, dy * alpha, 0)).astype(dy.dtype, copy=False)
    da = (dy * np.minimum(z, 0)).sum(axis=0)
    shared = tuple(i for i, (a, n) in enumerate(zip(alpha.shape, da.shape)) if a == 1 and n != 1)
    if shared:
        da = da.sum(axis=shared, keepdims=True)
    return dz, da.reshape(alpha.shape)
