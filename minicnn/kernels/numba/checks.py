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

__all__ = ["conv_args", "conv_grad_args", "dense_args", "dense_grad_args", "pool_args", "pool_grad_args",
           "same_size"]


def _fail(where, message):
    raise ValueError(f"{where}: {message}")


def _window_args(where, window, strides, pads):
    if len(window) != 2 or len(strides) != 2 or len(pads) != 4:
        _fail(where, f"expected a 2-D window, 2 strides and 4 pads, got {tuple(window)}, {tuple(strides)}, "
                     f"{tuple(pads)}")
    if min(window) < 1 or min(strides) < 1 or min(pads) < 0:
        _fail(where, f"window {tuple(window)} and strides {tuple(strides)} must be positive, pads {tuple(pads)} "
                     "non-negative")


def conv_args(where, x, kernel, bias, strides, pads):
    """x (N, H, W, C), kernel (KH, KW, C, F), bias (F,) or None; returns (OH, OW)."""
    ks = np.shape(kernel)
    if np.ndim(x) != 4 or len(ks) != 4 or ks[2] != np.shape(x)[3]:
        _fail(where, f"x must be (N, H, W, C) and the kernel (KH, KW, C, F), got {np.shape(x)} and {ks}")
    if bias is not None and np.shape(bias) != (ks[3],):
        _fail(where, f"bias must have shape ({ks[3]},), got {np.shape(bias)}")
    _window_args(where, ks[:2], strides, pads)
    return padded_output_hw(np.shape(x), ks[:2], strides, pads)


def conv_grad_args(where, dy, x, kernel, strides, pads):
    """As :func:`conv_args`, and dy (N, OH, OW, F) of the forward's output shape."""
    oh, ow = conv_args(where, x, kernel, None, strides, pads)
    want = (np.shape(x)[0], max(oh, 0), max(ow, 0), np.shape(kernel)[3])
    if np.shape(dy) != want:
        _fail(where, f"dy has shape {np.shape(dy)}, the forward's output has {want}")


def dense_args(where, x, kernel, bias):
    """x (N, in), kernel (in, out), bias (out,) or None."""
    ks = np.shape(kernel)
    if np.ndim(x) != 2 or len(ks) != 2 or ks[0] != np.shape(x)[1]:
        _fail(where, f"x must be (N, in) and the kernel (in, out), got {np.shape(x)} and {ks}")
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
    if np.ndim(x) != 4:
        _fail(where, f"x must be (N, H, W, C), got {np.shape(x)}")
    _window_args(where, pool_size, strides, pads)
    return padded_output_hw(np.shape(x), pool_size, strides, pads)


def pool_grad_args(where, dy, argmax, x_shape, pool_size, strides, pads):
    """dy and argmax (N, OH, OW, C) of the forward's output shape for an input of ``x_shape``."""
    if len(x_shape) != 4:
        _fail(where, f"x_shape must be (N, H, W, C), got {tuple(x_shape)}")
    _window_args(where, pool_size, strides, pads)
    oh, ow = padded_output_hw(x_shape, pool_size, strides, pads)
    want = (x_shape[0], max(oh, 0), max(ow, 0), x_shape[3])
    if np.shape(dy) != want or np.shape(argmax) != want:
        _fail(where, f"dy {np.shape(dy)} and argmax {np.shape(argmax)} must have the forward's output shape {want}")


def same_size(where, **arrays):
    """Arrays that are walked element for element together must have one shape."""
    shapes = {name: np.shape(a) for name, a in arrays.items()}
    if len(set(shapes.values())) > 1:
        _fail(where, "shapes differ: " + ", ".join(f"{name} {s}" for name, s in shapes.items()))
