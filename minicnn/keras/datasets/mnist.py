"""``keras.datasets.mnist``."""

import os

from ...datasets import load_mnist


def load_data(path="mnist.npz"):
    """``(x_train, y_train), (x_test, y_test)`` as Keras returns them (uint8, (60000, 28, 28)).

    Keras's default ``path`` ('mnist.npz', under ``~/.keras/datasets``) searches everywhere
    minicnn looks (``$MINICNN_DATA_DIR``, the Keras cache, ..., then downloads); any other path
    is read as given (a directory of IDX files or an ``mnist.npz``)."""
    return load_mnist(None if os.fspath(path) == "mnist.npz" else path)
