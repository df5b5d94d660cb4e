"""Activations: the one place minicnn defines them, with Keras 3's names, defaults and maths.

Each activation is a forward function and its backward function, side by side below. The
backward takes what it needs from the forward pass: the output ``y`` or the input ``z`` (named in
its signature and in :data:`NEEDS`); layers keep exactly that. The element-wise arithmetic runs on
the active kernel backend (``minicnn.kernels``: the NumPy reference is
``kernels/numpy_activations.py``), so a fast backend can speed it up or fuse it into a layer's
kernel, as relu already is into Conv2D and Dense. Softmax (over the last axis, as in Keras) is a
row operation and lives here. dtypes are kept: float32 in, float32 out.

Keras semantics matched (``keras/src/activations/activations.py`` and the TensorFlow backend,
``keras/src/backend/tensorflow/nn.py``):

* names are Keras's (``keras.activations.get``); ``swish`` is ``silu``, which is how Keras
  writes it back; ``linear`` (None) is the identity;
* ``gelu`` is the exact, erf-based GELU: ``keras.activations.gelu`` defaults to
  ``approximate=False`` (``keras.ops.gelu`` defaults to True, but ``activation='gelu'`` calls the
  former);
* ``leaky_relu`` defaults to ``negative_slope=0.2`` (the LeakyReLU *layer* defaults to 0.3), and
  TensorFlow's LeakyRelu op takes the slope as a float32 attribute: in a float64 model the slope
  is float32(0.2) = 0.20000000298023224, so it is here too;
* ``elu`` with ``alpha != 1`` is ``where(z > 0, elu(z), alpha * elu(z))``: its gradient at 0 is
  alpha (1 for elu, scale for selu, the slope for leaky_relu, 0 for relu: TensorFlow's ``*Grad``
  kernels);
* ``relu(z, negative_slope, max_value, threshold)`` follows Keras's ``ReLU.static_call`` branch by
  branch (see :func:`relu`), including which scalars TensorFlow rounds through float32.
"""

from __future__ import annotations

import numpy as np

from .kernels import get_backend

#: canonical names (Keras's), None being linear
ACTIVATIONS = (None, "linear", "relu", "softmax", "tanh", "sigmoid", "leaky_relu", "elu", "selu",
               "gelu", "silu", "softplus")
#: other names Keras accepts for the same function
ALIASES = {"swish": "silu"}
#: activations whose output keeps its input as ``logits``: a cross-entropy loss after them is
#: computed from those logits, as Keras's TF backend does (``_keras_logits``: for softmax, and,
#: less expectedly, for sigmoid too, where this becomes softmax cross-entropy of the logits)
KEEP_LOGITS = ("softmax", "sigmoid")


def supported_text() -> str:
    names = [a for a in ACTIVATIONS if a not in (None, "linear")]
    names += [f"{alias} (= {name})" for alias, name in ALIASES.items()]
    return "linear (None), " + ", ".join(names)


def normalize(name):
    """The canonical name of an activation (None for linear): a Keras name or alias, or one of
    the functions of this module; ValueError naming the supported ones otherwise."""
    if callable(name) and _FUNCTIONS.get(getattr(name, "__name__", None)) is name:
        name = name.__name__
    if name in (None, "linear"):
        return None
    name = ALIASES.get(name, name) if isinstance(name, str) else name
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {supported_text()}")
    return name


_INV_SQRT2 = 0.7071067811865476


def _through_float32(value, dtype):
    """A Python float as TensorFlow's ``ops.cast`` / float attributes deliver it: float32 first."""
    return np.dtype(dtype).type(np.float32(value))


# ----------------------------------------------------------------------------- the functions
def linear(z):
    """y = z."""
    return z


def linear_backward(dy, saved=None):
    return dy


def relu(z, negative_slope=0.0, max_value=None, threshold=0.0):
    """Keras's relu, branch by branch as ``ReLU.static_call`` (keras/src/activations/activations.py):

    * defaults: max(z, 0), the backend's relu kernel;
    * only a negative_slope: TensorFlow's LeakyRelu (slope through float32; gradient at 0 = slope);
    * otherwise ``where(z > threshold, min(z, max_value), 0) - negative_slope * max(threshold - z,
      0)``, where max_value and the compared threshold are cast through float32 (``ops.cast``) and
      the subtracted threshold and the slope are not; max_value == 6 without threshold is relu6,
      whose gradient is 0 at 6 (clip's is 1 at its bound). The gradient is 0 at the threshold.
    """
    if not negative_slope and max_value is None and not threshold:
        return get_backend().relu_forward(z)
    if max_value is None and not threshold:
        return leaky_relu(z, negative_slope)
    return get_backend().capped_relu_forward(z, *_relu_scalars(z.dtype, negative_slope, max_value, threshold)[:4])


def relu_backward(dy, saved, negative_slope=0.0, max_value=None, threshold=0.0):
    """``saved`` is y for the default relu and the leaky case, z otherwise (:func:`relu_needs`)."""
    if not negative_slope and max_value is None and not threshold:
        return get_backend().relu_backward(dy, saved)
    if max_value is None and not threshold:
        return leaky_relu_backward(dy, saved, negative_slope)
    return get_backend().capped_relu_backward(dy, saved, *_relu_scalars(dy.dtype, negative_slope, max_value,
                                                                        threshold))


def relu_needs(negative_slope=0.0, max_value=None, threshold=0.0) -> str:
    return "y" if max_value is None and not threshold else "z"


def _relu_scalars(dtype, negative_slope, max_value, threshold):
    """(negative_slope, max_value, threshold, cut, open_cap) for the capped kernels."""
    t = np.dtype(dtype).type
    relu6 = not threshold and max_value == 6  # Keras calls relu6 then, and clips nothing
    cap = None if max_value is None else _through_float32(max_value, dtype)
    cut = _through_float32(threshold, dtype) if threshold else t(0)
    return t(negative_slope), cap, t(threshold), cut, relu6


def leaky_relu(z, negative_slope=0.2):
    """y = z for z > 0, negative_slope * z otherwise; the slope goes through float32 (it is a
    float attribute of TensorFlow's LeakyRelu op)."""
    return get_backend().leaky_relu_forward(z, _through_float32(negative_slope, z.dtype))


def leaky_relu_backward(dy, y, negative_slope=0.2):
    """dz = dy where y > 0, else negative_slope * dy (negative_slope >= 0)."""
    return get_backend().leaky_relu_backward(dy, y, _through_float32(negative_slope, dy.dtype))


def elu(z, alpha=1.0):
    """y = z for z > 0, alpha * (exp(z) - 1) otherwise (alpha in the model dtype, as Keras's
    ``alpha * res`` with a Python float)."""
    return get_backend().elu_forward(z, z.dtype.type(alpha))


def elu_backward(dy, z, alpha=1.0):
    """dz = dy for z > 0, alpha * exp(z) * dy otherwise (alpha at 0)."""
    return get_backend().elu_backward(dy, z, dy.dtype.type(alpha))


def selu(z):
    """scale * elu(z, alpha) with TensorFlow's constants (scale 1.0507009873554805,
    scale * alpha 1.7580993408473768)."""
    return get_backend().selu_forward(z)


def selu_backward(dy, y):
    return get_backend().selu_backward(dy, y)


def tanh(z):
    return get_backend().tanh_forward(z)


def tanh_backward(dy, y):
    """dz = dy * (1 - y^2)."""
    return get_backend().tanh_backward(dy, y)


def sigmoid(z):
    """1 / (1 + exp(-z)), stable for any z (exp only ever sees -|z|)."""
    return get_backend().sigmoid_forward(z)


def sigmoid_backward(dy, y):
    """dz = dy * y * (1 - y)."""
    return get_backend().sigmoid_backward(dy, y)


def softplus(z):
    """log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|))."""
    return get_backend().softplus_forward(z)


def softplus_backward(dy, z):
    """dz = dy * sigmoid(z)."""
    return get_backend().softplus_backward(dy, z)


def silu(z):
    """z * sigmoid(z) (SiLU; Keras's ``swish`` is this function)."""
    return get_backend().silu_forward(z)


def silu_backward(dy, z):
    """dz = dy * s (1 + z (1 - s)), s = sigmoid(z)."""
    return get_backend().silu_backward(dy, z)


swish, swish_backward = silu, silu_backward


def gelu(z):
    """Exact GELU, 0.5 z (1 + erf(z / sqrt 2)): Keras's default (approximate=False). Computed as
    TensorFlow does (tensorflow/python/ops/nn_ops.py ``gelu``): ``0.5 * z * erfc(-z * c)`` with
    ``c = math_ops.cast(0.7071067811865476, dtype)``, which makes a float32 tensor first: in a
    float64 model c is float32(1/sqrt 2) = 0.7071067690849304, here too."""
    return get_backend().gelu_forward(z, _through_float32(_INV_SQRT2, z.dtype))


def gelu_backward(dy, z):
    """dz = dy * (Phi(z) + z phi(z)) (with TensorFlow's c, see :func:`gelu`)."""
    return get_backend().gelu_backward(dy, z, _through_float32(_INV_SQRT2, dy.dtype))


def softmax(z: np.ndarray) -> np.ndarray:
    """exp(z - max) / sum(exp(z - max)) over the last axis; dtype kept."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    return e


def softmax_backward(dp: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Vector-Jacobian product of softmax: dz = p * (dp - sum(dp * p))."""
    return p * (dp - (dp * p).sum(axis=-1, keepdims=True))


def log_softmax(z: np.ndarray) -> np.ndarray:
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


_FUNCTIONS = {f.__name__: f for f in (linear, relu, softmax, tanh, sigmoid, leaky_relu, elu, selu, gelu,
                                      silu, softplus)}
_BACKWARDS = {"linear": linear_backward, "relu": relu_backward, "softmax": softmax_backward,
              "tanh": tanh_backward, "sigmoid": sigmoid_backward, "leaky_relu": leaky_relu_backward,
              "elu": elu_backward, "selu": selu_backward, "gelu": gelu_backward, "silu": silu_backward,
              "softplus": softplus_backward}
#: what each backward takes from the forward pass (relu: see relu_needs)
NEEDS = {"linear": None, "relu": "y", "softmax": "y", "tanh": "y", "sigmoid": "y", "leaky_relu": "y",
         "elu": "z", "selu": "y", "gelu": "z", "silu": "z", "softplus": "z"}
#: rough operation counts per element (forward, backward), each add, multiply, compare, select
#: or transcendental (exp, log1p, tanh, erf) counting one: for ``flops()``
FLOPS = {"linear": (0, 0), "relu": (1, 1), "softmax": (4, 4), "tanh": (1, 3), "sigmoid": (5, 3),
         "leaky_relu": (2, 2), "elu": (3, 4), "selu": (4, 3), "gelu": (6, 12), "silu": (6, 9),
         "softplus": (5, 6)}


# ----------------------------------------------------------------------------- bound activations
class Bound:
    """One activation with its options fixed (``Bound('leaky_relu', negative_slope=0.3)``):
    ``forward(z, cache)`` keeps in ``cache`` (when given) what ``backward(dy, cache)`` needs,
    under the key :attr:`needs` ('y' or 'z'), and ``backward`` reads it from there."""

    def __init__(self, name, **options):
        self.name = normalize(name) or "linear"
        self.options = options
        self._forward, self._backward = _FUNCTIONS[self.name], _BACKWARDS[self.name]
        self.needs = relu_needs(**options) if self.name == "relu" else NEEDS[self.name]
        if self.name == "relu" and self.needs == "z":
            self.flops = (4, 4)  # compare, min, sub/mul; two masks and an add backward
        else:
            self.flops = FLOPS[self.name]

    def forward(self, z, cache=None):
        y = self._forward(z, **self.options)
        if cache is not None and self.needs is not None:
            cache[self.needs] = y if self.needs == "y" else z
        return y

    def backward(self, dy, saved):
        """``saved``: what :attr:`needs` names, from the same forward pass."""
        return self._backward(dy, saved, **self.options)

    def __repr__(self):
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"Bound({self.name!r}{opts})"
