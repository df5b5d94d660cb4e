"""``keras.metrics``: minicnn computes one metric, accuracy (pass ``metrics=['accuracy']``)."""

from __future__ import annotations

import numpy as np

from .. import losses as _losses
from .unsupported import missing_names


def categorical_accuracy(y_true, y_pred):
    """Per-sample 1.0/0.0: does the argmax of ``y_pred`` match the one-hot label."""
    return (np.argmax(y_pred, axis=-1) == np.argmax(y_true, axis=-1)).astype("float32")


def sparse_categorical_accuracy(y_true, y_pred):
    """Per-sample 1.0/0.0: does the argmax of ``y_pred`` match the integer label."""
    return (np.argmax(y_pred, axis=-1) == np.asarray(y_true).reshape(-1)).astype("float32")


def accuracy(y_true, y_pred) -> float:
    """The share of correct argmax predictions (one-hot or integer labels)."""
    return _losses.accuracy(y_true, y_pred)


__all__ = ["accuracy", "categorical_accuracy", "sparse_categorical_accuracy"]
__getattr__ = missing_names(__name__, __all__, {
    name: "pass metrics=['accuracy']" for name in ("Accuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy",
                                                   "Precision", "Recall", "AUC")})
