"""The pooling zoo's reference kernels: average pooling, global average/max pooling, zero padding.

Same conventions as :mod:`minicnn.kernels.numpy_backend`, which re-exports every function here
(the numba twins: ``minicnn.kernels.numba.avgpool``, bitwise equal): activations NHWC, ``pads`` always
``(top, bottom, left, right)`` as chosen by :mod:`minicnn.kernels.shapes`, outputs allocated with
the input's dtype, inputs never written.

This module imports ``shapes`` only, not ``numpy_backend``: the backend re-exports these names,
so importing its ``pad_nhwc``/``windows`` from here would be an import cycle (which
tests/test_architecture.py refuses, and which breaks when this module is imported first). The
window sums below are accumulated offset by offset on strided slices instead, the form
``numpy_backend.col2im``/``maxpool2d_backward`` use for their scatter-adds.
"""

from __future__ import annotations

import numpy as np

from .shapes import padded_output_hw


# ----------------------------------------------------------------------------- helpers
def _zero_pad(x: np.ndarray, pads) -> np.ndarray:
    """A zero-padded copy (N, H+top+bottom, W+left+right, C) of ``x`` (N, H, W, C), always a
    new array (also without padding: callers may hand it out)."""
    top, bottom, left, right = pads
    n, h, w, c = x.shape
    out = np.zeros((n, h + top + bottom, w + left + right, c), dtype=x.dtype)
    out[:, top : top + h, left : left + w, :] = x
    return out


def _crop(xp: np.ndarray, x_shape, pads) -> np.ndarray:
    """The (N, H, W, C) interior of a padded array, as a new C-contiguous array (a copy even
    without padding: never a view of the caller's array)."""
    top, left = pads[0], pads[2]
    h, w = x_shape[1], x_shape[2]
    return xp[:, top : top + h, left : left + w, :].copy()


def window_counts(n: int, k: int, s: int, before: int, out: int) -> np.ndarray:
    """Real (non-padded) cells of each window along one axis: (out,) int64.

    Window ``o`` covers padded positions ``o*s .. o*s + k - 1``, i.e. input rows
    ``o*s - before ..`` of which those in ``[0, n)`` are real. A 2-D window's count is the
    product of its row and column counts (``np.outer``).
    """
    start = np.arange(out, dtype=np.int64) * s - before
    return np.minimum(start + k, n) - np.maximum(start, 0)


def avgpool2d_counts(x_shape, pool_size, strides, pads) -> np.ndarray:
    """(OH, OW) int64: how many real input cells each average-pooling window holds (TensorFlow
    divides by this, not by PH*PW, where 'same' padding reaches into a window)."""
    oh, ow = padded_output_hw(x_shape, pool_size, strides, pads)
    rows = window_counts(x_shape[1], pool_size[0], strides[0], pads[0], oh)
    cols = window_counts(x_shape[2], pool_size[1], strides[1], pads[2], ow)
    return np.outer(rows, cols)


# ----------------------------------------------------------------------------- average pooling
def avgpool2d_forward(x, pool_size, strides, pads):
    """Mean of the real cells of each window (padded cells are neither summed nor counted).

    Parameters
    ----------
    x : (N, H, W, C).
    pool_size : (PH, PW); strides : (SH, SW); pads : (top, bottom, left, right).

    Returns
    -------
    y : (N, OH, OW, C), ``x``'s dtype; the window sums are accumulated in row-major window
        order (di, dj), in ``x``'s dtype, then divided by :func:`avgpool2d_counts`.
    """
    ph, pw = pool_size
    sh, sw = strides
    oh, ow = padded_output_hw(x.shape, pool_size, strides, pads)
    xp = _zero_pad(x, pads) if any(pads) else x
    acc = np.zeros((x.shape[0], oh, ow, x.shape[3]), dtype=x.dtype)
    for i in range(ph):
        for j in range(pw):
            acc += xp[:, i : i + (oh - 1) * sh + 1 : sh, j : j + (ow - 1) * sw + 1 : sw, :]
    counts = avgpool2d_counts(x.shape, pool_size, strides, pads).astype(x.dtype)
    acc /= counts[None, :, :, None]
    return acc


def avgpool2d_backward(dy, x_shape, pool_size, strides, pads):
    """Adjoint of :func:`avgpool2d_forward`: each window's ``dy / count`` is added to every real
    cell of the window (overlapping windows add up; padded cells are dropped).

    Parameters
    ----------
    dy : (N, OH, OW, C); x_shape : (N, H, W, C) of the forward's input; the rest as forward.

    Returns dx : (N, H, W, C) with ``dy``'s dtype.
    """
    n, h, w, c = x_shape
    ph, pw = pool_size
    sh, sw = strides
    oh, ow = dy.shape[1:3]
    top, bottom, left, right = pads
    share = dy / avgpool2d_counts(x_shape, pool_size, strides, pads).astype(dy.dtype)[None, :, :, None]
    dxp = np.zeros((n, h + top + bottom, w + left + right, c), dtype=dy.dtype)
    for i in range(ph):
        for j in range(pw):
            dxp[:, i : i + (oh - 1) * sh + 1 : sh, j : j + (ow - 1) * sw + 1 : sw, :] += share
    return _crop(dxp, x_shape, pads) if any(pads) else dxp


# ----------------------------------------------------------------------------- global pooling
def global_avgpool2d_forward(x):
    """Mean over H and W: (N, H, W, C) -> (N, C), ``x``'s dtype."""
    return x.mean(axis=(1, 2))


def global_avgpool2d_backward(dy, x_shape):
    """dy (N, C) / (H*W) sent to every cell: -> (N, H, W, C), ``dy``'s dtype (TensorFlow's
    MeanGrad: the broadcast gradient divided by the number of cells averaged)."""
    h, w = x_shape[1], x_shape[2]
    dx = np.empty(x_shape, dtype=dy.dtype)
    dx[...] = (dy / dy.dtype.type(h * w))[:, None, None, :]
    return dx


def global_maxpool2d_forward(x):
    """Max over H and W: (N, H, W, C) -> (N, C), ``x``'s dtype (NaN propagates)."""
    return x.max(axis=(1, 2))


def global_maxpool2d_backward(dy, x, y):
    """TensorFlow's gradient of ``reduce_max`` (``_MinOrMaxGrad``): a tie *shares* the gradient,
    every cell equal to its channel's maximum gets ``dy / (number of such cells)``.

    Parameters
    ----------
    dy : (N, C); x : (N, H, W, C) the forward's input; y : (N, C) its output.

    Returns dx : (N, H, W, C) with ``dy``'s dtype.
    """
    hit = (x == y[:, None, None, :]).astype(dy.dtype)
    ties = hit.sum(axis=(1, 2))  # >= 1 for every finite channel
    return hit / ties[:, None, None, :] * dy[:, None, None, :]  # TF's order: (indicator / count) * dy


# ----------------------------------------------------------------------------- zero padding
def zeropad2d_forward(x, pads):
    """Zeros around the H and W axes: (N, H, W, C) -> (N, H+top+bottom, W+left+right, C), a new
    array in ``x``'s dtype."""
    return _zero_pad(x, pads)


def zeropad2d_backward(dy, pads):
    """The adjoint of zero padding is cropping: (N, H+top+bottom, W+left+right, C) -> (N, H, W, C),
    a new contiguous array (never a view of ``dy``)."""
    top, bottom, left, right = pads
    n, hp, wp, c = dy.shape
    return _crop(dy, (n, hp - top - bottom, wp - left - right, c), pads)
