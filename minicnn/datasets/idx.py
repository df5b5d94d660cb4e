"""IDX files (MNIST, Fashion-MNIST), raw or gzip, and the SHA-256 of the official files.

The magic, dims, exact data length, image/label counts and label range are always checked. For
files of the official size the SHA-256 of the *decompressed* content is checked as well: mirrors
recompress the archives, so archive bytes are never compared.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import math
import os
import struct
import zlib

import numpy as np

from ..errors import DatasetError
from ..fileio import CHUNK, DEFLATE_MAX_RATIO, read_into
from .common import _TITLES, _check_split

_IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
# Decompressed sizes of the official files (shared by MNIST and Fashion-MNIST): header + data.
_OFFICIAL_BYTES = {"train-images-idx3-ubyte": 16 + 60000 * 784, "train-labels-idx1-ubyte": 8 + 60000,
                   "t10k-images-idx3-ubyte": 16 + 10000 * 784, "t10k-labels-idx1-ubyte": 8 + 10000}
# SHA-256 of the *decompressed* official files. Fashion-MNIST's were computed from Debian's
# dataset-fashion-mnist and agree with values published for archives matching Zalando's MD5s.
_SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}


def _count_rest(f) -> int:
    total = 0
    while chunk := f.read(CHUNK):
        total += len(chunk)
    return total


@contextlib.contextmanager
def _open_content(path: str):
    """Yield ``(file, max_content_bytes, is_gzip)`` reading the decompressed content of ``path``."""
    if not os.path.isfile(path):
        raise DatasetError(f"{path}: no such file")
    size = os.path.getsize(path)
    if size == 0:
        raise DatasetError(f"{path}: file is empty")
    with open(path, "rb") as raw:
        is_gzip = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        if is_gzip:
            with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
                yield gz, size * DEFLATE_MAX_RATIO + (1 << 16), True
        else:
            yield raw, size, False


def _read_idx(path, ndim: int | None = None) -> tuple[np.ndarray, bytes]:
    """Parse one uint8 IDX file; return ``(array, header bytes)`` (header + array = the content)."""
    path = os.fspath(path)
    kind = {1: " (labels)", 3: " (images)"}.get(ndim, "")
    want = (f"0x{0x800 | ndim:08x}{kind}" if ndim is not None
            else "0x000008NN (uint8 IDX, 1 <= NN <= 16 dims)")
    try:
        with _open_content(path) as (f, limit, is_gzip):
            head = f.read(4)
            if len(head) < 4:
                raise DatasetError(f"{path}: truncated IDX header: expected 4 bytes, got {len(head)}")
            magic = int.from_bytes(head, "big")
            # 16 dims is far beyond any real IDX file and keeps numpy's 64-dim limit out of reach
            if (head[:3] != b"\0\0\x08" or not 1 <= head[3] <= 16
                    or (ndim is not None and head[3] != ndim)):
                raise DatasetError(f"{path}: bad IDX magic: expected {want}, got 0x{magic:08x}")
            dims_raw = f.read(4 * head[3])
            if len(dims_raw) < 4 * head[3]:
                raise DatasetError(f"{path}: truncated IDX header: expected {4 + 4 * head[3]} bytes, "
                                   f"got {4 + len(dims_raw)}")
            dims = struct.unpack(f">{head[3]}I", dims_raw)
            header = head + dims_raw
            n = math.prod(dims)
            if n == 0:
                raise DatasetError(f"{path}: dims {dims} hold no data")
            room = limit - len(header)
            if n > room:  # refuse before allocating what the file cannot possibly hold
                got = f"at most {room} fit in this gzip file" if is_gzip else f"got {room}"
                raise DatasetError(f"{path}: truncated: dims {dims} need {n} data bytes, {got}")
            arr = np.empty(dims, np.uint8)
            got = read_into(f, arr)
            if got < n:
                raise DatasetError(f"{path}: truncated: dims {dims} need {n} data bytes, got {got}")
            extra = _count_rest(f)  # reading to the end also makes gzip check its CRC and length
            if extra:
                raise DatasetError(f"{path}: {extra} trailing bytes: dims {dims} need {n} data bytes, "
                                   f"got {n + extra}")
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DatasetError(
            f"{path}: unreadable or corrupt data ({type(e).__name__}: {e})") from None
    return arr, header


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one uint8 IDX file, raw or gzip-compressed (recognised by its magic bytes).

    Parameters
    ----------
    path : str or PathLike
        The file, e.g. ``train-images-idx3-ubyte.gz``.

    Returns
    -------
    numpy.ndarray
        ``uint8`` array with the dims of the header, e.g. (60000, 28, 28) for images or (60000,)
        for labels.

    Raises
    ------
    DatasetError
        Missing or empty file, bad magic, truncated or trailing data, corrupt gzip stream.
    """
    return _read_idx(path)[0]


def _idx_file(directory: str, stem: str) -> str | None:
    """The first existing spelling of ``stem`` in ``directory`` (raw, .gz, dotted variants)."""
    dotted = stem.replace("-idx", ".idx")
    names = (stem, stem + ".gz", dotted, dotted + ".gz")
    return next((p for p in (os.path.join(directory, n) for n in names) if os.path.isfile(p)), None)


def _verify_official(name: str, stem: str, path: str, header: bytes, arr: np.ndarray) -> None:
    """Check the SHA-256 of the decompressed content when the file has the official size."""
    expected = _SHA256.get(name, {}).get(stem)
    if expected is None or len(header) + arr.nbytes != _OFFICIAL_BYTES[stem]:
        return  # not claiming to be the official file: structure checks only
    digest = hashlib.sha256(header)
    digest.update(arr)
    got = digest.hexdigest()
    if got != expected:
        other = [_TITLES[n] for n, table in _SHA256.items() if table.get(stem) == got]
        hint = f"; it is the {other[0]} file, not {_TITLES[name]}" if other else ""
        raise DatasetError(f"{path}: SHA-256 of the decompressed content is {got}, expected {expected} "
                           f"for the official {_TITLES[name]} {stem}{hint}")


def _load_idx_dir(name: str, directory: str):
    """The four IDX files of ``name`` in ``directory`` as ``(x_train, y_train), (x_test, y_test)``."""
    paths = {stem: _idx_file(directory, stem) for stem in _IDX_STEMS}
    arrays = {}
    for stem, p in paths.items():
        arr, header = _read_idx(p, ndim=3 if "images" in stem else 1)
        _verify_official(name, stem, p, header, arr)
        arrays[stem] = arr
    out = []
    for split in ("train", "t10k"):
        xs, ys = f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte"
        _check_split(arrays[xs], arrays[ys], paths[xs], paths[ys], (28, 28))
        out.append((arrays[xs], arrays[ys]))
    return tuple(out)
