"""minicnn.datasets.cifar: CIFAR-10 binary batches, batch directories and the official tarball."""

import tarfile

import numpy as np
import pytest

from minicnn import datasets
from minicnn.errors import DatasetError
from tests.datasets.datahelpers import (
    assert_same,
    cifar_batches,
    cifar_records,
    expected_cifar,
    synthetic_cifar,
    tar_gz,
    write,
)


def test_cifar_batch_nhwc_from_a_hand_built_record(tmp_path):
    record = np.zeros(3073, np.uint8)
    record[0] = 7                         # label
    r, c = 2, 5                           # one pixel, row 2, column 5
    record[1 + 0 * 1024 + r * 32 + c] = 10   # R plane
    record[1 + 1 * 1024 + r * 32 + c] = 20   # G plane
    record[1 + 2 * 1024 + r * 32 + c] = 30   # B plane
    x2, y2 = synthetic_cifar(2)
    p = write(tmp_path / "data_batch_1.bin", record.tobytes() + cifar_records(x2, y2))
    x, y = datasets.read_cifar_batch(p)
    assert x.shape == (3, 32, 32, 3) and x.dtype == y.dtype == np.uint8 and x.flags.c_contiguous
    assert y[0] == 7 and list(x[0, r, c]) == [10, 20, 30] and x[0].sum() == 60
    np.testing.assert_array_equal(x[1:], x2)
    np.testing.assert_array_equal(y[1:], y2)


def test_cifar_batch_wrong_size(tmp_path):
    p = write(tmp_path / "data_batch_1.bin", cifar_records(*synthetic_cifar(2)) + b"\0")
    with pytest.raises(DatasetError, match="not a whole number") as e:
        datasets.read_cifar_batch(p)
    assert str(p) in str(e.value) and "6147" in str(e.value)


def test_cifar_batch_bad_label(tmp_path):
    x, y = synthetic_cifar(3)
    y[1] = 11
    p = write(tmp_path / "test_batch.bin", cifar_records(x, y))
    with pytest.raises(DatasetError, match="label 11 at index 1") as e:
        datasets.read_cifar_batch(p)
    assert str(p) in str(e.value)


def test_load_cifar10_from_batch_directory(env, small_cifar):
    for name, data in cifar_batches(2).items():
        write(env / "c" / "cifar-10-batches-bin" / name, data)
    (xtr, ytr), (xte, yte) = loaded = datasets.load_cifar10(env / "c")
    assert xtr.shape == (10, 32, 32, 3) and ytr.shape == (10,) and xte.shape == (2, 32, 32, 3)
    assert_same(loaded, expected_cifar(2))


def test_load_cifar10_requires_the_full_record_count(env, small_cifar):
    batches = cifar_batches(2)
    batches["data_batch_3.bin"] = cifar_records(*synthetic_cifar(3))
    for name, data in batches.items():
        write(env / "c" / name, data)
    with pytest.raises(DatasetError, match="holds 3 records .* expected 2") as e:
        datasets.load_cifar10(env / "c")
    assert "data_batch_3.bin" in str(e.value)


def test_load_cifar10_from_tarball(env, small_cifar):
    members = {"cifar-10-batches-bin/batches.meta.txt": b"airplane\n",
               "../../escape.bin": b"never written",  # read by expected name only, never extracted
               **{f"cifar-10-batches-bin/{k}": v for k, v in cifar_batches(2).items()}}
    tarball = write(env / "cifar-10-binary.tar.gz", tar_gz(members))
    assert_same(datasets.load_cifar10(tarball), expected_cifar(2))
    assert_same(datasets.load("cifar10", path=env), expected_cifar(2))  # a directory with the tarball
    assert not (env.parent / "escape.bin").exists()


def symlink_member(name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = "/etc/passwd"
    return info


@pytest.mark.parametrize("mutate,match", [
    (lambda m: m.pop("cifar-10-batches-bin/test_batch.bin"), "lacks the members"),
    (lambda m: m.update({"cifar-10-batches-bin/test_batch.bin": symlink_member}), "not a regular file"),
    (lambda m: m.update({"cifar-10-batches-bin/test_batch.bin": b"\0" * 3073}), "holds 1 records"),
])
def test_cifar_tarball_damage(env, small_cifar, mutate, match):
    members = {f"cifar-10-batches-bin/{k}": v for k, v in cifar_batches(2).items()}
    mutate(members)
    tarball = write(env / "cifar-10-binary.tar.gz", tar_gz(members))
    with pytest.raises(DatasetError, match=match) as e:
        datasets.load_cifar10(tarball)
    assert str(tarball) in str(e.value)


def test_cifar_tarball_corrupt_gzip(env, small_cifar):
    packed = tar_gz({f"cifar-10-batches-bin/{k}": v for k, v in cifar_batches(2).items()})
    tarball = write(env / "cifar-10-binary.tar.gz", packed[: len(packed) // 2])
    with pytest.raises(DatasetError) as e:
        datasets.load_cifar10(tarball)
    assert str(tarball) in str(e.value)
