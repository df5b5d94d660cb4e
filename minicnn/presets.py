"""Named architectures.

* ``seed``: the notebook this project starts from: Conv2D(32, 3x3, relu) -> Conv2D(64, 3x3, relu)
  -> Flatten -> Dense(128, relu) -> Dense(10, softmax); 4,738,826 parameters on 28x28x1.
* ``pooled``: the classic Keras MNIST convnet: the seed model with MaxPool2D(2) and Dropout(0.25)
  after the convolutions and Dropout(0.5) after Dense(128).
"""

from __future__ import annotations

from .layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D
from .sequential import Sequential

PRESETS = ("seed", "pooled")


def build_preset(name: str, input_shape=(28, 28, 1), num_classes=10, dtype="float32", seed=None) -> Sequential:
    """An uncompiled, built model of the named architecture."""
    if name == "seed":
        layers = [Conv2D(32, 3, activation="relu"), Conv2D(64, 3, activation="relu"), Flatten(),
                  Dense(128, activation="relu"), Dense(num_classes, activation="softmax")]
    elif name == "pooled":
        layers = [Conv2D(32, 3, activation="relu"), Conv2D(64, 3, activation="relu"), MaxPool2D(2),
                  Dropout(0.25), Flatten(), Dense(128, activation="relu"), Dropout(0.5),
                  Dense(num_classes, activation="softmax")]
    else:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    model = Sequential(layers, name=name, input_shape=input_shape, dtype=dtype, seed=seed)
    model.build()
    return model
