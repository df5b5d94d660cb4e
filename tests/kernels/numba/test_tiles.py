"""The FMA tiles and the 16 x 16 transpose (minicnn.kernels.numba.tiles), and the kernels built on
them, checked with canary buffers.

The tiles address raw pointers in LLVM IR, where NUMBA_BOUNDSCHECK sees nothing. So every array
they touch here is a view into a larger buffer: inputs are surrounded by NaN (a read outside an
input puts a NaN into the results), outputs and scratch buffers by a sentinel (a write outside
them changes it); test_tile_grid goes further and fills every element of A and B that the tile
must *not* read with NaN, and the gaps between output rows with the sentinel. Values there are
small integers, so every sum is exact and the results must equal a float64 reference exactly.

These tests call the tiles directly (float32, as the backend uses them), whatever
``config.TILES`` says: the tiles are plain LLVM IR, correct on any x86-64 (without AVX-512 they
spill registers, so they are only slow), and the MINICNN_NUMBA_TILES=0 CI run checks them too.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

numba = pytest.importorskip("numba")

from minicnn.kernels import numpy_backend as ref  # noqa: E402
from minicnn.kernels.numba import config, conv, dense, fanout, tiles  # noqa: E402
from minicnn.kernels.numba.elementwise import sum_groups  # noqa: E402
from minicnn.kernels.numba.tiles import Loop, TileA, TileOut  # noqa: E402
from minicnn.kernels.shapes import window_output  # noqa: E402
from tests.kernels.numba.kernelcheck import SENTINEL, SETTINGS, Canary, assert_close, child_json  # noqa: E402

pytestmark = pytest.mark.skipif(numba.config.DISABLE_JIT, reason="the tiles are LLVM IR: they need the JIT")

F32 = np.float32
L = tiles.LANES[4]


@numba.njit
def run_grid(carrier, count, width, a, b, loops, out):
    tiles.tile_grid(carrier, count, width, a, b, loops, out)


@numba.njit
def run_transpose16(src, lds, dst, ldd):
    tiles.transpose16(src, lds, dst, ldd)


def _addr(c: Canary):
    """The byte address of a canaried array (what the tiles take)."""
    return c.a.ctypes.data


# ----------------------------------------------------------------------------- tile_grid
@st.composite
def grids(draw):
    """A tile_grid problem: items and columns (every run of tiles: 6/4/2/1 x 4 vectors, 13/12/8/4/2/1
    x 2, 16/8/4/2/1 x 1; ``rest`` columns past the whole vectors on the masked 1-vector tiles), a
    loop nest with 0 to 4 iterations per level, arbitrary steps."""
    rest = draw(st.sampled_from([0, 0, 1, 3, 6, 10, 15]))
    return dict(count=draw(st.integers(1, 40)), nvec=draw(st.integers(0 if rest else 1, 7)), rest=rest,
                n=[draw(st.integers(0, 4)) for _ in range(3)],
                a_steps=[draw(st.integers(0, 9)) for _ in range(3)], a_item=draw(st.integers(0, 11)),
                b_steps=[draw(st.integers(0, 150)) for _ in range(3)], out_gap=draw(st.sampled_from([0, 1, 16, 37])),
                relu=draw(st.booleans()), accumulate=draw(st.booleans()), flag=draw(st.booleans()),
                bad=draw(st.sampled_from([None, np.inf, -np.inf, np.nan])), seed=draw(st.integers(0, 2**31 - 1)))


def _holes(rng, index):
    """A float32 array over 0..max(index) holding small integers exactly at ``index`` (one value
    per address, however often it is read) and NaN everywhere else."""
    span = int(index.max()) + 1 if index.size else 1
    values = np.full(span, np.nan, F32)
    values[index] = rng.integers(-3, 4, span).astype(F32)[index]
    return values


@settings(SETTINGS, max_examples=250)
@given(grids())
def test_tile_grid_reads_and_writes_exactly_its_elements(case):
    _check_grid(case)


def test_tile_grid_covers_every_run_of_tiles():
    """Every (items, vectors) up to (40, 7) once, and (items, leftover columns) up to (40, 15) on
    the masked tiles: each tail of each run of tiles, with a loop nest of 1 to 3 iterations per
    level and random steps."""
    rng = np.random.default_rng(0)
    for count in range(1, 41):
        for nvec, rest in [(v, 0) for v in range(1, 8)] + [(int(rng.integers(3)), r) for r in range(1, L)]:
            _check_grid(dict(count=count, nvec=nvec, rest=rest, n=rng.integers(1, 4, 3).tolist(),
                             a_steps=rng.integers(0, 10, 3).tolist(), a_item=int(rng.integers(0, 12)),
                             b_steps=rng.integers(0, 151, 3).tolist(), out_gap=int(rng.choice([0, 1, 16, 37])),
                             relu=bool(rng.integers(2)), accumulate=bool(rng.integers(2)), flag=True, bad=None,
                             seed=count * 64 + nvec * 16 + rest))


def _check_grid(case):
    """One tile_grid call on canaried operands (see the module docstring), against float64."""
    rng = np.random.default_rng(case["seed"])
    count, width, (n1, n2, n3) = case["count"], case["nvec"] * L + case.get("rest", 0), case["n"]
    (a1, a2, a3), (b1, b2, b3), a_item = case["a_steps"], case["b_steps"], case["a_item"]
    k1, k2, k3 = np.ix_(np.arange(n1), np.arange(n2), np.arange(n3))
    ia = np.arange(count)[:, None, None, None] * a_item + (k1 * a1 + k2 * a2 + k3 * a3)[None]  # (count, n1, n2, n3)
    ib = (k1 * b1 + k2 * b2 + k3 * b3)[..., None] + np.arange(width)  # (n1, n2, n3, width)
    a, b = Canary.holding(_holes(rng, ia)), Canary.holding(_holes(rng, ib))
    if case["bad"] is not None and ia.size:  # a NaN/inf where the tile reads: the flag must see it
        a.a[ia.ravel()[rng.integers(ia.size)]] = case["bad"]
    ldo = width + case["out_gap"]
    bias = Canary.holding(rng.integers(-3, 4, width).astype(F32))
    start = np.full((count, ldo), SENTINEL, F32)
    start[:, :width] = rng.integers(-3, 4, (count, width))
    out = Canary.holding(start, fill=SENTINEL)
    flag = Canary.holding(np.zeros(1, np.int64), fill=-1)

    run_grid(b.a, count, width, TileA(addr=_addr(a), item=a_item), _addr(b),
             (Loop(n1, a1, b1), Loop(n2, a2, b2), Loop(n3, a3, b3)),
             TileOut(addr=_addr(out), item=ldo, bias=_addr(bias), relu=int(case["relu"]),
                     accumulate=int(case["accumulate"]), flag=_addr(flag) if case["flag"] else 0))

    with np.errstate(invalid="ignore", over="ignore"):
        sums = np.einsum("rijk,ijkc->rc", a.a.astype(np.float64)[ia], b.a.astype(np.float64)[ib])
        if case["accumulate"]:
            want = start[:, :width] + sums
        else:
            want = sums + bias.a
            if case["relu"]:
                want = np.where(want < 0, 0, want)  # (NaN stays NaN)
    got = out.a[:, :width]
    np.testing.assert_array_equal(got, want.astype(F32))  # exact: small integers (NaN == NaN here)
    if case["bad"] is None:
        assert np.isfinite(got).all(), "a read outside the tile's elements"
    assert (out.a[:, width:] == SENTINEL).all(), "a write between output rows"
    assert all(c.intact() for c in (a, b, bias, out, flag)), "a write outside an array"
    expect_flag = case["flag"] and not case["accumulate"] and not np.isfinite(got).all()
    assert flag.a[0] == int(expect_flag)


def test_the_tiles_take_named_arguments_only():
    """A plain tuple where a TileA belongs is a typing error, not a silent misreading."""
    z = np.zeros(16, F32)
    addr = z.ctypes.data
    loops = (Loop(1, 0, 0), Loop(1, 0, 0), Loop(1, 0, 0))
    with pytest.raises(numba.core.errors.TypingError):
        run_grid(z, 1, 16, (addr, 0), addr, loops, TileOut(addr, 16, addr, 0, 0, 0))


def test_one_loop_is_a_single_level_nest():
    @numba.njit
    def nest(n, a, b):
        return tiles.one_loop(n, a, b)

    assert nest(5, 1, 48) == (Loop(1, 0, 0), Loop(1, 0, 0), Loop(5, 1, 48))


@pytest.mark.parametrize("lds", [16, 17, 64, 100])
@pytest.mark.parametrize("ldd", [16, 33, 64])
def test_transpose16_moves_exactly_its_block(lds, ldd):
    rng = np.random.default_rng(lds * ldd)
    src_rows = np.full((16, lds), np.nan, F32)
    src_rows[:, :16] = rng.standard_normal((16, 16))
    src = Canary.holding(src_rows)
    dst = Canary.holding(np.full((16, ldd), SENTINEL, F32), fill=SENTINEL)
    run_transpose16(_addr(src), lds, _addr(dst), ldd)
    np.testing.assert_array_equal(dst.a[:, :16], src_rows[:, :16].T)
    assert (dst.a[:, 16:] == SENTINEL).all() and src.intact() and dst.intact()


# ----------------------------------------------------------------------------- conv on the tiles
def _conv_case(n, h, w, c, f, k, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c)).astype(F32)
    kern = rng.standard_normal((k, k, c, f)).astype(F32)
    return x, kern, rng.standard_normal(f).astype(F32)


@pytest.mark.parametrize("strides", [(1, 1), (2, 2), (1, 3)])
@pytest.mark.parametrize(("c", "f", "padding"), [(16, 32, "same"), (1, 48, "valid"), (3, 16, "same")])
def test_conv_forward_tiles_stay_in_bounds(strides, c, f, padding):
    x, kern, bias = _conv_case(3, 9, 8, c, f, 3, seed=c * f)
    (oh, ow), pads = window_output((9, 8), (3, 3), strides, padding)
    xpad = ref.pad_nhwc(x, pads)
    xc, kc, bc = Canary.holding(xpad), Canary.holding(kern), Canary.holding(bias)
    y = Canary((3, oh, ow, f), F32)
    conv.tiles_forward(xc.a, kc.a, bc.a, y.a, strides, relu=True)
    assert_close(y.a, ref.conv2d_forward(x, kern, bias, strides, pads, relu=True), F32, "forward")
    assert all(c_.intact() for c_ in (xc, kc, bc, y))


def _kernel_t(kern):
    return np.ascontiguousarray(kern[::-1, ::-1].transpose(0, 1, 3, 2))


@pytest.mark.parametrize("with_dx", [True, False])
@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize(("n", "strides", "padding"),
                         [(5, (1, 1), "same"), (3, (2, 1), "valid"), (67, (1, 1), "valid"), (4, (2, 2), "same"),
                          (3, (3, 2), "same"), (2, (1, 3), "valid")])
@pytest.mark.parametrize(("c", "f"), [(16, 32), (32, 16), (16, 48), (6, 16), (3, 5)])
def test_conv_backward_tiles_stay_in_bounds(with_dx, relu, n, strides, padding, c, f):
    """The one-pass backward: dz into the per-thread buffer, dbias/dkernel partial sums per group
    (67 images: more than MAX_GROUPS, so groups of 2 and a last one of 1), dx (strided: per
    column phase, from the buffer that conv.dx_buffer sizes); channel counts that fill whole
    vectors and ones that end in a masked vector, more input than output channels, three vectors
    of filters."""
    x, kern, bias = _conv_case(n, 8, 7, c, f, 3, seed=n)
    (oh, ow), pads = window_output((8, 7), (3, 3), strides, padding)
    y = ref.conv2d_forward(x, kern, bias, strides, pads, relu=True)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(F32)
    gimg = -(-n // min(n, config.MAX_GROUPS))
    ng = -(-n // gimg)
    kdim = 9 * c
    ins = [Canary.holding(a) for a in (dy, y, ref.pad_nhwc(x, pads), _kernel_t(kern) if with_dx else
                                         np.empty((3, 3, 0, 0), F32), np.zeros(max(c, f), F32))]
    dyc, yc, xc, ktc, zeros = ins
    bh, bw = conv.dx_buffer(8, 7, oh, ow, 3, 3, strides[1], pads[2])[:2] if with_dx else (oh, ow)
    scratch = Canary((numba.get_num_threads(), bh, bw, f), F32)
    pk, pb = Canary((ng, kdim * f), F32), Canary((ng, f), F32)
    dx = Canary(x.shape if with_dx else (0, 0, 0, 0), F32)
    conv.tiles_backward(dyc.a, yc.a if relu else None, xc.a, ktc.a, dx.a, strides, pads, gimg, scratch.a, zeros.a,
                        pk.a, pb.a)
    dkernel, dbias = np.empty(kdim * f, F32), np.empty(f, F32)
    sum_groups(pk.a, dkernel)
    sum_groups(pb.a, dbias)
    want = ref.conv2d_backward(dy, x, kern, strides, pads, relu_y=y if relu else None)
    assert_close(dkernel.reshape(kern.shape), want[1], F32, "dkernel")
    assert_close(dbias, want[2], F32, "dbias")
    if with_dx:
        assert_close(dx.a, want[0], F32, "dx")
    assert all(c_.intact() for c_ in (*ins, scratch, pk, pb, dx))


# ----------------------------------------------------------------------------- dense on the tiles
@pytest.mark.parametrize(("m", "k", "n"), [(37, 144, 48), (5, 4144, 16), (100, 64, 128)])
def test_dense_forward_tiles_stay_in_bounds(m, k, n):
    rng = np.random.default_rng(k)
    x, w = rng.standard_normal((m, k)).astype(F32), rng.standard_normal((k, n)).astype(F32)
    nparts = max(1, min(config.DENSE_KSPLIT, k // config.DENSE_MIN_KSLICE))
    xc, wc, zeros = Canary.holding(x), Canary.holding(w), Canary.holding(np.zeros(n, F32))
    part = Canary((nparts, m, n), F32)
    fanout.run(dense._dense_fwd_tiles, nparts, xc.a, wc.a, nparts, config.DENSE_TILE_ROWS, zeros.a, part.a,
               work=float("inf"))
    assert_close(part.a.sum(axis=0, dtype=np.float64).astype(F32), ref.dense_forward(x, w, None), F32, "forward")
    assert all(c.intact() for c in (xc, wc, zeros, part))


@pytest.mark.parametrize("need_dx", [True, False])
@pytest.mark.parametrize(("m", "k", "n", "bad"), [(37, 144, 48, None), (37, 144, 48, (36, 130)), (9, 16, 16, None),
                                                  (100, 208, 64, (0, 0))])
def test_dense_backward_tiles_stay_in_bounds(need_dx, m, k, n, bad):
    rng = np.random.default_rng(m + k)
    x = rng.standard_normal((m, k)).astype(F32)
    w, dy = rng.standard_normal((k, n)).astype(F32), rng.standard_normal((m, n)).astype(F32)
    if bad is not None:
        x[bad] = np.inf
    ib = config.DENSE_TILE_ROWS
    threads = numba.get_num_threads()
    dyc, xc, wc = Canary.holding(dy), Canary.holding(x), Canary.holding(w)
    zeros = Canary.holding(np.zeros(max(n, ib), F32))
    scratch, xpack = Canary((threads, n, ib), F32), Canary((threads, m, ib), F32)
    dx, dw = Canary((m, k) if need_dx else (0, 0), F32), Canary((k, n), F32)
    nonfinite = Canary.holding(np.zeros(-(-k // ib), np.int64), fill=-1)
    # every block, split over the threads as the layer's call does (work: always split)
    fanout.run(dense._dense_bwd_tiles, nonfinite.a.size, dyc.a, xc.a, wc.a, need_dx, ib, scratch.a, xpack.a, zeros.a,
               dx.a, dw.a, nonfinite.a, work=float("inf"))
    with np.errstate(invalid="ignore"):
        want_dx, want_dw, _ = ref.dense_backward(dy, x, w)
    if bad is None:
        assert_close(dw.a, want_dw, F32, "dkernel")
    if need_dx:  # (dx does not depend on x)
        assert_close(dx.a, want_dx, F32, "dx")
    np.testing.assert_array_equal(nonfinite.a, [int(not np.isfinite(want_dw[t * ib:(t + 1) * ib]).all())
                                                for t in range(nonfinite.a.size)])
    assert all(c.intact() for c in (dyc, xc, wc, zeros, scratch, xpack, dx, dw, nonfinite))


# ----------------------------------------------------------------------------- the float64 library
_LAZY_CHILD = r"""
import json, sys
import numpy as np
from minicnn.kernels.numba import conv, tiles
seen = {"import": tiles.NATIVE[True].built}
rng = np.random.default_rng(0)
for dt in sys.argv[1].split(","):
    x = rng.standard_normal((3, 9, 9, 3)).astype(dt)
    k = rng.standard_normal((3, 3, 3, 16)).astype(dt)
    y = conv.conv2d_forward(x, k, None, (1, 1), (1, 1, 1, 1), relu=True)
    want = conv._ref.conv2d_forward(x, k, None, (1, 1), (1, 1, 1, 1), relu=True)
    assert np.allclose(y, want, rtol=1e-4, atol=1e-4), dt
    seen[dt] = tiles.NATIVE[True].built
seen["source"] = tiles.NATIVE[True].source
print(json.dumps(seen))
"""


def _lazy_child(dtypes, env=None):
    return child_json(_LAZY_CHILD, dtypes, env={**os.environ, **(env or {})})


@pytest.mark.skipif(not config.TILES, reason="the FMA tiles are off here")
def test_the_float64_library_is_built_only_when_float64_tiles_run():
    """A float32 process never builds the float64 bodies; its first float64 tile kernel does
    (here from this session's warm kernel cache: loading a cached float64 kernel builds it too)."""
    assert _lazy_child("float32") == {"import": False, "float32": False, "source": None}
    got = _lazy_child("float32,float64")
    assert (got["import"], got["float32"], got["float64"]) == (False, False, True)
    assert got["source"] in ("cache", "compiled")


@pytest.mark.slow
@pytest.mark.skipif(not config.TILES, reason="the FMA tiles are off here")
def test_a_cached_float64_kernel_without_its_library_file_builds_the_library_first(tmp_path):
    """numba's cache holds the float64 conv kernel, which calls the float64 bodies by symbol, but
    their object file is gone (deleted, or never written): loading the kernel must not meet an
    undefined symbol (LLVM would abort the process): the library is compiled again first."""
    env = {"NUMBA_CACHE_DIR": str(tmp_path)}
    assert _lazy_child("float64", env)["source"] == "compiled"
    (f64,) = tmp_path.glob("minicnn-native-tiles-f64-*.o")
    f64.unlink()
    got = _lazy_child("float64", env)
    assert (got["import"], got["float64"], got["source"]) == (False, True, "compiled")
    assert _lazy_child("float64", env)["source"] == "cache"
