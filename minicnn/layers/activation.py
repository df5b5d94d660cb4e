"""Activation layers, as Keras 3's ``keras/src/layers/activations/``: Activation, ReLU,
LeakyReLU, ELU, PReLU and Softmax. Their maths is :mod:`minicnn.activations` (element-wise
kernels on the backend); any input shape; no weights except PReLU's ``alpha``.
"""

from __future__ import annotations

import math

from .. import activations, initializers, regularizers
from ..kernels import get_backend
from . import keras_options as ko
from .base import Layer


def _number(value, what: str, allow_none=False) -> float | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _at_least_zero(value, what: str, allow_none=False):
    value = _number(value, what, allow_none)
    if value is not None and value < 0:
        raise ValueError(f"{what} cannot be negative, got {value!r}")
    return value


class _Elementwise(Layer):
    """An activation function applied element by element: ``self._act`` (an
    :class:`minicnn.activations.Bound`) does the maths; the cache holds what its backward needs
    (the output y or the input z)."""

    def _bind(self, name, **options):
        self._act = activations.Bound(name, **options)
        self.backward_needs_forward = self._act.needs is not None

    def forward(self, x, training=False):
        self._check_input(x)
        self._cache = {}
        y = self._act.forward(x, self._cache if training else None)
        if self.keeps_logits:
            self.logits = x
        return y

    def backward(self, dy):
        if self._act.needs is None:
            return dy
        return self._act.backward(dy, self._cached(self._act.needs))

    @property
    def plain_relu(self) -> bool:
        """max(x, 0) with relu's default options: a layer before it may fuse it (the network then
        calls :meth:`adopt_output` instead of :meth:`forward`, and hands the cached output to that
        layer's backward instead of calling :meth:`backward`)."""
        return self._act.name == "relu" and not any(self._act.options.values())

    def adopt_output(self, y, training=False):
        """Take ``y``, this relu's output computed by the layer before it (fused), as :meth:`forward`
        would have returned it: cached for the backward when ``training``."""
        self._cache = {"y": y} if training else {}
        return y

    def fused_output(self):
        """The output cached by :meth:`adopt_output` (or a training forward): what the fusing
        layer's backward applies relu's gradient with."""
        return self._cached("y")

    def logits_backward(self, dz):
        return dz

    def flops(self, backward=False):
        return self._act.flops[1 if backward else 0] * math.prod(self.output_shape)


class Activation(_Elementwise):
    """Keras's ``Activation(name)``: any activation of :mod:`minicnn.activations` as a layer.

    ``relu`` runs on the backend's kernel; ``softmax`` and ``sigmoid`` keep their logits so that a
    cross-entropy loss after them is computed from the logits, as after a
    Dense(activation='softmax'); ``linear`` (None) is the identity.
    """

    kind = "activation"

    def __init__(self, activation, name=None, input_shape=None):
        super().__init__(name=name, input_shape=input_shape)
        self.activation = activations.normalize(activation)
        self._bind(self.activation)

    @property
    def ends_in_softmax(self) -> bool:
        return self.activation == "softmax"

    @property
    def keeps_logits(self) -> bool:
        return self.activation in activations.KEEP_LOGITS

    def describe(self):
        return self.activation or "linear"

    def keras_config(self):
        return {"activation": self.activation or "linear"}

    @classmethod
    def from_keras_config(cls, cfg, where):
        ko.check_options(cfg, {"activation"}, {}, where)
        return cls(ko.activation(cfg.get("activation"), where), name=cfg.get("name"))

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


class ReLU(_Elementwise):
    """Keras's ReLU layer: ``min(x, max_value)`` above ``threshold``, ``negative_slope * (x -
    threshold)`` below; the defaults are max(x, 0) on the backend's relu kernel (gradient 0 at
    0, TensorFlow's ReluGrad). Other settings follow Keras's ``relu`` branch by branch, with its
    roundings and gradients at the kinks (see :func:`minicnn.activations.relu`). Like Keras, every
    option must be >= 0. Cache: the output (defaults, slope only) or the input."""

    kind = "re_lu"

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, name=None, input_shape=None):
        super().__init__(name=name, input_shape=input_shape)
        self.max_value = _at_least_zero(max_value, "ReLU max_value", allow_none=True)
        self.negative_slope = _at_least_zero(negative_slope, "ReLU negative_slope")
        self.threshold = _at_least_zero(threshold, "ReLU threshold")
        self._bind("relu", negative_slope=self.negative_slope, max_value=self.max_value,
                   threshold=self.threshold)

    def describe(self):
        parts = [f"max {self.max_value:g}" if self.max_value is not None else "",
                 f"slope {self.negative_slope:g}" if self.negative_slope else "",
                 f"threshold {self.threshold:g}" if self.threshold else ""]
        return ", ".join(p for p in parts if p)

    def keras_config(self):
        return {"max_value": self.max_value, "negative_slope": self.negative_slope, "threshold": self.threshold}

    @classmethod
    def from_keras_config(cls, cfg, where):
        ko.check_options(cfg, {"max_value", "negative_slope", "threshold"}, {}, where)
        return cls(cfg.get("max_value"), cfg.get("negative_slope", 0.0), cfg.get("threshold", 0.0),
                   name=cfg.get("name"))

    def get_config(self):
        return {**super().get_config(), **self.keras_config()}


class LeakyReLU(_Elementwise):
    """``x`` for x > 0, ``negative_slope * x`` otherwise; Keras 3's default slope is 0.3
    (``keras/src/layers/activations/leaky_relu.py``; the ``leaky_relu`` *function* defaults to
    0.2). The slope reaches the model dtype through float32 (TensorFlow's LeakyRelu attribute),
    and the gradient at 0 is the slope. Cache: the output."""

    kind = "leaky_re_lu"

    def __init__(self, negative_slope=0.3, name=None, input_shape=None):
        super().__init__(name=name, input_shape=input_shape)
        self.negative_slope = _at_least_zero(negative_slope, "LeakyReLU negative_slope")
        self._bind("leaky_relu", negative_slope=self.negative_slope)

    def describe(self):
        return f"slope {self.negative_slope:g}"

    def keras_config(self):
        return {"negative_slope": self.negative_slope}

    @classmethod
    def from_keras_config(cls, cfg, where):
        # Keras 2 wrote the slope as 'alpha' (Keras 3 still accepts it, deprecated)
        slope = cfg.get("negative_slope", cfg.get("alpha", 0.3))
        ko.check_options(cfg, {"negative_slope", "alpha"}, {}, where)
        return cls(slope, name=cfg.get("name"))

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


class ELU(_Elementwise):
    """``x`` for x > 0, ``alpha * (exp(x) - 1)`` otherwise (Keras's ELU, default alpha 1.0,
    any alpha; gradient alpha at 0). Cache: the input."""

    kind = "elu"

    def __init__(self, alpha=1.0, name=None, input_shape=None):
        super().__init__(name=name, input_shape=input_shape)
        self.alpha = _number(alpha, "ELU alpha")
        self._bind("elu", alpha=self.alpha)

    def describe(self):
        return f"alpha {self.alpha:g}"

    def keras_config(self):
        return {"alpha": self.alpha}

    @classmethod
    def from_keras_config(cls, cfg, where):
        ko.check_options(cfg, {"alpha"}, {}, where)
        return cls(cfg.get("alpha", 1.0), name=cfg.get("name"))

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


class Softmax(_Elementwise):
    """Softmax over the last axis. Cache: the output (and the logits, for fused cross-entropy)."""

    kind = "softmax"
    ends_in_softmax = True
    keeps_logits = True

    def __init__(self, name=None, input_shape=None):
        super().__init__(name=name, input_shape=input_shape)
        self._bind("softmax")

    def keras_config(self):
        return {"axis": -1}

    @classmethod
    def from_keras_config(cls, cfg, where):
        ko.check_options(cfg, set(), {"axis": (-1, [-1])}, where)
        return cls(name=cfg.get("name"))


class PReLU(Layer):
    """Parametric ReLU, Keras's: ``max(x, 0) - alpha * max(-x, 0)`` with a trainable ``alpha`` of
    one sample's shape, 1 along ``shared_axes`` (axes of the batched input, 1-based: [1, 2] shares
    alpha over height and width). ``alpha_initializer`` 'zeros' as Keras's; ``alpha_regularizer``
    as on any weight. The gradient w.r.t. x is 0 at x = 0 (both relus are flat there). Cache:
    the input."""

    kind = "p_re_lu"
    weight_names = ("alpha",)

    def __init__(self, alpha_initializer="zeros", alpha_regularizer=None, shared_axes=None, name=None,
                 input_shape=None):
        super().__init__(name=name, input_shape=input_shape)
        initializers.get(alpha_initializer)
        self.alpha_initializer = alpha_initializer
        if shared_axes is not None and not isinstance(shared_axes, (list, tuple)):
            shared_axes = [shared_axes]
        if shared_axes is not None:
            if not all(isinstance(a, int) and not isinstance(a, bool) and a >= 1 for a in shared_axes):
                raise ValueError(f"PReLU shared_axes must be axes of the batched input, 1 or more "
                                 f"(0 is the batch axis), got {shared_axes!r}")
            shared_axes = sorted({int(a) for a in shared_axes})
        self.shared_axes = shared_axes
        reg = regularizers.get(alpha_regularizer)
        if reg is not None:
            self.regularizers["alpha"] = reg

    def compute_output_shape(self, input_shape):
        if self.shared_axes and max(self.shared_axes) > len(input_shape):
            self._fail(f"shared_axes {self.shared_axes} name an axis the input (batch, "
                       f"{', '.join(map(str, input_shape))}) does not have")
        return tuple(input_shape)

    def weight_shapes(self, input_shape):
        shape = list(input_shape)
        for a in self.shared_axes or ():
            shape[a - 1] = 1
        return {"alpha": tuple(shape)}

    def _initializer(self, weight):
        return self.alpha_initializer

    def flops(self, backward=False):
        n = math.prod(self.output_shape)
        return (5 if backward else 4) * n  # backward: dx (compare, select, mul), dalpha (min, mul-add)

    def describe(self):
        return f"alpha shared over axes {self.shared_axes}" if self.shared_axes else "alpha per unit"

    def forward(self, x, training=False):
        self._check_input(x)
        self._cache = {"z": x} if training else {}
        return get_backend().prelu_forward(x, self.params["alpha"])

    def backward(self, dy):
        dx, self.grads["alpha"] = get_backend().prelu_backward(dy, self._cached("z"), self.params["alpha"])
        return dx

    def get_config(self):
        return {**super().get_config(), "alpha_initializer": self.alpha_initializer,
                "alpha_regularizer": regularizers.serialize(self.regularizers.get("alpha")),
                "shared_axes": self.shared_axes}

    def keras_config(self):
        return {"alpha_initializer": ko.initializer_spec(self.alpha_initializer),
                "alpha_regularizer": regularizers.serialize(self.regularizers.get("alpha")),
                "alpha_constraint": None, "shared_axes": self.shared_axes}

    @classmethod
    def from_keras_config(cls, cfg, where):
        ko.check_options(cfg, {"alpha_regularizer", "shared_axes", "alpha_initializer"},
                         {"alpha_constraint": None}, where)
        return cls(ko.initializer(cfg.get("alpha_initializer"), "zeros"),
                   ko.regularizer(cfg.get("alpha_regularizer"), where, "alpha_regularizer"),
                   cfg.get("shared_axes"), name=cfg.get("name"))


__all__ = ["Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax"]
