"""SeparableConv2D: a depthwise convolution then a 1x1 ("pointwise") convolution, one layer.

Keras 3 semantics, from keras/src/layers/convolutional/separable_conv2d.py and
base_separable_conv.py (checked against TensorFlow 2.21 / Keras 3.15): weights, in this order,
``depthwise_kernel`` (KH, KW, C, depth_multiplier), ``pointwise_kernel``
(1, 1, C * depth_multiplier, filters) and ``bias`` (filters,). The strides, padding and dilation
belong to the depthwise step (``tf.nn.separable_conv2d``); the pointwise step is a plain 1x1
convolution, then the bias and the activation. There is no bias between the two steps.

The backend kernels are composed, not duplicated: ``depthwise_conv2d_*`` then ``conv2d_*`` with
the 1x1 kernel (which fuses the bias and relu).
"""

from __future__ import annotations

from .. import initializers
from ..kernels import get_backend
from ..kernels.shapes import normalize_padding, normalize_pair
from . import keras_options as ko
from .base import ActivatedLayer
from .depthwise import DEPTHWISE_OPTIONS, positive_int

_POINTWISE = ((1, 1), (0, 0, 0, 0))  # strides and pads of the 1x1 step


class SeparableConv2D(ActivatedLayer):
    """Depthwise-separable 2-D convolution.

    Shapes: input (N, H, W, C) -> depthwise (N, OH, OW, C * depth_multiplier) -> output
    (N, OH, OW, filters); OH and OW as Conv2D's (with ``dilation_rate``, the window spans
    (KH - 1) * DH + 1 rows).

    Cache for backward: the input ``x``, what the activation's backward needs (relu's mask: the output), the depthwise output
    and each kernel's own cache.
    """

    kind = "separable_conv2d"
    weight_names = ("depthwise_kernel", "pointwise_kernel", "bias")
    #: Keras's regularizer options, one per weight
    REGULARIZER_OPTIONS = {"depthwise_regularizer": "depthwise_kernel", "pointwise_regularizer": "pointwise_kernel",
                           "bias_regularizer": "bias"}
    #: set by the model: the first layer needs no input gradient
    need_dx = True

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", dilation_rate=(1, 1),
                 depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, pointwise_regularizer=None,
                 bias_regularizer=None, name=None, input_shape=None):
        super().__init__(activation=activation, name=name, input_shape=input_shape,
                         depthwise_regularizer=depthwise_regularizer, pointwise_regularizer=pointwise_regularizer,
                         bias_regularizer=bias_regularizer)
        self.filters = positive_int(filters, "SeparableConv2D filters")
        self.kernel_size = normalize_pair(kernel_size, "SeparableConv2D kernel_size")
        self.strides = normalize_pair(strides, "SeparableConv2D strides")
        self.padding = normalize_padding(padding)
        self.dilation_rate = normalize_pair(dilation_rate, "SeparableConv2D dilation_rate")
        self.depth_multiplier = positive_int(depth_multiplier, "SeparableConv2D depth_multiplier")
        self.use_bias = bool(use_bias)
        self.depthwise_initializer = depthwise_initializer
        self.pointwise_initializer = pointwise_initializer
        self.bias_initializer = bias_initializer
        for init in (depthwise_initializer, pointwise_initializer, bias_initializer):
            initializers.get(init)  # validate now
        self.pads = None

    def compute_output_shape(self, input_shape):
        oh, ow = self._window_output(input_shape, self.kernel_size, "kernel", self.dilation_rate)
        return (oh, ow, self.filters)

    def weight_shapes(self, input_shape):
        mid = input_shape[-1] * self.depth_multiplier
        shapes = {"depthwise_kernel": (*self.kernel_size, input_shape[-1], self.depth_multiplier),
                  "pointwise_kernel": (1, 1, mid, self.filters)}
        if self.use_bias:
            shapes["bias"] = (self.filters,)
        return shapes

    def _initializer(self, weight):
        return {"depthwise_kernel": self.depthwise_initializer,
                "pointwise_kernel": self.pointwise_initializer}.get(weight, self.bias_initializer)

    def flops(self, backward=False):
        oh, ow, f = self.output_shape
        mid = self.input_shape[-1] * self.depth_multiplier
        depthwise = oh * ow * mid * self.kernel_size[0] * self.kernel_size[1]
        pointwise = oh * ow * mid * f
        if not backward:
            return 2 * (depthwise + pointwise)
        # the pointwise step always needs its input gradient (the depthwise step's upstream);
        # the depthwise step needs dx unless the layer comes first
        return 2 * (2 * pointwise + depthwise * (2 if self.need_dx else 1))

    def describe(self):
        k, d = self.kernel_size, self.dilation_rate
        dilated = "" if d == (1, 1) else f" dilation {d[0]}x{d[1]}"
        return f"{self.filters} filters separable {k[0]}x{k[1]} x{self.depth_multiplier}{dilated}"

    def forward(self, x, training=False):
        self._check_input(x)
        backend = get_backend()
        caches = ({}, {}) if training else (None, None)
        mid = backend.depthwise_conv2d_forward(x, self.params["depthwise_kernel"], None, self.strides, self.pads,
                                               cache=caches[0], dilation=self.dilation_rate)
        z = backend.conv2d_forward(mid, self.params["pointwise_kernel"], self.params.get("bias"), *_POINTWISE,
                                   relu=self.activation == "relu", cache=caches[1])
        self._cache = {"x": x, "mid": mid, "depthwise": caches[0], "pointwise": caches[1]} if training else {}
        return self._finish_forward(z, training)

    def backward(self, dy):
        if self.activation == "relu":  # relu's gradient goes to the pointwise kernel, which fuses it
            return self._linear_backward(dy, relu_y=self._cached("y"))
        return super().backward(dy)

    def _linear_backward(self, dz, relu_y=None):
        backend = get_backend()
        dmid, dpk, db = backend.conv2d_backward(dz, self._cached("mid"), self.params["pointwise_kernel"],
                                                *_POINTWISE, need_dx=True, cache=self._cache["pointwise"],
                                                relu_y=relu_y)
        dx, ddk, _ = backend.depthwise_conv2d_backward(dmid, self._cached("x"), self.params["depthwise_kernel"],
                                                       self.strides, self.pads, need_dx=self.need_dx,
                                                       cache=self._cache["depthwise"], dilation=self.dilation_rate)
        self.grads["depthwise_kernel"] = ddk
        self.grads["pointwise_kernel"] = dpk
        if self.use_bias:
            self.grads["bias"] = db
        return dx

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding,
                "dilation_rate": list(self.dilation_rate), "depth_multiplier": self.depth_multiplier,
                "use_bias": self.use_bias, "depthwise_initializer": self.depthwise_initializer,
                "pointwise_initializer": self.pointwise_initializer, "bias_initializer": self.bias_initializer}

    def keras_config(self):
        # the keys and order of BaseSeparableConv.get_config (base_separable_conv.py)
        return {"depth_multiplier": self.depth_multiplier, "filters": self.filters,
                "kernel_size": list(self.kernel_size), "strides": list(self.strides), "padding": self.padding,
                "data_format": "channels_last", "dilation_rate": list(self.dilation_rate),
                **super().keras_config(), "use_bias": self.use_bias,
                "depthwise_initializer": ko.initializer_spec(self.depthwise_initializer),
                "pointwise_initializer": ko.initializer_spec(self.pointwise_initializer),
                "bias_initializer": ko.initializer_spec(self.bias_initializer),
                **self.regularizer_config(), "activity_regularizer": None, "depthwise_constraint": None, "pointwise_constraint": None,
                "bias_constraint": None}

    @classmethod
    def from_keras_config(cls, cfg, where):
        ko.check_options(cfg, {"filters", "kernel_size", "strides", "padding", "dilation_rate", "depth_multiplier",
                               "activation", "use_bias", "depthwise_initializer", "pointwise_initializer",
                               *cls.REGULARIZER_OPTIONS},
                         {**ko.WEIGHT_OPTIONS, **DEPTHWISE_OPTIONS, **ko.CHANNELS_LAST,
                          "pointwise_regularizer": None, "pointwise_constraint": None}, where)
        return cls(cfg["filters"], ko.pair(cfg["kernel_size"], where, "kernel_size"),
                   strides=ko.pair(cfg.get("strides", 1), where, "strides"),
                   padding=ko.padding(cfg.get("padding", "valid"), where),
                   dilation_rate=ko.pair(cfg.get("dilation_rate", 1), where, "dilation_rate"),
                   depth_multiplier=cfg.get("depth_multiplier", 1),  # the constructor checks it
                   activation=ko.activation(cfg.get("activation"), where),
                   use_bias=bool(cfg.get("use_bias", True)),
                   depthwise_initializer=ko.initializer(cfg.get("depthwise_initializer"), "glorot_uniform"),
                   pointwise_initializer=ko.initializer(cfg.get("pointwise_initializer"), "glorot_uniform"),
                   bias_initializer=ko.initializer(cfg.get("bias_initializer"), "zeros"),
                   **cls.regularizers_from_keras(cfg, where), name=cfg.get("name"))
