"""Models using every activation, activation layer and regularizer, through Keras 3 files both
ways: minicnn writes .keras / .h5 / .weights.h5 that Keras loads (same predictions, same
regularizers, same penalties), and reads the files Keras writes (same config and weights)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.tf]
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from minicnn import Sequential, load_model, regularizers  # noqa: E402
from minicnn import layers as L  # noqa: E402
from reference.convert import clone, to_keras  # noqa: E402
from reference.crosscheck import setup_tensorflow  # noqa: E402

setup_tensorflow()

SUFFIXES = [".keras", ".h5", ".weights.h5"]
#: float64: the same formulas in another order; float32: a few ulps of 6e-8 through ~10 layers
ATOL = {"float64": 1e-13, "float32": 1e-5}


def zoo(dtype="float32", seed=0, last="softmax"):
    """Every activation function and layer, and every regularizer option, once."""
    m = Sequential([
        L.Conv2D(4, 3, padding="same", activation="elu", kernel_regularizer="l2", bias_regularizer="l1"),
        L.LeakyReLU(),
        L.Conv2D(4, 2, activation="gelu", kernel_regularizer=regularizers.L1L2(0.01, 0.02)),
        L.PReLU(shared_axes=[1, 2], alpha_regularizer=regularizers.L2(0.05)),
        L.DepthwiseConv2D(2, padding="same", activation="softplus", depthwise_regularizer="l1"),
        L.SeparableConv2D(4, 2, padding="same", activation="selu", depthwise_regularizer="l2",
                          pointwise_regularizer=regularizers.L1(0.03), bias_regularizer="l1_l2"),
        L.Conv2D(3, 2, strides=2, activation="swish"),
        L.ELU(0.7), L.ReLU(max_value=2.5, negative_slope=0.1, threshold=0.2),
        L.Activation("softplus"), L.Activation("selu"), L.PReLU(),
        L.Flatten(),
        L.Dense(8, activation="tanh", kernel_regularizer="l1_l2", bias_regularizer=regularizers.L2(0.2)),
        L.Dense(6, activation="leaky_relu"), L.ReLU(negative_slope=0.05), L.ReLU(max_value=6.0),
        L.Activation("sigmoid"), L.Dense(5, activation="selu"), L.Activation("gelu"),
        L.Dense(4, activation=last),
    ], name="zoo", input_shape=(7, 6, 2), dtype=dtype, seed=seed)
    m.build()
    rng = np.random.default_rng(seed + 1)
    for layer in m.layers:  # non-zero biases and PReLU slopes of both signs
        for p in layer.params.values():
            p[...] = rng.uniform(-0.8, 0.8, p.shape)
    return m


def images(n=5, dtype="float32", seed=2):
    return np.random.default_rng(seed).standard_normal((n, 7, 6, 2)).astype(dtype)


def keras_penalties(kmodel):
    return float(sum(float(v) for v in kmodel.losses))


@pytest.mark.parametrize("last", ["softmax", "sigmoid"])
@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_keras_reads_what_minicnn_writes(tmp_path, suffix, dtype, last):
    m = zoo(dtype, last=last)
    path = str(tmp_path / f"m{suffix}")
    m.save(path)
    if suffix == ".weights.h5":
        k = to_keras(clone(zoo(dtype, seed=7, last=last)))
        k.load_weights(path)
    else:
        k = keras.saving.load_model(path)
    assert [l.name for l in k.layers] == [l.name for l in m.layers]
    x = images(dtype=dtype)
    np.testing.assert_allclose(k(tf.constant(x), training=False).numpy(), m.predict(x), rtol=0, atol=ATOL[dtype])
    for layer, klayer in zip(m.layers, k.layers):
        options = {w: o for o, w in getattr(layer, "REGULARIZER_OPTIONS", {"alpha_regularizer": "alpha"}).items()}
        for weight, reg in layer.regularizers.items():
            option = options[weight]
            assert klayer.get_config()[option] == reg.keras_spec(), (layer.name, option)
    assert keras_penalties(k) == pytest.approx(float(m.regularization_loss()), rel=1e-12 if dtype == "float64" else 1e-6)


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_minicnn_reads_what_keras_writes(tmp_path, suffix, dtype):
    m = zoo(dtype)
    k = to_keras(m)
    k.compile(optimizer="sgd", loss="categorical_crossentropy")
    path = str(tmp_path / f"k{suffix}")
    k.save_weights(path) if suffix == ".weights.h5" else k.save(path)
    back = load_model(path, architecture=zoo(dtype, seed=5) if suffix == ".weights.h5" else None)
    assert back.dtype == m.dtype
    if suffix != ".weights.h5":
        assert back.get_config() == m.get_config()
    assert all(np.array_equal(a, b) for a, b in zip(back.get_weights(), m.get_weights()))
    x = images(dtype=dtype)
    np.testing.assert_array_equal(back.predict(x), m.predict(x))


def test_a_keras_built_model_with_keras_objects_reads_back(tmp_path):
    """Keras's own spellings: 'swish', regularizer objects and strings, Keras's defaults."""
    layers = keras.layers
    k = keras.Sequential([
        keras.Input((6, 5, 1)),
        layers.Conv2D(2, 3, activation="swish", kernel_regularizer=keras.regularizers.L2(0.003),
                      bias_regularizer="l1"),
        layers.LeakyReLU(), layers.ELU(), layers.ReLU(max_value=6.0), layers.PReLU(shared_axes=[1, 2]),
        layers.Activation("gelu"), layers.Flatten(),
        layers.Dense(3, activation="softplus", kernel_regularizer=keras.regularizers.L1L2(l1=0.01, l2=0.02)),
        layers.Dense(2, activation="softmax"),
    ], name="kz")
    path = str(tmp_path / "kz.keras")
    k.save(path)
    m = load_model(path)
    assert [type(l).__name__ for l in m.layers] == ["Conv2D", "LeakyReLU", "ELU", "ReLU", "PReLU", "Activation",
                                                    "Flatten", "Dense", "Dense"]
    conv, leaky, _, relu, prelu, act, _, dense, _ = m.layers
    assert conv.activation == "silu" and act.activation == "gelu" and dense.activation == "softplus"
    assert leaky.negative_slope == 0.3 and relu.max_value == 6.0 and prelu.shared_axes == [1, 2]
    assert conv.regularizers == {"kernel": regularizers.L2(0.003), "bias": regularizers.L1(0.01)}
    assert dense.regularizers == {"kernel": regularizers.L1L2(0.01, 0.02)}
    x = np.random.default_rng(0).standard_normal((3, 6, 5, 1)).astype("float32")
    np.testing.assert_allclose(m.predict(x), k(x).numpy(), rtol=0, atol=1e-6)
    assert float(m.regularization_loss()) == pytest.approx(keras_penalties(k), rel=1e-6)  # float32 sums
