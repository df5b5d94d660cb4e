"""``keras.optimizers``: Adam, SGD, RMSprop, AdamW (minicnn's, with Keras 3's update rules) and
``schedules``; ``get`` takes the names Keras takes ('adam', 'sgd', 'rmsprop', 'adamw')."""

from ...optimizers import SGD, Adam, AdamW, Optimizer, RMSprop
from ...optimizers import get as _get
from ..unsupported import missing_names
from . import schedules


def get(identifier):
    """An optimizer from an instance, a name or a config dict."""
    return _get(identifier)


__all__ = ["Adam", "SGD", "RMSprop", "AdamW", "Optimizer", "schedules", "get"]
__getattr__ = missing_names(__name__, __all__)
