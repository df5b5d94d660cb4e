"""DepthwiseConv2D: one small filter bank per input channel (MobileNet's spatial step).

Keras 3 semantics, from keras/src/layers/convolutional/depthwise_conv2d.py and
base_depthwise_conv.py (checked against TensorFlow 2.21 / Keras 3.15): weights ``kernel``
(KH, KW, C, depth_multiplier) and ``bias`` (C * depth_multiplier,); output channel
``c * depth_multiplier + m`` comes from input channel ``c`` and ``kernel[:, :, c, m]``. Unlike
Conv2D, Keras accepts strides > 1 together with dilation > 1 here (its TensorFlow backend runs the
dilated convolution at stride 1 and subsamples, keras/src/backend/tensorflow/nn.py), which is the
same as a strided dilated window; minicnn computes it directly.
"""

from __future__ import annotations

from .. import initializers
from ..kernels import get_backend
from ..kernels.shapes import normalize_padding, normalize_pair
from . import keras_options as ko
from .base import ActivatedLayer

#: options DepthwiseConv2D has besides the Conv2D-like ones, with the only values minicnn supports
DEPTHWISE_OPTIONS = {"depthwise_regularizer": None, "depthwise_constraint": None}


def positive_int(value, what):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return value


class DepthwiseConv2D(ActivatedLayer):
    """Depthwise 2-D convolution: each input channel convolved with its own ``depth_multiplier``
    filters, no mixing across channels.

    Shapes: input (N, H, W, C) -> output (N, OH, OW, C * depth_multiplier), OH and OW as Conv2D's
    (with ``dilation_rate``, the window spans (KH - 1) * DH + 1 rows).

    Cache for backward: the input ``x``, what the activation's backward needs (relu's mask: the output) and the padded input.
    """

    kind = "depthwise_conv2d"
    weight_names = ("kernel", "bias")
    #: Keras 2 files name the kernel ``depthwise_kernel``; Keras 3 calls it ``kernel``
    keras_weight_aliases = {"depthwise_kernel": "kernel"}
    #: Keras's regularizer options (the kernel's is depthwise_regularizer)
    REGULARIZER_OPTIONS = {"depthwise_regularizer": "kernel", "bias_regularizer": "bias"}
    #: set by the model: the first layer needs no input gradient
    need_dx = True

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1,
                 dilation_rate=(1, 1), activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, bias_regularizer=None, name=None, input_shape=None):
        super().__init__(activation=activation, name=name, input_shape=input_shape,
                         depthwise_regularizer=depthwise_regularizer, bias_regularizer=bias_regularizer)
        self.kernel_size = normalize_pair(kernel_size, "DepthwiseConv2D kernel_size")
        self.strides = normalize_pair(strides, "DepthwiseConv2D strides")
        self.padding = normalize_padding(padding)
        self.depth_multiplier = positive_int(depth_multiplier, "DepthwiseConv2D depth_multiplier")
        self.dilation_rate = normalize_pair(dilation_rate, "DepthwiseConv2D dilation_rate")
        self.use_bias = bool(use_bias)
        self.depthwise_initializer = depthwise_initializer
        self.bias_initializer = bias_initializer
        initializers.get(depthwise_initializer), initializers.get(bias_initializer)  # validate now
        self.pads = None

    def compute_output_shape(self, input_shape):
        oh, ow = self._window_output(input_shape, self.kernel_size, "kernel", self.dilation_rate)
        return (oh, ow, input_shape[-1] * self.depth_multiplier)

    def weight_shapes(self, input_shape):
        shapes = {"kernel": (*self.kernel_size, input_shape[-1], self.depth_multiplier)}
        if self.use_bias:
            shapes["bias"] = (input_shape[-1] * self.depth_multiplier,)
        return shapes

    def _initializer(self, weight):
        return self.depthwise_initializer if weight == "kernel" else self.bias_initializer

    def flops(self, backward=False):
        oh, ow, channels_out = self.output_shape
        macs = oh * ow * channels_out * self.kernel_size[0] * self.kernel_size[1]
        if not backward:
            return 2 * macs
        return 2 * macs * (2 if self.need_dx else 1)  # dkernel, and dx unless the first layer

    def describe(self):
        k, d = self.kernel_size, self.dilation_rate
        dilated = "" if d == (1, 1) else f" dilation {d[0]}x{d[1]}"
        return f"depthwise {k[0]}x{k[1]} x{self.depth_multiplier}{dilated}"

    def forward(self, x, training=False):
        self._check_input(x)
        self._cache = {"x": x} if training else {}
        z = get_backend().depthwise_conv2d_forward(
            x, self.params["kernel"], self.params.get("bias"), self.strides, self.pads,
            relu=self.activation == "relu", cache=self._cache if training else None,
            dilation=self.dilation_rate)
        return self._finish_forward(z, training)

    def backward(self, dy):
        if self.activation == "relu":  # relu's gradient goes to the kernel, which fuses it
            return self._linear_backward(dy, relu_y=self._cached("y"))
        return super().backward(dy)

    def _linear_backward(self, dz, relu_y=None):
        dx, dk, db = get_backend().depthwise_conv2d_backward(
            dz, self._cached("x"), self.params["kernel"], self.strides, self.pads,
            need_dx=self.need_dx, cache=self._cache, relu_y=relu_y, dilation=self.dilation_rate)
        self.grads["kernel"] = dk
        if self.use_bias:
            self.grads["bias"] = db
        return dx

    def get_config(self):
        return {**super().get_config(), "kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": self.padding, "depth_multiplier": self.depth_multiplier,
                "dilation_rate": list(self.dilation_rate), "use_bias": self.use_bias,
                "depthwise_initializer": self.depthwise_initializer, "bias_initializer": self.bias_initializer}

    def keras_config(self):
        # the keys and order of BaseDepthwiseConv.get_config (base_depthwise_conv.py)
        return {"depth_multiplier": self.depth_multiplier, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding, "data_format": "channels_last",
                "dilation_rate": list(self.dilation_rate), **super().keras_config(), "use_bias": self.use_bias,
                "depthwise_initializer": ko.initializer_spec(self.depthwise_initializer),
                "bias_initializer": ko.initializer_spec(self.bias_initializer),
                **self.regularizer_config(), "activity_regularizer": None,
                "depthwise_constraint": None, "bias_constraint": None}

    @classmethod
    def from_keras_config(cls, cfg, where):
        ko.check_options(cfg, {"kernel_size", "strides", "padding", "depth_multiplier", "dilation_rate",
                               "activation", "use_bias", "depthwise_initializer", *cls.REGULARIZER_OPTIONS},
                         {**ko.WEIGHT_OPTIONS, **DEPTHWISE_OPTIONS, **ko.CHANNELS_LAST}, where)
        return cls(ko.pair(cfg["kernel_size"], where, "kernel_size"),
                   strides=ko.pair(cfg.get("strides", 1), where, "strides"),
                   padding=ko.padding(cfg.get("padding", "valid"), where),
                   depth_multiplier=cfg.get("depth_multiplier", 1),  # the constructor checks it
                   dilation_rate=ko.pair(cfg.get("dilation_rate", 1), where, "dilation_rate"),
                   activation=ko.activation(cfg.get("activation"), where),
                   use_bias=bool(cfg.get("use_bias", True)),
                   depthwise_initializer=ko.initializer(cfg.get("depthwise_initializer"), "glorot_uniform"),
                   bias_initializer=ko.initializer(cfg.get("bias_initializer"), "zeros"),
                   **cls.regularizers_from_keras(cfg, where), name=cfg.get("name"))
