"""Argument checks of the numba backend's public functions (Python tier).

The kernels index raw memory (the tiles and BLAS through addresses, the numba loops without
bounds checks), so a shape that does not match would read or write outside an array instead of
failing. The layers never pass one; these checks turn a direct caller's mistake into a
:class:`ValueError` naming the function and the shapes (the numpy backend fails on such inputs
too, with numpy's own errors). They only compare shapes: a few microseconds per call.
"""

from __future__ import annotations

import numpy as np

from ..shapes import padded_output_hw

__all__ = ["conv_args", "conv_grad_args", "dense_args", "dense_grad_args", "pool_args", "pool_grad_args", "pool_dy_args",
           "same_shape"]


def _fail(where, message):
    raise ValueError(f"{where}: {message}")


def _window_args(where, window, strides, pads):
    if len(window) != 2 or len(strides) != 2 or len(pads) != 4:
        _fail(where, f"expected a 2-D window, 2 strides and 4 pads, got {tuple(window)}, {tuple(strides)}, "
                     f"{tuple(pads)}")
    if min(window) < 1 or min(strides) < 1 or min(pads) < 0:
        _fail(where, f"window {tuple(window)} and strides {tuple(strides)} must be positive, pads {tuple(pads)} "
                     "non-negative")


def conv_args(where, x, kernel, bias, strides, pads, dilation=(1, 1)):
    """x (N, H, W, C), kernel (KH, KW, C, F), bias (F,) or None, 2 positive dilations; returns
    (OH, OW) of the dilated window."""
    xs, ks = np.shape(x), np.shape(kernel)
    if len(xs) != 4 or len(ks) != 4 or ks[2] != xs[3]:
        _fail(where, f"x must be (N, H, W, C) and the kernel (KH, KW, C, F), got {xs} and {ks}")
    if bias is not None and np.shape(bias) != (ks[3],):
        _fail(where, f"bias must have shape ({ks[3]},), got {np.shape(bias)}")
    _window_args(where, ks[:2], strides, pads)
    if len(dilation) != 2 or min(dilation) < 1:
        _fail(where, f"dilation must be 2 positive ints, got {tuple(dilation)}")
    return padded_output_hw(xs, ks[:2], strides, pads, dilation)


def conv_grad_args(where, dy, x, kernel, strides, pads, dilation=(1, 1)):
    """As :func:`conv_args`, and dy (N, OH, OW, F) of the forward's output shape; returns (OH, OW)."""
    oh, ow = conv_args(where, x, kernel, None, strides, pads, dilation)
    want = (np.shape(x)[0], max(oh, 0), max(ow, 0), np.shape(kernel)[3])
    if np.shape(dy) != want:
        _fail(where, f"dy has shape {np.shape(dy)}, the forward's output has {want}")
    return oh, ow


def dense_args(where, x, kernel, bias):
    """x (N, in), kernel (in, out), bias (out,) or None."""
    xs, ks = np.shape(x), np.shape(kernel)
    if len(xs) != 2 or len(ks) != 2 or ks[0] != xs[1]:
        _fail(where, f"x must be (N, in) and the kernel (in, out), got {xs} and {ks}")
    if bias is not None and np.shape(bias) != (ks[1],):
        _fail(where, f"bias must have shape ({ks[1]},), got {np.shape(bias)}")


def dense_grad_args(where, dy, x, kernel):
    """As :func:`dense_args`, and dy (N, out)."""
    dense_args(where, x, kernel, None)
    want = (np.shape(x)[0], np.shape(kernel)[1])
    if np.shape(dy) != want:
        _fail(where, f"dy has shape {np.shape(dy)}, the forward's output has {want}")


def pool_args(where, x, pool_size, strides, pads):
    """x (N, H, W, C); returns (OH, OW)."""
    xs = np.shape(x)
    if len(xs) != 4:
        _fail(where, f"x must be (N, H, W, C), got {xs}")
    _window_args(where, pool_size, strides, pads)
    return padded_output_hw(xs, pool_size, strides, pads)


def pool_grad_args(where, dy, argmax, x_shape, pool_size, strides, pads):
    """dy and argmax (N, OH, OW, C) of the forward's output shape for an input of ``x_shape``."""
    if len(x_shape) != 4:
        _fail(where, f"x_shape must be (N, H, W, C), got {tuple(x_shape)}")
    _window_args(where, pool_size, strides, pads)
    oh, ow = padded_output_hw(x_shape, pool_size, strides, pads)
    want = (x_shape[0], max(oh, 0), max(ow, 0), x_shape[3])
    if np.shape(dy) != want or np.shape(argmax) != want:
        _fail(where, f"dy {np.shape(dy)} and argmax {np.shape(argmax)} must have the forward's output shape {want}")


def pool_dy_args(where, dy, x_shape, pool_size, strides, pads):
    """dy (N, OH, OW, C) of the forward's output shape for an input of ``x_shape`` (no argmax)."""
    pool_grad_args(where, dy, dy, x_shape, pool_size, strides, pads)


def same_shape(where, names, *arrays):
    """Arrays walked element for element together (``names``: theirs, for the message) must have
    one shape."""
    first = np.shape(arrays[0])
    for a in arrays[1:]:
        if np.shape(a) != first:
            _fail(where, "shapes differ: " + ", ".join(f"{n} {np.shape(a_)}" for n, a_ in zip(names, arrays)))
