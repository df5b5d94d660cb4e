"""CIFAR-10, binary version: batch files or the official ``cifar-10-binary.tar.gz``.

A record is 1 label byte + 3072 pixel bytes (R, G, B planes of 32x32 each); arrays come out NHWC.
The tarball is read in place, regular members with the expected names only: nothing is
extracted. The pickle ("python") version is never read.
"""

from __future__ import annotations

import os
import tarfile
import zlib

import numpy as np

from ..errors import DatasetError
from ..fileio import read_into
from .common import _check_labels

_CIFAR_TAR = "cifar-10-binary.tar.gz"
_CIFAR_DIR = "cifar-10-batches-bin"
_CIFAR_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6)) + ("test_batch.bin",)
_CIFAR_RECORD = 1 + 3 * 32 * 32
_CIFAR_RECORDS_PER_BATCH = 10000   # tests shrink this to load tiny synthetic batches


def _cifar_count(size: int, where: str, expected: int | None = None) -> int:
    if size == 0 or size % _CIFAR_RECORD:
        raise DatasetError(f"{where}: {size} bytes is not a whole number of {_CIFAR_RECORD}-byte "
                           f"CIFAR-10 records")
    n = size // _CIFAR_RECORD
    if expected is not None and n != expected:
        raise DatasetError(f"{where}: holds {n} records ({size} bytes), expected {expected} "
                           f"({expected * _CIFAR_RECORD} bytes)")
    return n


def _fill_cifar(f, where: str, x: np.ndarray, y: np.ndarray) -> None:
    """Read ``len(y)`` records from ``f`` into ``x`` (N, 32, 32, 3) NHWC and ``y`` (N,)."""
    # A bounded scratch buffer: the planar->NHWC transpose never needs a second full copy.
    buf = np.empty((min(len(y), 1000), _CIFAR_RECORD), np.uint8)
    for start in range(0, len(y), len(buf)):
        k = min(len(buf), len(y) - start)
        got = read_into(f, buf[:k])
        if got != k * _CIFAR_RECORD:
            raise DatasetError(f"{where}: truncated: expected {len(y) * _CIFAR_RECORD} bytes, "
                               f"got {start * _CIFAR_RECORD + got}")
        y[start:start + k] = buf[:k, 0]
        x[start:start + k] = buf[:k, 1:].reshape(k, 3, 32, 32).transpose(0, 2, 3, 1)
    _check_labels(y, where)


def _read_cifar_file(path: str, out: tuple[np.ndarray, np.ndarray] | None = None):
    """Read a batch file into ``out`` (which fixes the record count) or into new arrays."""
    if not os.path.isfile(path):
        raise DatasetError(f"{path}: no such file")
    n = _cifar_count(os.path.getsize(path), path, None if out is None else len(out[1]))
    x, y = out if out is not None else (np.empty((n, 32, 32, 3), np.uint8), np.empty(n, np.uint8))
    try:
        with open(path, "rb") as f:
            _fill_cifar(f, path, x, y)
    except OSError as e:
        raise DatasetError(f"{path}: unreadable ({e})") from None
    return x, y


def read_cifar_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 binary batch file holding any whole number of records.

    Parameters
    ----------
    path : str or PathLike
        E.g. ``cifar-10-batches-bin/data_batch_1.bin``.

    Returns
    -------
    x : numpy.ndarray
        (N, 32, 32, 3) ``uint8``, NHWC.
    y : numpy.ndarray
        (N,) ``uint8`` labels 0..9.

    Raises
    ------
    DatasetError
        Missing or empty file, size not a multiple of 3073 bytes, label > 9.
    """
    return _read_cifar_file(os.fspath(path))


def _load_cifar(kind: str, place: str):
    """All six batches from a ``cifar-10-batches-bin`` directory (``kind='cifar_bin'``) or the
    tarball (``'cifar_tar'``), as ``(x_train, y_train), (x_test, y_test)``."""
    r = _CIFAR_RECORDS_PER_BATCH
    x_train, y_train = np.empty((5 * r, 32, 32, 3), np.uint8), np.empty(5 * r, np.uint8)
    x_test, y_test = np.empty((r, 32, 32, 3), np.uint8), np.empty(r, np.uint8)
    slots = {name: (x_train[i * r:(i + 1) * r], y_train[i * r:(i + 1) * r])
             for i, name in enumerate(_CIFAR_FILES[:5])}
    slots[_CIFAR_FILES[5]] = (x_test, y_test)
    if kind == "cifar_bin":
        for name, out in slots.items():
            _read_cifar_file(os.path.join(place, name), out)
    else:
        _read_cifar_tar(place, slots)
    return (x_train, y_train), (x_test, y_test)


def _read_cifar_tar(path: str, slots: dict) -> None:
    """Fill ``slots`` from the members of the official tarball, read in one forward pass."""
    wanted = {f"{_CIFAR_DIR}/{name}": name for name in slots}
    seen = set()
    try:
        # Iterating and reading each member as it comes is one forward pass through the gzip
        # stream. ("r|*" stream mode would do too, but it crashes with TypeError on some corrupt
        # gzip headers, where "r:*" goes through GzipFile and raises proper errors.)
        with tarfile.open(path, mode="r:*") as tar:
            for member in tar:
                name = wanted.get(member.name.removeprefix("./"))
                if name is None:
                    continue
                where = f"{path}:{member.name}"
                if name in seen:
                    raise DatasetError(f"{where}: appears twice in the archive")
                if not member.isreg():  # never follow links or devices out of the archive
                    raise DatasetError(f"{where}: is not a regular file")
                x, y = slots[name]
                _cifar_count(member.size, where, len(y))
                _fill_cifar(tar.extractfile(member), where, x, y)
                seen.add(name)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DatasetError(f"{path}: unreadable or corrupt archive ({type(e).__name__}: {e})") from None
    missing = [n for n in wanted if wanted[n] not in seen]
    if missing:
        raise DatasetError(f"{path}: lacks the members {missing}")
