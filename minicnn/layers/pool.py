"""MaxPool2D with TensorFlow's padding and tie rule."""

from __future__ import annotations

import numpy as np

from ..kernels import get_backend
from ..kernels.numpy_backend import pad_nhwc, windows
from ..kernels.shapes import normalize_padding, normalize_pair
from . import keras_options as ko
from .base import Layer


class MaxPool2D(Layer):
    """Max over (PH, PW) windows: (N, H, W, C) -> (N, OH, OW, C).

    ``strides`` defaults to ``pool_size`` (Keras). Padded cells count as -inf. In backward the
    whole gradient of a window goes to its *first* maximum in row-major window order, as in
    TensorFlow: after ReLU, MNIST activations have many all-zero windows, so ties are common.
    Cache for backward: the window-local argmax of every output cell.
    """

    kind = "max_pooling2d"
    keras_class = "MaxPooling2D"
    keras_aliases = ("MaxPool2D",)

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", name=None, input_shape=None):
        super().__init__(name=name, input_shape=input_shape)
        self.pool_size = normalize_pair(pool_size, "MaxPool2D pool_size")
        self.strides = normalize_pair(strides if strides is not None else self.pool_size, "MaxPool2D strides")
        self.padding = normalize_padding(padding)
        self.pads = None

    def compute_output_shape(self, input_shape):
        oh, ow = self._window_output(input_shape, self.pool_size, "pool window")
        return (oh, ow, input_shape[2])

    def flops(self, backward=False):
        oh, ow, c = self.output_shape
        # comparisons (forward) and one routed value per window (backward)
        return oh * ow * c * (1 if backward else self.pool_size[0] * self.pool_size[1] - 1)

    def describe(self):
        return f"pool {self.pool_size[0]}x{self.pool_size[1]}"

    def window_gaps(self, x: np.ndarray) -> np.ndarray:
        """For every window and channel of ``x`` (N, H, W, C), taken exactly as the layer takes
        them: the largest cell minus the second largest (0 where the maximum is tied; padded
        cells are -inf and never count; inf for a one-cell window). Shape (N, OH, OW, C)."""
        x = np.asarray(x, dtype=np.float64)
        w = windows(pad_nhwc(x, self.pads, value=-np.inf), self.pool_size, self.strides,
                    self.compute_output_shape(x.shape[1:])[:2])
        w = w.reshape(*w.shape[:3], -1, w.shape[-1])  # (N, OH, OW, PH*PW, C)
        if w.shape[3] < 2:
            return np.full((*w.shape[:3], w.shape[-1]), np.inf)
        top2 = -np.sort(-w, axis=3)[:, :, :, :2, :]
        with np.errstate(invalid="ignore"):
            return top2[:, :, :, 0, :] - top2[:, :, :, 1, :]

    def tie_share(self, x: np.ndarray) -> float:
        """Share of (window, channel) pairs over ``x`` (N, H, W, C) whose maximum occurs more than
        once: where TensorFlow's rule (the first maximum takes the gradient) decides."""
        return float((self.window_gaps(x) == 0).mean())

    def forward(self, x, training=False):
        self._check_input(x)
        y, argmax = get_backend().maxpool2d_forward(x, self.pool_size, self.strides, self.pads)
        self._cache = {"argmax": argmax, "x_shape": x.shape} if training else {}
        self.last_argmax = argmax  # kept for inspection (share of ties)
        return y

    def backward(self, dy):
        return get_backend().maxpool2d_backward(dy, self._cached("argmax"), self._cached("x_shape"),
                                                self.pool_size, self.strides, self.pads)

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size), "strides": list(self.strides),
                "padding": self.padding}

    def keras_config(self):
        return {"pool_size": list(self.pool_size), "padding": self.padding, "strides": list(self.strides),
                "data_format": "channels_last"}

    @classmethod
    def from_keras_config(cls, cfg, where):
        ko.check_options(cfg, {"pool_size", "strides", "padding"}, dict(ko.CHANNELS_LAST), where)
        strides = cfg.get("strides")
        return cls(ko.pair(cfg.get("pool_size", 2), where, "pool_size"),
                   strides=None if strides is None else ko.pair(strides, where, "strides"),
                   padding=ko.padding(cfg.get("padding", "valid"), where), name=cfg.get("name"))


MaxPooling2D = MaxPool2D
