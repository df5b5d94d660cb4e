"""MaxPool2D with TensorFlow's padding and tie rule."""

from __future__ import annotations

from ..kernels import get_backend
from ..kernels.shapes import normalize_padding, normalize_pair
from .base import Layer


class MaxPool2D(Layer):
    """Max over (PH, PW) windows: (N, H, W, C) -> (N, OH, OW, C).

    ``strides`` defaults to ``pool_size`` (Keras). Padded cells count as -inf. In backward the
    whole gradient of a window goes to its *first* maximum in row-major window order, as in
    TensorFlow: after ReLU, MNIST activations have many all-zero windows, so ties are common.
    Cache for backward: the window-local argmax of every output cell.
    """

    kind = "max_pooling2d"

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", name=None, input_shape=None):
        super().__init__(name=name, input_shape=input_shape)
        self.pool_size = normalize_pair(pool_size, "MaxPool2D pool_size")
        self.strides = normalize_pair(strides if strides is not None else self.pool_size, "MaxPool2D strides")
        self.padding = normalize_padding(padding)
        self.pads = None

    def compute_output_shape(self, input_shape):
        oh, ow = self._window_output(input_shape, self.pool_size, "pool window")
        return (oh, ow, input_shape[2])

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


MaxPooling2D = MaxPool2D
