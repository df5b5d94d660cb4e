"""minicnn.datasets.locate and the loaders: search order, no fallback from an explicit path, the one
error listing every place searched, loading by name."""

import numpy as np
import pytest

from minicnn import datasets
from minicnn.datasets import download
from minicnn.errors import DatasetError
from tests.datasets.datahelpers import first_label, labelled, write_mnist_dir


def test_location_order_explicit_then_data_dir_then_cache(env, monkeypatch):
    explicit = write_mnist_dir(env / "explicit", labelled(1))
    data_dir = write_mnist_dir(env / "datadir" / "mnist", labelled(2)).parent
    write_mnist_dir(env / "xdg" / "minicnn" / "mnist", labelled(3))
    monkeypatch.setenv("MINICNN_DATA_DIR", str(data_dir))
    assert first_label(datasets.load_mnist(explicit)) == 1
    assert first_label(datasets.load_mnist()) == 2
    monkeypatch.delenv("MINICNN_DATA_DIR")
    assert first_label(datasets.load_mnist()) == 3
    monkeypatch.setenv("MINICNN_CACHE_DIR", str(env / "own"))  # MINICNN_CACHE_DIR beats XDG
    write_mnist_dir(env / "own" / "mnist", labelled(4))
    assert first_label(datasets.load_mnist()) == 4


def test_data_dir_subdirectory_beats_its_top_level(env, monkeypatch):
    # MNIST and Fashion-MNIST share file names: the dataset's own subdirectory must win
    write_mnist_dir(env / "data", labelled(5))
    write_mnist_dir(env / "data" / "fashion-mnist", labelled(6))
    monkeypatch.setenv("MINICNN_DATA_DIR", str(env / "data"))
    assert first_label(datasets.load_fashion_mnist()) == 6
    assert first_label(datasets.load_mnist()) == 5


def test_known_caches_come_after_data_dir_and_before_own_cache(env, monkeypatch):
    (xtr, ytr), (xte, yte) = labelled(7)
    keras = env / "home" / ".keras" / "datasets"
    keras.mkdir(parents=True)
    np.savez(keras / "mnist.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    write_mnist_dir(env / "xdg" / "minicnn" / "mnist", labelled(3))
    assert first_label(datasets.load_mnist()) == 7
    monkeypatch.setenv("MINICNN_DATA_DIR", str(write_mnist_dir(env / "dd", labelled(2))))
    assert first_label(datasets.load_mnist()) == 2
    monkeypatch.delenv("MINICNN_DATA_DIR")
    write_mnist_dir(env / "data" / "FashionMNIST" / "raw", labelled(8))  # torchvision under ./data
    assert first_label(datasets.load_fashion_mnist()) == 8


def test_explicit_path_without_data_is_an_error_not_a_fallback(env, monkeypatch):
    monkeypatch.setenv("MINICNN_DATA_DIR", str(write_mnist_dir(env / "dd", labelled(2))))
    (env / "empty").mkdir()
    with pytest.raises(DatasetError, match="nothing at the given path") as e:
        datasets.load_mnist(env / "empty")
    assert str(env / "empty") in str(e.value)


@pytest.mark.parametrize("offline", ["1", "true"])
def test_offline_and_nothing_found_lists_every_place(env, monkeypatch, offline):
    monkeypatch.setenv("MINICNN_OFFLINE", offline)
    monkeypatch.setenv("MINICNN_DATA_DIR", str(env / "nowhere"))
    opened = []
    monkeypatch.setattr(download, "_urlopen", lambda url, timeout: opened.append(url))
    with pytest.raises(DatasetError) as e:
        datasets.load_mnist()
    assert opened == []  # offline means not one connection attempt
    msg = str(e.value)
    for place in (env / "nowhere" / "mnist", env / "nowhere", env / "home" / ".keras" / "datasets",
                  env / "home" / "data" / "MNIST" / "raw", env / "xdg" / "minicnn" / "mnist"):
        assert f"  {place}\n" in msg
    assert "MINICNN_DATA_DIR" in msg and "path=" in msg and "MINICNN_OFFLINE" in msg


def test_download_false_does_not_touch_the_network(env):
    with pytest.raises(DatasetError, match="download=False"):
        datasets.load_cifar10(download=False)


def test_load_rejects_unknown_names():
    with pytest.raises(ValueError, match="'mnist', 'fashion_mnist', 'cifar10'"):
        datasets.load("imagenet")
