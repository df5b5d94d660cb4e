"""Where the dataset files are looked for, in order, and the one error listing every place.

1. the explicit ``path`` (only it, when given); 2. ``$MINICNN_DATA_DIR``, its dataset
subdirectory first; 3. the caches of Keras and torchvision and ``/usr/share/datasets``;
4. minicnn's own cache, where downloads land. The package docstring has the details.
"""

from __future__ import annotations

import os

from ..errors import DatasetError
from .cifar import _CIFAR_DIR, _CIFAR_FILES, _CIFAR_TAR
from .common import _TITLES
from .idx import _IDX_STEMS, _idx_file

_SUBDIRS = {"mnist": ("mnist", "MNIST"),
            "fashion_mnist": ("fashion_mnist", "fashion-mnist", "FashionMNIST"),
            "cifar10": ("cifar10", "cifar-10")}
_SYSTEM_DIRS = ("/usr/share/datasets",)


def _home(*parts: str) -> str:
    return os.path.join(os.path.expanduser("~"), *parts)


def _cache_dir(name: str) -> str:
    base = (os.environ.get("MINICNN_CACHE_DIR")
            or os.path.join(os.environ.get("XDG_CACHE_HOME") or _home(".cache"), "minicnn"))
    return os.path.join(base, name)


def _with_subdirs(directory: str, name: str) -> list[str]:
    return [os.path.join(directory, s) for s in _SUBDIRS[name]] + [directory]


def _places(name: str, path) -> list[str]:
    """Directories (or files) to search, in order; see the package docstring."""
    if path is not None:
        path = os.fspath(path)
        return [path] if os.path.isfile(path) else _with_subdirs(path, name)
    places = []
    if os.environ.get("MINICNN_DATA_DIR"):
        places += _with_subdirs(os.environ["MINICNN_DATA_DIR"], name)
    keras = os.path.join(os.environ.get("KERAS_HOME") or _home(".keras"), "datasets")
    roots = [_home("data"), os.path.abspath("data")]
    if name == "mnist":
        places += [keras] + [os.path.join(r, "MNIST", "raw") for r in roots]
    elif name == "fashion_mnist":
        places += [os.path.join(keras, "fashion-mnist")] + [os.path.join(r, "FashionMNIST", "raw")
                                                           for r in roots]
    else:
        places += roots
    places += [os.path.join(d, s) for d in _SYSTEM_DIRS for s in _SUBDIRS[name]]
    places.append(_cache_dir(name))
    return list(dict.fromkeys(places))  # drop repeats, keep order


def _candidates(name: str, place: str) -> list[tuple[str, str]]:
    """``(kind, path)`` layouts that may hold ``name`` at ``place``."""
    if os.path.isfile(place):
        return [("cifar_tar" if name == "cifar10" else "npz", place)]
    if name == "cifar10":
        return [("cifar_bin", os.path.join(place, _CIFAR_DIR)), ("cifar_bin", place),
                ("cifar_tar", os.path.join(place, _CIFAR_TAR))]
    extra = [("npz", os.path.join(place, "mnist.npz"))] if name == "mnist" else []
    return [("idx", place)] + extra


def _present(kind: str, path: str) -> bool:
    if kind == "idx":
        return all(_idx_file(path, stem) for stem in _IDX_STEMS)
    if kind == "cifar_bin":
        return all(os.path.isfile(os.path.join(path, f)) for f in _CIFAR_FILES)
    return os.path.isfile(path)


def _first_existing(name: str, places: list[str]) -> tuple[str, str] | None:
    """The first complete layout of ``name`` found in ``places``, as ``(kind, path)``."""
    return next((c for p in places for c in _candidates(name, p) if _present(*c)), None)


def _wanted_files(name: str) -> str:
    if name == "cifar10":
        return f"{_CIFAR_DIR}/ with {', '.join(_CIFAR_FILES)}, or {_CIFAR_TAR}"
    files = ", ".join(s + "[.gz]" for s in _IDX_STEMS)
    return files + (", or mnist.npz" if name == "mnist" else "")


def _not_found(name: str, places: list[str], why: str) -> DatasetError:
    where = "\n".join(f"  {p}" for p in places)
    return DatasetError(
        f"{_TITLES[name]} not found: {why}.\nLooked for {_wanted_files(name)} in:\n{where}\n"
        f"Put the files in a directory and set MINICNN_DATA_DIR to it (directly or in a "
        f"'{_SUBDIRS[name][0]}' subdirectory), or pass path=...; or allow downloading "
        f"(download=True, MINICNN_OFFLINE unset) to fill {_cache_dir(name)}.")
