"""Turning the loaders' ``uint8`` arrays into what a model takes: float NHWC images, one-hot labels."""

from __future__ import annotations

import numpy as np


def to_float_nhwc(x: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Scale ``uint8`` images to floats in [0, 1], with a channel axis.

    Parameters
    ----------
    x : numpy.ndarray
        (N, H, W) or (N, H, W, C) ``uint8``.
    dtype : floating dtype, default float32

    Returns
    -------
    numpy.ndarray
        (N, H, W, C) of ``dtype`` (C = 1 for (N, H, W) input), equal to ``x.astype(dtype) / 255``.
    """
    x = np.asarray(x)
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a floating type, got {dtype}")
    if x.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels 0..255, got dtype {x.dtype}")
    if x.ndim not in (3, 4):
        raise ValueError(f"expected (N, H, W) or (N, H, W, C) images, got shape {x.shape}")
    out = x[..., None].astype(dtype) if x.ndim == 3 else x.astype(dtype)
    np.divide(out, 255, out=out)  # in place: one float copy only
    return out


def one_hot(y, num_classes: int = 10, dtype=np.float32) -> np.ndarray:
    """One-hot encode integer labels.

    Parameters
    ----------
    y : array_like
        (N,) or (N, 1) integer labels in ``0..num_classes-1`` (floats are accepted when integral).
    num_classes : int, default 10
    dtype : dtype, default float32

    Returns
    -------
    numpy.ndarray
        (N, num_classes) of ``dtype``, 1 at each label's column, 0 elsewhere.

    Raises
    ------
    ValueError
        A label that is out of range or not an integer (the message names its index and value).
    """
    if (isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer))
            or num_classes < 1):
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"labels must have shape (N,) or (N, 1), got {y.shape}")
    if y.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(y)))
        if bad.size:
            raise ValueError(f"label {y[bad[0]].item()!r} at index {bad[0]} is not an integer")
    elif y.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    bad = np.flatnonzero((y < 0) | (y >= num_classes))
    if bad.size:
        raise ValueError(
            f"label {y[bad[0]].item()!r} at index {bad[0]} is outside 0..{num_classes - 1}")
    out = np.zeros((len(y), num_classes), dtype)
    out[np.arange(len(y)), y.astype(np.intp)] = 1
    return out
