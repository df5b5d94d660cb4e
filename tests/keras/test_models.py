"""minicnn.keras.models without TensorFlow: Keras's signatures, defaults, return values, files
and the one clear error for what minicnn lacks."""

from __future__ import annotations

import numpy as np
import pytest

import minicnn.keras as keras
from minicnn.errors import KerasUnsupportedError
from minicnn.keras import layers

pytest.importorskip("h5py")


def small(seed=0):
    return keras.Sequential([keras.Input(shape=(8, 8, 1)), layers.Conv2D(2, (3, 3), activation="relu"),
                             layers.MaxPooling2D(), layers.Flatten(), layers.Dense(3, activation="softmax")],
                            seed=seed)


def data(n=40):
    rng = np.random.default_rng(0)
    return rng.random((n, 8, 8, 1), dtype=np.float32), keras.utils.to_categorical(rng.integers(0, 3, n), 3)


def test_input_shape_on_first_layer_and_add():
    m = keras.Sequential()
    m.add(layers.Conv2D(2, kernel_size=(3, 3), activation="relu", input_shape=(8, 8, 1)))
    m.add(layers.Flatten())
    m.add(layers.Dense(3, activation="softmax", dtype="float32", trainable=True))
    m.build()
    assert m.input_shape == (8, 8, 1) and m.output_shape == (3,)
    assert keras.Sequential([layers.Dense(2, input_dim=5)]).input_shape == (5,)


def test_fit_history_evaluate_predict_like_keras(capsys):
    m = small()
    m.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    x, y = data()
    h = m.fit(x, y, batch_size=16, epochs=2, validation_data=(x[:8], y[:8]))
    assert h is m.history and h.epoch == [0, 1]
    assert sorted(h.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert h.params["epochs"] == 2 and h.params["steps"] == 3 and h.params["verbose"] == 1
    out = capsys.readouterr().out
    assert "Epoch 2/2" in out and "val_accuracy:" in out and "val_loss:" in out
    score = m.evaluate(x, y, verbose=0)
    assert isinstance(score, list) and len(score) == 2
    assert m.evaluate(x, y, verbose=0, return_dict=True).keys() == {"loss", "accuracy"}
    m.evaluate(x, y)  # verbose="auto" prints Keras's progress line
    assert "2/2 ━━━━━━━━━━━━━━━━━━━━" in capsys.readouterr().out
    assert m.predict(x, verbose=0).shape == (40, 3)
    m2 = small()
    m2.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.SGD())
    assert isinstance(m2.evaluate(x, y, verbose=0), float)  # no metrics: a scalar, as Keras


def test_summary_returns_none_and_names_keras_classes(capsys):
    assert small().summary() is None
    text = capsys.readouterr().out
    assert "max_pooling2d (MaxPooling2D)" in text and "├" in text


@pytest.mark.parametrize("weights", ["w.weights.h5", "w.h5"])
def test_files_round_trip(tmp_path, weights):
    m = small(1)
    m.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    x, y = data()
    m.fit(x, y, epochs=1, verbose=0)
    for name in ("m.keras", "m.h5", "m.npz"):
        m.save(tmp_path / name)
        back = keras.models.load_model(tmp_path / name)
        assert isinstance(back, keras.Sequential)
        np.testing.assert_array_equal(back.predict(x, verbose=0), m.predict(x, verbose=0))
    m.save_weights(tmp_path / weights)
    other = small(2)
    other.load_weights(tmp_path / weights)
    np.testing.assert_array_equal(other.predict(x, verbose=0), m.predict(x, verbose=0))
    other = small(3)
    other.load_weights(tmp_path / "m.keras")  # Keras 3 also loads weights from a .keras file
    np.testing.assert_array_equal(other.predict(x, verbose=0), m.predict(x, verbose=0))


def test_legacy_weights_layout_is_keras_2s(tmp_path):
    import h5py
    m = small()
    m.build()
    m.save_weights(tmp_path / "cnn_mnist_weights.h5")
    with h5py.File(tmp_path / "cnn_mnist_weights.h5") as f:
        assert [n.decode() for n in f.attrs["layer_names"]] == ["conv2d", "max_pooling2d", "flatten", "dense"]
        assert [n.decode() for n in f["conv2d"].attrs["weight_names"]] == ["conv2d/kernel:0", "conv2d/bias:0"]
        assert f["conv2d/conv2d/kernel:0"].shape == (3, 3, 1, 2)
        assert list(f["flatten"].attrs["weight_names"]) == []


def test_file_suffix_errors(tmp_path):
    m = small()
    m.build()
    with pytest.raises(ValueError, match="save_weights"):
        m.save(tmp_path / "m.weights.h5")
    with pytest.raises(ValueError, match="Invalid filepath extension"):
        m.save(tmp_path / "m.txt")
    with pytest.raises(ValueError, match="weights only"):
        keras.models.load_model(tmp_path / "m.weights.h5")


@pytest.mark.parametrize("call, match", [
    (lambda m, x, y: m.fit(x, y, class_weight={0: 1.0}, verbose=0), r"fit\(class_weight="),
    (lambda m, x, y: m.fit(x, y, steps_per_epoch=2, verbose=0), r"fit\(steps_per_epoch=2\)"),
    (lambda m, x, y: m.fit(x, y, sample_weight=np.ones(len(x)), verbose=0), r"fit\(sample_weight="),
    (lambda m, x, y: m.compile(loss="mse"), r"loss 'mse'"),
    (lambda m, x, y: m.compile(loss="categorical_crossentropy", metrics=["auc"]), r"metric 'auc'"),
    (lambda m, x, y: m.compile(loss="categorical_crossentropy", loss_weights=[1.0]), r"loss_weights"),
    (lambda m, x, y: m.load_weights("w.h5", skip_mismatch=True), r"skip_mismatch"),
])
def test_unsupported_arguments_raise_one_clear_error(call, match):
    m = small()
    m.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    x, y = data()
    with pytest.raises(KerasUnsupportedError, match=match):
        call(m, x, y)


def test_unsupported_names_raise_one_clear_error():
    for get, match in [(lambda: keras.Model, r"keras\.Model is not supported.*Sequential"),
                       (lambda: keras.layers.LSTM, r"keras\.layers\.LSTM is not supported.*recurrent"),
                       (lambda: keras.datasets.cifar100, r"keras\.datasets\.cifar100"),
                       (lambda: keras.optimizers.Adagrad, r"keras\.optimizers\.Adagrad.*Adam"),
                       (lambda: keras.losses.BinaryCrossentropy, r"BinaryCrossentropy"),
                       (lambda: keras.callbacks.RemoteMonitor, r"RemoteMonitor"),
                       (lambda: keras.layers.Conv2D(2, 3, groups=2), r"Conv2D\(groups=2\)"),
                       (lambda: keras.layers.Dense(2, kernel_constraint="max_norm"), r"kernel_constraint"),
                       (lambda: keras.layers.Dense(2, foo=1), r"Dense\(foo=...\)"),
                       (lambda: layers.Dense(2)(keras.Input(shape=(3,))), r"functional API"),
                       (lambda: keras.optimizers.Adam(amsgrad=True), r"Adam\(amsgrad=True\)"),
                       (lambda: keras.optimizers.SGD(clipnorm=1.0), r"SGD\(clipnorm=1.0\)")]:
        with pytest.raises(KerasUnsupportedError, match=match):
            get()
    with pytest.raises(ImportError, match="LSTM is not supported"):
        from minicnn.keras.layers import LSTM  # noqa: F401
    with pytest.raises(AttributeError):
        keras.layers._private  # noqa: B018


def test_to_categorical_is_keras_3s():
    y = keras.utils.to_categorical([2, 0, 1])
    assert y.dtype == np.float64 and y.shape == (3, 3) and y[0, 2] == 1
    assert keras.utils.to_categorical(np.array([[1], [0]]), 4).shape == (2, 4)
    from minicnn.keras.utils.np_utils import to_categorical  # the Keras 2 path
    assert to_categorical([1], 2).tolist() == [[0.0, 1.0]]
    with pytest.raises(ValueError, match="out of range"):
        keras.utils.to_categorical([5], 3)


def test_set_random_seed_repeats_runs():
    keras.utils.set_random_seed(7)
    a = small(seed=None)
    keras.utils.set_random_seed(7)
    b = small(seed=None)
    a.build()
    b.build()
    try:
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_array_equal(wa, wb)
    finally:
        from minicnn.keras import state
        state.default_seed = None


def test_optimizers_take_keras_s_neutral_options():
    opt = keras.optimizers.Adam(learning_rate=0.01, name="adam", clipnorm=None, use_ema=False, amsgrad=False)
    assert opt.learning_rate == 0.01 and opt.get_config()["name"] == "adam"
    assert keras.optimizers.get("adamw").weight_decay == 0.004


def test_layer_call_on_arrays():
    d = layers.Dense(2)
    assert d(np.ones((4, 3), dtype=np.float32)).shape == (4, 2)


def test_keras_weight_attributes():
    m = small()
    m.build()
    conv = m.layers[0]
    assert conv.kernel is conv.params["kernel"] and conv.bias.shape == (2,)
    assert len(m.weights) == 4 and m.weights[0] is conv.kernel
    with pytest.raises(AttributeError, match="has no kernel"):
        m.layers[1].kernel  # noqa: B018
