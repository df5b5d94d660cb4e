"""``keras.losses``: the two cross-entropies minicnn trains with, as classes and functions."""

from __future__ import annotations

import numpy as np

from .. import losses as _losses
from .unsupported import missing_names, refuse


def _options(name, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size", **kwargs):
    if label_smoothing:
        refuse(f"keras.losses.{name}(label_smoothing", label_smoothing)
    if axis != -1:
        refuse(f"keras.losses.{name}(axis", axis)
    if reduction not in ("sum_over_batch_size", "auto"):
        refuse(f"keras.losses.{name}(reduction", reduction, "minicnn averages over the batch")


class CategoricalCrossentropy(_losses.CategoricalCrossentropy):
    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="categorical_crossentropy", dtype=None):
        _options("CategoricalCrossentropy", label_smoothing, axis, reduction)
        super().__init__(from_logits=from_logits)


class SparseCategoricalCrossentropy(_losses.SparseCategoricalCrossentropy):
    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size",
                 name="sparse_categorical_crossentropy", dtype=None):
        if ignore_class is not None:
            refuse("keras.losses.SparseCategoricalCrossentropy(ignore_class", ignore_class)
        _options("SparseCategoricalCrossentropy", reduction=reduction)
        super().__init__(from_logits=from_logits)


def _per_sample(loss_cls, y_true, y_pred, from_logits):
    y_pred = np.asarray(y_pred)
    loss = loss_cls(from_logits=from_logits)
    return np.array([loss(y_true[i:i + 1], y_pred[i:i + 1]) for i in range(len(y_pred))], dtype=y_pred.dtype)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-sample losses (Keras's functional form)."""
    _options("categorical_crossentropy", label_smoothing, axis)
    return _per_sample(_losses.CategoricalCrossentropy, np.asarray(y_true), y_pred, from_logits)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    """Per-sample losses (Keras's functional form)."""
    if ignore_class is not None:
        refuse("sparse_categorical_crossentropy(ignore_class", ignore_class)
    return _per_sample(_losses.SparseCategoricalCrossentropy, np.asarray(y_true), y_pred, from_logits)


categorical_crossentropy.keras_loss_name = "categorical_crossentropy"
sparse_categorical_crossentropy.keras_loss_name = "sparse_categorical_crossentropy"

__all__ = ["CategoricalCrossentropy", "SparseCategoricalCrossentropy", "categorical_crossentropy",
           "sparse_categorical_crossentropy"]
__getattr__ = missing_names(__name__, __all__, {
    "BinaryCrossentropy": "end with Dense(2, activation='softmax') and categorical cross-entropy",
    "MeanSquaredError": "minicnn trains classifiers", "binary_crossentropy": "use two classes and softmax"})
