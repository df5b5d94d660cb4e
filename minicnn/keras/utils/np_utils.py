"""``keras.utils.to_categorical`` (also at its Keras 2 path, ``keras.utils.np_utils``)."""

from __future__ import annotations

import numpy as np


def to_categorical(x, num_classes=None):
    """One-hot encode integer labels exactly as Keras 3 does: float64, shape ``x.shape + (num_classes,)``
    (a trailing axis of 1 dropped), ``num_classes`` defaulting to ``max(x) + 1``."""
    x = np.array(x, dtype="int64")
    shape = x.shape
    if shape and shape[-1] == 1 and len(shape) > 1:
        shape = tuple(shape[:-1])
    x = x.reshape(-1)
    if not num_classes:
        num_classes = int(np.max(x)) + 1
    if x.size and (x.min() < 0 or x.max() >= num_classes):
        bad = int(np.flatnonzero((x < 0) | (x >= num_classes))[0])
        raise ValueError(f"label {x[bad]} at index {bad} is out of range [0, {num_classes})")
    out = np.zeros((x.shape[0], num_classes))
    out[np.arange(x.shape[0]), x] = 1
    return out.reshape(shape + (num_classes,))


__all__ = ["to_categorical"]
