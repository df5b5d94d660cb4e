"""``minicnn.keras``: tensorflow.keras's module paths and signatures for what minicnn supports.

``import minicnn.keras as keras`` (or ``from minicnn.keras.layers import Conv2D``) in place of
``from tensorflow import keras`` runs Keras code for Sequential CNNs unchanged: models
(Sequential, load_model), every minicnn layer plus Input, datasets (mnist, fashion_mnist,
cifar10), utils.to_categorical, optimizers and their schedules, callbacks, losses, metrics.
These modules are thin adapters (names, argument conventions); minicnn does the work. Anything
Keras has and minicnn does not raises one :class:`~minicnn.errors.KerasUnsupportedError`
naming it (also an ImportError, for ``from ... import``).
"""

from ..errors import KerasUnsupportedError
from . import backend, callbacks, datasets, layers, losses, metrics, models, optimizers, utils
from .layers import Input
from .models import Sequential, load_model
from .unsupported import missing_names

__version__ = "3.0.0-minicnn"

__all__ = ["Sequential", "load_model", "Input", "layers", "models", "datasets", "utils", "optimizers",
           "callbacks", "losses", "metrics", "backend", "KerasUnsupportedError"]
__getattr__ = missing_names(__name__, __all__, {
    "Model": "the functional API and subclassed models; build a keras.Sequential",
    "ops": "minicnn computes with NumPy; there are no symbolic ops",
    "applications": "no pretrained models", "mixed_precision": "float32 or float64 only",
    "regularizers": "pass kernel_regularizer='l2' etc. as strings",
})
