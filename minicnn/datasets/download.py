"""Downloads into minicnn's cache: https only, TLS verified, mirrors in order, atomic and checked.

The SHA-256 of the *decompressed* content (of the archive itself for CIFAR-10) is checked before the
file is renamed into place (:func:`minicnn.fileio.atomic_write`), so the cache never holds a
partial or unverified file.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import urllib.request
import zlib

from ..errors import DatasetError, FileWriteError
from ..fileio import CHUNK, atomic_write
from .cifar import _CIFAR_TAR
from .idx import _IDX_STEMS, _SHA256, _idx_file

_TIMEOUT = 30.0
_MAX_DOWNLOAD = 512 << 20   # an endless or absurd response is cut off, not written to disk

_MIRRORS = {"mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                      "https://storage.googleapis.com/cvdf-datasets/mnist/"),
            # The S3 website of Fashion-MNIST is http-only; GitHub serves the same files over https.
            "fashion_mnist": (
                "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",)}

_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
# The authors' server is the only source and serves the archive unchanged, so here the archive
# bytes themselves are the reference (SHA-256 of the tarball whose official MD5 is c32a1d4a...).
_CIFAR_TAR_SHA256 = "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"


def _urlopen(url: str, timeout: float):
    """The one place that touches the network (tests replace it)."""
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
            while chunk := resp.read(CHUNK):
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
            except FileWriteError:  # the cache cannot be written: another mirror will not help
                raise
            except (OSError, http.client.HTTPException, DatasetError) as e:  # URLError is an OSError
                kind = "" if isinstance(e, DatasetError) else f"{type(e).__name__}: "
                errors.append(f"  {url}: {kind}{e}")
        else:
            raise DatasetError(f"could not download {filename}:\n" + "\n".join(errors) + "\n"
                               f"To install it by hand, fetch {urls[0]} elsewhere and put it in "
                               f"{cache}")


def _offline() -> bool:
    return os.environ.get("MINICNN_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
