"""minicnn.fileio.read_npy_member and read_into: the one chunked ``.npy``-in-zip reader that model
files, checkpoints and the Keras ``.npz`` datasets share."""

import gzip
import io
import zipfile

import numpy as np
import pytest

from minicnn.fileio import CHUNK, read_into, read_npy_member


class Refused(Exception):
    pass


def fail(msg):
    raise Refused(msg)


def archive(compressed=False, **arrays):
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def read(data, key, **kw):
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return read_npy_member(zf, zf.getinfo(key + ".npy"), fail, archive_size=len(data), **kw)


ARRAYS = {"b": np.array([True, False, True]), "i8": np.arange(-3, 3, dtype=np.int8),
          "be": np.arange(6, dtype=">u2").reshape(2, 3), "f64": np.linspace(0, 1, 7),
          "fortran": np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4)),
          "scalar": np.array(5, np.int64), "empty": np.zeros((0, 3), np.float32)}


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("key", list(ARRAYS))
def test_round_trips(key, compressed):
    got = read(archive(compressed, **ARRAYS), key)
    want = ARRAYS[key]
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    assert got.flags.writeable
    if key == "fortran":
        assert got.flags.f_contiguous
    else:
        assert got.flags.owndata and got.flags.c_contiguous  # read straight into its own buffer


def test_stored_only_refuses_compressed_members():
    with pytest.raises(Refused, match="entry 'a.npy' is compressed"):
        read(archive(True, a=np.zeros(3)), "a", stored_only=True)
    read(archive(False, a=np.zeros(3)), "a", stored_only=True)


@pytest.mark.parametrize("compressed", [False, True])
def test_declared_sizes_the_archive_cannot_hold_are_refused_before_reading(compressed):
    data = archive(compressed, a=np.zeros(10))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.getinfo("a.npy")
        info.file_size = 10**12  # what a forged zip directory would say
        with pytest.raises(Refused, match="entry 'a.npy' declares 1000000000000 bytes, more than"):
            read_npy_member(zf, info, fail, archive_size=len(data))


def test_compressed_size_beyond_the_archive_is_refused():
    data = archive(False, a=np.zeros(10))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.getinfo("a.npy")
        with pytest.raises(Refused, match="more than the file holds"):
            read_npy_member(zf, info, fail, archive_size=info.compress_size - 1)


def test_objects_are_refused_unread():
    with pytest.raises(Refused, match="holds Python objects"):
        read(archive(a=np.array([1, "x"], dtype=object)), "a")


@pytest.mark.parametrize("arr", [np.array(["ab"]), np.zeros(2, [("x", "f4"), ("y", "i4")]),
                                 np.zeros(2, np.complex64)])
def test_unsupported_dtypes_are_refused(arr):
    with pytest.raises(Refused, match="unsupported dtype"):
        read(archive(a=arr), "a")


def test_check_header_runs_first_and_can_refuse():
    seen = []

    def check(shape, fortran, dtype):
        seen.append((shape, fortran, dtype))
        if dtype.hasobject:
            raise Refused("caller's own message")
    read(archive(a=np.zeros((2, 3), np.float32)), "a", check_header=check)
    assert seen == [((2, 3), False, np.dtype(np.float32))]
    with pytest.raises(Refused, match="caller's own message"):
        read(archive(a=np.array([None], dtype=object)), "a", check_header=check)


def test_header_and_member_size_must_agree():
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (4,)})
    member = buf.getvalue() + np.zeros(3).tobytes()  # one element short
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("a.npy", member)
    with pytest.raises(Refused, match=r"declares shape \(4,\) float64 \(32 bytes\) but holds 24"):
        read(out.getvalue(), "a")


def test_read_into_fills_in_chunks_and_reports_short_reads():
    class Counting(io.BytesIO):
        def __init__(self, data):
            super().__init__(data)
            self.sizes = []

        def readinto(self, b):
            self.sizes.append(len(b))
            return super().readinto(b)

    data = np.arange(CHUNK * 2 + 10, dtype=np.uint64).astype(np.uint8)
    out = np.empty(len(data) // 2, np.uint16)
    f = Counting(data.tobytes())
    assert read_into(f, out) == len(data)
    assert out.tobytes() == data.tobytes() and max(f.sizes) <= CHUNK
    short = np.empty(10, np.uint8)
    assert read_into(gzip.GzipFile(fileobj=io.BytesIO(gzip.compress(b"abc"))), short) == 3
    assert read_into(io.BytesIO(b""), np.empty(0, np.uint8)) == 0
    with pytest.raises(ValueError, match="C-contiguous"):
        read_into(io.BytesIO(b"abcd"), np.empty((2, 2), np.uint8).T)
