"""``keras.datasets.fashion_mnist``."""

from ...datasets import load_fashion_mnist


def load_data():
    """``(x_train, y_train), (x_test, y_test)`` as Keras returns them (uint8, (60000, 28, 28))."""
    return load_fashion_mnist()
