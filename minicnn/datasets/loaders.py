"""``load_mnist``, ``load_fashion_mnist``, ``load_cifar10`` and ``load``: search, read, download.

The search order and the formats are described in the package docstring (:mod:`minicnn.datasets`).
"""

from __future__ import annotations

import os

from ..errors import DatasetError
from .cifar import _load_cifar
from .download import _download_dataset, _offline
from .idx import _load_idx_dir
from .keras_npz import read_keras_npz
from .locate import _cache_dir, _first_existing, _not_found, _places


def _read_found(name: str, kind: str, path: str):
    if kind == "idx":
        return _load_idx_dir(name, path)
    if kind == "npz":
        return read_keras_npz(path)
    return _load_cifar(kind, path)


def _load(name: str, path, download: bool):
    places = _places(name, path)
    found = _first_existing(name, places)
    if found is not None:
        try:
            return _read_found(name, *found)
        except DatasetError as e:
            if _cache_dir(name) in (found[1], os.path.dirname(found[1])):
                raise DatasetError(f"{e}\n(this is minicnn's cache: delete the file to download it "
                                   f"again)") from None
            raise
    if path is not None:
        raise _not_found(name, places, "nothing at the given path")
    if not download or _offline():
        why = "downloading is off (MINICNN_OFFLINE is set)" if download else "download=False"
        raise _not_found(name, places, why)
    cache = _cache_dir(name)
    try:
        _download_dataset(name, cache)
    except DatasetError as e:
        raise _not_found(name, places, f"the download failed: {e}") from None
    return _read_found(name, *_first_existing(name, [cache]))


def load_mnist(path: str | os.PathLike | None = None, *, download: bool = True):
    """Load MNIST as ``(x_train, y_train), (x_test, y_test)``.

    Parameters
    ----------
    path : str or PathLike, optional
        A directory holding the four IDX files (raw or .gz), or an ``mnist.npz``. When given, only
        this is searched. Otherwise see the package docstring for the search order.
    download : bool, default True
        Download into the cache when not found (unless ``MINICNN_OFFLINE`` is set).

    Returns
    -------
    tuple
        x_train (60000, 28, 28) uint8, y_train (60000,) uint8, x_test (10000, 28, 28) uint8,
        y_test (10000,) uint8, as ``(x_train, y_train), (x_test, y_test)``.

    Raises
    ------
    DatasetError
        Not found (the message lists where it looked), or damaged.
    """
    return _load("mnist", path, download)


def load_fashion_mnist(path: str | os.PathLike | None = None, *, download: bool = True):
    """Load Fashion-MNIST; same shapes, arguments and errors as :func:`load_mnist`."""
    return _load("fashion_mnist", path, download)


def load_cifar10(path: str | os.PathLike | None = None, *, download: bool = True):
    """Load CIFAR-10 (binary version) as ``(x_train, y_train), (x_test, y_test)``.

    Parameters
    ----------
    path : str or PathLike, optional
        A directory holding ``cifar-10-batches-bin/`` (or its six ``.bin`` files, or
        ``cifar-10-binary.tar.gz``), or the tarball itself. When given, only this is searched.
    download : bool, default True
        Download the official tarball into the cache when not found (unless ``MINICNN_OFFLINE``).

    Returns
    -------
    tuple
        x_train (50000, 32, 32, 3) uint8 NHWC, y_train (50000,) uint8, x_test (10000, 32, 32, 3),
        y_test (10000,), as ``(x_train, y_train), (x_test, y_test)``.

    Raises
    ------
    DatasetError
        Not found, a batch not of exactly 10000 records, a label > 9, or a corrupt archive.
    """
    return _load("cifar10", path, download)


_LOADERS = {"mnist": load_mnist, "fashion_mnist": load_fashion_mnist, "cifar10": load_cifar10}


def load(name: str, path: str | os.PathLike | None = None, download: bool = True):
    """Load a dataset by name: ``'mnist'``, ``'fashion_mnist'`` or ``'cifar10'``.

    ``'fashion-mnist'`` and ``'cifar-10'`` are accepted as spellings too. Returns what the matching
    ``load_*`` function returns; raises ValueError for an unknown name.
    """
    key = str(name).strip().lower().replace("-", "_").replace("cifar_10", "cifar10")
    if key not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(map(repr, _LOADERS))}")
    return _LOADERS[key](path, download=download)
