"""minicnn.datasets.keras_npz: Keras-style mnist.npz archives, read without unpickling."""

import io
import pickle
import struct
import zipfile

import numpy as np
import pytest

from minicnn import datasets
from minicnn.errors import DatasetError
from tests.datasets.datahelpers import assert_same, synthetic_mnist, write


def test_keras_npz_loads(env):
    data = synthetic_mnist()
    (xtr, ytr), (xte, yte) = data
    p = env / "mnist.npz"
    np.savez(p, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    assert_same(datasets.load_mnist(p), data)
    assert_same(datasets.load_mnist(env), data)  # a directory holding mnist.npz
    q = env / "c.npz"
    np.savez_compressed(q, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    assert_same(datasets.read_keras_npz(q), data)


def test_npz_object_array_is_refused_never_unpickled(tmp_path, monkeypatch):
    def no_pickle(*a, **k):
        raise AssertionError("unpickled")
    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    (xtr, _), (xte, yte) = synthetic_mnist()
    p = tmp_path / "mnist.npz"
    objects = np.array([1, "a", None, 2, 3], dtype=object)
    np.savez(p, x_train=xtr, y_train=objects, x_test=xte, y_test=yte)
    with pytest.raises(DatasetError, match="dtype is object") as e:
        datasets.read_keras_npz(p)
    assert str(p) in str(e.value)


def test_npz_not_a_zip(tmp_path):
    p = write(tmp_path / "mnist.npz", b"this is not a zip archive at all")
    with pytest.raises(DatasetError, match="not a readable .npz") as e:
        datasets.load_mnist(p)
    assert str(p) in str(e.value)


@pytest.mark.parametrize("change,match", [
    (lambda a: a.pop("y_test"), "missing keys"),
    (lambda a: a.update(x_train=a["x_train"].astype(np.float32)), "dtype is float32"),
    (lambda a: a.update(x_train=a["x_train"][:, :, :20]), r"shape is \(5, 28, 20\)"),
    (lambda a: a.update(y_train=a["y_train"] + 10), "outside 0..9"),
])
def test_npz_bad_content(tmp_path, change, match):
    (xtr, ytr), (xte, yte) = synthetic_mnist()
    arrays = dict(x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    change(arrays)
    p = tmp_path / "mnist.npz"
    np.savez(p, **arrays)
    with pytest.raises(DatasetError, match=match) as e:
        datasets.read_keras_npz(p)
    assert str(p) in str(e.value)


def _npz_with_forged_sizes(path, rows):
    """A deflated mnist.npz whose x_train header and zip directory both claim ``rows`` images.

    The header and the declared size agree, so only a bound on what the archive can hold stops
    the reader from allocating ``rows * 784`` bytes.
    """
    (xtr, ytr), (xte, yte) = synthetic_mnist()
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False,
                                               "shape": (rows, 28, 28)})
    header = buf.getvalue()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x_train.npy", header + xtr.tobytes())
        for name, arr in (("y_train", ytr), ("x_test", xte), ("y_test", yte)):
            member = io.BytesIO()
            np.save(member, arr)
            zf.writestr(name + ".npy", member.getvalue())
    data = bytearray(path.read_bytes())
    entry = data.index(b"PK\x01\x02")  # x_train's central directory entry comes first
    assert data[entry + 46:entry + 46 + 11] == b"x_train.npy"
    struct.pack_into("<I", data, entry + 24, len(header) + rows * 28 * 28)  # uncompressed size
    path.write_bytes(bytes(data))


def test_npz_member_declaring_more_than_the_archive_can_hold_is_refused_before_allocating(tmp_path):
    p = tmp_path / "mnist.npz"
    _npz_with_forged_sizes(p, rows=5_000_000)  # 3.9 GB claimed by a file of a few kB
    with pytest.raises(DatasetError, match="more than the file holds") as e:
        datasets.read_keras_npz(p)
    assert str(p) in str(e.value) and "x_train.npy" in str(e.value)


def test_npz_arrays_are_read_into_their_own_buffers(tmp_path):
    data = synthetic_mnist()
    p = tmp_path / "mnist.npz"
    np.savez_compressed(p, x_train=data[0][0], y_train=data[0][1], x_test=data[1][0],
                        y_test=data[1][1])
    for x, y in datasets.read_keras_npz(p):
        assert x.flags.owndata and x.flags.c_contiguous and y.flags.owndata  # one copy each
