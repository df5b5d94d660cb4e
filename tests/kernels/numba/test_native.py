"""The native library of IR functions (minicnn.kernels.numba.native) and the tiles built on it.

A small library (one function storing the sum of two int64 at an address) is built into a
temporary cache directory and called through ctypes at its registered symbol: compiled the first
time, loaded from the cache the second, compiled again when the cache file is damaged (never
loaded: it could crash LLVM's loader), and no temporary file is left behind. The tiles' kernels
must call the tiles by symbol, not carry a copy of their IR (what made the first compile slow).
"""

from __future__ import annotations

import ctypes
import uuid

import numpy as np
import pytest

numba = pytest.importorskip("numba")

import llvmlite.binding as llvm  # noqa: E402
from llvmlite import ir  # noqa: E402

from minicnn.kernels.numba import native, tiles  # noqa: E402

I64 = ir.IntType(64)


def _emit_store_sum(builder, args):
    """``*(int64 *) out = a + b``."""
    out, a, b = args
    builder.store(builder.add(a, b), builder.inttoptr(out, I64.as_pointer()))


def _library(symbol):
    lib = native.NativeLibrary("test")
    lib.add(symbol, [I64] * 3, _emit_store_sum)
    return lib


def _call(symbol, a, b):
    fn = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64)(llvm.address_of_symbol(symbol))
    out = ctypes.c_int64(0)
    fn(ctypes.addressof(out), a, b)
    return out.value


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path))
    return tmp_path


def test_compiled_then_loaded_from_the_cache(cache):
    symbol = f"minicnn_test_sum_{uuid.uuid4().hex}"
    first = _library(symbol).build()
    assert first.source == "compiled" and first.path.parent == cache and first.path.is_file()
    assert _call(symbol, 40, 2) == 42
    second = _library(symbol).build()
    assert second.source == "cache" and second.path == first.path
    assert _call(symbol, -7, 3) == -4
    assert [p.name for p in cache.iterdir()] == [first.path.name]  # no temporary file left


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
def test_a_damaged_cache_file_is_compiled_again(cache, damage):
    symbol = f"minicnn_test_sum_{uuid.uuid4().hex}"
    path = _library(symbol).build().path
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[-100] ^= 0xFF
    else:
        data = b""
    path.write_bytes(bytes(data))
    again = _library(symbol).build()
    assert again.source == "compiled"
    assert _call(symbol, 5, 6) == 11
    assert _library(symbol).build().source == "cache"  # the file was replaced by a good one


def test_no_cache_directory_still_builds(monkeypatch):
    monkeypatch.setattr(native, "cache_dir", lambda: None)
    symbol = f"minicnn_test_sum_{uuid.uuid4().hex}"
    lib = _library(symbol).build()
    assert lib.source == "compiled" and lib.path is None
    assert _call(symbol, 1, 2) == 3


def test_add_checks():
    lib = _library("minicnn_test_twice")
    with pytest.raises(ValueError, match="'minicnn_test_twice' defined twice"):
        lib.add("minicnn_test_twice", [I64], _emit_store_sum)


def test_add_after_build(cache):
    lib = _library(f"minicnn_test_sum_{uuid.uuid4().hex}").build()
    with pytest.raises(RuntimeError, match="add\\('late'\\) after build"):
        lib.add("late", [I64], _emit_store_sum)


def test_tiles_library_is_built_and_every_symbol_defined():
    assert tiles.NATIVE[False].source in ("cache", "compiled")  # float32: at import
    tiles.need_float64()
    for double in (False, True):
        assert tiles.NATIVE[double].built
        for symbol in tiles.NATIVE[double]._functions:
            assert llvm.address_of_symbol(symbol), symbol
            assert symbol.endswith("f64") == double, symbol


def test_kernels_call_the_tiles_by_symbol():
    """Code calling tile_grid (compiled here, uncached, so its IR can be inspected) declares the
    tile functions and defines none of them, and computes a small product exactly."""

    @numba.njit
    def grid(carrier, count, width, a, b, loops, out):
        tiles.tile_grid(carrier, count, width, a, b, loops, out)

    m, k, n = 5, 7, 32
    rng = np.random.default_rng(0)
    x = rng.integers(-4, 5, (m, k)).astype(np.float32)
    w = rng.integers(-4, 5, (k, n)).astype(np.float32)
    y, zeros = np.full((m, n), np.nan, np.float32), np.zeros(n, np.float32)
    loops = (tiles.Loop(1, 0, 0), tiles.Loop(1, 0, 0), tiles.Loop(k, 1, n))
    grid(zeros, m, n, tiles.TileA(x.ctypes.data, k), w.ctypes.data, loops,
         tiles.TileOut(y.ctypes.data, n, zeros.ctypes.data, 0, 0, 0))
    np.testing.assert_array_equal(y, x @ w)  # small integers: exact
    text = "\n".join(grid.inspect_llvm().values())
    assert "declare void @minicnn_fma_tile_" in text
    assert "define internal void @minicnn_fma_tile_" not in text
    assert "define void @minicnn_fma_tile_" not in text
