"""reference.convert and Keras <-> minicnn files, checked inside TensorFlow/Keras."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.tf]
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from minicnn import build_preset, datasets  # noqa: E402
from minicnn.io import keras as keras_files  # noqa: E402
from reference.convert import clone, copy_weights_from_keras, copy_weights_to_keras, from_keras, to_keras  # noqa: E402
from reference.crosscheck import setup_tensorflow  # noqa: E402
from tests.helpers import mnist_dir  # noqa: E402
from tests.reference.archgen import SEEDS, generate  # noqa: E402

setup_tensorflow()


def images(n=16, dtype="float32", seed=0):
    return np.random.default_rng(seed).random((n, 28, 28, 1)).astype(dtype)


@pytest.mark.parametrize("seed", SEEDS)
def test_to_keras_from_keras_round_trip(seed):
    m = generate(seed)
    k = to_keras(m)
    assert [l.name for l in k.layers] == [l.name for l in m.layers]
    assert all(l.dtype_policy.name == "float32" for l in k.layers)
    x = images()
    np.testing.assert_allclose(k(x, training=False).numpy(), m.predict(x), rtol=0, atol=1e-5)
    back = from_keras(k)
    assert back.get_config() == m.get_config()
    assert all(np.array_equal(a, b) for a, b in zip(back.get_weights(), m.get_weights()))


def test_float64_everywhere():
    m = build_preset("pooled", dtype="float64", seed=1)
    k = to_keras(m)
    assert all(l.dtype_policy.name == "float64" for l in k.layers) and k.inputs[0].dtype == "float64"
    x = images(dtype="float64")
    out = k(tf.constant(x), training=False).numpy()
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, m.predict(x), rtol=0, atol=1e-14)
    assert from_keras(k).dtype == np.float64


def test_copy_weights_both_ways():
    m, other = build_preset("seed", seed=1), build_preset("seed", seed=2)
    k = to_keras(other)
    copy_weights_to_keras(m, k)
    assert all(np.array_equal(a, b) for a, b in zip(k.get_weights(), m.get_weights()))
    copy_weights_from_keras(k, other)
    assert all(np.array_equal(a, b) for a, b in zip(other.get_weights(), m.get_weights()))
    with pytest.raises(ValueError, match="layers with weights"):
        copy_weights_to_keras(build_preset("seed"), to_keras(generate(0)))


def test_from_keras_refuses_unsupported_layers():
    k = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(2, 3, name="c"),
                          keras.layers.LayerNormalization(name="ln"), keras.layers.Flatten(), keras.layers.Dense(10)])
    with pytest.raises(ValueError, match=r"'ln' \(LayerNormalization\).*not supported"):
        from_keras(k)
    k = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(2, 3, kernel_constraint="non_neg", name="c")])
    with pytest.raises(ValueError, match=r"'c' \(Conv2D\).*kernel_constraint"):
        from_keras(k)
    k = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Lambda(lambda t: t * 2, name="lam")])
    with pytest.raises(ValueError, match=r"'lam' \(Lambda\)"):
        from_keras(k)


def test_keras_activation_layers_and_auto_names():
    k = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(3, 3), keras.layers.Activation("relu"),
                          keras.layers.MaxPool2D(), keras.layers.Flatten(), keras.layers.Dense(10),
                          keras.layers.Activation("softmax")])
    m = from_keras(k)
    # Keras Activation layers stay Activation layers (same class, same config both ways)
    assert [type(l).__name__ for l in m.layers] == ["Conv2D", "Activation", "MaxPool2D", "Flatten", "Dense",
                                                    "Activation"]
    assert [l.activation for l in m.layers if type(l).__name__ == "Activation"] == ["relu", "softmax"]
    x = images()
    np.testing.assert_allclose(m.predict(x), k(x).numpy(), atol=1e-6)


@pytest.mark.parametrize("suffix", [".keras", ".h5", ".weights.h5"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_keras_reads_minicnn_files(tmp_path, suffix, dtype):
    m = generate(1, dtype)
    path = str(tmp_path / f"m{suffix}")
    m.save(path)
    if suffix == ".weights.h5":
        k = to_keras(clone(generate(1, dtype)))
        for w in k.weights:  # scramble, then load
            w.assign(tf.zeros_like(w))
        k.load_weights(path)
    else:
        k = keras.saving.load_model(path)
    assert [l.name for l in k.layers] == [l.name for l in m.layers]
    x = images(dtype=dtype)
    np.testing.assert_allclose(k(tf.constant(x), training=False).numpy(), m.predict(x), rtol=0,
                               atol=1e-14 if dtype == "float64" else 1e-6)


@pytest.mark.parametrize("suffix", [".keras", ".h5", ".weights.h5"])
def test_minicnn_reads_keras_files(tmp_path, suffix):
    m = generate(3)
    k = to_keras(m)
    k.compile(optimizer="adam", loss="categorical_crossentropy")
    path = str(tmp_path / f"k{suffix}")
    k.save_weights(path) if suffix == ".weights.h5" else k.save(path)
    back = keras_files.load(path, architecture=generate(3, "float32") if suffix == ".weights.h5" else None)
    assert all(np.array_equal(a, b) for a, b in zip(back.get_weights(), m.get_weights()))


@pytest.mark.mnist
def test_minicnn_trained_weights_load_in_keras(tmp_path):
    """A minicnn-trained model written as .weights.h5 gives the same predictions in Keras."""
    (xtr, ytr), (xte, _) = datasets.load_mnist(mnist_dir())
    x, y = datasets.to_float_nhwc(xtr[:2000]), datasets.one_hot(ytr[:2000])
    m = build_preset("pooled", seed=3)
    m.compile("adam", "categorical_crossentropy", ["accuracy"])
    m.fit(x, y, batch_size=100, epochs=1, verbose=0, seed=0)
    m.save(tmp_path / "trained.weights.h5")
    k = to_keras(build_preset("pooled", seed=99))
    k.load_weights(str(tmp_path / "trained.weights.h5"))
    xt = datasets.to_float_nhwc(xte[:2000])
    pk = k.predict(xt, batch_size=500, verbose=0)
    pm = m.predict(xt, batch_size=500)
    assert (pk.argmax(1) == pm.argmax(1)).mean() >= 0.999
    np.testing.assert_allclose(pk, pm, rtol=0, atol=1e-5)
