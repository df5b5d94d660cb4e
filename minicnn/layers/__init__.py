"""Layers with Keras's names, layouts and defaults."""

from .base import ActivatedLayer, Layer
from .conv import Conv2D
from .dense import Dense
from .pool import MaxPool2D, MaxPooling2D
from .simple import Activation, Dropout, Flatten, ReLU, Softmax

#: class name -> class, for configs saved in model files (never anything else: no code from files)
LAYER_CLASSES = {cls.__name__: cls for cls in (Conv2D, Dense, MaxPool2D, Flatten, ReLU, Softmax, Dropout)}

__all__ = ["Layer", "ActivatedLayer", "Conv2D", "Dense", "MaxPool2D", "MaxPooling2D", "Flatten",
           "ReLU", "Softmax", "Activation", "Dropout", "LAYER_CLASSES"]
