"""Cross-entropy losses: Keras formulas, clipping, fused softmax gradient, finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from minicnn import gradcheck
from minicnn.activations import softmax, softmax_backward
from minicnn.losses import CategoricalCrossentropy, SparseCategoricalCrossentropy, accuracy

from tests.helpers import GRADCHECK_RTOL, rel_err


def probs(rng, n=5, k=4):
    return softmax(rng.standard_normal((n, k)))


def test_categorical_matches_keras_formula(rng):
    p = probs(rng)
    y = np.eye(4)[[0, 1, 2, 3, 1]]
    expected = -np.mean(np.sum(y * np.log(np.clip(p / p.sum(1, keepdims=True), 1e-7, 1 - 1e-7)), axis=1))
    assert CategoricalCrossentropy()(y, p) == pytest.approx(expected, rel=1e-14)


def test_clipping_at_1e_7_and_zero_gradient_there():
    p = np.array([[1.0, 0.0, 0.0]])
    y = np.array([[0.0, 1.0, 0.0]])
    loss, g = CategoricalCrossentropy().loss_and_grad(y, p)
    assert loss == pytest.approx(-np.log(1e-7))  # not inf
    assert g[0, 1] == 0.0  # the clip kills the gradient where p < eps


def test_sparse_equals_categorical_away_from_the_clip(rng):
    p = probs(rng)
    labels = np.array([0, 3, 2, 1, 1])
    a = SparseCategoricalCrossentropy()(labels, p)
    b = CategoricalCrossentropy()(np.eye(4)[labels], p)
    assert a == pytest.approx(b, rel=1e-12)


@pytest.mark.parametrize("loss_cls", [CategoricalCrossentropy, SparseCategoricalCrossentropy])
@pytest.mark.parametrize("from_logits", [False, True])
def test_gradients_by_finite_differences(loss_cls, from_logits, rng):
    z = rng.standard_normal((6, 5))
    labels = rng.integers(0, 5, size=6)
    y = labels if loss_cls.sparse else np.eye(5)[labels]
    pred = z if from_logits else softmax(z)
    errs = gradcheck.check_loss(loss_cls(from_logits=from_logits), y, pred)
    assert errs["y_pred"] <= GRADCHECK_RTOL


def test_fused_gradient_is_softmax_minus_labels_over_n(rng):
    z = rng.standard_normal((8, 10))
    y = np.eye(10)[rng.integers(0, 10, 8)]
    loss_fused, dz = CategoricalCrossentropy().logits_loss_and_grad(y, z)
    np.testing.assert_allclose(dz, (softmax(z) - y) / 8, rtol=1e-13)
    # ... and equals the unfused chain rule (through softmax) where the clip is inactive
    loss, dp = CategoricalCrossentropy().loss_and_grad(y, softmax(z))
    assert loss == pytest.approx(loss_fused, rel=1e-12)
    assert rel_err(softmax_backward(dp, softmax(z)), dz) < 1e-12


def test_float32_is_kept(rng):
    p = probs(rng).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 1]]
    _, g = CategoricalCrossentropy().loss_and_grad(y, p)
    assert g.dtype == np.float32
    _, dz = CategoricalCrossentropy().logits_loss_and_grad(y, p)
    assert dz.dtype == np.float32


def test_bad_labels_are_named(rng):
    p = probs(rng)
    with pytest.raises(ValueError, match=r"label 7 at index 1 is out of range \[0, 4\)"):
        SparseCategoricalCrossentropy()(np.array([0, 7, 1, 1, 1]), p)
    with pytest.raises(ValueError, match="one-hot labels must have shape"):
        CategoricalCrossentropy()(np.eye(3)[[0, 1, 2, 0, 1]], p)


def test_accuracy_one_hot_and_sparse():
    pred = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert accuracy(np.array([1, 0, 0]), pred) == pytest.approx(2 / 3)
    assert accuracy(np.eye(2)[[1, 0, 1]], pred) == 1.0
