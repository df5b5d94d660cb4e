"""A small MobileNet-style model (Conv2D stride 2 -> DepthwiseConv2D -> Conv2D 1x1 ->
SeparableConv2D -> Flatten -> Dense) through Keras files both ways, checked inside Keras 3.

minicnn has no GlobalAveragePooling2D yet, hence Flatten -> Dense. Predictions are compared at
1e-14 absolute in float64 and 1e-6 in float32 (the values are O(1) softmax probabilities; the
same sums in another order, as in tests/reference/test_convert.py); weights must be identical.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

from minicnn import Sequential, load_model  # noqa: E402
from minicnn.io import keras as keras_files  # noqa: E402
from minicnn.layers import Conv2D, Dense, DepthwiseConv2D, Flatten, SeparableConv2D  # noqa: E402

ATOL = {"float64": 1e-14, "float32": 1e-6}
SUFFIXES = [".keras", ".h5", ".weights.h5"]


def zoo_model(dtype="float32", seed=0):
    m = Sequential([
        Conv2D(4, 3, strides=2, padding="same", activation="relu"),
        DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="relu"),
        Conv2D(6, 1, activation="relu"),
        SeparableConv2D(5, 3, strides=2, padding="same", dilation_rate=2, depth_multiplier=2, activation="relu"),
        Flatten(),
        Dense(10, activation="softmax"),
    ], name="zoo", input_shape=(16, 16, 3), dtype=dtype, seed=seed)
    m.build()
    rng = np.random.default_rng(seed + 100)
    for layer in m.layers:  # non-zero biases
        if "bias" in layer.params:
            layer.params["bias"][...] = rng.uniform(-0.2, 0.2, layer.params["bias"].shape)
    return m


def images(dtype, n=8, seed=0):
    return np.random.default_rng(seed).random((n, 16, 16, 3)).astype(dtype)


def same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    return len(wa) == len(wb) and all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(wa, wb))


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_minicnn_round_trip_without_tensorflow(tmp_path, suffix, dtype):
    m = zoo_model(dtype)
    m.save(tmp_path / f"z{suffix}")
    back = load_model(tmp_path / f"z{suffix}", architecture=zoo_model(dtype, seed=9) if suffix == ".weights.h5" else None)
    assert same_weights(m, back)
    if suffix != ".weights.h5":
        assert back.get_config() == m.get_config()
    np.testing.assert_array_equal(back.predict(images(dtype)), m.predict(images(dtype)))


def test_minicnn_model_file_round_trip(tmp_path):
    m = zoo_model("float64")
    m.save(tmp_path / "z.npz")
    back = load_model(tmp_path / "z.npz")
    assert same_weights(m, back) and back.get_config() == m.get_config()


def test_weights_file_layout_is_keras3(tmp_path):
    zoo_model().save(tmp_path / "z.weights.h5")
    with h5py.File(tmp_path / "z.weights.h5") as f:
        assert f["layers/depthwise_conv2d/vars/0"].shape == (3, 3, 4, 2)   # kernel
        assert f["layers/depthwise_conv2d/vars/1"].shape == (8,)           # bias
        assert f["layers/separable_conv2d/vars/0"].shape == (3, 3, 6, 2)   # depthwise_kernel
        assert f["layers/separable_conv2d/vars/1"].shape == (1, 1, 12, 5)  # pointwise_kernel
        assert f["layers/separable_conv2d/vars/2"].shape == (5,)           # bias


def test_legacy_keras2_depthwise_kernel_name(tmp_path):
    """Keras 2 wrote ``depthwise_conv2d/depthwise_kernel:0``: read as the kernel, matched by name."""
    m = zoo_model(seed=4)
    path = tmp_path / "legacy.h5"
    with h5py.File(path, "w") as f:  # Keras 2's save_weights_to_hdf5_group, by hand
        f.attrs["layer_names"] = np.asarray([layer.name.encode() for layer in m.layers])
        f.attrs["backend"], f.attrs["keras_version"] = b"tensorflow", b"2.15.0"
        for layer in m.layers:
            g = f.create_group(layer.name)
            legacy = {"kernel": "depthwise_kernel"} if isinstance(layer, DepthwiseConv2D) else {}
            keys = [k for k in layer.weight_names if k in layer.params][::-1]  # matched by name, not order
            names = [f"{layer.name}/{legacy.get(k, k)}:0" for k in keys]
            g.attrs["weight_names"] = np.asarray([n.encode() for n in names]) if names else np.asarray([])
            for n, k in zip(names, keys):
                g.create_dataset(n, data=layer.params[k])
    back = keras_files.load(path, architecture=zoo_model(seed=5))
    assert same_weights(m, back)


# ----------------------------------------------------------------------------- inside Keras
@pytest.fixture(scope="module")
def keras_env():
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    convert = pytest.importorskip("reference.convert")
    from reference.crosscheck import setup_tensorflow
    setup_tensorflow()
    return tf, keras, convert


@pytest.mark.tf
@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_keras_reads_minicnn_files(tmp_path, keras_env, suffix, dtype):
    tf, keras, convert = keras_env
    m = zoo_model(dtype)
    path = str(tmp_path / f"z{suffix}")
    m.save(path)
    if suffix == ".weights.h5":
        k = convert.to_keras(zoo_model(dtype, seed=7))
        for w in k.weights:  # scrambled, then loaded
            w.assign(tf.zeros_like(w))
        k.load_weights(path)
    else:
        k = keras.saving.load_model(path)
    assert [type(layer).__name__ for layer in k.layers] == ["Conv2D", "DepthwiseConv2D", "Conv2D",
                                                            "SeparableConv2D", "Flatten", "Dense"]
    assert all(np.array_equal(a, b) for a, b in zip(k.get_weights(), m.get_weights()))
    x = images(dtype)
    np.testing.assert_allclose(k(tf.constant(x), training=False).numpy(), m.predict(x), rtol=0, atol=ATOL[dtype])


def keras_zoo(keras, dtype):
    """The same architecture written natively in Keras (its own configs and initialisers)."""
    L = keras.layers
    k = keras.Sequential([
        keras.Input((16, 16, 3), dtype=dtype),
        L.Conv2D(4, 3, strides=2, padding="same", activation="relu", dtype=dtype),
        L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="relu", dtype=dtype),
        L.Conv2D(6, 1, activation="relu", dtype=dtype),
        L.SeparableConv2D(5, 3, strides=2, padding="same", dilation_rate=2, depth_multiplier=2,
                          activation="relu", bias_initializer="ones", dtype=dtype),
        L.Flatten(dtype=dtype),
        L.Dense(10, activation="softmax", dtype=dtype),
    ], name="kzoo")
    rng = np.random.default_rng(1)
    k.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype(dtype) for w in k.get_weights()])
    return k


@pytest.mark.tf
@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_minicnn_reads_keras_files(tmp_path, keras_env, suffix, dtype):
    tf, keras, convert = keras_env
    k = keras_zoo(keras, dtype)
    k.compile(optimizer="adam", loss="categorical_crossentropy")
    path = str(tmp_path / f"k{suffix}")
    k.save_weights(path) if suffix == ".weights.h5" else k.save(path)
    back = keras_files.load(path, architecture=zoo_model(dtype, seed=3) if suffix == ".weights.h5" else None)
    assert [type(layer).__name__ for layer in back.layers] == ["Conv2D", "DepthwiseConv2D", "Conv2D",
                                                               "SeparableConv2D", "Flatten", "Dense"]
    assert back.dtype == np.dtype(dtype)
    assert all(np.array_equal(a, b) for a, b in zip(back.get_weights(), k.get_weights()))
    x = images(dtype)
    np.testing.assert_allclose(back.predict(x), k(tf.constant(x), training=False).numpy(), rtol=0, atol=ATOL[dtype])
    if suffix == ".keras":  # the architecture read back is the one Keras wrote
        sep = back.layers[3]
        assert (sep.filters, sep.strides, sep.dilation_rate, sep.depth_multiplier) == (5, (2, 2), (2, 2), 2)
        cfg = json.loads(convert.to_keras(back).to_json())["config"]["layers"]
        assert [layer["class_name"] for layer in cfg][1:] == [type(layer).__name__ for layer in k.layers]


@pytest.mark.tf
def test_to_keras_and_back_keeps_the_predictions(keras_env):
    tf, _, convert = keras_env
    m = zoo_model("float64")
    k = convert.to_keras(m)
    x = images("float64")
    np.testing.assert_allclose(k(tf.constant(x), training=False).numpy(), m.predict(x), rtol=0, atol=1e-14)
    back = convert.from_keras(k)
    assert back.get_config() == m.get_config() and same_weights(back, m)
