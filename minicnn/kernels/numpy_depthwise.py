"""Depthwise 2-D convolution, pure NumPy (re-exported by ``numpy_backend``; numba twins: phase 2).

Each input channel ``c`` is convolved with its own ``M`` filters (``M``: the depth multiplier) and
nothing mixes channels. Kernel ``(KH, KW, C, M)``, output channel ``c * M + m``: the layout and
order of Keras 3's ``DepthwiseConv2D`` (keras/src/layers/convolutional/base_depthwise_conv.py,
``tf.nn.depthwise_conv2d``; the order was checked against TensorFlow 2.21).

The kernels loop over the KH * KW taps: tap ``(i, j)`` sees the strided view ``x[:, i*DH + oh*SH,
j*DW + ow*SW, :]`` of the padded input, and each tap is one broadcast multiply over
(N, OH, OW, C, M) (an im2col matrix would be block diagonal: mostly zeros). Same conventions as
``numpy_backend``: NHWC, ``pads`` (top, bottom, left, right) from :mod:`minicnn.kernels.shapes`,
outputs in the input's dtype, inputs never written.
"""

from __future__ import annotations

import numpy as np

from .shapes import padded_output_hw


def _pad(x, pads):
    top, bottom, left, right = pads
    if not any(pads):
        return x
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))


def _tap(xp, i, j, strides, dilation, out_hw):
    """The (N, OH, OW, C) strided view of the padded input that kernel tap (i, j) multiplies."""
    r, s = i * dilation[0], j * dilation[1]
    return xp[:, r : r + (out_hw[0] - 1) * strides[0] + 1 : strides[0],
              s : s + (out_hw[1] - 1) * strides[1] + 1 : strides[1], :]


def depthwise_conv2d_forward(x, kernel, bias, strides, pads, relu=False, cache=None, dilation=(1, 1)):
    """Depthwise cross-correlation.

    Parameters
    ----------
    x : (N, H, W, C) input.
    kernel : (KH, KW, C, M).
    bias : (C * M,) or None.
    strides, pads, relu, dilation : as in ``numpy_backend.conv2d_forward``.
    cache : optional dict owned by the caller; keeps the padded input for the backward pass.

    Returns
    -------
    y : (N, OH, OW, C * M), channel ``c * M + m`` from ``kernel[:, :, c, m]``, x's dtype.
    """
    kh, kw, c, m = kernel.shape
    n = x.shape[0]
    out_hw = padded_output_hw(x.shape, (kh, kw), strides, pads, dilation)
    xp = _pad(x, pads)
    if cache is not None:
        cache["xp"] = xp
    y = np.zeros((n, *out_hw, c, m), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            y += _tap(xp, i, j, strides, dilation, out_hw)[..., None] * kernel[i, j]  # (C, M) broadcast
    y = y.reshape(n, *out_hw, c * m)  # (c, m) -> c * M + m: Keras's channel order
    if bias is not None:
        y += bias
    if relu:
        np.maximum(y, 0, out=y)
    return y


def depthwise_conv2d_backward(dy, x, kernel, strides, pads, need_dx=True, cache=None, relu_y=None,
                              dilation=(1, 1)):
    """Gradients of :func:`depthwise_conv2d_forward`.

    Parameters
    ----------
    dy : (N, OH, OW, C * M) upstream gradient.
    x, kernel, strides, pads, dilation : as given to the forward pass.
    need_dx : skip the input gradient (first layer) when False.
    cache : the dict given to the forward pass, if any.
    relu_y : the forward's output if it had relu fused (dy is masked where it was not positive).

    Returns
    -------
    dx : (N, H, W, C) or None; dkernel : (KH, KW, C, M); dbias : (C * M,).
    """
    if relu_y is not None:
        if np.shape(relu_y) != np.shape(dy):
            raise ValueError(f"depthwise_conv2d_backward: relu_y has shape {np.shape(relu_y)}, dy has "
                             f"{np.shape(dy)}: relu_y must be the forward's output")
        dy = np.where(relu_y > 0, dy, 0).astype(dy.dtype, copy=False)  # relu_backward (0 at the kink)
    kh, kw, c, m = kernel.shape
    n, oh, ow, _ = dy.shape
    out_hw = (oh, ow)
    xp = cache.get("xp") if cache else None
    if xp is None:
        xp = _pad(x, pads)
    dy5 = dy.reshape(n, oh, ow, c, m)
    dkernel = np.empty(kernel.shape, dtype=dy.dtype)
    dxp = np.zeros(xp.shape, dtype=dy.dtype) if need_dx else None
    for i in range(kh):
        for j in range(kw):
            dkernel[i, j] = np.einsum("nhwc,nhwcm->cm", _tap(xp, i, j, strides, dilation, out_hw), dy5)
            if need_dx:  # the adjoint of reading the tap's view: add into the same cells
                cells = _tap(dxp, i, j, strides, dilation, out_hw)  # a view: += writes into dxp
                cells += np.einsum("nhwcm,cm->nhwc", dy5, kernel[i, j])
    dbias = dy.sum(axis=(0, 1, 2))
    dx = None
    if need_dx:
        top, _, left, _ = pads
        dx = dxp[:, top : top + x.shape[1], left : left + x.shape[2], :]
    return dx, dkernel, dbias
