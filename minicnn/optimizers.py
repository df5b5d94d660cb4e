"""Optimizers with Keras 3's update rules and defaults.

All updates happen in place (``p -= ...``), so layers keep their references to their weights.
State arrays (momenta, moments) are keyed by (layer name, weight name) and have the weight's
dtype. ``iterations`` counts applied steps, like Keras's ``optimizer.iterations``.

Keras's arithmetic is reproduced to the bit where it matters for float64 parity (read in
Keras 3.15's ``keras/src/optimizers/*.py``, TF backend; docs/parity.md, "Optimizer
hyperparameters and floatx"):

* the learning rate is a Keras variable of dtype ``keras.config.floatx()`` (at the optimizer's
  creation), cast to the weight's dtype in ``update_step``. minicnn's ``learning_rate_dtype``
  names that dtype: ``None`` (the default) means the dtype of the weight being updated, i.e.
  Keras with floatx set to the model's dtype (a float64 model: the exact learning rate);
  ``'float32'`` matches Keras under its default floatx (a float64 model then sees the learning
  rate rounded through float32). For float32 weights both give the same numbers.
* ``ops.cast(beta_1, dtype)`` (Adam's bias correction) and ``ops.cast(momentum, dtype)`` (SGD)
  call ``tf.cast`` on a Python float, which makes a float32 tensor first, whatever floatx: those
  reach a float64 model rounded to float32 (:func:`keras_hyper`).
* Python floats in ``ops.multiply``/``ops.add`` (``1 - beta_1``, epsilon, RMSprop's rho and
  momentum) are weakly typed and take the weight's dtype exactly (:func:`python_scalar`).
"""

from __future__ import annotations

import math

import numpy as np

from . import schedules as schedules_mod
from .kernels import get_backend


def keras_hyper(value: float, dt):
    """A hyperparameter as Keras's TF backend sees it in dtype ``dt``: rounded through float32."""
    return dt(np.float32(value))


def python_scalar(value: float, dt):
    """A Python-float expression (computed in float64) cast to ``dt``, as TensorFlow does."""
    return dt(value)


#: the values of ``learning_rate_dtype``: None (the weight's dtype) or Keras's floatx of the run
LEARNING_RATE_DTYPES = (None, "float32", "float64")


class Optimizer:
    """Template: :meth:`step` walks the parameters and calls :meth:`_update` on each."""

    name = "optimizer"
    slot_names: tuple[str, ...] = ()

    def __init__(self, learning_rate: float, weight_decay=None, learning_rate_dtype=None):
        #: a :class:`~minicnn.schedules.LearningRateSchedule` evaluated before every step, or None
        self.schedule = None
        if isinstance(learning_rate, dict):
            learning_rate = schedules_mod.deserialize(learning_rate)
        if isinstance(learning_rate, schedules_mod.LearningRateSchedule):
            self.schedule, learning_rate = learning_rate, learning_rate(0)
        if not (isinstance(learning_rate, (int, float)) and learning_rate > 0 and math.isfinite(learning_rate)):
            raise ValueError(f"learning_rate must be a positive number or a schedule, got {learning_rate!r}")
        if learning_rate_dtype is not None:
            learning_rate_dtype = np.dtype(learning_rate_dtype).name
        if learning_rate_dtype not in LEARNING_RATE_DTYPES:
            raise ValueError("learning_rate_dtype must be None (the weights' dtype), 'float32' or "
                             f"'float64', got {learning_rate_dtype!r}")
        self.learning_rate = float(learning_rate)
        #: the dtype of Keras's learning-rate variable (its floatx) to match; None: the weight's
        self.learning_rate_dtype = learning_rate_dtype
        if weight_decay is not None and not (isinstance(weight_decay, (int, float)) and weight_decay >= 0):
            raise ValueError(f"weight_decay must be a non-negative number or None, got {weight_decay!r}")
        self.weight_decay = None if not weight_decay else float(weight_decay)
        self.iterations = 0
        self.slots: dict[str, dict[str, np.ndarray]] = {s: {} for s in self.slot_names}

    def step(self, named_params) -> None:
        """Apply one update. ``named_params`` yields (key, param, grad) triples.

        A schedule is evaluated at the step count before the update (Keras); decoupled weight
        decay (``p -= p * weight_decay * lr``) is applied before the update, as Keras does."""
        t = self.iterations + 1
        if self.schedule is not None:
            self.learning_rate = float(self.schedule(self.iterations))
        for key, p, g in named_params:
            state = {}
            for s in self.slot_names:
                if key not in self.slots[s]:
                    self.slots[s][key] = np.zeros_like(p)
                state[s] = self.slots[s][key]
            if self.weight_decay:
                dt = p.dtype.type
                p -= p * keras_hyper(self.weight_decay, dt) * self.lr(dt)
            self._update(p, g, state, t)
        self.iterations = t

    def _update(self, p, g, state, t):
        raise NotImplementedError

    def lr(self, dt):
        """The learning rate as Keras's ``ops.cast(learning_rate, variable.dtype)`` gives it to a
        weight of dtype ``dt``: held in ``learning_rate_dtype`` (default ``dt``), then cast."""
        held = np.dtype(self.learning_rate_dtype).type if self.learning_rate_dtype else dt
        return dt(held(self.learning_rate))

    # -- state for checkpoints ----------------------------------------------------------------
    def get_state(self) -> dict[str, np.ndarray]:
        flat = {f"{s}/{k}": v for s, d in self.slots.items() for k, v in d.items()}
        flat["iterations"] = np.array(self.iterations, dtype=np.int64)
        return flat

    def set_state(self, flat: dict[str, np.ndarray]) -> None:
        self.iterations = int(flat["iterations"])
        self.slots = {s: {} for s in self.slot_names}
        for name, v in flat.items():
            if name != "iterations":
                s, k = name.split("/", 1)
                self.slots[s][k] = np.array(v)

    def get_config(self):
        lr = schedules_mod.serialize(self.schedule) if self.schedule is not None else self.learning_rate
        cfg = {"name": self.name, "learning_rate": lr, "learning_rate_dtype": self.learning_rate_dtype}
        if self.weight_decay:
            cfg["weight_decay"] = self.weight_decay
        return cfg


class SGD(Optimizer):
    """Keras SGD: ``m = momentum*m - lr*g``; ``p += m`` (or ``p += momentum*m - lr*g`` for Nesterov)."""

    name = "sgd"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None,
                 learning_rate_dtype=None):
        super().__init__(learning_rate, weight_decay, learning_rate_dtype)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum!r}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.slot_names = ("momentum",) if self.momentum else ()
        self.slots = {s: {} for s in self.slot_names}

    def _update(self, p, g, state, t):
        lr = self.lr(p.dtype.type)
        if not self.momentum:
            p -= lr * g
            return
        mom = keras_hyper(self.momentum, p.dtype.type)
        m = state["momentum"]
        m *= mom
        m -= lr * g
        if self.nesterov:
            p += mom * m - lr * g
        else:
            p += m

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Keras Adam (epsilon is the paper's "epsilon hat", outside the bias correction)::

        alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
        m += (g - m) * (1 - beta_1);  v += (g^2 - v) * (1 - beta_2)
        p -= alpha * m / (sqrt(v) + epsilon)

    ``epsilon_mode='pytorch'`` instead adds epsilon to sqrt(v_hat) (PyTorch's placement).
    """

    name = "adam"
    slot_names = ("m", "v")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, epsilon_mode="keras",
                 weight_decay=None, learning_rate_dtype=None):
        super().__init__(learning_rate, weight_decay, learning_rate_dtype)
        if epsilon_mode not in ("keras", "pytorch"):
            raise ValueError(f"epsilon_mode must be 'keras' or 'pytorch', got {epsilon_mode!r}")
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.epsilon_mode = epsilon_mode

    def _update(self, p, g, state, t):
        dt = p.dtype.type
        lr, eps = self.lr(dt), python_scalar(self.epsilon, dt)
        m, v = state["m"], state["v"]
        # the powers are taken in the variable's dtype, of betas rounded through float32
        b1_t = keras_hyper(self.beta_1, dt) ** dt(t)
        b2_t = keras_hyper(self.beta_2, dt) ** dt(t)
        if self.epsilon_mode == "keras":
            alpha = lr * np.sqrt(dt(1) - b2_t) / (dt(1) - b1_t)
            # one fused pass on the numba backend; the same operations in the same order in numpy
            get_backend().adam_update(p, g, m, v, python_scalar(1.0 - self.beta_1, dt),
                                      python_scalar(1.0 - self.beta_2, dt), alpha, eps)
        else:
            m += (g - m) * python_scalar(1.0 - self.beta_1, dt)
            v += (np.square(g) - v) * python_scalar(1.0 - self.beta_2, dt)
            m_hat = m / (dt(1) - b1_t)
            v_hat = v / (dt(1) - b2_t)
            p -= lr * m_hat / (np.sqrt(v_hat) + eps)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "epsilon_mode": self.epsilon_mode}


class RMSprop(Optimizer):
    """Keras RMSprop: ``v = rho*v + (1-rho)*g^2``; ``p -= lr * g / sqrt(v + epsilon)`` (epsilon
    inside the root, as Keras 3 does), with optional momentum and centering."""

    name = "rmsprop"

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 weight_decay=None, learning_rate_dtype=None):
        super().__init__(learning_rate, weight_decay, learning_rate_dtype)
        self.rho, self.momentum, self.epsilon, self.centered = float(rho), float(momentum), float(epsilon), bool(centered)
        self.slot_names = ("velocity",) + (("momentum",) if self.momentum else ()) + (("average_gradient",) if self.centered else ())
        self.slots = {s: {} for s in self.slot_names}

    def _update(self, p, g, state, t):
        dt = p.dtype.type
        rho, one_minus_rho = python_scalar(self.rho, dt), python_scalar(1.0 - self.rho, dt)
        v = state["velocity"]
        v *= rho
        v += one_minus_rho * np.square(g)
        eps = python_scalar(self.epsilon, dt)
        if self.centered:  # Keras: velocity - square(average_grad) + epsilon, in that order
            ag = state["average_gradient"]
            ag *= rho
            ag += one_minus_rho * g
            denom = (v - np.square(ag)) + eps
        else:
            denom = v + eps
        increment = self.lr(dt) * g / np.sqrt(denom)
        if self.momentum:
            m = state["momentum"]
            m *= python_scalar(self.momentum, dt)  # a Python float in Keras's ops.multiply
            m += increment
            p -= m
        else:
            p -= increment

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


class AdamW(Adam):
    """Keras AdamW: Adam with decoupled weight decay (default 0.004): ``p -= p * weight_decay * lr``
    before each Adam update."""

    name = "adamw"

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 epsilon_mode="keras", learning_rate_dtype=None):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, epsilon_mode, weight_decay=weight_decay,
                         learning_rate_dtype=learning_rate_dtype)

    def get_config(self):
        return {**super().get_config(), "weight_decay": self.weight_decay or 0.0}


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop, "adamw": AdamW}


def get(opt, **overrides):
    """An optimizer from an instance, a name ('adam') or a config dict."""
    if isinstance(opt, Optimizer):
        return opt
    if isinstance(opt, dict):
        cfg = dict(opt)
        return get(cfg.pop("name"), **cfg)
    try:
        cls = OPTIMIZERS[str(opt).lower()]
    except KeyError:
        raise ValueError(f"unknown optimizer {opt!r}; choose one of {', '.join(OPTIMIZERS)}") from None
    return cls(**overrides)
