"""Shape-only and element-wise layers: Flatten, ReLU, Softmax, Activation, Dropout."""

from __future__ import annotations

import math

import numpy as np

from .. import activations
from ..kernels import get_backend
from .base import Layer


class Flatten(Layer):
    """(N, H, W, C) -> (N, H*W*C) in H, W, C order (Keras channels_last), so Dense rows match Keras."""

    kind = "flatten"

    def compute_output_shape(self, input_shape):
        return (math.prod(input_shape),)

    def forward(self, x, training=False):
        self._check_input(x)
        return x.reshape(x.shape[0], self.output_shape[0])  # explicit size: works for 0 samples too

    def backward(self, dy):
        return dy.reshape((dy.shape[0], *self.input_shape))


class ReLU(Layer):
    """max(x, 0); the gradient at exactly 0 is 0 (TensorFlow's ReluGrad). Cache: the output."""

    kind = "re_lu"

    def forward(self, x, training=False):
        self._check_input(x)
        y = get_backend().relu_forward(x)
        self._cache = {"y": y} if training else {}
        return y

    def backward(self, dy):
        return get_backend().relu_backward(dy, self._cached("y"))


class Softmax(Layer):
    """Softmax over the last axis. Cache: the output (and the logits, for fused cross-entropy)."""

    kind = "softmax"
    ends_in_softmax = True

    def forward(self, x, training=False):
        self._check_input(x)
        y = activations.softmax(x)
        self.logits = x
        self._cache = {"y": y} if training else {}
        return y

    def backward(self, dy):
        return activations.softmax_backward(dy, self._cached("y"))

    def logits_backward(self, dz):
        return dz


def Activation(activation, name=None, input_shape=None):
    """Keras's ``Activation('relu')`` / ``Activation('softmax')`` as the matching layer."""
    act = activations.normalize(activation)
    if act == "relu":
        return ReLU(name=name, input_shape=input_shape)
    if act == "softmax":
        return Softmax(name=name, input_shape=input_shape)
    raise ValueError(f"Activation layer needs 'relu' or 'softmax', got {activation!r}")


class Dropout(Layer):
    """Inverted dropout: in training, zero each unit with probability ``rate`` and scale the rest
    by 1 / (1 - rate); in inference, the identity. The mask comes from the model's training RNG
    (seeded, saved in checkpoints). Cache: the scaled mask.
    """

    kind = "dropout"

    def __init__(self, rate, seed=None, name=None, input_shape=None):
        super().__init__(name=name, input_shape=input_shape)
        if not (isinstance(rate, (int, float)) and 0.0 <= rate < 1.0):
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.rng = np.random.default_rng(seed)  # replaced by the model's training RNG

    def forward(self, x, training=False):
        self._check_input(x)
        if not training or self.rate == 0.0:
            self._cache = {"mask": None} if training else {}
            return x
        keep = self.rng.random(x.shape, dtype=np.float64 if x.dtype == np.float64 else np.float32) >= self.rate
        mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - self.rate))
        self._cache = {"mask": mask}
        return x * mask

    def backward(self, dy):
        mask = self._cached("mask")
        return dy if mask is None else dy * mask

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}
