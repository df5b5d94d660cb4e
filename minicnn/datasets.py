"""MNIST, Fashion-MNIST and CIFAR-10 as Keras-shaped ``uint8`` arrays, found locally or downloaded.

Every loader returns ``(x_train, y_train), (x_test, y_test)``:

===============  ========================  ========================  ==========
dataset          x_train                   x_test                    y (N,)
===============  ========================  ========================  ==========
MNIST, Fashion   (60000, 28, 28) uint8     (10000, 28, 28) uint8     uint8 0..9
CIFAR-10         (50000, 32, 32, 3) uint8  (10000, 32, 32, 3) uint8  uint8 0..9
===============  ========================  ========================  ==========

Where the files are looked for, in this order (the first complete set found is used)
-------------------------------------------------------------------------------------
1. The explicit ``path`` argument: a directory holding the files (looked in through a
   subdirectory named after the dataset first, then directly), or a file: an ``mnist.npz``-style
   archive for MNIST/Fashion-MNIST, ``cifar-10-binary.tar.gz`` for CIFAR-10. When ``path`` is given
   nothing else is searched and nothing is downloaded: a wrong path is an error, not a fallback.
2. ``$MINICNN_DATA_DIR``: its dataset subdirectory (``mnist/`` or ``MNIST/``; ``fashion_mnist/``,
   ``fashion-mnist/`` or ``FashionMNIST/``; ``cifar10/`` or ``cifar-10/``), then the directory
   itself. Subdirectories come first because MNIST and Fashion-MNIST use the same file names.
3. Known caches of other tools: Keras (``$KERAS_HOME/datasets`` or ``~/.keras/datasets``:
   ``mnist.npz``, ``fashion-mnist/``), torchvision's layout under ``~/data`` and ``./data``
   (``MNIST/raw``, ``FashionMNIST/raw``; ``cifar-10-batches-bin`` for CIFAR-10), and system
   packages under ``/usr/share/datasets/<name>`` (Debian's ``dataset-fashion-mnist`` installs
   ``/usr/share/datasets/fashion-mnist``).
4. minicnn's own cache: ``$MINICNN_CACHE_DIR/<dataset>``, else ``$XDG_CACHE_HOME/minicnn/<dataset>``,
   else ``~/.cache/minicnn/<dataset>``.
5. Download into that cache, only if ``download=True`` and ``$MINICNN_OFFLINE`` is not ``1``/``true``:
   https only, TLS verified, 30 s timeout, mirrors in order; the SHA-256 is checked before the file
   is renamed into place, so the cache never holds a partial or unverified file.
6. Otherwise one :class:`~minicnn.errors.DatasetError` lists every place searched and what to set.

Formats and checks
------------------
* IDX (``train-images-idx3-ubyte`` etc., raw or gzip — recognised by its magic bytes, not its name;
  the dotted ``train-images.idx3-ubyte`` spelling is accepted too): magic, dims, exact data length,
  image/label counts and label range are always checked. For MNIST and Fashion-MNIST files of the
  official size the SHA-256 of the *decompressed* content is checked as well (mirrors recompress the
  archives, so archive bytes are never compared).
* Keras-style ``.npz`` with ``x_train, y_train, x_test, y_test``: read member by member with
  :mod:`zipfile` and :mod:`numpy.lib.format`; dtype and shape are checked from each header before
  anything is allocated, and nothing is ever unpickled (object arrays are refused). Structure
  checks only: no hash of these archives' content is published.
* CIFAR-10 *binary* version only (records of 1 label byte + 3072 pixel bytes, R, G, B planes of
  32x32 each), from ``cifar-10-batches-bin/*.bin`` or read straight out of the official
  ``cifar-10-binary.tar.gz`` (regular members with the expected names only; nothing is extracted).
  The pickle ("python") version is never read.

Every array is read straight into its final buffer, so a loaded dataset costs one copy of RAM.
Any damage surfaces as a :class:`~minicnn.errors.DatasetError` naming the file.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import lzma
import math
import os
import struct
import tarfile
import zipfile
import zlib

import numpy as np

from .errors import DatasetError
from .fileio import atomic_write

__all__ = ["load", "load_mnist", "load_fashion_mnist", "load_cifar10", "read_idx", "read_cifar_batch",
           "read_keras_npz", "to_float_nhwc", "one_hot"]

_CHUNK = 1 << 20
_TIMEOUT = 30.0
_MAX_DOWNLOAD = 512 << 20   # an endless or absurd response is cut off, not written to disk
_DEFLATE_MAX_RATIO = 1032    # deflate cannot expand more than this: bounds a gzip's content size

_TITLES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}
_SUBDIRS = {"mnist": ("mnist", "MNIST"),
            "fashion_mnist": ("fashion_mnist", "fashion-mnist", "FashionMNIST"),
            "cifar10": ("cifar10", "cifar-10")}
_SYSTEM_DIRS = ("/usr/share/datasets",)

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
_MIRRORS = {"mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                      "https://storage.googleapis.com/cvdf-datasets/mnist/"),
            # The S3 website of Fashion-MNIST is http-only; GitHub serves the same files over https.
            "fashion_mnist": (
                "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",)}

_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
_CIFAR_TAR = "cifar-10-binary.tar.gz"
# The authors' server is the only source and serves the archive unchanged, so here the archive
# bytes themselves are the reference (SHA-256 of the tarball whose official MD5 is c32a1d4a...).
_CIFAR_TAR_SHA256 = "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"
_CIFAR_DIR = "cifar-10-batches-bin"
_CIFAR_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6)) + ("test_batch.bin",)
_CIFAR_RECORD = 1 + 3 * 32 * 32
_CIFAR_RECORDS_PER_BATCH = 10000   # tests shrink this to load tiny synthetic batches


# ----------------------------------------------------------------------------------------- IDX

def _readinto(f, out: np.ndarray) -> int:
    """Fill the C-contiguous ``out`` from ``f`` in chunks; return the number of bytes read."""
    if out.nbytes == 0:
        return 0
    view = memoryview(out).cast("B")
    got = 0
    while got < len(view):
        # chunked: GzipFile/ZipExtFile implement readinto as read()+copy, which would double RAM
        n = f.readinto(view[got:got + _CHUNK])
        if not n:
            break
        got += n
    return got


def _count_rest(f) -> int:
    total = 0
    while chunk := f.read(_CHUNK):
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
                yield gz, size * _DEFLATE_MAX_RATIO + (1 << 16), True
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
            got = _readinto(f, arr)
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


def _check_split(x: np.ndarray, y: np.ndarray, xwhere: str, ywhere: str,
                 image_shape: tuple[int, ...]) -> None:
    if x.shape[1:] != image_shape:
        raise DatasetError(f"{xwhere}: images are {'x'.join(map(str, x.shape[1:]))}, "
                           f"expected {'x'.join(map(str, image_shape))}")
    if len(x) != len(y):
        raise DatasetError(f"{xwhere} holds {len(x)} images but {ywhere} holds {len(y)} labels")
    if len(x) == 0:
        raise DatasetError(f"{xwhere}: holds no images")
    _check_labels(y, ywhere)


def _check_labels(y: np.ndarray, where: str) -> None:
    if y.size and y.max() > 9:
        i = int(np.argmax(y > 9))
        raise DatasetError(f"{where}: label {int(y[i])} at index {i} is outside 0..9")


def _load_idx_dir(name: str, directory: str):
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


# ----------------------------------------------------------------------------------------- npz

_NPZ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, lzma.LZMAError, OSError, EOFError,
               ValueError, KeyError, RuntimeError, struct.error, OverflowError)


def _read_npy_member(zf: zipfile.ZipFile, key: str, where: str,
                     shape_tail: tuple[int, ...]) -> np.ndarray:
    info = zf.getinfo(key + ".npy")
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise DatasetError(f"{where}: unsupported .npy format version {version}")
        if dtype != np.uint8:  # refuses object arrays before any byte of them is read
            raise DatasetError(f"{where}: dtype is {dtype}, expected uint8")
        if len(shape) != 1 + len(shape_tail) or tuple(shape[1:]) != shape_tail:
            want = "(N, " + ", ".join(map(str, shape_tail)) + ")" if shape_tail else "(N,)"
            raise DatasetError(f"{where}: shape is {tuple(shape)}, expected {want}")
        if fortran and len(shape) > 1:
            raise DatasetError(f"{where}: Fortran-ordered arrays are not supported")
        n = math.prod(shape)
        if n != info.file_size - f.tell():  # checked against the zip directory before allocating
            raise DatasetError(f"{where}: shape {tuple(shape)} needs {n} data bytes, "
                               f"member holds {info.file_size - f.tell()}")
        arr = np.empty(shape, np.uint8)
        got = _readinto(f, arr)
        if got != n or f.read(1):  # the extra read makes zipfile check the CRC
            raise DatasetError(f"{where}: truncated or oversized data: expected {n} bytes, got {got}")
    return arr


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
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k + ".npy" not in names]
            if missing:
                raise DatasetError(f"{path}: missing keys {missing}; it holds {sorted(names)}")
            out = []
            for split in ("train", "test"):
                xw, yw = f"{path}['x_{split}']", f"{path}['y_{split}']"
                x = _read_npy_member(zf, f"x_{split}", xw, image_shape)
                y = _read_npy_member(zf, f"y_{split}", yw, ())
                _check_split(x, y, xw, yw, image_shape)
                out.append((x, y))
    except _NPZ_ERRORS as e:
        raise DatasetError(f"{path}: not a readable .npz archive ({type(e).__name__}: {e})") from None
    return tuple(out)


# ------------------------------------------------------------------------------------- CIFAR-10

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
        got = _readinto(f, buf[:k])
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


# ------------------------------------------------------------------------------------- location

def _home(*parts: str) -> str:
    return os.path.join(os.path.expanduser("~"), *parts)


def _cache_dir(name: str) -> str:
    base = (os.environ.get("MINICNN_CACHE_DIR")
            or os.path.join(os.environ.get("XDG_CACHE_HOME") or _home(".cache"), "minicnn"))
    return os.path.join(base, name)


def _with_subdirs(directory: str, name: str) -> list[str]:
    return [os.path.join(directory, s) for s in _SUBDIRS[name]] + [directory]


def _places(name: str, path) -> list[str]:
    """Directories (or files) to search, in order; see the module docstring."""
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


def _read_found(name: str, kind: str, path: str):
    if kind == "idx":
        return _load_idx_dir(name, path)
    if kind == "npz":
        return read_keras_npz(path)
    return _load_cifar(kind, path)


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


# ------------------------------------------------------------------------------------- download

def _urlopen(url: str, timeout: float):
    """The one place that touches the network (tests replace it)."""
    import urllib.request  # not at import time: only a download needs it
    return urllib.request.urlopen(url, timeout=timeout)  # default context: TLS verified


def _content_sha256(path: str, gunzip: bool) -> str:
    with (gzip.open(path, "rb") if gunzip else open(path, "rb")) as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _download(url: str, dest: str, sha256: str, *, gunzip: bool) -> None:
    """Fetch ``url`` to ``dest`` atomically, checking the SHA-256 of its (decompressed) content.

    The bytes go to a temporary file next to ``dest`` which is renamed into place only once
    verified; on any failure it is deleted, so ``dest`` is either absent or complete and right.
    """
    if not url.startswith("https://"):
        raise ValueError(f"refusing non-https URL {url!r}")

    def fetch(out):
        with _urlopen(url, timeout=_TIMEOUT) as resp:
            final = resp.geturl() if hasattr(resp, "geturl") else url
            if not final.startswith("https://"):
                raise DatasetError(f"redirected to non-https {final}")
            total = 0
            while chunk := resp.read(_CHUNK):
                total += len(chunk)
                if total > _MAX_DOWNLOAD:
                    raise DatasetError(f"response exceeds {_MAX_DOWNLOAD} bytes")
                out.write(chunk)

    def check(tmp):
        try:
            got = _content_sha256(tmp, gunzip)
        except (OSError, EOFError, zlib.error) as e:
            raise DatasetError(f"downloaded data is not valid gzip ({e})") from None
        if got != sha256:
            what = "decompressed content" if gunzip else "file"
            raise DatasetError(f"SHA-256 of the {what} is {got}, expected {sha256}")

    atomic_write(dest, fetch, verify=check)


def _download_dataset(name: str, cache: str) -> None:
    """Download every missing file of ``name`` into ``cache``; DatasetError says what failed."""
    if name == "cifar10":
        jobs = [(_CIFAR_TAR, [_CIFAR_URL], _CIFAR_TAR_SHA256, False)]
    else:
        jobs = [(stem + ".gz", [m + stem + ".gz" for m in _MIRRORS[name]], _SHA256[name][stem], True)
                for stem in _IDX_STEMS if not _idx_file(cache, stem)]
    for filename, urls, sha256, gunzip in jobs:
        errors = []
        for url in urls:
            try:
                _download(url, os.path.join(cache, filename), sha256, gunzip=gunzip)
                break
            except (OSError, http.client.HTTPException, DatasetError) as e:  # URLError is an OSError
                kind = "" if isinstance(e, DatasetError) else f"{type(e).__name__}: "
                errors.append(f"  {url}: {kind}{e}")
        else:
            raise DatasetError(f"could not download {filename}:\n" + "\n".join(errors) + "\n"
                               f"To install it by hand, fetch {urls[0]} elsewhere and put it in "
                               f"{cache}")


def _offline() -> bool:
    return os.environ.get("MINICNN_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


# ------------------------------------------------------------------------------------- loaders

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
        this is searched. Otherwise see the module docstring for the search order.
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


# ------------------------------------------------------------------------------------- helpers

def to_float_nhwc(x: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Scale ``uint8`` images to floats in [0, 1], with a channel axis.

    Parameters
    ----------
    x : numpy.ndarray
        (N, H, W) or (N, H, W, C) ``uint8``.
    dtype : floating dtype, default float32

    Returns
    -------
    numpy.ndarray
        (N, H, W, C) of ``dtype`` (C = 1 for (N, H, W) input), equal to ``x.astype(dtype) / 255``.
    """
    x = np.asarray(x)
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a floating type, got {dtype}")
    if x.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels 0..255, got dtype {x.dtype}")
    if x.ndim not in (3, 4):
        raise ValueError(f"expected (N, H, W) or (N, H, W, C) images, got shape {x.shape}")
    out = x[..., None].astype(dtype) if x.ndim == 3 else x.astype(dtype)
    np.divide(out, 255, out=out)  # in place: one float copy only
    return out


def one_hot(y, num_classes: int = 10, dtype=np.float32) -> np.ndarray:
    """One-hot encode integer labels.

    Parameters
    ----------
    y : array_like
        (N,) or (N, 1) integer labels in ``0..num_classes-1`` (floats are accepted when integral).
    num_classes : int, default 10
    dtype : dtype, default float32

    Returns
    -------
    numpy.ndarray
        (N, num_classes) of ``dtype``, 1 at each label's column, 0 elsewhere.

    Raises
    ------
    ValueError
        A label that is out of range or not an integer (the message names its index and value).
    """
    if (isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer))
            or num_classes < 1):
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"labels must have shape (N,) or (N, 1), got {y.shape}")
    if y.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(y)))
        if bad.size:
            raise ValueError(f"label {y[bad[0]].item()!r} at index {bad[0]} is not an integer")
    elif y.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    bad = np.flatnonzero((y < 0) | (y >= num_classes))
    if bad.size:
        raise ValueError(
            f"label {y[bad[0]].item()!r} at index {bad[0]} is outside 0..{num_classes - 1}")
    out = np.zeros((len(y), num_classes), dtype)
    out[np.arange(len(y)), y.astype(np.intp)] = 1
    return out
