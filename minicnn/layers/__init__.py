"""Layers with Keras's names, layouts and defaults.

:data:`LAYERS` is the registry: every layer class minicnn has, once. Model files name layers by
these classes only (never anything else: no code from files), and Keras files by
:data:`KERAS_CLASSES`, which each layer fills in itself (``keras_class``, ``keras_aliases``).
"""

from . import keras_options
from .activation import ELU, Activation, LeakyReLU, PReLU, ReLU, Softmax
from .base import ActivatedLayer, Layer
from .batchnorm import BatchNormalization
from .conv import Conv2D
from .dense import Dense
from .depthwise import DepthwiseConv2D
from .pool import MaxPool2D, MaxPooling2D
from .avg_pool import AveragePooling2D, AvgPool2D
from .global_pool import GlobalAveragePooling2D, GlobalAvgPool2D, GlobalMaxPool2D, GlobalMaxPooling2D
from .reshape import Reshape
from .zero_padding import ZeroPadding2D
from .rescaling import Rescaling
from .separable import SeparableConv2D
from .simple import Dropout, Flatten

#: the registry: one entry per layer class
LAYERS = (
    Conv2D, Dense, MaxPool2D, Flatten, ReLU, Softmax, Activation, Dropout,
    Rescaling,
    AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, ZeroPadding2D, Reshape,
    BatchNormalization,
    DepthwiseConv2D, SeparableConv2D,
    LeakyReLU, ELU, PReLU,
)

#: class name -> class, for configs saved in minicnn model files
LAYER_CLASSES = {cls.__name__: cls for cls in LAYERS}
#: Keras class name -> minicnn class, for Keras files
KERAS_CLASSES = {name: cls for cls in LAYERS for name in (cls.keras_class_name(), *cls.keras_aliases)}


def planned_params(layers, input_shape) -> int:
    """How many weight values ``layers`` would allocate on ``input_shape`` (no batch axis), from
    shapes alone: nothing is allocated. Raises ValueError for an impossible stack."""
    shape, total = tuple(input_shape), 0
    for layer in layers:
        total += layer.planned_params(shape)
        shape = tuple(layer.compute_output_shape(shape))
    return total


__all__ = ["Layer", "ActivatedLayer", "MaxPooling2D", "AvgPool2D", "GlobalAvgPool2D", "GlobalMaxPool2D", "LAYERS", "LAYER_CLASSES", "KERAS_CLASSES",
           "planned_params", "keras_options", *LAYER_CLASSES]
