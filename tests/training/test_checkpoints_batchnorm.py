"""A model with BatchNormalization through minicnn's own files: the ``.npz`` model file and the
checkpoints ``fit`` writes (moving statistics included, resumption bitwise)."""

from __future__ import annotations

import numpy as np
import pytest

from minicnn import Sequential, load_model, optimizers
from minicnn.errors import NonFiniteError
from minicnn.io import checkpoint as ckpt
from minicnn.layers import BatchNormalization, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU
from tests.training.test_checkpoints import (
    AtIteration,
    Crash,
    X,
    assert_same_training_state,
    crash,
    fit,
    names,
    snapshot,
)

MOVING = ["batch_normalization/moving_mean", "batch_normalization/moving_variance",
          "batch_normalization_1/moving_mean", "batch_normalization_1/moving_variance"]


def bn_model(seed=0):
    m = Sequential([Conv2D(4, 3, use_bias=False), BatchNormalization(), ReLU(), MaxPool2D(2), Dropout(0.25),
                    Flatten(), Dense(16, use_bias=False), BatchNormalization(momentum=0.9), ReLU(),
                    Dense(10, activation="softmax")], input_shape=(12, 12, 1), seed=seed)
    m.compile("adam", "categorical_crossentropy", ["accuracy"])
    return m


@pytest.fixture
def reference(backend):
    model = bn_model()
    fit(model, checkpoint_every=None)
    return snapshot(model)


def test_npz_round_trip_keeps_the_moving_statistics(tmp_path):
    model = bn_model()
    fit(model, epochs=1)
    weights = dict(model.named_weights())
    assert all(not np.array_equal(weights[k], np.full_like(weights[k], "variance" in k)) for k in MOVING)
    model.save(tmp_path / "bn.npz")
    back = load_model(tmp_path / "bn.npz")
    assert back.get_config() == model.get_config()
    assert [k for k, _ in back.named_weights()] == list(weights)
    assert all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(back.get_weights(), model.get_weights()))
    assert np.array_equal(back.predict(X[:20]), model.predict(X[:20]))


def test_checkpoints_hold_the_moving_statistics(tmp_path):
    model = bn_model()
    fit(model, tmp_path, epochs=1)
    arrays, _ = ckpt.read_checkpoint(ckpt.list_checkpoints(tmp_path)[-1])
    weights = dict(model.named_weights())
    assert all(np.array_equal(arrays[f"weights/{k}"], weights[k]) for k in MOVING)
    assert not any(k.startswith("optimizer/") and "moving" in k for k in arrays)  # no optimizer state
    rebuilt, _ = ckpt.model_from_checkpoint(ckpt.list_checkpoints(tmp_path)[-1])
    assert all(np.array_equal(a, b) for a, b in zip(rebuilt.get_weights(), model.get_weights()))


def test_crash_mid_epoch_then_resume_is_bitwise_identical(tmp_path, reference, backend):
    with pytest.raises(Crash):
        fit(bn_model(), tmp_path, checkpoint_every=4, callbacks=[AtIteration(17, crash)])
    assert names(tmp_path)[-1] == "ckpt-000000014.npz"
    model = bn_model()
    fit(model, tmp_path, checkpoint_every=4, resume=True)
    assert_same_training_state(reference, snapshot(model))


def test_resume_from_an_end_of_epoch_checkpoint_is_bitwise_identical(tmp_path, reference, backend):
    with pytest.raises(Crash):
        fit(bn_model(), tmp_path, callbacks=[AtIteration(25, crash)])
    model = bn_model()
    fit(model, tmp_path, resume=True)
    assert_same_training_state(reference, snapshot(model))


def stopped_by_the_guard():
    """(weights after the last good step, the model after the guard stopped the next one)."""
    model = bn_model()
    model.compile(optimizers.SGD(1e30), "categorical_crossentropy")
    seen = {}
    with pytest.raises(NonFiniteError, match="at epoch 1, step 2"):
        fit(model, callbacks=[AtIteration(1, lambda m: seen.update(w={k: w.copy() for k, w in m.named_weights()}))])
    return seen["w"], model


def test_a_step_stopped_by_the_guard_leaves_the_trainable_weights_unchanged():
    before, model = stopped_by_the_guard()
    assert all(np.array_equal(before[k], p) for k, p, _ in model.named_parameters())


def test_a_step_stopped_by_the_guard_leaves_the_moving_statistics_unchanged():
    before, model = stopped_by_the_guard()
    weights = dict(model.named_weights())
    assert all(np.array_equal(before[k], weights[k]) for k in MOVING)
