"""``keras.optimizers``: Adam, SGD, RMSprop, AdamW (minicnn's, with Keras 3's update rules) and
``schedules``; ``get`` takes the names Keras takes ('adam', 'sgd', 'rmsprop', 'adamw').

Keras's common optimizer options are accepted at their defaults (``name``, ``clipnorm=None``,
``use_ema=False``, ``amsgrad=False``, ...); any other value is a KerasUnsupportedError naming it."""

from __future__ import annotations

from ... import optimizers as _opt
from ...optimizers import Optimizer
from ..unsupported import missing_names, refuse
from . import schedules

#: Keras optimizer options minicnn honours only at these values
_NEUTRAL = {"clipnorm": None, "clipvalue": None, "global_clipnorm": None, "use_ema": False,
            "ema_momentum": 0.99, "ema_overwrite_frequency": None, "loss_scale_factor": None,
            "gradient_accumulation_steps": None, "amsgrad": False}


def _adapt(cls):
    def __init__(self, *args, name=None, **kwargs):
        for key in [k for k in kwargs if k in _NEUTRAL]:
            value = kwargs.pop(key)
            if value != _NEUTRAL[key]:
                refuse(f"keras.optimizers.{cls.__name__}({key}", value)
        cls.__init__(self, *args, **kwargs)

    return type(cls.__name__, (cls,), {"__init__": __init__, "__module__": __name__, "__doc__": cls.__doc__})


Adam, SGD, RMSprop, AdamW = (_adapt(c) for c in (_opt.Adam, _opt.SGD, _opt.RMSprop, _opt.AdamW))


def get(identifier):
    """An optimizer from an instance, a name or a config dict."""
    return _opt.get(identifier)


__all__ = ["Adam", "SGD", "RMSprop", "AdamW", "Optimizer", "schedules", "get"]
__getattr__ = missing_names(__name__, __all__, {"Adagrad": "minicnn has Adam, AdamW, SGD and RMSprop",
                                                "Nadam": "minicnn has Adam, AdamW, SGD and RMSprop"})
