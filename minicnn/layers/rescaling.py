"""Rescaling: y = x * scale + offset (Keras's preprocessing layer, e.g. scale=1/255)."""

from __future__ import annotations

import math

import numpy as np

from . import keras_options as ko
from .base import Layer


class Rescaling(Layer):
    """Multiply every value by ``scale`` and add ``offset``; any input shape, no weights.

    Backward: dx = dy * scale. Nothing is cached. As in Keras (TensorFlow backend, floatx
    float32), ``scale`` and ``offset`` are rounded to float32 before they are applied, also in a
    float64 model: Keras casts the Python floats through a float32 tensor.
    """

    kind = "rescaling"
    backward_needs_forward = False

    def __init__(self, scale, offset=0.0, name=None, input_shape=None):
        super().__init__(name=name, input_shape=input_shape)
        for what, v in (("scale", scale), ("offset", offset)):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                raise ValueError(f"Rescaling {what} must be a finite number, got {v!r}")
        self.scale, self.offset = float(scale), float(offset)

    def forward(self, x, training=False):
        self._check_input(x)
        t = x.dtype.type
        return x * t(np.float32(self.scale)) + t(np.float32(self.offset))

    def backward(self, dy):
        return dy * dy.dtype.type(np.float32(self.scale))

    def flops(self, backward=False):
        return math.prod(self.output_shape) * (1 if backward else 2)

    def describe(self):
        return f"x * {self.scale:g} + {self.offset:g}"

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}

    def keras_config(self):
        return {"scale": self.scale, "offset": self.offset}

    @classmethod
    def from_keras_config(cls, cfg, where):
        ko.check_options(cfg, {"scale", "offset"}, {}, where)
        return cls(cfg["scale"], cfg.get("offset", 0.0), name=cfg.get("name"))
