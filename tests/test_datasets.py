"""minicnn.datasets: parsers, corruption handling, search order, atomic downloads, helpers.

Everything runs on tiny synthetic files written here; no test touches the network (``_urlopen`` is
replaced for every test). The real-data tests are skipped unless the data is present.
"""

import gzip
import hashlib
import io
import os
import pickle
import tarfile
import urllib.error

import numpy as np
import pytest

from minicnn import datasets
from minicnn.errors import DatasetError

STEMS = datasets._IDX_STEMS


# ------------------------------------------------------------------------------------ helpers

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
    """Enough of an HTTP response for datasets._download: read(n), geturl(), context manager."""

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


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(url, timeout):
        raise AssertionError(f"test tried to open {url}")
    monkeypatch.setattr(datasets, "_urlopen", refuse)


@pytest.fixture
def env(tmp_path, monkeypatch):
    """An empty world: HOME, caches and cwd in tmp_path; no data dir, no system datasets."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    for var in ("MINICNN_DATA_DIR", "MINICNN_CACHE_DIR", "KERAS_HOME", "MINICNN_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(datasets, "_SYSTEM_DIRS", ())
    return tmp_path


def cache_files(tmp_path, name="mnist"):
    d = tmp_path / "xdg" / "minicnn" / name
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


# ------------------------------------------------------------------------------------ IDX

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
        datasets._read_idx(p, ndim=1)
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
    assert datasets._SHA256["mnist"]["t10k-images-idx3-ubyte"] in msg


# ------------------------------------------------------------------------------------ npz

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


# ------------------------------------------------------------------------------------ CIFAR-10

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


def cifar_batches(n, seed=0):
    return {name: cifar_records(*synthetic_cifar(n, seed + i))
            for i, name in enumerate(datasets._CIFAR_FILES)}


def expected_cifar(n, seed=0):
    parts = [synthetic_cifar(n, seed + i) for i in range(6)]
    return ((np.concatenate([p[0] for p in parts[:5]]), np.concatenate([p[1] for p in parts[:5]])),
            parts[5])


@pytest.fixture
def small_cifar(monkeypatch):
    monkeypatch.setattr(datasets, "_CIFAR_RECORDS_PER_BATCH", 2)


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


# ------------------------------------------------------------------------------------ location

def labelled(label):
    """Synthetic MNIST whose first train label tells which copy was loaded."""
    return synthetic_mnist(seed=label, first_label=label)


def first_label(loaded):
    return int(loaded[0][1][0])


def test_location_order_explicit_then_data_dir_then_cache(env, monkeypatch):
    explicit = write_mnist_dir(env / "explicit", labelled(1))
    data_dir = write_mnist_dir(env / "datadir" / "mnist", labelled(2)).parent
    write_mnist_dir(env / "xdg" / "minicnn" / "mnist", labelled(3))
    monkeypatch.setenv("MINICNN_DATA_DIR", str(data_dir))
    assert first_label(datasets.load_mnist(explicit)) == 1
    assert first_label(datasets.load_mnist()) == 2
    monkeypatch.delenv("MINICNN_DATA_DIR")
    assert first_label(datasets.load_mnist()) == 3
    monkeypatch.setenv("MINICNN_CACHE_DIR", str(env / "own"))  # MINICNN_CACHE_DIR beats XDG
    write_mnist_dir(env / "own" / "mnist", labelled(4))
    assert first_label(datasets.load_mnist()) == 4


def test_data_dir_subdirectory_beats_its_top_level(env, monkeypatch):
    # MNIST and Fashion-MNIST share file names: the dataset's own subdirectory must win
    write_mnist_dir(env / "data", labelled(5))
    write_mnist_dir(env / "data" / "fashion-mnist", labelled(6))
    monkeypatch.setenv("MINICNN_DATA_DIR", str(env / "data"))
    assert first_label(datasets.load_fashion_mnist()) == 6
    assert first_label(datasets.load_mnist()) == 5


def test_known_caches_come_after_data_dir_and_before_own_cache(env, monkeypatch):
    (xtr, ytr), (xte, yte) = labelled(7)
    keras = env / "home" / ".keras" / "datasets"
    keras.mkdir(parents=True)
    np.savez(keras / "mnist.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    write_mnist_dir(env / "xdg" / "minicnn" / "mnist", labelled(3))
    assert first_label(datasets.load_mnist()) == 7
    monkeypatch.setenv("MINICNN_DATA_DIR", str(write_mnist_dir(env / "dd", labelled(2))))
    assert first_label(datasets.load_mnist()) == 2
    monkeypatch.delenv("MINICNN_DATA_DIR")
    write_mnist_dir(env / "data" / "FashionMNIST" / "raw", labelled(8))  # torchvision under ./data
    assert first_label(datasets.load_fashion_mnist()) == 8


def test_explicit_path_without_data_is_an_error_not_a_fallback(env, monkeypatch):
    monkeypatch.setenv("MINICNN_DATA_DIR", str(write_mnist_dir(env / "dd", labelled(2))))
    (env / "empty").mkdir()
    with pytest.raises(DatasetError, match="nothing at the given path") as e:
        datasets.load_mnist(env / "empty")
    assert str(env / "empty") in str(e.value)


@pytest.mark.parametrize("offline", ["1", "true"])
def test_offline_and_nothing_found_lists_every_place(env, monkeypatch, offline):
    monkeypatch.setenv("MINICNN_OFFLINE", offline)
    monkeypatch.setenv("MINICNN_DATA_DIR", str(env / "nowhere"))
    opened = []
    monkeypatch.setattr(datasets, "_urlopen", lambda url, timeout: opened.append(url))
    with pytest.raises(DatasetError) as e:
        datasets.load_mnist()
    assert opened == []  # offline means not one connection attempt
    msg = str(e.value)
    for place in (env / "nowhere" / "mnist", env / "nowhere", env / "home" / ".keras" / "datasets",
                  env / "home" / "data" / "MNIST" / "raw", env / "xdg" / "minicnn" / "mnist"):
        assert f"  {place}\n" in msg
    assert "MINICNN_DATA_DIR" in msg and "path=" in msg and "MINICNN_OFFLINE" in msg


def test_download_false_does_not_touch_the_network(env):
    with pytest.raises(DatasetError, match="download=False"):
        datasets.load_cifar10(download=False)


def test_load_rejects_unknown_names():
    with pytest.raises(ValueError, match="'mnist', 'fashion_mnist', 'cifar10'"):
        datasets.load("imagenet")


# ------------------------------------------------------------------------------------ download

@pytest.fixture
def served(monkeypatch):
    """Serve synthetic MNIST .gz files by URL basename; the hash table is set to match them."""
    data = labelled(9)
    (xtr, ytr), (xte, yte) = data
    contents = {stem: idx_bytes(a) for stem, a in zip(STEMS, (xtr, ytr, xte, yte))}
    monkeypatch.setitem(datasets._SHA256, "mnist",
                        {s: hashlib.sha256(c).hexdigest() for s, c in contents.items()})
    files = {s + ".gz": gzip.compress(c) for s, c in contents.items()}
    calls = []

    def serve(mutate=lambda name, data: data, **kw):
        def urlopen(url, timeout):
            assert url.startswith("https://") and timeout == 30
            calls.append(url)
            name = url.rsplit("/", 1)[1]
            return FakeResponse(mutate(name, files[name]), url, **kw)
        monkeypatch.setattr(datasets, "_urlopen", urlopen)
    return serve, data, calls


def test_download_lands_verified_files_in_the_cache(env, served):
    serve, data, calls = served
    serve()
    assert_same(datasets.load_mnist(), data)
    assert cache_files(env) == sorted(s + ".gz" for s in STEMS)  # no temporary leftovers
    assert all(u.startswith(datasets._MIRRORS["mnist"][0]) for u in calls) and len(calls) == 4
    assert_same(datasets.load_mnist(), data)  # second time from the cache, no download
    assert len(calls) == 4


def test_download_falls_back_to_the_next_mirror(env, served, monkeypatch):
    serve, data, calls = served
    serve()
    fake = datasets._urlopen

    def first_mirror_down(url, timeout):
        if url.startswith(datasets._MIRRORS["mnist"][0]):
            raise urllib.error.URLError("no route")
        return fake(url, timeout)
    monkeypatch.setattr(datasets, "_urlopen", first_mirror_down)
    assert_same(datasets.load_mnist(), data)
    assert all(u.startswith(datasets._MIRRORS["mnist"][1]) for u in calls)


def test_download_with_wrong_hash_leaves_nothing(env, served):
    serve, _, _ = served

    def corrupt(name, data):
        return gzip.compress(gzip.decompress(data)[:-1] + b"\x01")
    serve(corrupt)
    with pytest.raises(DatasetError) as e:
        datasets.load_mnist()
    msg = str(e.value)
    stem = STEMS[0]
    assert datasets._SHA256["mnist"][stem] in msg and "SHA-256" in msg and "MINICNN_DATA_DIR" in msg
    assert cache_files(env) == []


@pytest.mark.parametrize("how", ["truncated", "not gzip", "mid-stream error", "http redirect"])
def test_failed_download_leaves_no_partial_file(env, served, monkeypatch, how):
    serve, _, _ = served
    if how == "truncated":
        serve(lambda name, data: data[: len(data) // 2])
    elif how == "not gzip":
        serve(lambda name, data: b"<html>rate limited</html>")
    elif how == "mid-stream error":
        serve(fail_after=10)
    else:
        serve()
        fake = datasets._urlopen

        def redirected(url, timeout):
            resp = fake(url, timeout)
            resp._url = "http://example.invalid/x.gz"
            return resp
        monkeypatch.setattr(datasets, "_urlopen", redirected)
    with pytest.raises(DatasetError, match="could not download"):
        datasets.load_mnist()
    assert cache_files(env) == []


def test_cifar_download_is_verified_and_atomic(env, small_cifar, monkeypatch):
    tarball = tar_gz({f"cifar-10-batches-bin/{k}": v for k, v in cifar_batches(2).items()})
    monkeypatch.setattr(datasets, "_CIFAR_TAR_SHA256", hashlib.sha256(tarball).hexdigest())
    monkeypatch.setattr(datasets, "_urlopen", lambda url, timeout: FakeResponse(tarball, url))
    assert_same(datasets.load_cifar10(), expected_cifar(2))
    assert cache_files(env, "cifar10") == ["cifar-10-binary.tar.gz"]


# ------------------------------------------------------------------------------------ helpers

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_to_float_nhwc(dtype):
    x = np.array([[[0, 255], [51, 102]]], np.uint8)
    out = datasets.to_float_nhwc(x, dtype=dtype)
    assert out.shape == (1, 2, 2, 1) and out.dtype == dtype
    np.testing.assert_array_equal(out[..., 0], x.astype(dtype) / 255)
    rgb = np.zeros((2, 3, 3, 3), np.uint8)
    assert datasets.to_float_nhwc(rgb).shape == (2, 3, 3, 3)
    assert datasets.to_float_nhwc(rgb).dtype == np.float32


@pytest.mark.parametrize("x,dtype", [(np.zeros((1, 2, 2), np.float32), np.float32),
                                     (np.zeros((1, 2, 2), np.uint8), np.int32),
                                     (np.zeros((2, 2), np.uint8), np.float32)])
def test_to_float_nhwc_rejects_bad_input(x, dtype):
    with pytest.raises(ValueError):
        datasets.to_float_nhwc(x, dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_hot(dtype):
    out = datasets.one_hot(np.array([3, 0, 9], np.uint8), dtype=dtype)
    assert out.dtype == dtype and out.shape == (3, 10)
    assert out.sum() == 3 and out[0, 3] == out[1, 0] == out[2, 9] == 1
    np.testing.assert_array_equal(datasets.one_hot([[1], [2]], num_classes=3),
                                  [[0, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(datasets.one_hot(np.array([2.0, 0.0]), num_classes=3),
                                  [[0, 0, 1], [1, 0, 0]])


@pytest.mark.parametrize("y,match", [([1, 10, 2], "label 10 at index 1"),
                                     ([0, 1, -1], "label -1 at index 2"),
                                     (np.array([0.0, 1.5]), "label 1.5 at index 1 is not an integer"),
                                     (np.array(["a"]), "must be integers")])
def test_one_hot_rejects_bad_labels(y, match):
    with pytest.raises(ValueError, match=match):
        datasets.one_hot(y)


# ------------------------------------------------------------------------------------ real data

@pytest.mark.mnist
@pytest.mark.skipif(not os.environ.get("MINICNN_DATA_DIR"),
                    reason="set MINICNN_DATA_DIR to the MNIST files")
def test_real_mnist(monkeypatch):
    monkeypatch.setenv("MINICNN_OFFLINE", "1")
    (xtr, ytr), (xte, yte) = datasets.load_mnist()
    assert xtr.shape == (60000, 28, 28) and xte.shape == (10000, 28, 28)
    assert ytr.shape == (60000,) and yte.shape == (10000,)
    assert xtr.dtype == ytr.dtype == xte.dtype == yte.dtype == np.uint8
    assert np.bincount(ytr)[1] == 6742 and np.bincount(yte, minlength=10).sum() == 10000
    # the arrays are byte for byte the official files (independently of the loader's own check)
    for stem, arr in zip(STEMS, (xtr, ytr, xte, yte)):
        assert hashlib.sha256(idx_bytes(arr)).hexdigest() == datasets._SHA256["mnist"][stem]
    sums = os.path.join(os.environ["MINICNN_DATA_DIR"], "SHA256SUMS-uncompressed")
    if os.path.isfile(sums):
        with open(sums) as f:
            listed = dict(line.split()[::-1] for line in f if line.strip())
        assert listed == datasets._SHA256["mnist"]


FASHION = "/usr/share/datasets/fashion-mnist"


@pytest.mark.skipif(not os.path.isdir(FASHION), reason="Debian's dataset-fashion-mnist not installed")
def test_debian_fashion_mnist():
    (xtr, ytr), (xte, yte) = datasets.load_fashion_mnist(FASHION)
    assert xtr.shape == (60000, 28, 28) and xte.shape == (10000, 28, 28)
    assert ytr.shape == (60000,) and yte.shape == (10000,)
    assert np.all(np.bincount(ytr) == 6000) and np.all(np.bincount(yte) == 1000)
