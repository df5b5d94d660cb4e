"""``keras.datasets.cifar10``."""

from ...datasets import load_cifar10


def load_data():
    """``(x_train, y_train), (x_test, y_test)`` as Keras returns them: x uint8 (50000, 32, 32, 3),
    y uint8 of shape (N, 1) (Keras keeps the labels as a column)."""
    (x_train, y_train), (x_test, y_test) = load_cifar10()
    return (x_train, y_train.reshape(-1, 1)), (x_test, y_test.reshape(-1, 1))
