"""A model with BatchNormalization through Keras 3's files, both ways: minicnn writes ``.keras``,
``.h5`` and ``.weights.h5`` that Keras 3 loads, and reads the ones Keras 3 writes; the moving
statistics travel with the trainable weights (every weight is compared bitwise)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.tf]
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from minicnn import Sequential, load_model
from minicnn.layers import BatchNormalization, Conv2D, Dense, Flatten, MaxPool2D, ReLU
from reference.convert import to_keras
from reference.crosscheck import setup_tensorflow

setup_tensorflow()

SUFFIXES = [".keras", ".h5", ".weights.h5"]
DTYPES = ["float32", "float64"]


def bn_model(dtype="float32", seed=0):
    """Conv-BN-relu, a BN without beta after a Dense, every weight random (moving statistics too,
    with a positive variance), so that a weight read into the wrong slot shows."""
    m = Sequential([Conv2D(4, 3, use_bias=False), BatchNormalization(momentum=0.9), ReLU(), MaxPool2D(2),
                    Flatten(), Dense(6), BatchNormalization(center=False, epsilon=1e-5), ReLU(),
                    Dense(3, activation="softmax")], input_shape=(8, 8, 2), dtype=dtype, seed=seed, name="bnnet")
    m.build()
    rng = np.random.default_rng(seed + 100)
    for layer in m.layers:
        for k, p in layer.params.items():
            p[...] = rng.uniform(0.25, 1.5, p.shape) if k == "moving_variance" else rng.uniform(-1, 1, p.shape)
    return m


def images(dtype, n=5):
    return np.random.default_rng(1).standard_normal((n, 8, 8, 2)).astype(dtype)


def assert_same_weights(mine, theirs):
    assert len(mine) == len(theirs)
    for a, b in zip(mine, theirs):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


def keras_model_from(path, dtype):
    if path.name.endswith(".weights.h5"):
        kmodel = to_keras(bn_model(dtype, seed=9))  # another model's weights, to be overwritten
        kmodel.load_weights(path)
        return kmodel
    return keras.saving.load_model(path, compile=False)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_keras_loads_what_minicnn_writes(tmp_path, suffix, dtype):
    m = bn_model(dtype)
    path = tmp_path / f"bnnet{suffix}"
    m.save(path)
    kmodel = keras_model_from(path, dtype)
    bns = [l for l in kmodel.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert [(l.momentum, l.epsilon, l.center, l.scale) for l in bns] == [(0.9, 1e-3, True, True),
                                                                         (0.99, 1e-5, False, True)]
    assert [len(l.non_trainable_weights) for l in bns] == [2, 2]
    assert_same_weights(m.get_weights(), kmodel.get_weights())
    x = images(dtype)
    np.testing.assert_allclose(kmodel(tf.constant(x), training=False).numpy(), m.predict(x),
                               rtol=0, atol=1e-14 if dtype == "float64" else 1e-6)


def keras_bn_model(dtype):
    """A Keras model with BN, trained two steps (moving statistics away from 0 and 1)."""
    previous = keras.config.floatx()
    keras.config.set_floatx(dtype)
    try:
        keras.utils.set_random_seed(0)
        L, d = keras.layers, {"dtype": dtype}  # floatx does not set the layers' dtype policy
        kmodel = keras.Sequential([
            keras.Input((8, 8, 2), dtype=dtype), L.Conv2D(4, 3, use_bias=False, **d),
            L.BatchNormalization(momentum=0.9, **d), L.ReLU(**d), L.MaxPooling2D(2, **d), L.Flatten(**d),
            L.Dense(6, **d), L.BatchNormalization(center=False, epsilon=1e-5, **d), L.ReLU(**d),
            L.Dense(3, activation="softmax", **d)], name="kbnnet")
        kmodel.compile(optimizer="adam", loss="categorical_crossentropy")
        y = np.eye(3, dtype=dtype)[[0, 1, 2, 0, 1]]
        for _ in range(2):
            kmodel.train_on_batch(images(dtype), y)
        assert all(w.dtype == dtype for w in kmodel.weights)
        return kmodel
    finally:
        keras.config.set_floatx(previous)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_minicnn_loads_what_keras_writes(tmp_path, suffix, dtype):
    kmodel = keras_bn_model(dtype)
    moving = [w.numpy() for w in kmodel.non_trainable_weights]
    assert len(moving) == 4 and not np.array_equal(moving[0], np.zeros_like(moving[0]))
    path = tmp_path / f"kbnnet{suffix}"
    if suffix == ".weights.h5":
        kmodel.save_weights(path)
        m = load_model(path, architecture=bn_model(dtype, seed=9))
    else:
        kmodel.save(path)
        m = load_model(path)
        assert [type(l).__name__ for l in m.layers].count("BatchNormalization") == 2
        bn = [l for l in m.layers if isinstance(l, BatchNormalization)]
        assert [(l.momentum, l.epsilon, l.center) for l in bn] == [(0.9, 1e-3, True), (0.99, 1e-5, False)]
    assert m.dtype == np.dtype(dtype)
    assert_same_weights(m.get_weights(), kmodel.get_weights())
    x = images(dtype)
    np.testing.assert_allclose(m.predict(x), kmodel(tf.constant(x), training=False).numpy(),
                               rtol=0, atol=1e-14 if dtype == "float64" else 1e-6)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_minicnn_round_trip_keeps_the_configuration(tmp_path, suffix):
    m = bn_model("float64")
    path = tmp_path / f"bnnet{suffix}"
    m.save(path)
    back = load_model(path, architecture=bn_model("float64", seed=9) if suffix == ".weights.h5" else None)
    assert back.get_config() == m.get_config()
    assert_same_weights(m.get_weights(), back.get_weights())
