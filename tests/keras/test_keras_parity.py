"""Against Keras itself (small): AdamW and the schedules step for step, and the seed notebook's
files (model.save('cnn_mnist.h5'), model.save_weights('cnn_mnist_weights.h5')) loaded by Keras 3."""

from __future__ import annotations

import numpy as np
import pytest

import minicnn.keras as mk

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def keras():
    pytest.importorskip("tensorflow")
    import keras
    return keras


@pytest.mark.parametrize("make", [
    lambda k: k.optimizers.schedules.ExponentialDecay(0.1, decay_steps=3, decay_rate=0.5),
    lambda k: k.optimizers.schedules.ExponentialDecay(0.1, decay_steps=3, decay_rate=0.5, staircase=True),
    lambda k: k.optimizers.schedules.PiecewiseConstantDecay([2, 5], [0.1, 0.05, 0.01]),
    lambda k: k.optimizers.schedules.CosineDecay(0.1, decay_steps=6, alpha=0.1),
    lambda k: k.optimizers.schedules.CosineDecay(0.0, decay_steps=6, warmup_target=0.1, warmup_steps=3),
], ids=["exp", "exp-staircase", "piecewise", "cosine", "cosine-warmup"])
def test_schedules_match_keras(keras, make):
    ours, theirs = make(mk), make(keras)
    for step in range(12):
        assert ours(step) == pytest.approx(float(theirs(step)), rel=1e-6), step


def test_adamw_with_a_schedule_matches_keras(keras):
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal((5, 4)).astype(np.float32)
    grads = [rng.standard_normal((5, 4)).astype(np.float32) for _ in range(6)]
    sched = dict(initial_learning_rate=0.01, decay_steps=2, decay_rate=0.7)
    ours = mk.optimizers.AdamW(learning_rate=mk.optimizers.schedules.ExponentialDecay(**sched), weight_decay=0.05)
    theirs = keras.optimizers.AdamW(learning_rate=keras.optimizers.schedules.ExponentialDecay(**sched),
                                    weight_decay=0.05)
    p, v = p0.copy(), keras.Variable(p0.copy())
    for g in grads:
        ours.step([("w/kernel", p, g)])
        theirs.apply_gradients([(keras.ops.convert_to_tensor(g), v)])
    np.testing.assert_allclose(p, np.asarray(v), rtol=2e-6, atol=1e-7)
    assert ours.iterations == 6


def seed_model(keras_module):
    from minicnn.keras.layers import Conv2D, Dense, Flatten  # noqa: F401 (the notebook's imports)
    Sequential = keras_module.models.Sequential
    L = keras_module.layers
    model = Sequential()
    model.add(L.Conv2D(32, kernel_size=(3, 3), activation="relu", input_shape=(28, 28, 1)))
    model.add(L.Conv2D(64, (3, 3), activation="relu"))
    model.add(L.Flatten())
    model.add(L.Dense(128, activation="relu"))
    model.add(L.Dense(10, activation="softmax"))
    return model


def test_seed_notebook_files_load_in_keras(keras, tmp_path):
    ours = seed_model(mk)
    ours.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    ours.build()
    ours.save(tmp_path / "cnn_mnist.h5")
    ours.save_weights(tmp_path / "cnn_mnist_weights.h5")
    x = np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32)
    full = keras.saving.load_model(tmp_path / "cnn_mnist.h5", compile=False)
    np.testing.assert_allclose(full.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=1e-4, atol=1e-6)
    theirs = keras.Sequential([keras.Input(shape=(28, 28, 1)), keras.layers.Conv2D(32, 3, activation="relu"),
                               keras.layers.Conv2D(64, 3, activation="relu"), keras.layers.Flatten(),
                               keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10, activation="softmax")])
    theirs.load_weights(tmp_path / "cnn_mnist_weights.h5")  # the Keras 2 layout
    np.testing.assert_allclose(theirs.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=1e-4, atol=1e-6)


def test_compiled_models_load_compiled_both_ways(keras, tmp_path):
    ours = seed_model(mk)
    sched = mk.optimizers.schedules.ExponentialDecay(0.01, decay_steps=10, decay_rate=0.5)
    ours.compile(loss="categorical_crossentropy", optimizer=mk.optimizers.AdamW(learning_rate=sched), metrics=["accuracy"])
    ours.build()
    ours.save(tmp_path / "m.keras")
    theirs = keras.saving.load_model(tmp_path / "m.keras")
    assert type(theirs.optimizer).__name__ == "AdamW" and theirs.optimizer.weight_decay == pytest.approx(0.004)
    assert type(theirs.optimizer.learning_rate).__name__ != "float"  # the schedule came along
    x = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[[1, 2, 3, 4]]
    loss, acc = theirs.evaluate(x, y, verbose=0)  # compiled: evaluate works at once
    np.testing.assert_allclose(loss, ours.evaluate(x, y, verbose=0)[0], rtol=1e-4)
    theirs.save(tmp_path / "k.keras")
    back = mk.models.load_model(tmp_path / "k.keras")
    assert back.loss.name == "categorical_crossentropy" and back.metrics == ["accuracy"]
    assert back.optimizer.name == "adamw" and back.optimizer.schedule is not None
