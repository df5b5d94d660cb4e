"""Dense: y = act(x @ kernel + bias)."""

from __future__ import annotations

from .. import initializers
from ..kernels import get_backend
from . import keras_options as ko
from .base import ActivatedLayer


class Dense(ActivatedLayer):
    """Fully connected layer on (N, in) inputs; ``kernel`` (in, units), ``bias`` (units,).

    Like Keras 3, minicnn's Dense only takes 2-D inputs here: put a Flatten before it.
    Cache for backward: the input ``x`` and what the activation's backward needs (y or z).
    """

    kind = "dense"
    weight_names = ("kernel", "bias")
    need_dx = True

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 name=None, input_shape=None):
        super().__init__(activation=activation, name=name, input_shape=input_shape,
                         kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer)
        if not isinstance(units, int) or isinstance(units, bool) or units < 1:
            raise ValueError(f"Dense units must be a positive int, got {units!r}")
        self.units = units
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        initializers.get(kernel_initializer), initializers.get(bias_initializer)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 1:
            self._fail(f"expects inputs of shape (batch, features), received "
                       f"(batch, {', '.join(map(str, input_shape))}); add a Flatten layer before it")
        return (self.units,)

    def weight_shapes(self, input_shape):
        shapes = {"kernel": (input_shape[0], self.units)}
        if self.use_bias:
            shapes["bias"] = (self.units,)
        return shapes

    def _initializer(self, weight):
        return self.kernel_initializer if weight == "kernel" else self.bias_initializer

    def flops(self, backward=False):
        macs = self.input_shape[0] * self.units
        if not backward:
            return 2 * macs
        return 2 * macs * (2 if self.need_dx else 1)  # dkernel, and dx unless the first layer

    def describe(self):
        return f"{self.units} units"

    def forward(self, x, training=False):
        self._check_input(x)
        self._cache = {"x": x} if training else {}
        z = get_backend().dense_forward(x, self.params["kernel"], self.params.get("bias"),
                                        relu=self.activation == "relu")
        return self._finish_forward(z, training)

    def _linear_backward(self, dz):
        # the backend reports whether the gradients are finite (checked while dkernel, the
        # model's largest gradient, is computed): the training step's guard then skips them
        dx, dk, db, self.grads_finite = get_backend().dense_backward(
            dz, self._cached("x"), self.params["kernel"], need_dx=self.need_dx, check_finite=True)
        self.grads["kernel"] = dk
        if self.use_bias:
            self.grads["bias"] = db
        return dx

    def get_config(self):
        return {**super().get_config(), "units": self.units, "use_bias": self.use_bias,
                "kernel_initializer": self.kernel_initializer, "bias_initializer": self.bias_initializer}

    def keras_config(self):
        return {"units": self.units, **super().keras_config(), "use_bias": self.use_bias,
                "kernel_initializer": ko.initializer_spec(self.kernel_initializer),
                "bias_initializer": ko.initializer_spec(self.bias_initializer),
                **self.regularizer_config(), "kernel_constraint": None,
                "bias_constraint": None}

    @classmethod
    def from_keras_config(cls, cfg, where):
        ko.check_options(cfg, {"units", "activation", "use_bias", *cls.REGULARIZER_OPTIONS},
                         dict(ko.WEIGHT_OPTIONS), where)
        return cls(cfg["units"], activation=ko.activation(cfg.get("activation"), where),
                   use_bias=bool(cfg.get("use_bias", True)),
                   kernel_initializer=ko.initializer(cfg.get("kernel_initializer"), "glorot_uniform"),
                   bias_initializer=ko.initializer(cfg.get("bias_initializer"), "zeros"),
                   **cls.regularizers_from_keras(cfg, where), name=cfg.get("name"))
