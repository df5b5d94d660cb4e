"""AveragePooling2D with TensorFlow's 'same' rule: padded cells are not counted."""

from __future__ import annotations

from ..kernels import get_backend
from ..kernels.numpy_pooling import avgpool2d_counts
from ..kernels.shapes import normalize_padding, normalize_pair
from . import keras_options as ko
from .base import Layer


class AveragePooling2D(Layer):
    """Mean over (PH, PW) windows: (N, H, W, C) -> (N, OH, OW, C).

    As Keras 3 (keras/src/layers/pooling/base_pooling.py): ``strides`` defaults to
    ``pool_size``; output sizes and 'same' pads are those of MaxPool2D (extra row/column at the
    bottom/right). Where 'same' padding reaches into a window, the mean is over the window's
    *real* cells only (TensorFlow's avg_pool, which Keras's TensorFlow backend calls:
    keras/src/backend/tensorflow/nn.py ``average_pool``): a 2x2 window with one real row averages
    2 values, not 4 with two zeros. Backward gives each real cell of a window ``dy / count``
    (TensorFlow's AvgPoolGrad); overlapping windows add up. Nothing is cached.

    ``pool_size`` is required in Keras 3's AveragePooling2D; minicnn keeps tf.keras 2's default
    of (2, 2), which changes no model that Keras can build.
    """

    kind = "average_pooling2d"
    keras_aliases = ("AvgPool2D",)
    backward_needs_forward = False  # the counts follow from the shapes

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", name=None, input_shape=None):
        super().__init__(name=name, input_shape=input_shape)
        self.pool_size = normalize_pair(pool_size, "AveragePooling2D pool_size")
        self.strides = normalize_pair(strides if strides is not None else self.pool_size,
                                      "AveragePooling2D strides")
        self.padding = normalize_padding(padding)
        self.pads = None

    def compute_output_shape(self, input_shape):
        oh, ow = self._window_output(input_shape, self.pool_size, "pool window")
        return (oh, ow, input_shape[2])

    def _real_cells(self) -> int:
        """Real input cells summed over all windows of one channel (the sum of the counts)."""
        return int(avgpool2d_counts((1, *self.input_shape), self.pool_size, self.strides, self.pads).sum())

    def flops(self, backward=False):
        oh, ow, c = self.output_shape
        # forward: count - 1 additions and one division per window; backward: one division per
        # window and one addition per real cell of it
        return c * (self._real_cells() + (oh * ow if backward else 0))

    def describe(self):
        text = f"avg {self.pool_size[0]}x{self.pool_size[1]}"
        if self.strides != self.pool_size:
            text += f" stride {self.strides[0]}x{self.strides[1]}"
        return text + (" same" if self.padding == "same" else "")

    def forward(self, x, training=False):
        self._check_input(x)
        return get_backend().avgpool2d_forward(x, self.pool_size, self.strides, self.pads)

    def backward(self, dy):
        x_shape = (dy.shape[0], *self.input_shape)
        return get_backend().avgpool2d_backward(dy, x_shape, self.pool_size, self.strides, self.pads)

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


AvgPool2D = AveragePooling2D
