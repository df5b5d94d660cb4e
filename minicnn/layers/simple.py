"""Flatten and Dropout (the activation layers are in :mod:`minicnn.layers.activation`)."""

from __future__ import annotations

import math

import numpy as np

from . import keras_options as ko
from .base import Layer


class Flatten(Layer):
    """(N, H, W, C) -> (N, H*W*C) in H, W, C order (Keras channels_last), so Dense rows match Keras."""

    kind = "flatten"
    backward_needs_forward = False  # a reshape to its known input shape

    def keras_config(self):
        return {"data_format": "channels_last"}

    @classmethod
    def from_keras_config(cls, cfg, where):
        ko.check_options(cfg, set(), dict(ko.CHANNELS_LAST), where)
        return cls(name=cfg.get("name"))

    def compute_output_shape(self, input_shape):
        return (math.prod(input_shape),)

    def forward(self, x, training=False):
        self._check_input(x)
        return x.reshape(x.shape[0], self.output_shape[0])  # explicit size: works for 0 samples too

    def backward(self, dy):
        return dy.reshape((dy.shape[0], *self.input_shape))


class Dropout(Layer):
    """Inverted dropout: in training, zero each unit with probability ``rate`` and scale the rest
    by 1 / (1 - rate); in inference, the identity. The mask comes from the model's training RNG
    (seeded, saved in checkpoints). Cache: the scaled mask.
    """

    kind = "dropout"

    def describe(self):
        return f"rate {self.rate:g} (off at inference)"

    def keras_config(self):
        return {"rate": self.rate, "seed": None, "noise_shape": None}

    @classmethod
    def from_keras_config(cls, cfg, where):
        ko.check_options(cfg, {"rate"}, {"noise_shape": None}, where)
        return cls(ko.rate(cfg.get("rate"), where), name=cfg.get("name"))

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
