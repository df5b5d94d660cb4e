"""Synthetic dataset files for the dataset tests (imported as tests.datasets.datahelpers)."""

from __future__ import annotations

import gzip
import io
import tarfile

import numpy as np

from minicnn.datasets.cifar import _CIFAR_FILES
from minicnn.datasets.idx import _IDX_STEMS

STEMS = _IDX_STEMS


def idx_bytes(arr):
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.tobytes()


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def synthetic_mnist(seed=0, n_train=5, n_test=3, first_label=None):
    rng = np.random.default_rng(seed)
    split = []
    for n in (n_train, n_test):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, n, dtype=np.uint8)
        if first_label is not None:
            y[0] = first_label
        split.append((x, y))
    return tuple(split)


def write_mnist_dir(directory, data, gz=True, dotted=False):
    (xtr, ytr), (xte, yte) = data
    for stem, arr in zip(STEMS, (xtr, ytr, xte, yte)):
        name = stem.replace("-idx", ".idx") if dotted else stem
        write(directory / (name + (".gz" if gz else "")),
              gzip.compress(idx_bytes(arr)) if gz else idx_bytes(arr))
    return directory


def labelled(label):
    """Synthetic MNIST whose first train label tells which copy was loaded."""
    return synthetic_mnist(seed=label, first_label=label)


def first_label(loaded):
    return int(loaded[0][1][0])


def assert_same(loaded, data):
    for (xa, ya), (xb, yb) in zip(loaded, data):
        assert xa.dtype == ya.dtype == np.uint8
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def cifar_records(x_nhwc, y):
    planar = np.asarray(x_nhwc, np.uint8).transpose(0, 3, 1, 2).reshape(len(y), -1)
    return np.concatenate([np.asarray(y, np.uint8)[:, None], planar], axis=1).tobytes()


def synthetic_cifar(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)


def cifar_batches(n, seed=0):
    return {name: cifar_records(*synthetic_cifar(n, seed + i))
            for i, name in enumerate(_CIFAR_FILES)}


def expected_cifar(n, seed=0):
    parts = [synthetic_cifar(n, seed + i) for i in range(6)]
    return ((np.concatenate([p[0] for p in parts[:5]]), np.concatenate([p[1] for p in parts[:5]])),
            parts[5])


def tar_gz(members):
    """A .tar.gz from ``{name: bytes}`` (or a TarInfo-making callable for special members)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            if callable(data):
                tar.addfile(data(name))
                continue
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class FakeResponse:
    """Enough of an HTTP response for download._download: read(n), geturl(), context manager."""

    def __init__(self, data, url, fail_after=None):
        self._buf = io.BytesIO(data)
        self._url = url
        self._fail_after = fail_after

    def read(self, n=-1):
        if self._fail_after is not None and self._buf.tell() >= self._fail_after:
            raise ConnectionResetError("connection reset mid-stream")
        limit = n if self._fail_after is None else min(n, self._fail_after - self._buf.tell())
        return self._buf.read(limit)

    def geturl(self):
        return self._url

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def cache_files(tmp_path, name="mnist"):
    d = tmp_path / "xdg" / "minicnn" / name
    return sorted(p.name for p in d.iterdir()) if d.exists() else []
