"""Weight regularizers with Keras 3's semantics (``keras/src/regularizers/regularizers.py``).

A regularizer maps a weight ``w`` to a penalty added to the loss: ``L1``: ``l1 * sum(|w|)``;
``L2``: ``l2 * sum(w^2)`` (no 1/2); ``L1L2``: both. Layers take them as ``kernel_regularizer=`` /
``bias_regularizer=`` (objects, strings or the Keras serialisation); the model adds the
penalties to the loss that ``fit`` / ``train_on_batch`` optimise and report, and to ``evaluate``,
as Keras's trainer does (``Trainer.compute_loss`` adds ``model.losses`` in train and test steps),
and their gradients to the weights' gradients (:meth:`Regularizer.gradient`).

Keras's arithmetic, matched to the bit where it matters for float64 parity: every factor
reaches the weights' dtype through ``ops.cast(factor, dtype)``, which makes a float32 tensor
first, so a float64 model uses float32(0.01) = 0.009999999776482582, as here. ``L1`` even keeps
its factor as a float32 tensor, so its config reads 0.009999999776482582 back (so does minicnn's).

Defaults: ``L1()`` and ``L2()`` 0.01, ``L1L2()`` 0 and 0, as Keras's classes. Strings:
'l1', 'l2' (0.01); 'l1l2' / 'L1L2' (0, 0: Keras's ``regularizers.get`` instantiates the class
with its defaults); 'l1_l2' is read as L1L2(0.01, 0.01), the defaults the Keras docstring gives
it (Keras 3.15's own ``regularizers.get('l1_l2')`` raises; the serialised object, which is what
files hold, reads anywhere).
"""

from __future__ import annotations

import math

import numpy as np


def _factor(value, name: str) -> float:
    """Keras's ``validate_float_arg``: a finite number >= 0."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise ValueError(f"invalid value for {name}: expected a non-negative float, received {name}={value!r}")
    return float(value)


def _in(dtype, value: float):
    """The factor as it multiplies a weight of ``dtype`` in Keras: cast through float32."""
    return np.dtype(dtype).type(np.float32(value))


class Regularizer:
    """Base class: ``reg(w)`` is the penalty (a scalar of w's dtype), ``reg.gradient(w)`` its
    gradient (an array like w)."""

    def __call__(self, w: np.ndarray):
        raise NotImplementedError

    def gradient(self, w: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict:
        raise NotImplementedError

    def keras_spec(self) -> dict:
        """The Keras 3 serialisation (``keras.regularizers.serialize``)."""
        return {"module": "keras.regularizers", "class_name": type(self).__name__,
                "config": self.get_config(), "registered_name": None}

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self).__name__, tuple(sorted(self.get_config().items()))))

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())})"


class L1(Regularizer):
    """``l1 * sum(|w|)``; gradient ``l1 * sign(w)`` (0 at w = 0, TensorFlow's Abs gradient).
    The factor is kept rounded to float32, as Keras keeps it in a float32 tensor."""

    def __init__(self, l1=0.01):
        self.l1 = float(np.float32(_factor(0.01 if l1 is None else l1, "l1")))

    def __call__(self, w):
        return _in(w.dtype, self.l1) * np.sum(np.abs(w))

    def gradient(self, w):
        return _in(w.dtype, self.l1) * np.sign(w)

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    """``l2 * sum(w^2)``; gradient ``l2 * (2 w)``."""

    def __init__(self, l2=0.01):
        self.l2 = _factor(0.01 if l2 is None else l2, "l2")

    def __call__(self, w):
        return _in(w.dtype, self.l2) * np.sum(np.square(w))

    def gradient(self, w):
        return _in(w.dtype, self.l2) * (w * w.dtype.type(2))

    def get_config(self):
        return {"l2": self.l2}


class L1L2(Regularizer):
    """``l1 * sum(|w|) + l2 * sum(w^2)``, each term only when its factor is non-zero (Keras)."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _factor(0.0 if l1 is None else l1, "l1")
        self.l2 = _factor(0.0 if l2 is None else l2, "l2")

    def __call__(self, w):
        total = w.dtype.type(0)
        if self.l1:
            total = total + _in(w.dtype, self.l1) * np.sum(np.abs(w))
        if self.l2:
            total = total + _in(w.dtype, self.l2) * np.sum(np.square(w))
        return total

    def gradient(self, w):
        g = np.zeros_like(w)
        if self.l1:
            g = g + _in(w.dtype, self.l1) * np.sign(w)
        if self.l2:
            g = g + _in(w.dtype, self.l2) * (w * w.dtype.type(2))
        return g

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


CLASSES = {"L1": L1, "L2": L2, "L1L2": L1L2}
#: strings: Keras's (class names and their snake case) plus 'l1_l2'
STRINGS = {"l1": L1, "l2": L2, "l1l2": L1L2, "L1": L1, "L2": L2, "L1L2": L1L2,
           "l1_l2": lambda: L1L2(l1=0.01, l2=0.01)}
_MODULES = (None, "keras.regularizers", "keras.src.regularizers.regularizers", "minicnn.regularizers")


def supported_text() -> str:
    return "L1, L2, L1L2 (objects, their Keras serialisation, or 'l1', 'l2', 'l1_l2')"


def get(identifier):
    """A Regularizer (or None) from None, a Regularizer, a string, or a serialised dict
    (Keras 3's ``{"module", "class_name", "config", ...}``, Keras 2's ``{"class_name", "config"}``,
    or :meth:`Regularizer.keras_spec` as minicnn's own configs hold it). ValueError otherwise."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str):
        if identifier not in STRINGS:
            raise ValueError(f"unknown regularizer {identifier!r}; minicnn supports {supported_text()}")
        return STRINGS[identifier]()
    if isinstance(identifier, dict):
        name = identifier.get("class_name")
        cls = CLASSES.get(name) or (STRINGS.get(name) if name in ("l1", "l2", "l1l2") else None)
        if (cls is None or identifier.get("module") not in _MODULES
                or identifier.get("registered_name") not in (None, name)):
            raise ValueError(f"regularizer {identifier!r} is not supported; minicnn supports {supported_text()}")
        config = identifier.get("config") or {}
        if not isinstance(config, dict):
            raise ValueError(f"regularizer {name}: config must be an object, received {config!r}")
        try:
            return cls(**config)
        except TypeError:
            raise ValueError(f"regularizer {name}: unexpected options {sorted(config)}") from None
    raise ValueError(f"cannot interpret regularizer {identifier!r}; minicnn supports {supported_text()}")


def serialize(regularizer) -> dict | None:
    """The Keras 3 serialisation of a regularizer (None for None)."""
    return None if regularizer is None else regularizer.keras_spec()
