"""minicnn.keras.datasets: Keras's load_data() over minicnn's loaders (same search order and errors)."""

from __future__ import annotations

import numpy as np
import pytest

import minicnn.keras as keras
from minicnn.errors import DatasetError
from tests.helpers import write_fake_mnist


def test_mnist_load_data_uses_minicnn_s_search(tmp_path, monkeypatch):
    write_fake_mnist(tmp_path / "mnist")
    monkeypatch.setenv("MINICNN_DATA_DIR", str(tmp_path))
    (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    assert x_train.dtype == np.uint8 and x_train.ndim == 3 and x_train.shape[1:] == (28, 28)
    assert y_train.dtype == np.uint8 and y_train.shape == (x_train.shape[0],)
    assert x_test.shape[0] == y_test.shape[0]


def test_not_found_is_minicnn_s_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MINICNN_DATA_DIR", str(tmp_path / "nothing"))
    monkeypatch.setenv("MINICNN_OFFLINE", "1")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MINICNN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetError, match="MINICNN_OFFLINE"):
        keras.datasets.mnist.load_data()
    with pytest.raises(DatasetError):
        keras.datasets.mnist.load_data(path=str(tmp_path / "missing.npz"))
