"""Activations usable as a layer's ``activation=`` argument.

ReLU is applied by the kernel backend (and fused into conv/dense there); softmax is small and
lives here. Softmax is taken over the last axis, as in Keras.
"""

from __future__ import annotations

import numpy as np

ACTIVATIONS = (None, "linear", "relu", "softmax")


def supported_text() -> str:
    return "linear (None), " + ", ".join(a for a in ACTIVATIONS if a not in (None, "linear"))


def normalize(name):
    """The canonical name of an activation (None for linear); ValueError for an unknown one."""
    if name in (None, "linear"):
        return None
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {supported_text()}")
    return name


def softmax(z: np.ndarray) -> np.ndarray:
    """exp(z - max) / sum(exp(z - max)) over the last axis; dtype kept."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    return e


def log_softmax(z: np.ndarray) -> np.ndarray:
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax_backward(dp: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Vector-Jacobian product of softmax: dz = p * (dp - sum(dp * p))."""
    return p * (dp - (dp * p).sum(axis=-1, keepdims=True))
