"""minicnn.datasets.download: verified, atomic downloads into the cache, mirror fallback.

The network is never touched: ``download._urlopen`` is replaced by a fake server.
"""

import gzip
import hashlib
import urllib.error

import pytest

from minicnn import datasets
from minicnn.datasets import download, idx
from minicnn.errors import DatasetError
from tests.datasets.datahelpers import (
    STEMS,
    FakeResponse,
    assert_same,
    cache_files,
    cifar_batches,
    expected_cifar,
    idx_bytes,
    labelled,
    tar_gz,
)


@pytest.fixture
def served(monkeypatch):
    """Serve synthetic MNIST .gz files by URL basename; the hash table is set to match them."""
    data = labelled(9)
    (xtr, ytr), (xte, yte) = data
    contents = {stem: idx_bytes(a) for stem, a in zip(STEMS, (xtr, ytr, xte, yte))}
    monkeypatch.setitem(idx._SHA256, "mnist",
                        {s: hashlib.sha256(c).hexdigest() for s, c in contents.items()})
    files = {s + ".gz": gzip.compress(c) for s, c in contents.items()}
    calls = []

    def serve(mutate=lambda name, data: data, **kw):
        def urlopen(url, timeout):
            assert url.startswith("https://") and timeout == 30
            calls.append(url)
            name = url.rsplit("/", 1)[1]
            return FakeResponse(mutate(name, files[name]), url, **kw)
        monkeypatch.setattr(download, "_urlopen", urlopen)
    return serve, data, calls


def test_download_lands_verified_files_in_the_cache(env, served):
    serve, data, calls = served
    serve()
    assert_same(datasets.load_mnist(), data)
    assert cache_files(env) == sorted(s + ".gz" for s in STEMS)  # no temporary leftovers
    assert all(u.startswith(download._MIRRORS["mnist"][0]) for u in calls) and len(calls) == 4
    assert_same(datasets.load_mnist(), data)  # second time from the cache, no download
    assert len(calls) == 4


def test_download_falls_back_to_the_next_mirror(env, served, monkeypatch):
    serve, data, calls = served
    serve()
    fake = download._urlopen

    def first_mirror_down(url, timeout):
        if url.startswith(download._MIRRORS["mnist"][0]):
            raise urllib.error.URLError("no route")
        return fake(url, timeout)
    monkeypatch.setattr(download, "_urlopen", first_mirror_down)
    assert_same(datasets.load_mnist(), data)
    assert all(u.startswith(download._MIRRORS["mnist"][1]) for u in calls)


def test_download_with_wrong_hash_leaves_nothing(env, served):
    serve, _, _ = served

    def corrupt(name, data):
        return gzip.compress(gzip.decompress(data)[:-1] + b"\x01")
    serve(corrupt)
    with pytest.raises(DatasetError) as e:
        datasets.load_mnist()
    msg = str(e.value)
    stem = STEMS[0]
    assert idx._SHA256["mnist"][stem] in msg and "SHA-256" in msg and "MINICNN_DATA_DIR" in msg
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
        fake = download._urlopen

        def redirected(url, timeout):
            resp = fake(url, timeout)
            resp._url = "http://example.invalid/x.gz"
            return resp
        monkeypatch.setattr(download, "_urlopen", redirected)
    with pytest.raises(DatasetError, match="could not download"):
        datasets.load_mnist()
    assert cache_files(env) == []


def test_cifar_download_is_verified_and_atomic(env, small_cifar, monkeypatch):
    tarball = tar_gz({f"cifar-10-batches-bin/{k}": v for k, v in cifar_batches(2).items()})
    monkeypatch.setattr(download, "_CIFAR_TAR_SHA256", hashlib.sha256(tarball).hexdigest())
    monkeypatch.setattr(download, "_urlopen", lambda url, timeout: FakeResponse(tarball, url))
    assert_same(datasets.load_cifar10(), expected_cifar(2))
    assert cache_files(env, "cifar10") == ["cifar-10-binary.tar.gz"]


def test_a_cache_that_cannot_be_written_is_one_line_and_leaves_nothing_partial(env, served):
    # a real EFBIG (RLIMIT_FSIZE; Python ignores SIGXFSZ): the cache write fails, no other mirror
    # is tried (it would fail the same way), and the cache holds no partial file
    import resource

    from minicnn.errors import FileWriteError
    serve, data, calls = served
    serve()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (16, hard))
    try:
        with pytest.raises(FileWriteError) as exc:
            datasets.load_mnist()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    msg = str(exc.value)
    assert "\n" not in msg and "File too large (EFBIG)" in msg
    assert msg.startswith("cannot write '") and str(env) in msg and ".gz'" in msg
    assert len(calls) == 1 and cache_files(env) == []
