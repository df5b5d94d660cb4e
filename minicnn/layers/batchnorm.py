"""BatchNormalization: Keras 3's layer over the last (channels) axis, moving statistics included."""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..arrays import all_finite
from ..errors import KerasConfigError
from ..kernels import get_backend
from . import keras_options as ko
from .base import Layer

#: Keras 3's defaults (keras/src/layers/normalization/batch_normalization.py, __init__)
DEFAULT_MOMENTUM = 0.99
DEFAULT_EPSILON = 1e-3
#: the initializers a BatchNormalization weight may have in minicnn (constants: Keras's defaults)
CONSTANT_INITIALIZERS = ("zeros", "ones")


def _constant_initializer(value, default):
    """A minicnn initializer from a Keras option; another than zeros/ones falls back to the
    default (the weights come from the file anyway)."""
    name = ko.initializer(value, default)
    return name if name in CONSTANT_INITIALIZERS else default


class BatchNormalization(Layer):
    """Normalise each channel (the last axis) of (N, C) or (N, H, W, C) inputs, then scale by
    ``gamma`` and shift by ``beta``; weights (C,) in Keras's order ``gamma``, ``beta``,
    ``moving_mean``, ``moving_variance`` (gamma only with ``scale``, beta only with ``center``).

    As in Keras 3 (``keras/src/layers/normalization/batch_normalization.py``, TensorFlow backend):

    * ``forward(x, training=True)`` normalises with the batch's mean and *biased* variance over
      every axis but the last, and updates the moving statistics in place:
      ``moving = moving * momentum + batch * (1.0 - momentum)``;
    * ``forward(x, training=False)`` normalises with the moving statistics and changes nothing;
    * ``y = x * inv + (beta - mean * inv)``, ``inv = gamma / sqrt(var + epsilon)``: TensorFlow's
      order of operations (``tf.nn.batch_normalization``). ``momentum`` and ``epsilon`` are used
      as Python floats cast to the layer's dtype (a float64 layer gets the doubles: unlike the
      optimizers' hyperparameters, Keras does not round them through float32).

    ``moving_mean`` and ``moving_variance`` are non-trainable: in ``params`` and in every file,
    without gradients. Backward after a training forward gives the exact gradient through the
    batch statistics; after an inference forward (a frozen layer), the gradient of the affine
    map with the moving statistics. Cache: the input ``x`` and the mean and variance it was
    normalised with.
    """

    kind = "batch_normalization"
    weight_names = ("gamma", "beta", "moving_mean", "moving_variance")
    non_trainable_names = ("moving_mean", "moving_variance")

    def __init__(self, axis=-1, momentum=DEFAULT_MOMENTUM, epsilon=DEFAULT_EPSILON, center=True,
                 scale=True, beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 name=None, input_shape=None):
        super().__init__(name=name, input_shape=input_shape)
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise TypeError(f"BatchNormalization axis must be an int, got {axis!r}")
        for what, v in (("momentum", momentum), ("epsilon", epsilon)):
            if not isinstance(v, numbers.Real) or isinstance(v, bool) or not math.isfinite(v):
                raise ValueError(f"BatchNormalization {what} must be a finite number, got {v!r}")
        if epsilon < 0:
            raise ValueError(f"BatchNormalization epsilon must be >= 0, got {epsilon!r}")
        self.axis = axis
        self.momentum, self.epsilon = float(momentum), float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer, self.gamma_initializer = beta_initializer, gamma_initializer
        self.moving_mean_initializer = moving_mean_initializer
        self.moving_variance_initializer = moving_variance_initializer
        for init in (beta_initializer, gamma_initializer, moving_mean_initializer, moving_variance_initializer):
            if init not in CONSTANT_INITIALIZERS:
                raise ValueError(f"BatchNormalization initializers must be 'zeros' or 'ones', got {init!r}")

    # -- shapes & weights ----------------------------------------------------------------------
    def compute_output_shape(self, input_shape):
        if len(input_shape) < 1:
            self._fail("expects inputs of shape (batch, ..., channels), received (batch,)")
        if self.axis not in (-1, len(input_shape)):
            self._fail(f"axis={self.axis} on inputs of shape (batch, {', '.join(map(str, input_shape))}): "
                       f"minicnn normalises the last (channels) axis only (axis=-1 or {len(input_shape)})")
        return tuple(input_shape)

    def weight_shapes(self, input_shape):
        c = (self.compute_output_shape(input_shape)[-1],)
        shapes = {"gamma": c} if self.scale else {}
        if self.center:
            shapes["beta"] = c
        return {**shapes, "moving_mean": c, "moving_variance": c}

    def _initializer(self, weight):
        return {"gamma": self.gamma_initializer, "beta": self.beta_initializer,
                "moving_mean": self.moving_mean_initializer,
                "moving_variance": self.moving_variance_initializer}[weight]

    def flops(self, backward=False):
        """Per value: training forward 6 (mean 1; variance 3; x * inv + shift 2); backward 9
        (xhat 2, dbeta 1, dgamma 2, dx 4). Per-channel work is left out."""
        return math.prod(self.output_shape) * (9 if backward else 6)

    #: the lanes of one 512-bit vector register holding float32: a vectorised reduction (Eigen's
    #: packets in TensorFlow) sums n values as this many interleaved sums of n / lanes terms
    REDUCTION_LANES = 16

    def output_rtol_floor(self, x, dtype):
        """In training mode the output rests on the batch statistics, sums of n = N*H*W values. A
        framework summing them in ``dtype`` (TensorFlow does; minicnn sums in float64) may be off
        by the worst-case bound of recursive summation, (m - 1) u for m terms of one sign
        (Higham 2002, "Accuracy and stability of numerical algorithms", 4.2), with m = n / 16 when
        the sum runs in the 16 lanes of a vector register. Normalising subtracts the mean, which
        amplifies an error relative to |x| by kappa = max over channels of max|x_c| /
        max|x_c - mean_c|. Floor: kappa * u * n / 16. float32, 32 MNIST images (n = 25,088):
        ~1e-4 for kappa ~1; float64: ~2e-13."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, x.shape[-1])
        mean = x.mean(axis=0)
        spread = np.abs(x - mean).max(axis=0)
        size = np.abs(x).max(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            kappa = float(np.where(spread > 0, size / spread, 1.0).max(initial=1.0))
        u = float(np.finfo(dtype).eps) / 2
        return max(kappa, 1.0) * u * max(x.shape[0] / self.REDUCTION_LANES, 1.0)

    def describe(self):
        off = [w for w, on in (("scale", self.scale), ("center", self.center)) if not on]
        return f"momentum {self.momentum:g}, epsilon {self.epsilon:g}" + "".join(f", no {w}" for w in off)

    # -- the maths -------------------------------------------------------------------------
    def fuses_next(self, layer) -> bool:
        """Whether ``layer`` (the next one) is a plain ReLU (max(x, 0), Keras's defaults) that the
        network may fuse into this layer: :meth:`forward` with ``relu=True`` gives the ReLU's output
        in the normalisation's own pass, :meth:`backward` with its output applies relu's gradient
        inside the batch-norm passes (dz never stored)."""
        return getattr(layer, "plain_relu", False)

    def forward(self, x, training=False, relu=False):
        self._check_input(x)
        be, p = get_backend(), self.params
        gamma, beta = p.get("gamma"), p.get("beta")
        if training:
            y, mean, var = be.batchnorm_train_forward(x, gamma, beta, self.epsilon, relu=relu)
            be.batchnorm_update_moving(p["moving_mean"], p["moving_variance"], mean, var, self.momentum)
        else:  # copies: a frozen layer's backward uses the statistics its forward used
            mean, var = p["moving_mean"].copy(), p["moving_variance"].copy()
            y = be.batchnorm_forward(x, gamma, beta, mean, var, self.epsilon, relu=relu)
        self._cache = {"x": x, "mean": mean, "var": var, "batch_stats": bool(training)}
        return y

    def backward(self, dy, relu_y=None):
        """dx from dy; with ``relu_y`` (the output of a fused ReLU, :meth:`fuses_next`), dy is the
        gradient w.r.t. that ReLU's output and relu's gradient is applied first."""
        x = self._cached("x")
        dx, dgamma, dbeta = get_backend().batchnorm_backward(
            dy, x, self.params.get("gamma"), self._cache["mean"], self._cache["var"], self.epsilon,
            batch_stats=self._cache["batch_stats"], relu_y=relu_y)
        if self.scale:
            self.grads["gamma"] = dgamma
        if self.center:
            self.grads["beta"] = dbeta
        # checked here (C values each), so the training step's guard need not look at them
        self.grads_finite = all(all_finite(g) for g in self.grads.values())
        return dx

    # -- configs ---------------------------------------------------------------------------
    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum,
                "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                "beta_initializer": self.beta_initializer, "gamma_initializer": self.gamma_initializer,
                "moving_mean_initializer": self.moving_mean_initializer,
                "moving_variance_initializer": self.moving_variance_initializer}

    def keras_config(self):
        # the options and order of Keras 3's BatchNormalization.get_config()
        return {"axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale,
                "beta_initializer": ko.initializer_spec(self.beta_initializer),
                "gamma_initializer": ko.initializer_spec(self.gamma_initializer),
                "moving_mean_initializer": ko.initializer_spec(self.moving_mean_initializer),
                "moving_variance_initializer": ko.initializer_spec(self.moving_variance_initializer),
                "beta_regularizer": None, "gamma_regularizer": None, "beta_constraint": None,
                "gamma_constraint": None, "synchronized": False, "renorm": False,
                "renorm_clipping": None, "renorm_momentum": 0.99}

    @classmethod
    def from_keras_config(cls, cfg, where):
        # renorm_momentum is only read by Keras when renorm=True (refused below): ignored
        ko.check_options(cfg, {"axis", "momentum", "epsilon", "center", "scale", "beta_initializer",
                               "gamma_initializer", "moving_mean_initializer",
                               "moving_variance_initializer", "renorm_momentum"},
                         {"beta_regularizer": None, "gamma_regularizer": None, "beta_constraint": None,
                          "gamma_constraint": None, "synchronized": False, "renorm": False,
                          "renorm_clipping": None}, where)
        axis = cfg.get("axis", -1)
        if isinstance(axis, (list, tuple)) and len(axis) == 1:  # tf.keras 2 wrote axis as [3]
            axis = axis[0]
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise KerasConfigError(f"{where}: option axis={axis!r} is not supported by minicnn "
                                      "(one axis, the last)")
        for flag in ("center", "scale"):
            if not isinstance(cfg.get(flag, True), bool):
                raise KerasConfigError(f"{where}: option {flag}={cfg[flag]!r} must be true or false")
        return cls(axis=axis, momentum=cfg.get("momentum", DEFAULT_MOMENTUM),
                   epsilon=cfg.get("epsilon", DEFAULT_EPSILON), center=cfg.get("center", True),
                   scale=cfg.get("scale", True),
                   beta_initializer=_constant_initializer(cfg.get("beta_initializer"), "zeros"),
                   gamma_initializer=_constant_initializer(cfg.get("gamma_initializer"), "ones"),
                   moving_mean_initializer=_constant_initializer(cfg.get("moving_mean_initializer"), "zeros"),
                   moving_variance_initializer=_constant_initializer(cfg.get("moving_variance_initializer"), "ones"),
                   name=cfg.get("name"))
