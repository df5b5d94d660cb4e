"""A user's own Keras model through the command line: a Keras-built LeNet-5 trains in minicnn and
comes back to Keras with the same predictions."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.tf
keras = pytest.importorskip("keras")

from minicnn import load_model  # noqa: E402
from minicnn.cli import main  # noqa: E402
from tests.helpers import write_fake_mnist  # noqa: E402


def keras_lenet5():
    """LeNet-5 as Keras users write it (tanh, average pooling, 5x5 kernels)."""
    L = keras.layers
    return keras.Sequential([
        keras.Input((28, 28, 1)), L.Conv2D(6, 5, padding="same", activation="tanh"), L.AveragePooling2D(2),
        L.Conv2D(16, 5, activation="tanh"), L.AveragePooling2D(2), L.Flatten(),
        L.Dense(120, activation="tanh"), L.Dense(84, activation="tanh"), L.Dense(10, activation="softmax")],
        name="lenet")


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_a_keras_lenet5_trains_in_minicnn_and_loads_back_into_keras(tmp_path, capsys, suffix, monkeypatch):
    monkeypatch.setenv("MINICNN_OFFLINE", "1")
    data = write_fake_mnist(tmp_path / "fashion")
    src = tmp_path / f"lenet{suffix}"
    keras_lenet5().save(src)
    out = tmp_path / f"trained{suffix}"
    assert main(["train", "--model", str(src), "--dataset", "fashion_mnist", "--data-dir", str(data),
                 "--epochs", "2", "--batch-size", "20", "--out", str(out), "--verbose", "0"]) == 0
    text = capsys.readouterr().out
    assert "training 'lenet' on fashion_mnist (200 images)" in text
    trained = load_model(out)
    assert [type(l).__name__ for l in trained.layers] == ["Conv2D", "AveragePooling2D", "Conv2D",
                                                          "AveragePooling2D", "Flatten", "Dense", "Dense", "Dense"]
    back = keras.saving.load_model(out)
    x = np.random.default_rng(0).random((16, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(back.predict(x, verbose=0), trained.predict(x), rtol=0, atol=1e-6)
    # it learned: the trained weights are not the file's
    assert not np.allclose(keras.saving.load_model(src).get_weights()[0], trained.get_weights()[0])
