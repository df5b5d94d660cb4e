"""The readable reference backend: im2col/col2im + BLAS, pure NumPy.

Layouts (Keras's): activations NHWC, conv kernels HWIO ``(KH, KW, C, F)``, dense kernels
``(in, out)``. Every function allocates its outputs with the input's dtype, never writes into
its inputs, and has a twin of the same name and signature in ``numba_backend``.

``pads`` is always ``(top, bottom, left, right)`` as computed by :mod:`minicnn.kernels.shapes`.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .numpy_activations import *  # noqa: F401,F403  element-wise activations (their __all__)
from .numpy_batchnorm import batchnorm_backward, batchnorm_forward, batchnorm_train_forward, batchnorm_update_moving  # noqa: F401
from .shapes import padded_output_hw

NAME = "numpy"


# ----------------------------------------------------------------------------- helpers
def pad_nhwc(x: np.ndarray, pads, value=0.0) -> np.ndarray:
    """Pad the H and W axes of ``x`` (N, H, W, C); returns ``x`` itself when no padding."""
    top, bottom, left, right = pads
    if not any(pads):
        return x
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)


def windows(xp: np.ndarray, ksize, strides, out_hw, dilation=(1, 1)) -> np.ndarray:
    """Strided view (N, OH, OW, KH, KW, C) of every window of a padded input (no copy). A window
    dilated by (DH, DW) spans (KH - 1) * DH + 1 rows and takes every DH-th of them."""
    kh, kw = ksize
    sh, sw = strides
    dh, dw = dilation
    oh, ow = out_hw
    v = sliding_window_view(xp, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(1, 2))  # (N, ., ., C, EKH, EKW)
    v = v[:, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw, :, ::dh, ::dw]
    return v.transpose(0, 1, 2, 4, 5, 3)


def im2col(x: np.ndarray, ksize, strides, pads, out_hw, dilation=(1, 1)) -> np.ndarray:
    """Patches as rows: (N*OH*OW, KH*KW*C), columns in (kh, kw, c) order to match HWIO."""
    xp = pad_nhwc(x, pads)
    w = windows(xp, ksize, strides, out_hw, dilation)
    n, kh, kw, c = x.shape[0], ksize[0], ksize[1], x.shape[3]
    return w.reshape(n * out_hw[0] * out_hw[1], kh * kw * c)  # reshape of a strided view copies


def col2im(cols: np.ndarray, x_shape, ksize, strides, pads, out_hw, dilation=(1, 1)) -> np.ndarray:
    """Adjoint of :func:`im2col`: scatter-add patch rows back into an (N, H, W, C) array."""
    n, h, w, c = x_shape
    kh, kw = ksize
    sh, sw = strides
    dh, dw = dilation
    oh, ow = out_hw
    top, bottom, left, right = pads
    dxp = np.zeros((n, h + top + bottom, w + left + right, c), dtype=cols.dtype)
    cols6 = cols.reshape(n, oh, ow, kh, kw, c)
    for i in range(kh):
        for j in range(kw):
            r, s = i * dh, j * dw  # the tap's offset in the (dilated) window
            dxp[:, r : r + (oh - 1) * sh + 1 : sh, s : s + (ow - 1) * sw + 1 : sw, :] += cols6[:, :, :, i, j, :]
    return dxp[:, top : top + h, left : left + w, :]


# ----------------------------------------------------------------------------- conv2d
def conv2d_forward(x, kernel, bias, strides, pads, relu=False, cache=None, dilation=(1, 1)):
    """2-D cross-correlation (what deep learning calls convolution; the kernel is not flipped).

    Parameters
    ----------
    x : (N, H, W, C) input.
    kernel : (KH, KW, C, F).
    bias : (F,) or None.
    strides : (SH, SW).
    pads : (top, bottom, left, right), zero padding.
    relu : apply max(0, .) to the result (fused activation).
    cache : optional dict owned by the caller; the forward pass may keep intermediates in it
        (here: the im2col matrix) for :func:`conv2d_backward` to reuse.
    dilation : (DH, DW): tap (i, j) reads input cell (oh * SH + i * DH, ow * SW + j * DW) of the
        padded input (Keras's ``dilation_rate``); (1, 1) is the ordinary convolution.

    Returns
    -------
    y : (N, OH, OW, F), same dtype as ``x``.
    """
    kh, kw, c, f = kernel.shape
    out_hw = padded_output_hw(x.shape, (kh, kw), strides, pads, dilation)
    cols = im2col(x, (kh, kw), strides, pads, out_hw, dilation)
    if cache is not None:
        cache["cols"] = cols
    y = cols @ kernel.reshape(kh * kw * c, f)
    if bias is not None:
        y += bias
    if relu:
        np.maximum(y, 0, out=y)
    return y.reshape(x.shape[0], out_hw[0], out_hw[1], f)


def conv2d_backward(dy, x, kernel, strides, pads, need_dx=True, cache=None, relu_y=None, dilation=(1, 1)):
    """Gradients of :func:`conv2d_forward` (without activation, or with relu given ``relu_y``).

    Parameters
    ----------
    dy : (N, OH, OW, F) upstream gradient.
    x, kernel, strides, pads, dilation : as given to the forward pass.
    need_dx : skip the input gradient (first layer) when False.
    cache : the dict given to the forward pass, if any.
    relu_y : (N, OH, OW, F) the forward's output if it had relu fused: dy is first passed through
        relu's gradient (:func:`relu_backward`; the fast backend fuses the two).

    Returns
    -------
    dx : (N, H, W, C) or None; dkernel : (KH, KW, C, F); dbias : (F,).
    """
    if relu_y is not None:
        if np.shape(relu_y) != np.shape(dy):
            raise ValueError(f"conv2d_backward: relu_y has shape {np.shape(relu_y)}, dy has {np.shape(dy)}: "
                             "relu_y must be the forward's output")
        dy = relu_backward(dy, relu_y)
    kh, kw, c, f = kernel.shape
    out_hw = dy.shape[1:3]
    dy2 = dy.reshape(-1, f)
    cols = cache.get("cols") if cache else None
    if cols is None:
        cols = im2col(x, (kh, kw), strides, pads, out_hw, dilation)
    dkernel = (cols.T @ dy2).reshape(kernel.shape)
    dbias = dy2.sum(axis=0)
    dx = None
    if need_dx:
        dcols = dy2 @ kernel.reshape(kh * kw * c, f).T
        dx = col2im(dcols, x.shape, (kh, kw), strides, pads, out_hw, dilation)
    return dx, dkernel, dbias


# ----------------------------------------------------------------------------- max pooling
def maxpool2d_forward(x, pool_size, strides, pads):
    """Max over each window; padded cells are -inf so they never win.

    Returns
    -------
    y : (N, OH, OW, C).
    argmax : (N, OH, OW, C) int32, the window-local index ``i * PW + j`` of the *first*
        maximum in row-major window order (TensorFlow's tie rule).
    """
    out_hw = padded_output_hw(x.shape, pool_size, strides, pads)
    xp = pad_nhwc(x, pads, value=-np.inf)
    w = windows(xp, pool_size, strides, out_hw)  # (N, OH, OW, PH, PW, C)
    n, oh, ow, ph, pw, c = w.shape
    flat = w.transpose(0, 1, 2, 5, 3, 4).reshape(n, oh, ow, c, ph * pw)
    argmax = flat.argmax(axis=-1).astype(np.int32)  # np.argmax returns the first maximum
    y = np.take_along_axis(flat, argmax[..., None].astype(np.intp), axis=-1)[..., 0]
    return y, argmax


def maxpool2d_backward(dy, argmax, x_shape, pool_size, strides, pads):
    """Route each upstream gradient to the input cell that won its window.

    Returns dx : (N, H, W, C) with ``dy``'s dtype.
    """
    n, h, w, c = x_shape
    ph, pw = pool_size
    sh, sw = strides
    oh, ow = dy.shape[1:3]
    top, bottom, left, right = pads
    dxp = np.zeros((n, h + top + bottom, w + left + right, c), dtype=dy.dtype)
    for i in range(ph):
        for j in range(pw):
            routed = np.where(argmax == i * pw + j, dy, 0)
            dxp[:, i : i + (oh - 1) * sh + 1 : sh, j : j + (ow - 1) * sw + 1 : sw, :] += routed
    return dxp[:, top : top + h, left : left + w, :]


# ----------------------------------------------------------------------------- relu, dense
def relu_forward(x):
    """max(x, 0), same dtype (NaN propagates, as in TensorFlow)."""
    return np.maximum(x, 0)


def relu_backward(dy, y):
    """dy where the output was positive, 0 elsewhere (so the gradient at exactly 0 is 0)."""
    return np.where(y > 0, dy, 0).astype(dy.dtype, copy=False)


def dense_forward(x, kernel, bias, relu=False):
    """``x @ kernel + bias``: x (N, in), kernel (in, out), bias (out,) or None -> (N, out)."""
    y = x @ kernel
    if bias is not None:
        y += bias
    if relu:
        np.maximum(y, 0, out=y)
    return y


def dense_backward(dy, x, kernel, need_dx=True, check_finite=False):
    """Returns dx (N, in) or None, dkernel (in, out), dbias (out,); with ``check_finite``, a
    fourth value: True if dkernel and dbias hold no NaN/inf (the fast backend checks dkernel
    while computing it, which saves the training step's guard a pass over the largest gradient)."""
    dx = dy @ kernel.T if need_dx else None
    dk, db = x.T @ dy, dy.sum(axis=0)
    if check_finite:
        return dx, dk, db, all_finite(dk) and all_finite(db)
    return dx, dk, db


def all_finite(a) -> bool:
    """True if ``a`` holds no NaN/inf. One summing pass (a NaN/inf anywhere makes the sum
    non-finite); only if the sum overflows is the exact elementwise test needed."""
    a = np.asarray(a)
    if a.dtype.kind != "f" or a.size == 0:
        return True
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(a.sum()):
            return True
    return bool(np.isfinite(a).all())


# ----------------------------------------------------------------------------- optimizer updates
def adam_update(p, g, m, v, c1, c2, alpha, eps):
    """Keras's Adam step, in place: ``m += (g - m) c1; v += (g^2 - v) c2;
    p -= m alpha / (sqrt(v) + eps)``; scalars have the weights' dtype."""
    m += (g - m) * c1
    v += (np.square(g) - v) * c2
    p -= m * alpha / (np.sqrt(v) + eps)
from .numpy_pooling import avgpool2d_backward, avgpool2d_forward, global_avgpool2d_backward, global_avgpool2d_forward, global_maxpool2d_backward, global_maxpool2d_forward, zeropad2d_backward, zeropad2d_forward  # noqa: F401


# depthwise convolutions (their own module; SeparableConv2D composes them with conv2d)
from .numpy_depthwise import depthwise_conv2d_backward, depthwise_conv2d_forward  # noqa: E402,F401
