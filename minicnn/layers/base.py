"""The layer contract.

Every layer has ``forward(x, training)`` and ``backward(dy) -> dx`` side by side, ``params`` and
``grads`` dicts keyed like Keras weights (``kernel``, ``bias``), ``build(input_shape, dtype,
rng)`` to create weights once the input shape is known, and ``get_config()``. Shapes given to
``build`` and stored in ``input_shape``/``output_shape`` exclude the batch axis.

A layer also describes itself, so that nothing else in minicnn switches on layer types:

* ``compute_output_shape(input_shape)`` and ``weight_shapes(input_shape)``: shapes alone, nothing
  allocated (file readers check an architecture's size before building it);
* ``count_params()`` / ``planned_params(input_shape)``, ``flops(backward=False)`` per sample;
* ``keras_class`` / ``keras_aliases``, ``keras_config()`` and ``from_keras_config(cfg, where)``:
  the Keras 3 config both ways (the one mapping between minicnn and Keras layers);
* ``fuses``: what its kernel fuses into the op; ``describe()``: a few words for tables.

Adding a layer is one file defining its class plus its entry in ``minicnn.layers.LAYERS``.

Gradients are *overwritten* by each backward pass (never accumulated). Backward never writes into
``dy``. What a layer keeps from its forward pass for its backward pass is listed in its docstring
and lives in ``self._cache``; calling ``backward`` without a training forward pass fails clearly.
"""

from __future__ import annotations

import math

import numpy as np

from .. import activations, initializers, regularizers
from ..kernels.shapes import effective_size, window_output
from . import keras_options


class Layer:
    """Base class: bookkeeping, input validation and config round-trips."""

    #: Keras's auto-name stem (conv2d, dense, max_pooling2d, ...).
    kind = "layer"
    #: names of the weights in Keras order (get_weights order)
    weight_names: tuple[str, ...] = ()
    #: weights that the optimizer never updates (BatchNormalization's moving statistics): they
    #: are in ``params`` and in every file, but have no entry in ``grads``
    non_trainable_names: tuple[str, ...] = ()
    #: other names Keras files may give a weight (legacy name -> minicnn name)
    keras_weight_aliases: dict[str, str] = {}
    #: the Keras class this layer is written as (None: the same name as the minicnn class), and
    #: other Keras class names that are read as this layer
    keras_class: str | None = None
    keras_aliases: tuple[str, ...] = ()
    #: what the backend fuses into this layer's kernel (e.g. ("relu",)); information for reports
    fuses: tuple[str, ...] = ()
    #: False for a layer whose backward needs nothing from its forward pass (a reshape, a scale)
    backward_needs_forward = True
    #: set by a backward that has already checked its gradients for NaN/inf (True or False), and
    #: consumed by the training step's guard; None: unknown, the guard checks them itself
    grads_finite: bool | None = None
    #: True if the layer keeps its input as ``self.logits`` (softmax, sigmoid): a cross-entropy
    #: loss right after it is then computed from the logits, as Keras's TF backend does
    keeps_logits = False

    def __init__(self, name: str | None = None, input_shape=None):
        self.name = name
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.input_shape: tuple[int, ...] | None = tuple(input_shape) if input_shape is not None else None
        self.output_shape: tuple[int, ...] | None = None
        self.dtype = None
        self.built = False
        self._cache: dict = {}
        #: weight name -> Regularizer: penalties the model adds to its loss (and their gradients)
        self.regularizers: dict = {}

    # -- shapes ------------------------------------------------------------------------------
    def compute_output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Output shape for ``input_shape`` (no batch axis); raises ValueError if impossible."""
        return tuple(input_shape)

    def build(self, input_shape, dtype=np.float32, rng: np.random.Generator | None = None):
        """Fix the input shape and dtype, validate them and create the weights."""
        input_shape = tuple(int(d) for d in input_shape)
        self.output_shape = self.compute_output_shape(input_shape)
        self.input_shape = input_shape
        self.dtype = np.dtype(dtype)
        self._create_weights(rng if rng is not None else np.random.default_rng())
        self.grads = {k: np.zeros_like(self.params[k]) for k in self.trainable_names}
        self.built = True

    def weight_shapes(self, input_shape) -> dict[str, tuple[int, ...]]:
        """The shape of each weight for ``input_shape`` (no batch axis), in ``weight_names``
        order, without allocating anything."""
        return {}

    def _initializer(self, weight: str) -> str:
        """The initializer name of one weight."""
        return "zeros"

    def _create_weights(self, rng):
        # one draw per weight, in weight_names order: the same seed gives the same weights
        for name, shape in self.weight_shapes(self.input_shape).items():
            self.params[name] = initializers.get(self._initializer(name))(shape, self.dtype, rng)

    def _fail(self, message: str):
        raise ValueError(f"layer '{self.name}' ({type(self).__name__}): {message}")

    def _check_input(self, x: np.ndarray):
        if not self.built:
            self._fail("is not built; call model.build(input_shape) or layer.build(...) first")
        if not isinstance(x, np.ndarray):
            self._fail(f"expected a NumPy array, got {type(x).__name__}")
        if x.shape[1:] != self.input_shape:
            self._fail(f"expected input shape (batch, {', '.join(map(str, self.input_shape))}), "
                       f"received {tuple(x.shape)}")
        if x.dtype != self.dtype:
            self._fail(f"expected dtype {self.dtype}, received {x.dtype}")

    def _window_output(self, input_shape, window, what, dilation=(1, 1)):
        """Validate an (H, W, C) input for a sliding-window layer; set ``self.pads``; return (OH, OW)."""
        if len(input_shape) != 3:
            self._fail(f"expects inputs of shape (batch, height, width, channels), "
                       f"received (batch, {', '.join(map(str, input_shape))})")
        (oh, ow), self.pads = window_output(input_shape[:2], window, self.strides, self.padding, dilation)
        if oh < 1 or ow < 1:
            span = "" if tuple(dilation) == (1, 1) else \
                f" dilated by {tuple(dilation)} (spanning {tuple(effective_size(k, d) for k, d in zip(window, dilation))})"
            self._fail(f"{what} {window}{span} is larger than its input {input_shape[:2]} with padding '{self.padding}'")
        return oh, ow

    def _cached(self, key):
        try:
            return self._cache[key]
        except KeyError:
            self._fail("backward() called without a forward(training=True) pass before it") 

    # -- the maths -----------------------------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def fuses_next(self, layer: "Layer") -> bool:
        """Whether this layer's kernels can compute ``layer`` (the next one in a network) in their
        own passes; the network then runs the pair as one (see :meth:`minicnn.model.Network.forward`).
        None by default; BatchNormalization fuses a plain ReLU."""
        return False

    # -- weights & config ------------------------------------------------------------------
    @property
    def trainable_names(self) -> list[str]:
        """The weights the optimizer updates (those with a gradient), in Keras order."""
        return [k for k in self.weight_names if k in self.params and k not in self.non_trainable_names]

    def count_trainable_params(self) -> int:
        return int(sum(self.params[k].size for k in self.trainable_names))

    def get_weights(self) -> list[np.ndarray]:
        return [self.params[k] for k in self.weight_names if k in self.params]

    # -- Keras's attribute names for the weights (the arrays themselves, not copies) -------------
    @property
    def weights(self) -> list[np.ndarray]:
        """Every weight array, in get_weights order (Keras's ``layer.weights``)."""
        return self.get_weights()

    def _named_weight(self, key):
        if key not in self.params:
            raise AttributeError(f"layer '{self.name}' ({type(self).__name__}) has no {key} "
                                 f"(its weights: {', '.join(self.params) or 'none'}; build it first?)")
        return self.params[key]

    @property
    def kernel(self) -> np.ndarray:
        return self._named_weight("kernel")

    @property
    def bias(self) -> np.ndarray:
        return self._named_weight("bias")

    def set_weights(self, weights) -> None:
        names = [k for k in self.weight_names if k in self.params]
        if len(weights) != len(names):
            self._fail(f"expected {len(names)} weight arrays ({', '.join(names)}), received {len(weights)}")
        for k, w in zip(names, weights):
            w = np.asarray(w)
            if w.shape != self.params[k].shape:
                self._fail(f"weight '{k}' must have shape {self.params[k].shape}, received {w.shape}")
            self.params[k][...] = w  # in place: optimizers and callers keep their references

    def regularization_loss(self):
        """The sum of this layer's weight penalties (a scalar of the layer's dtype; 0 if none)."""
        total = self.dtype.type(0) if self.dtype is not None else 0.0
        for k, reg in self.regularizers.items():
            if k in self.params and k not in self.non_trainable_names:  # Keras: trainable weights
                total = total + reg(self.params[k])
        return total

    def add_regularization_gradients(self) -> None:
        """Add each penalty's gradient to its weight's gradient (after backward; new arrays, the
        backward's are left as they are). The backend's finiteness verdict no longer holds."""
        for k, reg in self.regularizers.items():
            if k in self.grads:
                self.grads[k] = self.grads[k] + reg.gradient(self.params[k])
                self.grads_finite = None

    def count_params(self) -> int:
        """Number of weight values (after build)."""
        return int(sum(p.size for p in self.params.values()))

    def planned_params(self, input_shape) -> int:
        """Number of weight values the layer would have on ``input_shape`` (nothing allocated)."""
        return int(sum(math.prod(s) for s in self.weight_shapes(tuple(input_shape)).values()))

    def flops(self, backward: bool = False) -> int:
        """Floating-point operations for one sample (after build; a multiply-add counts 2):
        the forward pass, or with ``backward=True`` the input and weight gradients."""
        return 0

    def describe(self) -> str:
        """A few words on the layer's settings for tables ('32 filters 3x3'); '' if none."""
        return ""

    def output_rtol_floor(self, x: np.ndarray, dtype) -> float:
        """The relative error (of max|output|) below which two correct implementations of this
        layer in ``dtype`` cannot be told apart on input ``x``, when that is larger than the
        working precision times a small constant: 0 for most layers, whose output's rounding is
        relative to its own size. See BatchNormalization for one whose is not."""
        return 0.0

    # -- Keras configs -----------------------------------------------------------------------
    @classmethod
    def keras_class_name(cls) -> str:
        return cls.keras_class or cls.__name__

    def keras_config(self) -> dict:
        """This layer's own options as Keras 3 writes them (without name, dtype, trainable)."""
        return {}

    @classmethod
    def from_keras_config(cls, cfg: dict, where: str):
        """The layer from a Keras layer config; KerasConfigError names an option it cannot honour.
        (This default is for layers without options.)"""
        keras_options.check_options(cfg, set(), {}, where)
        return cls(name=cfg.get("name"))

    def get_config(self) -> dict:
        return {"name": self.name}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class ActivatedLayer(Layer):
    """A layer ``act(linear(x))`` with any activation of :mod:`minicnn.activations`, and Keras's
    ``kernel_regularizer`` / ``bias_regularizer``.

    ReLU is fused into the backend kernel (its output is what backward needs); softmax and
    sigmoid keep their logits so that a cross-entropy loss after them is computed from the
    logits as in Keras (``logits_backward``); every other activation is applied after the kernel
    by the backend's element-wise functions, and what its backward needs (y or z) is cached.
    """

    #: Keras's regularizer option -> the weight it penalises, in the order Keras writes them (a
    #: subclass with other weights names its own: DepthwiseConv2D's depthwise_regularizer, ...)
    REGULARIZER_OPTIONS = {"kernel_regularizer": "kernel", "bias_regularizer": "bias"}

    def __init__(self, activation=None, name=None, input_shape=None, **regularizer_options):
        super().__init__(name=name, input_shape=input_shape)
        self.activation = activations.normalize(activation)
        self._act = activations.Bound(self.activation)
        unknown = sorted(set(regularizer_options) - set(self.REGULARIZER_OPTIONS))
        if unknown:
            raise TypeError(f"{type(self).__name__} has no option {', '.join(unknown)} (its regularizers: "
                            f"{', '.join(self.REGULARIZER_OPTIONS)})")
        for option, weight in self.REGULARIZER_OPTIONS.items():
            reg = regularizers.get(regularizer_options.get(option))
            if reg is not None:
                self.regularizers[weight] = reg

    @property
    def ends_in_softmax(self) -> bool:
        return self.activation == "softmax"

    @property
    def keeps_logits(self) -> bool:
        return self.activation in activations.KEEP_LOGITS

    def _finish_forward(self, z: np.ndarray, training: bool) -> np.ndarray:
        """Apply the activation (relu was fused by the kernel) and keep what backward needs."""
        cache = self._cache if training else None
        if self.activation == "relu":
            y = z
            if training:
                self._cache["y"] = y
        else:
            y = self._act.forward(z, cache)
        if self.keeps_logits:
            self.logits = z
        return y

    def _activation_backward(self, dy: np.ndarray) -> np.ndarray:
        if self.activation is None:
            return dy
        return self._act.backward(dy, self._cached(self._act.needs))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return self._linear_backward(self._activation_backward(dy))

    def logits_backward(self, dz: np.ndarray) -> np.ndarray:
        """Backward from the gradient w.r.t. the pre-activation logits (fused softmax + CE)."""
        return self._linear_backward(dz)

    def _linear_backward(self, dz: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def regularizer_config(self) -> dict:
        """``{"kernel_regularizer": ..., "bias_regularizer": ...}`` as Keras serialises them."""
        return {option: regularizers.serialize(self.regularizers.get(weight))
                for option, weight in self.REGULARIZER_OPTIONS.items()}

    @classmethod
    def regularizers_from_keras(cls, cfg: dict, where: str) -> dict:
        """The regularizer keyword arguments from a Keras layer config."""
        return {option: keras_options.regularizer(cfg.get(option), where, option)
                for option in cls.REGULARIZER_OPTIONS}

    def get_config(self):
        return {**super().get_config(), "activation": self.activation, **self.regularizer_config()}

    def keras_config(self) -> dict:
        return {"activation": self.activation or "linear"}

    @property
    def fuses(self) -> tuple[str, ...]:
        return ("relu",) if self.activation == "relu" else ()
