"""Fuzzing the dataset parsers: any byte string is either parsed or refused with DatasetError.

Inputs are random bytes or valid files (IDX raw/gzip, CIFAR batches, .npz stored/deflated,
CIFAR tarballs) put through a few mutations: byte flips, header-field rewrites, truncation,
extension. No other exception, hang or huge allocation is acceptable.
"""

import gzip
import io
import tarfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minicnn import datasets
from minicnn.datasets import cifar as cifar_reader
from minicnn.errors import DatasetError

FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def idx(arr):
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.tobytes()


def npz(compressed, **arrays):
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def cifar(n, label=3):
    rec = np.arange(n * 3073, dtype=np.uint64).astype(np.uint8).reshape(n, 3073)
    rec[:, 0] = label
    return rec.tobytes()


_rng = np.random.default_rng(0)
_IMAGES = _rng.integers(0, 256, (3, 4, 4), dtype=np.uint8)
_LABELS = np.array([0, 9, 4], np.uint8)
IDX_BASES = [idx(_IMAGES), idx(_LABELS), gzip.compress(idx(_IMAGES)),
             gzip.compress(idx(_LABELS), compresslevel=0)]
CIFAR_BASES = [cifar(1), cifar(2, label=9)]
_NPZ_ARRAYS = dict(x_train=_IMAGES[:, :2, :2], y_train=_LABELS,
                   x_test=_IMAGES[:2, :2, :2], y_test=_LABELS[:2])
NPZ_BASES = [npz(False, **_NPZ_ARRAYS), npz(True, **_NPZ_ARRAYS)]


def _tar(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if members.pop("gz", True) else "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


_CIFAR_MEMBERS = {f"cifar-10-batches-bin/{f}": cifar(1) for f in cifar_reader._CIFAR_FILES}
TAR_BASES = [_tar(dict(_CIFAR_MEMBERS)), _tar(dict(_CIFAR_MEMBERS, gz=False))]


@st.composite
def mutated(draw, bases):
    """A valid file with up to four mutations, or (one time in five) random bytes."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=300))
    data = bytearray(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "field", "truncate", "extend"]))
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "field":  # rewrite a big-endian 32-bit field, e.g. a magic number or a dim
            pos = draw(st.sampled_from([0, 4, 8, 12, pos]))
            value = draw(st.sampled_from([0, 1, 2, 3, 255, 2**31, 2**32 - 1])
                         | st.integers(0, 2**32 - 1))
            data[pos:pos + 4] = value.to_bytes(4, "big")
        elif op == "truncate":
            del data[pos:]
        else:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
    return bytes(data)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "file"
    path.touch()

    def put(data):
        # overwrite in place: re-creating the file ("wb" truncates to zero) makes ext4 flush it,
        # which costs milliseconds per example
        with open(path, "r+b") as f:
            f.write(data)
            f.truncate()
        return path
    return put


def parses_or_refuses(parse, path):
    try:
        return parse(path)
    except DatasetError as e:
        assert str(path) in str(e)
        return None


@FUZZ
@given(data=mutated(IDX_BASES))
def test_read_idx_fuzz(scratch, data):
    arr = parses_or_refuses(datasets.read_idx, scratch(data))
    if arr is not None:
        assert arr.dtype == np.uint8 and arr.size >= 1


@FUZZ
@given(data=mutated(CIFAR_BASES))
def test_read_cifar_batch_fuzz(scratch, data):
    out = parses_or_refuses(datasets.read_cifar_batch, scratch(data))
    if out is not None:
        x, y = out
        assert x.shape == (len(y), 32, 32, 3) and len(y) * 3073 == len(data) and y.max() <= 9


@FUZZ
@given(data=mutated(NPZ_BASES))
def test_read_keras_npz_fuzz(scratch, data):
    out = parses_or_refuses(lambda p: datasets.read_keras_npz(p, image_shape=(2, 2)), scratch(data))
    if out is not None:
        for x, y in out:
            assert x.shape[1:] == (2, 2) and len(x) == len(y) >= 1 and y.max() <= 9


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated(TAR_BASES))
def test_cifar_tarball_fuzz(scratch, data, monkeypatch_module):
    out = parses_or_refuses(lambda p: cifar_reader._load_cifar("cifar_tar", str(p)), scratch(data))
    if out is not None:
        assert out[0][0].shape == (5, 32, 32, 3)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cifar_reader, "_CIFAR_RECORDS_PER_BATCH", 1)
        yield mp
