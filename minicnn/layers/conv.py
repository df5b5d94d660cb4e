"""Conv2D: NHWC input, HWIO kernel, TensorFlow's 'valid'/'same' padding."""

from __future__ import annotations

import math

from .. import initializers
from ..kernels import get_backend
from ..kernels.shapes import normalize_padding, normalize_pair
from . import keras_options as ko
from .base import ActivatedLayer


class Conv2D(ActivatedLayer):
    """2-D convolution (cross-correlation, as in every deep-learning framework).

    Shapes: input (N, H, W, C) -> output (N, OH, OW, filters); ``kernel`` (KH, KW, C, filters),
    ``bias`` (filters,). OH = floor((H - KH) / SH) + 1 for 'valid', ceil(H / SH) for 'same'
    (see :mod:`minicnn.kernels.shapes`).

    ``dilation_rate`` (DH, DW) spreads the taps: tap (i, j) reads the input i * DH rows and
    j * DW columns into its window, which spans (KH - 1) * DH + 1 rows (that span replaces KH
    above). As Keras (keras/src/layers/convolutional/base_conv.py), a dilation above 1 cannot be
    combined with a stride above 1.

    Cache for backward: the input ``x``, what the activation's backward needs (the output for
    relu's mask, or the pre-activation) and whatever the backend keeps (the im2col matrix).
    """

    kind = "conv2d"
    weight_names = ("kernel", "bias")
    #: set by the model: the first layer needs no input gradient
    need_dx = True

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", activation=None,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 dilation_rate=(1, 1), kernel_regularizer=None, bias_regularizer=None, name=None,
                 input_shape=None):
        super().__init__(activation=activation, name=name, input_shape=input_shape,
                         kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer)
        if not isinstance(filters, int) or isinstance(filters, bool) or filters < 1:
            raise ValueError(f"Conv2D filters must be a positive int, got {filters!r}")
        self.filters = filters
        self.kernel_size = normalize_pair(kernel_size, "Conv2D kernel_size")
        self.strides = normalize_pair(strides, "Conv2D strides")
        self.padding = normalize_padding(padding)
        self.dilation_rate = normalize_pair(dilation_rate, "Conv2D dilation_rate")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:  # Keras's own check and message
            raise ValueError(f"Conv2D: `strides > 1` not supported in conjunction with `dilation_rate > 1`. "
                             f"Received: strides={self.strides} and dilation_rate={self.dilation_rate}")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        initializers.get(kernel_initializer), initializers.get(bias_initializer)  # validate now
        self.pads = None

    def compute_output_shape(self, input_shape):
        oh, ow = self._window_output(input_shape, self.kernel_size, "kernel", self.dilation_rate)
        return (oh, ow, self.filters)

    def weight_shapes(self, input_shape):
        shapes = {"kernel": (*self.kernel_size, input_shape[-1], self.filters)}
        if self.use_bias:
            shapes["bias"] = (self.filters,)
        return shapes

    def _initializer(self, weight):
        return self.kernel_initializer if weight == "kernel" else self.bias_initializer

    def flops(self, backward=False):
        oh, ow, f = self.output_shape
        macs = oh * ow * f * math.prod(self.kernel_size) * self.input_shape[-1]
        if not backward:
            return 2 * macs
        return 2 * macs * (2 if self.need_dx else 1)  # dkernel, and dx unless the first layer

    def describe(self):
        dilated = "" if self.dilation_rate == (1, 1) else f" dilation {self.dilation_rate[0]}x{self.dilation_rate[1]}"
        return f"{self.filters} filters {self.kernel_size[0]}x{self.kernel_size[1]}{dilated}"

    def forward(self, x, training=False):
        self._check_input(x)
        self._cache = {"x": x} if training else {}
        z = get_backend().conv2d_forward(
            x, self.params["kernel"], self.params.get("bias"), self.strides, self.pads,
            relu=self.activation == "relu", cache=self._cache if training else None, dilation=self.dilation_rate)
        return self._finish_forward(z, training)

    def backward(self, dy):
        if self.activation == "relu":  # relu's gradient goes to the kernel, which fuses it
            return self._linear_backward(dy, relu_y=self._cached("y"))
        return super().backward(dy)

    def _linear_backward(self, dz, relu_y=None):
        dx, dk, db = get_backend().conv2d_backward(
            dz, self._cached("x"), self.params["kernel"], self.strides, self.pads,
            need_dx=self.need_dx, cache=self._cache, relu_y=relu_y, dilation=self.dilation_rate)
        self.grads["kernel"] = dk
        if self.use_bias:
            self.grads["bias"] = db
        return dx

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding, "use_bias": self.use_bias,
                "kernel_initializer": self.kernel_initializer, "bias_initializer": self.bias_initializer,
                "dilation_rate": list(self.dilation_rate)}

    def keras_config(self):
        return {"filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding, "data_format": "channels_last",
                "dilation_rate": list(self.dilation_rate), "groups": 1, **super().keras_config(), "use_bias": self.use_bias,
                "kernel_initializer": ko.initializer_spec(self.kernel_initializer),
                "bias_initializer": ko.initializer_spec(self.bias_initializer),
                **self.regularizer_config(), "activity_regularizer": None,
                "kernel_constraint": None, "bias_constraint": None}

    @classmethod
    def from_keras_config(cls, cfg, where):
        ko.check_options(cfg, {"filters", "kernel_size", "strides", "padding", "activation", "use_bias",
                               "dilation_rate", *cls.REGULARIZER_OPTIONS},
                         {**ko.WEIGHT_OPTIONS, **ko.CHANNELS_LAST, "groups": 1}, where)
        # strides > 1 with dilation > 1: refused by the constructor, as Keras does
        return cls(cfg["filters"], ko.pair(cfg["kernel_size"], where, "kernel_size"),
                   strides=ko.pair(cfg.get("strides", 1), where, "strides"),
                   dilation_rate=ko.pair(cfg.get("dilation_rate", 1), where, "dilation_rate"),
                   padding=ko.padding(cfg.get("padding", "valid"), where),
                   activation=ko.activation(cfg.get("activation"), where),
                   use_bias=bool(cfg.get("use_bias", True)),
                   kernel_initializer=ko.initializer(cfg.get("kernel_initializer"), "glorot_uniform"),
                   bias_initializer=ko.initializer(cfg.get("bias_initializer"), "zeros"),
                   **cls.regularizers_from_keras(cfg, where), name=cfg.get("name"))
