"""GlobalAveragePooling2D and GlobalMaxPooling2D: one value per channel over the whole map."""

from __future__ import annotations

from ..errors import KerasConfigError
from ..kernels import get_backend
from . import keras_options as ko
from .base import Layer


class _GlobalPooling2D(Layer):
    """(N, H, W, C) -> (N, C), or (N, 1, 1, C) with ``keepdims`` (Keras 3's BaseGlobalPooling,
    keras/src/layers/pooling/base_global_pooling.py; its config: data_format and keepdims)."""

    #: 'mean' or 'max', for describe()
    reduction = ""

    def __init__(self, keepdims=False, name=None, input_shape=None):
        super().__init__(name=name, input_shape=input_shape)
        if not isinstance(keepdims, bool):
            raise ValueError(f"{type(self).__name__} keepdims must be True or False, got {keepdims!r}")
        self.keepdims = keepdims

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            self._fail(f"expects inputs of shape (batch, height, width, channels), "
                       f"received (batch, {', '.join(map(str, input_shape))})")
        return (1, 1, input_shape[2]) if self.keepdims else (input_shape[2],)

    def _flat(self, dy):
        """dy as (N, C) whatever ``keepdims``."""
        return dy.reshape(dy.shape[0], self.input_shape[2])

    def _shaped(self, y):
        """A (N, C) result in the layer's output shape."""
        return y.reshape((y.shape[0], *self.output_shape))

    def describe(self):
        h, w, _ = self.input_shape
        return f"{self.reduction} over {h}x{w}" + (" keepdims" if self.keepdims else "")

    def get_config(self):
        return {**super().get_config(), "keepdims": self.keepdims}

    def keras_config(self):
        return {"data_format": "channels_last", "keepdims": self.keepdims}

    @classmethod
    def from_keras_config(cls, cfg, where):
        ko.check_options(cfg, {"keepdims"}, dict(ko.CHANNELS_LAST), where)
        keepdims = cfg.get("keepdims", False)  # tf.keras before 2.6 wrote no keepdims
        if not isinstance(keepdims, bool):
            raise KerasConfigError(f"{where}: option keepdims={keepdims!r} must be true or false")
        return cls(keepdims=keepdims, name=cfg.get("name"))


class GlobalAveragePooling2D(_GlobalPooling2D):
    """The mean of each channel over H and W (Keras: ``ops.mean(x, axis=[1, 2])``,
    keras/src/layers/pooling/global_average_pooling2d.py). Backward: dy / (H*W) to every cell
    (TensorFlow's MeanGrad). Nothing is cached."""

    kind = "global_average_pooling2d"
    keras_aliases = ("GlobalAvgPool2D",)
    backward_needs_forward = False
    reduction = "mean"

    def flops(self, backward=False):
        h, w, c = self.input_shape
        # forward: H*W - 1 additions and one division per channel; backward: one division per cell
        return h * w * c

    def forward(self, x, training=False):
        self._check_input(x)
        return self._shaped(get_backend().global_avgpool2d_forward(x))

    def backward(self, dy):
        return get_backend().global_avgpool2d_backward(self._flat(dy), (dy.shape[0], *self.input_shape))


class GlobalMaxPooling2D(_GlobalPooling2D):
    """The largest value of each channel over H and W (Keras: ``ops.max(x, axis=[1, 2])``,
    keras/src/layers/pooling/global_max_pooling2d.py, i.e. ``tf.reduce_max``).

    Backward follows TensorFlow's gradient of reduce_max (``_MinOrMaxGrad`` in
    tensorflow/python/ops/math_grad.py): when the maximum occurs k times, each of the k cells
    gets dy / k. (MaxPool2D's windows differ: TensorFlow's MaxPoolGrad gives a tied window's
    whole gradient to its first maximum.) Cache: the input and the output.
    """

    kind = "global_max_pooling2d"
    keras_aliases = ("GlobalMaxPool2D",)
    reduction = "max"

    def flops(self, backward=False):
        h, w, c = self.input_shape
        # forward: H*W - 1 comparisons per channel; backward: one comparison with the maximum and
        # one scaled share per cell
        return (2 * h * w if backward else h * w - 1) * c

    def forward(self, x, training=False):
        self._check_input(x)
        y = get_backend().global_maxpool2d_forward(x)
        self._cache = {"x": x, "y": y} if training else {}
        return self._shaped(y)

    def backward(self, dy):
        x, y = self._cached("x"), self._cached("y")
        return get_backend().global_maxpool2d_backward(self._flat(dy), x, y)


GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D
