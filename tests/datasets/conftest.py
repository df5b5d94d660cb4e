"""Fixtures for the dataset tests: no network ever, an empty world, tiny CIFAR batches.

Everything runs on tiny synthetic files; no test touches the network (``download._urlopen`` is
replaced for every test).
"""

from __future__ import annotations

import pytest

from minicnn.datasets import cifar, download, locate


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(url, timeout):
        raise AssertionError(f"test tried to open {url}")
    monkeypatch.setattr(download, "_urlopen", refuse)


@pytest.fixture
def env(tmp_path, monkeypatch):
    """An empty world: HOME, caches and cwd in tmp_path; no data dir, no system datasets."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    for var in ("MINICNN_DATA_DIR", "MINICNN_CACHE_DIR", "KERAS_HOME", "MINICNN_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(locate, "_SYSTEM_DIRS", ())
    return tmp_path


@pytest.fixture
def small_cifar(monkeypatch):
    monkeypatch.setattr(cifar, "_CIFAR_RECORDS_PER_BATCH", 2)
