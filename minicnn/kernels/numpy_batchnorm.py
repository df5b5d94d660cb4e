"""Batch normalisation over the last (channels) axis, NumPy reference kernels.

Shapes: ``x`` (N, C) or (N, H, W, C) (any rank >= 2: every axis but the last is reduced);
``gamma``, ``beta``, ``mean``, ``var`` (C,). Every function keeps the input's dtype, allocates
its outputs and never writes into its inputs, except :func:`batchnorm_update_moving`, which
updates the moving statistics in place (as Keras assigns its variables).

The float operations follow Keras 3 on the TensorFlow backend, which
``keras/src/layers/normalization/batch_normalization.py`` delegates to:

* ``ops.moments`` -> ``tf.nn.moments`` (``tensorflow/python/ops/nn_impl.py``):
  ``mean = reduce_mean(x)``, ``var = reduce_mean(squared_difference(x, mean))``: the *biased*
  variance (divided by the count N*H*W, not by count - 1);
* ``ops.batch_normalization`` -> ``tf.nn.batch_normalization`` (same file)::

      inv = rsqrt(var + epsilon); inv *= gamma
      y = x * inv + (beta - mean * inv)        # or x * inv + (-mean * inv) without beta

  epsilon is a Python float added to a tensor of the layer's dtype: in a float64 layer it stays
  the double 1e-3 (not rounded through float32; checked by running Keras 3.15).
"""

from __future__ import annotations

import numpy as np


def _axes(x):
    return tuple(range(x.ndim - 1))


def _channel_sum(a, divide_by=1):
    """Sum of ``a`` (N, ..., C) over every axis but the last (divided by ``divide_by``), in
    ``a``'s dtype but accumulated in float64: a float32 running sum over N*H*W values (NumPy's
    order along a non-contiguous axis) would lose ~1e-6 on a batch of 32 16x16 images, 5x more
    than TensorFlow's float32 reductions; accumulated in float64 the sum is all but exact."""
    return (a.sum(axis=_axes(a), dtype=np.float64) / divide_by).astype(a.dtype, copy=False)


def batchnorm_moments(x):
    """The batch statistics of ``x`` (N, ..., C): ``(mean, var)``, each (C,), with the biased
    variance ``mean((x - mean)**2)`` (``tf.nn.moments``; ``x - mean`` in ``x``'s dtype)."""
    count = x.size // x.shape[-1]
    mean = _channel_sum(x, count)
    var = _channel_sum(np.square(x - mean), count)
    return mean, var


def batchnorm_inv_std(var, epsilon):
    """``1 / sqrt(var + epsilon)`` in ``var``'s dtype (TensorFlow's ``rsqrt``), (C,)."""
    return 1 / np.sqrt(var + var.dtype.type(epsilon))


def batchnorm_forward(x, gamma, beta, mean, var, epsilon, relu=False):
    """Normalise ``x`` (N, ..., C) with the given statistics, then scale and shift (then, with
    ``relu``, ``max(., 0)``: a BatchNormalization followed by a ReLU layer, fused by the fast backend)."""
    y = _affine_forward(x, gamma, beta, mean, var, epsilon)
    return np.maximum(y, 0) if relu else y


def _affine_forward(x, gamma, beta, mean, var, epsilon):
    """Normalise ``x`` (N, ..., C) with the given statistics, then scale and shift.

    Parameters
    ----------
    x : (N, ..., C).
    gamma, beta : (C,) or None (``scale=False`` / ``center=False``).
    mean, var : (C,) the statistics to normalise with (the moving ones at inference).
    epsilon : Python float added to ``var``.

    Returns
    -------
    y : same shape and dtype as ``x``: ``x * inv + (beta - mean * inv)`` with
    ``inv = gamma / sqrt(var + epsilon)`` (TensorFlow's order of operations).
    """
    inv = batchnorm_inv_std(var, epsilon)
    if gamma is not None:
        inv = inv * gamma
    shift = (beta - mean * inv) if beta is not None else -mean * inv
    return x * inv + shift


def batchnorm_train_forward(x, gamma, beta, epsilon, relu=False):
    """The training-mode forward pass: normalise ``x`` with its own batch statistics (and with
    ``relu``, ``max(., 0)`` of the result).

    Returns
    -------
    y : (N, ..., C) as :func:`batchnorm_forward` with the batch's mean and variance;
    mean, var : (C,) the batch statistics (biased variance), for the moving averages and for
    :func:`batchnorm_backward`.
    """
    mean, var = batchnorm_moments(x)
    return batchnorm_forward(x, gamma, beta, mean, var, epsilon, relu=relu), mean, var


def batchnorm_update_moving(moving_mean, moving_var, mean, var, momentum):
    """Keras's update of the moving statistics, in place (both (C,))::

        moving_mean = moving_mean * momentum + mean * (1.0 - momentum)
        moving_var  = moving_var  * momentum + var  * (1.0 - momentum)

    with the batch's *biased* variance. ``momentum`` and ``1.0 - momentum`` are Python floats
    (the latter computed in float64, 0.010000000000000009 for 0.99) cast to the weights' dtype,
    as TensorFlow converts them when multiplying a tensor.
    """
    t = moving_mean.dtype.type
    m, one_minus = t(momentum), t(1.0 - momentum)
    moving_mean[...] = moving_mean * m + mean * one_minus
    moving_var[...] = moving_var * m + var * one_minus


def batchnorm_backward(dy, x, gamma, mean, var, epsilon, batch_stats=True, relu_y=None):
    """Gradients of :func:`batchnorm_forward` w.r.t. ``x``, ``gamma`` and ``beta``.

    Parameters
    ----------
    dy : (N, ..., C) upstream gradient.
    x : (N, ..., C) the forward's input.
    gamma : (C,) or None (then the scale is 1).
    mean, var, epsilon : the statistics the forward normalised with, and its epsilon.
    batch_stats : True if they were the batch's own (training mode): the gradient then flows
        through the batch mean and variance too; False for fixed (moving) statistics, where the
        layer is the affine map ``x * inv + shift``.
    relu_y : (N, ..., C) or None: the output of a forward with ``relu``; dy is first passed
        through relu's gradient (``dy where relu_y > 0, else 0``; the fast backend fuses the two).

    Returns
    -------
    dx : (N, ..., C); dgamma : (C,) ``sum(dy * xhat)``; dbeta : (C,) ``sum(dy)``, where
    ``xhat = (x - mean) * inv_std``, ``inv_std = 1 / sqrt(var + epsilon)`` and the sums run
    over every axis but the last.

    With batch statistics (M values per channel), the exact gradient is::

        dx = gamma * inv_std * (dy - mean(dy) - xhat * mean(dy * xhat))
    """
    if relu_y is not None:
        dy = np.where(relu_y > 0, dy, 0).astype(dy.dtype, copy=False)
    inv_std = batchnorm_inv_std(var, epsilon)
    xhat = (x - mean) * inv_std
    dbeta = _channel_sum(dy)
    dgamma = _channel_sum(dy * xhat)
    scale = inv_std * gamma if gamma is not None else inv_std
    if not batch_stats:
        return dy * scale, dgamma, dbeta
    count = dy.dtype.type(x.size // x.shape[-1])
    dx = (dy - dbeta / count - xhat * (dgamma / count)) * scale
    return dx, dgamma, dbeta
