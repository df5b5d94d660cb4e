"""Models with the pooling zoo's layers through Keras files, both ways, with Keras 3 itself:
minicnn writes .keras / .h5 / .weights.h5 and Keras 3 loads them, Keras 3 writes them and
minicnn loads them; the predictions agree."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.tf]
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from minicnn import Sequential, load_model  # noqa: E402
from minicnn.layers import (AveragePooling2D, Conv2D, Dense, GlobalAveragePooling2D, GlobalMaxPooling2D,  # noqa: E402
                            Reshape, ZeroPadding2D)
from reference.convert import clone, to_keras  # noqa: E402
from reference.crosscheck import setup_tensorflow  # noqa: E402

setup_tensorflow()

SUFFIXES = [".keras", ".h5", ".weights.h5"]
DTYPES = ["float32", "float64"]
#: minicnn vs Keras predictions: the same weights and formulas, the convolutions summed in
#: another order (float64: ~1e-16 relative on outputs of order 1; float32: ~1e-7)
ATOL = {"float32": 1e-6, "float64": 1e-14}


def minicnn_model(which: str, dtype="float32", seed=0) -> Sequential:
    if which == "avg":
        # (9, 9, 3) -> conv (7, 7, 4) -> avg 'same' stride 2 (4, 4, 4): the last row and column
        # of windows hold 2 real cells (the corner 1) -> pad (5, 7, 4) -> mean (1, 1, 4) -> (4,) -> 5
        layers = [Conv2D(4, 3, activation="relu", input_shape=(9, 9, 3)),
                  AveragePooling2D(2, strides=2, padding="same"), ZeroPadding2D(((1, 0), (2, 1))),
                  GlobalAveragePooling2D(keepdims=True), Reshape((-1,)), Dense(5, activation="softmax")]
    else:
        # (8, 8, 2) -> reshape (16, 4, 2) -> pad (18, 6, 2) -> conv (8, 2, 3) -> avg 3x1 stride 1
        # (6, 2, 3) -> max (3,) -> 4
        layers = [Reshape((16, 4, 2), input_shape=(8, 8, 2)), ZeroPadding2D(1), Conv2D(3, 3, strides=2),
                  AveragePooling2D((3, 1), strides=1), GlobalMaxPooling2D(), Dense(4)]
    m = Sequential(layers, name=f"zoo_{which}", dtype=dtype, seed=seed)
    m.build()
    rng = np.random.default_rng(seed + 10)
    m.set_weights([rng.uniform(-1, 1, w.shape).astype(dtype) for w in m.get_weights()])  # non-zero biases
    return m


def keras_model(which: str, dtype="float32", seed=0):
    """The same architecture written with Keras itself (its own defaults, aliases and names)."""
    L = keras.layers
    if which == "avg":
        layers = [keras.Input((9, 9, 3), dtype=dtype), L.Conv2D(4, 3, activation="relu", dtype=dtype),
                  L.AvgPool2D(2, padding="same", dtype=dtype), L.ZeroPadding2D(((1, 0), (2, 1)), dtype=dtype),
                  L.GlobalAvgPool2D(keepdims=True, dtype=dtype), L.Reshape((-1,), dtype=dtype),
                  L.Dense(5, activation="softmax", dtype=dtype)]
    else:
        layers = [keras.Input((8, 8, 2), dtype=dtype), L.Reshape((16, 4, 2), dtype=dtype),
                  L.ZeroPadding2D(dtype=dtype), L.Conv2D(3, 3, strides=2, dtype=dtype),
                  L.AveragePooling2D((3, 1), strides=1, dtype=dtype), L.GlobalMaxPool2D(dtype=dtype),
                  L.Dense(4, dtype=dtype)]
    k = keras.Sequential(layers, name=f"keras_{which}")
    rng = np.random.default_rng(seed + 20)
    k.set_weights([rng.uniform(-1, 1, w.shape).astype(dtype) for w in k.get_weights()])
    return k


def inputs(which, dtype, n=6, seed=0):
    shape = (9, 9, 3) if which == "avg" else (8, 8, 2)
    return np.random.default_rng(seed).standard_normal((n, *shape)).astype(dtype)


@pytest.mark.parametrize("which", ["avg", "max"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_keras_loads_what_minicnn_writes(tmp_path, which, dtype, suffix):
    m = minicnn_model(which, dtype)
    path = str(tmp_path / f"m{suffix}")
    m.save(path)
    if suffix == ".weights.h5":
        k = to_keras(clone(minicnn_model(which, dtype, seed=5)))
        for w in k.weights:  # scramble, then load
            w.assign(tf.zeros_like(w))
        k.load_weights(path)
    else:
        k = keras.saving.load_model(path)
    assert [type(l).__name__ for l in k.layers] == [l.keras_class_name() for l in m.layers]
    x = inputs(which, dtype)
    out = k(tf.constant(x), training=False).numpy()
    assert out.dtype == dtype
    np.testing.assert_allclose(out, m.predict(x), rtol=0, atol=ATOL[dtype])
    # and minicnn reads its own file back exactly
    back = load_model(path, architecture=minicnn_model(which, dtype, seed=7) if suffix == ".weights.h5" else None)
    np.testing.assert_array_equal(back.predict(x), m.predict(x))
    if suffix != ".weights.h5":
        assert back.get_config() == m.get_config()


@pytest.mark.parametrize("which", ["avg", "max"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_minicnn_loads_what_keras_writes(tmp_path, which, dtype, suffix):
    k = keras_model(which, dtype)
    path = str(tmp_path / f"k{suffix}")
    k.save_weights(path) if suffix == ".weights.h5" else k.save(path)
    arch = minicnn_model(which, dtype, seed=3) if suffix == ".weights.h5" else None
    m = load_model(path, architecture=arch)
    assert m.dtype == np.dtype(dtype)
    assert [l.keras_class_name() for l in m.layers] == [type(l).__name__ for l in k.layers]
    assert all(np.array_equal(a, b) for a, b in zip(m.get_weights(), k.get_weights()))
    x = inputs(which, dtype, seed=1)
    np.testing.assert_allclose(m.predict(x), k(tf.constant(x), training=False).numpy(), rtol=0, atol=ATOL[dtype])
    if suffix != ".weights.h5":  # the options Keras wrote (and its defaults), read as minicnn's
        ap = next(l for l in m.layers if isinstance(l, AveragePooling2D))
        zp = next(l for l in m.layers if isinstance(l, ZeroPadding2D))
        expected = {"avg": ((2, 2), (2, 2), "same", (1, 0, 2, 1)), "max": ((3, 1), (1, 1), "valid", (1, 1, 1, 1))}
        assert (ap.pool_size, ap.strides, ap.padding, zp.pads) == expected[which]
