"""minicnn.datasets.idx: IDX parsing, corruption handling, MNIST directories, official checksums."""

import gzip
import hashlib

import numpy as np
import pytest

from minicnn import datasets
from minicnn.datasets import idx
from minicnn.errors import DatasetError
from tests.datasets.datahelpers import (
    assert_same,
    idx_bytes,
    synthetic_mnist,
    write,
    write_mnist_dir,
)


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trips(tmp_path, gz):
    x = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = idx_bytes(x)
    p = write(tmp_path / "a-idx3-ubyte", gzip.compress(raw) if gz else raw)
    got = datasets.read_idx(p)
    assert got.dtype == np.uint8 and got.shape == (2, 3, 4)
    np.testing.assert_array_equal(got, x)
    assert got.flags.writeable and got.flags.owndata  # read into its own buffer: one copy


def test_read_idx_detects_gzip_by_magic_not_name(tmp_path):
    y = np.array([1, 2, 3], np.uint8)
    np.testing.assert_array_equal(datasets.read_idx(write(tmp_path / "raw.gz", idx_bytes(y))), y)
    np.testing.assert_array_equal(
        datasets.read_idx(write(tmp_path / "packed", gzip.compress(idx_bytes(y)))), y)


@pytest.mark.parametrize("gz,dotted", [(True, False), (False, False), (True, True)])
def test_load_mnist_from_directory(env, gz, dotted):
    data = synthetic_mnist()
    d = write_mnist_dir(env / "d", data, gz=gz, dotted=dotted)
    assert_same(datasets.load_mnist(d), data)
    assert_same(datasets.load("mnist", path=str(d)), data)


def test_wrong_magic(tmp_path):
    p = write(tmp_path / "labels", b"\x00\x00\x08\x03" + idx_bytes(np.zeros(4, np.uint8))[4:])
    with pytest.raises(DatasetError) as e:
        idx._read_idx(p, ndim=1)
    assert str(p) in str(e.value) and "0x00000801" in str(e.value) and "0x00000803" in str(e.value)


def test_truncated_data(tmp_path):
    p = write(tmp_path / "x", idx_bytes(np.zeros((3, 4, 4), np.uint8))[:-5])
    with pytest.raises(DatasetError, match="truncated") as e:
        datasets.read_idx(p)
    assert str(p) in str(e.value) and "48" in str(e.value) and "43" in str(e.value)


def test_trailing_bytes(tmp_path):
    p = write(tmp_path / "x.gz", gzip.compress(idx_bytes(np.zeros(6, np.uint8)) + b"junk"))
    with pytest.raises(DatasetError, match="4 trailing bytes") as e:
        datasets.read_idx(p)
    assert str(p) in str(e.value)


def test_wrong_dims(env):
    (xtr, ytr), test = synthetic_mnist()
    d = write_mnist_dir(env / "d", ((xtr[:, :27], ytr), test))
    with pytest.raises(DatasetError, match="27x28, expected 28x28") as e:
        datasets.load_mnist(d)
    assert "train-images-idx3-ubyte.gz" in str(e.value)


def test_image_label_count_mismatch(env):
    (xtr, ytr), test = synthetic_mnist()
    d = write_mnist_dir(env / "d", ((xtr, ytr[:-1]), test))
    with pytest.raises(DatasetError, match="5 images but .* 4 labels") as e:
        datasets.load_mnist(d)
    assert "train-labels-idx1-ubyte.gz" in str(e.value)


def test_label_out_of_range(env):
    train, (xte, yte) = synthetic_mnist()
    yte = yte.copy()
    yte[2] = 10
    d = write_mnist_dir(env / "d", (train, (xte, yte)))
    with pytest.raises(DatasetError, match="label 10 at index 2") as e:
        datasets.load_mnist(d)
    assert "t10k-labels-idx1-ubyte.gz" in str(e.value)


def test_corrupt_gzip_crc(tmp_path):
    # stored (level 0) deflate keeps the data bytes as they are, so a flip there reaches the CRC check
    packed = bytearray(gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8)), compresslevel=0))
    packed[len(packed) // 2] ^= 0xFF
    p = write(tmp_path / "x.gz", bytes(packed))
    with pytest.raises(DatasetError, match="CRC") as e:
        datasets.read_idx(p)
    assert str(p) in str(e.value)


def test_truncated_gzip(tmp_path):
    packed = gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8)))
    p = write(tmp_path / "x.gz", packed[:-12])
    with pytest.raises(DatasetError) as e:
        datasets.read_idx(p)
    assert str(p) in str(e.value)


def test_empty_file(tmp_path):
    p = write(tmp_path / "x", b"")
    with pytest.raises(DatasetError, match="empty") as e:
        datasets.read_idx(p)
    assert str(p) in str(e.value)


def test_missing_file(tmp_path):
    p = tmp_path / "nope-idx1-ubyte"
    with pytest.raises(DatasetError, match="no such file") as e:
        datasets.read_idx(p)
    assert str(p) in str(e.value)


def test_header_claiming_more_than_the_file_can_hold_is_refused_before_allocating(tmp_path):
    p = write(tmp_path / "x", bytes([0, 0, 8, 3]) + (2**32 - 1).to_bytes(4, "big") * 3)
    with pytest.raises(DatasetError, match="truncated") as e:
        datasets.read_idx(p)
    assert str(p) in str(e.value)


def test_official_size_file_with_wrong_sha256_is_refused(env):
    (xtr, ytr), _ = synthetic_mnist()
    xte = np.zeros((10000, 28, 28), np.uint8)  # t10k-images of the official size, wrong content
    yte = np.zeros(10000, np.uint8)
    d = write_mnist_dir(env / "d", ((xtr, ytr), (xte, yte)), gz=False)
    got = hashlib.sha256(idx_bytes(xte)).hexdigest()
    with pytest.raises(DatasetError) as e:
        datasets.load_mnist(d)
    msg = str(e.value)
    assert "t10k-images-idx3-ubyte" in msg and got in msg
    assert idx._SHA256["mnist"]["t10k-images-idx3-ubyte"] in msg
