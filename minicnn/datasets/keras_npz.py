"""Keras-style ``mnist.npz`` archives holding ``x_train, y_train, x_test, y_test``.

Read member by member with :func:`minicnn.fileio.read_npy_member`: dtype and shape are checked from
each header before anything is allocated, and nothing is ever unpickled (object arrays are
refused). Structure checks only: no hash of these archives' content is published.
"""

from __future__ import annotations

import lzma
import os
import struct
import zipfile
import zlib

import numpy as np

from ..errors import DatasetError
from ..fileio import read_npy_member
from .common import _check_split

_NPZ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, lzma.LZMAError, OSError, EOFError,
               ValueError, KeyError, RuntimeError, struct.error, OverflowError)


def _read_member(zf: zipfile.ZipFile, key: str, where: str, shape_tail: tuple[int, ...],
                 path: str, size: int) -> np.ndarray:
    """The ``uint8`` array ``key`` of shape (N, *shape_tail); errors name ``where`` or ``path``."""

    def fail(msg):
        raise DatasetError(f"{path}: {msg}")

    def check_header(shape, fortran, dtype):
        if dtype != np.uint8:  # refuses object arrays before any byte of them is read
            raise DatasetError(f"{where}: dtype is {dtype}, expected uint8")
        if len(shape) != 1 + len(shape_tail) or tuple(shape[1:]) != shape_tail:
            want = "(N, " + ", ".join(map(str, shape_tail)) + ")" if shape_tail else "(N,)"
            raise DatasetError(f"{where}: shape is {tuple(shape)}, expected {want}")
        if fortran and len(shape) > 1:
            raise DatasetError(f"{where}: Fortran-ordered arrays are not supported")

    return read_npy_member(zf, zf.getinfo(key + ".npy"), fail, archive_size=size,
                           check_header=check_header)


def read_keras_npz(path: str | os.PathLike, image_shape: tuple[int, ...] = (28, 28)):
    """Read a Keras-style ``mnist.npz`` holding ``x_train, y_train, x_test, y_test``.

    Parameters
    ----------
    path : str or PathLike
        The archive.
    image_shape : tuple of int, default (28, 28)
        The shape of one image; x arrays must be (N, *image_shape).

    Returns
    -------
    tuple
        ``(x_train, y_train), (x_test, y_test)``, ``uint8``; x (N, *image_shape), y (N,).

    Raises
    ------
    DatasetError
        Not a zip archive, missing keys, wrong dtype (object arrays included: nothing is ever
        unpickled) or shape, corrupt or truncated members, labels outside 0..9.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DatasetError(f"{path}: no such file")
    image_shape = tuple(image_shape)
    try:
        size = os.path.getsize(path)
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k + ".npy" not in names]
            if missing:
                raise DatasetError(f"{path}: missing keys {missing}; it holds {sorted(names)}")
            out = []
            for split in ("train", "test"):
                xw, yw = f"{path}['x_{split}']", f"{path}['y_{split}']"
                x = _read_member(zf, f"x_{split}", xw, image_shape, path, size)
                y = _read_member(zf, f"y_{split}", yw, (), path, size)
                _check_split(x, y, xw, yw, image_shape)
                out.append((x, y))
    except _NPZ_ERRORS as e:
        raise DatasetError(f"{path}: not a readable .npz archive ({type(e).__name__}: {e})") from None
    return tuple(out)
