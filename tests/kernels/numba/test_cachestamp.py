"""numba's cache of the kernels is dropped when the package's sources change (cachestamp)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from minicnn.kernels.numba import cachestamp
from minicnn.kernels.numba.cachestamp import STAMP, drop_stale, sources_digest
from tests.kernels.numba.kernelcheck import child_json

PACKAGE = Path(cachestamp.__file__).resolve().parent


def _tree(where, files):
    where.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (where / name).write_text(text)
    return where


def test_digest_changes_with_any_source_and_only_with_sources(tmp_path):
    src = _tree(tmp_path, {"a.py": "x = 1\n", "b.py": "y = 2\n", "notes.txt": "not a source"})
    d0 = sources_digest(src)
    assert sources_digest(src) == d0
    (src / "notes.txt").write_text("changed")
    assert sources_digest(src) == d0
    (src / "b.py").write_text("y = 3\n")  # same size, other bytes
    d1 = sources_digest(src)
    assert d1 != d0
    (src / "c.py").write_text("")  # an empty new module counts too
    assert sources_digest(src) != d1
    # moving bytes from one file to the next is a change (names and lengths are hashed too)
    one = _tree(tmp_path / "one", {"a.py": "x = 1\n", "b.py": "y = 2\n"})
    two = _tree(tmp_path / "two", {"a.py": "x = 1\ny", "b.py": " = 2\n"})
    assert sources_digest(one) != sources_digest(two)


def _cache(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    for name in ("dense._dense_fwd-40.py311.nbi", "dense._dense_fwd-40.py311.1.nbc", "tiles.x-9.py311.nbi",
                 "conv.cpython-311.pyc", "minicnn-native-tiles-abc.o"):
        (cache / name).write_text("cached")
    return cache


def test_drop_stale_deletes_only_kernels_and_stamps_the_digest(tmp_path):
    cache = _cache(tmp_path)
    dropped = drop_stale(cache, "d" * 64)  # no stamp yet: a cache of unknown sources
    assert sorted(p.name for p in dropped) == ["dense._dense_fwd-40.py311.1.nbc", "dense._dense_fwd-40.py311.nbi",
                                               "tiles.x-9.py311.nbi"]
    assert sorted(p.name for p in cache.iterdir()) == sorted(["conv.cpython-311.pyc", "minicnn-native-tiles-abc.o", STAMP])
    assert (cache / STAMP).read_text().strip() == "d" * 64

    (cache / "conv.k-1.py311.nbi").write_text("cached with the stamped sources")
    assert drop_stale(cache, "d" * 64) == []
    assert (cache / "conv.k-1.py311.nbi").exists()
    assert [p.name for p in drop_stale(cache, "e" * 64)] == ["conv.k-1.py311.nbi"]
    assert (cache / STAMP).read_text().strip() == "e" * 64
    assert not list(cache.glob("*.tmp"))


def test_drop_stale_treats_a_damaged_stamp_as_stale_and_skips_a_missing_cache(tmp_path):
    cache = _cache(tmp_path)
    (cache / STAMP).write_bytes(b"\xff\xfe not text")
    assert len(drop_stale(cache, "d" * 64)) == 3
    assert drop_stale(tmp_path / "absent", "d" * 64) == []
    assert not (tmp_path / "absent").exists()


_CHILD = r"""
import json, sys
import numpy as np
import minicnn.kernels.numba_backend as B
from minicnn.kernels.numba import cachestamp
x = np.linspace(-1, 1, 1 << 16, dtype=np.float32)
y = B.relu_forward(x)
assert np.array_equal(y, np.maximum(x, 0))
print(json.dumps({"cache": str(cachestamp.cache_path())}))
"""


def _run_child(env):
    return Path(child_json(_CHILD, env=env)["cache"])


def _kernels(cache):
    return {p.name: p.stat().st_mtime_ns for p in cache.iterdir() if p.suffix in (".nbi", ".nbc")}


@pytest.mark.slow
def test_a_changed_source_makes_the_next_import_recompile(tmp_path):
    """The whole cycle in real processes with a private NUMBA_CACHE_DIR: the first run caches the
    relu kernel where numba puts it and stamps the digest; a run with the stamp intact keeps the
    cached files; a stamp of other sources (what a pull leaves) makes the next import drop them, so
    the kernel is compiled and cached afresh."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    cache = _run_child(env)
    assert cache.is_relative_to(tmp_path / "numba")
    first = _kernels(cache)
    assert any(name.startswith("elementwise.") for name in first), first
    assert (cache / STAMP).read_text().strip() == sources_digest(PACKAGE)

    assert _run_child(env) == cache
    assert _kernels(cache) == first  # loaded from the cache, not rewritten

    (cache / STAMP).write_text("0" * 64 + "\n")
    _run_child(env)
    again = _kernels(cache)
    assert set(again) == set(first)
    assert all(again[name] != first[name] for name in first)  # every file written anew
    assert (cache / STAMP).read_text().strip() == sources_digest(PACKAGE)
