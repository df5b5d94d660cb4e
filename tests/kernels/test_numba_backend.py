"""The numba backend against the numpy backend (the reference), property by property.

Tolerances (relative: max|difference| / max|reference|): 1e-12 in float64, 1e-5 in float32.
Max-pooling argmax and the relu/pool gradients must be *exactly* equal.
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minicnn.kernels import numpy_backend as ref
from minicnn.kernels.shapes import window_output

nb = pytest.importorskip("minicnn.kernels.numba_backend")
from minicnn.kernels.numba import blas, config, dense  # noqa: E402
from minicnn.kernels.numba import optim as numba_optim  # noqa: E402

TOL = {np.float32: 1e-5, np.float64: 1e-12}


@pytest.fixture(scope="module", autouse=True)
def numba_kernels_even_for_small_inputs():
    """Tiny dense/relu inputs normally go to numpy (no parallel launch): force the numba kernels
    so that the small shapes of these tests exercise them."""
    saved = config.SMALL_GEMM, config.SMALL_ELEMENTWISE
    config.SMALL_GEMM, config.SMALL_ELEMENTWISE = -1, 0
    yield
    config.SMALL_GEMM, config.SMALL_ELEMENTWISE = saved
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@contextlib.contextmanager
def tiles(on):
    """The FMA tiles on (where the CPU has them) or off (im2col/BLAS paths) inside the block."""
    saved, config.TILES = config.TILES, on and config.TILES
    try:
        yield
    finally:
        config.TILES = saved


def rel_err(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    scale = np.abs(want).max() if want.size else 0.0
    diff = np.abs(got - want).max() if want.size else 0.0
    return diff / scale if scale > 0 else diff


def assert_close(got, want, dtype, what):
    assert got.dtype == np.dtype(dtype), f"{what}: dtype {got.dtype}, expected {np.dtype(dtype)}"
    err = rel_err(got, want)
    assert err <= TOL[dtype], f"{what}: relative error {err:.3g} > {TOL[dtype]:g}"


def layout(a, how):
    """The same values as ``a`` in a non-contiguous array ('slice': every other element of a wider
    array along W; 'transpose': a transposed view of an array stored in another order)."""
    if how == "slice":
        wide = np.zeros(a.shape[:2] + (2 * a.shape[2],) + a.shape[3:], dtype=a.dtype)
        wide[:, :, ::2] = a
        v = wide[:, :, ::2]
    elif how == "transpose":
        v = np.ascontiguousarray(np.moveaxis(a, -1, 0))
        v = np.moveaxis(v, 0, -1)
    else:
        return a
    assert np.array_equal(v, a, equal_nan=True)
    return v


@st.composite
def conv_cases(draw):
    n = draw(st.integers(1, 4))
    h = draw(st.integers(1, 9))
    w = draw(st.integers(1, 9))
    # channel counts that are and are not multiples of the vector width (16 float32 / 8 float64
    # lanes) reach the FMA-tile kernels and the direct-loop / im2col + GEMM fallbacks
    c = draw(st.sampled_from([1, 2, 3, 5, 8, 16]))
    kh = draw(st.sampled_from([1, 2, 3, 4, h]))
    kw = draw(st.sampled_from([1, 2, 3, 5, w]))
    f = draw(st.sampled_from([1, 2, 3, 5, 8, 16, 32, 48]))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.sampled_from(["valid", "same"]))
    (oh, ow), pads = window_output((h, w), (kh, kw), s, padding)
    return dict(n=n, h=h, w=w, c=c, kh=kh, kw=kw, f=f, strides=s, pads=pads, out=(oh, ow),
                relu=draw(st.booleans()), need_dx=draw(st.booleans()), bias=draw(st.booleans()),
                dtype=draw(st.sampled_from([np.float32, np.float64])),
                layout=draw(st.sampled_from(["c", "c", "slice", "transpose"])),
                tiles=draw(st.booleans()), seed=draw(st.integers(0, 2**31 - 1)))


@settings(SETTINGS, max_examples=100)
@given(conv_cases())
def test_conv2d_matches_numpy(case):
    if min(case["out"]) < 1:
        return  # the kernel does not fit: the layer rejects this shape before any kernel runs
    with tiles(case["tiles"]):
        _check_conv(case)


def _check_conv(case):
    rng = np.random.default_rng(case["seed"])
    dt = case["dtype"]
    x = rng.standard_normal((case["n"], case["h"], case["w"], case["c"])).astype(dt)
    k = rng.standard_normal((case["kh"], case["kw"], case["c"], case["f"])).astype(dt)
    b = rng.standard_normal(case["f"]).astype(dt) if case["bias"] else None
    x_in, k_in = layout(x, case["layout"]), layout(k, case["layout"])
    x_copy, k_copy = x_in.copy(), k_in.copy()
    args = (case["strides"], case["pads"])

    y = nb.conv2d_forward(x_in, k_in, b, *args, relu=case["relu"], cache={})
    y_ref = ref.conv2d_forward(x, k, b, *args, relu=case["relu"], cache={})
    assert y.shape == y_ref.shape
    assert_close(y, y_ref, dt, "forward")

    dy = layout(rng.standard_normal(y.shape).astype(dt), case["layout"])
    dy_copy = dy.copy()
    cache = {}
    nb.conv2d_forward(x_in, k_in, b, *args, cache=cache)
    # with relu, the backward takes the forward's output and fuses relu's gradient
    relu_y = y_ref if case["relu"] else None  # one mask for both (no flip of a value at 0)
    dx, dk, db = nb.conv2d_backward(dy, x_in, k_in, *args, need_dx=case["need_dx"], cache=cache, relu_y=relu_y)
    dx_r, dk_r, db_r = ref.conv2d_backward(np.ascontiguousarray(dy), x, k, *args, need_dx=case["need_dx"],
                                           relu_y=relu_y)
    assert_close(dk, dk_r, dt, "dkernel")
    assert_close(db, db_r, dt, "dbias")
    if case["need_dx"]:
        assert dx.shape == x.shape
        assert_close(dx, dx_r, dt, "dx")
    else:
        assert dx is None
    for before, after in ((x_copy, x_in), (k_copy, k_in), (dy_copy, dy)):
        assert np.array_equal(before, after), "an input was modified"


@st.composite
def pool_cases(draw):
    n = draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    c = draw(st.integers(1, 4))
    p = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.sampled_from(["valid", "same"]))
    (oh, ow), pads = window_output((h, w), p, s, padding)
    values = draw(st.sampled_from(["few_ints", "zeros_after_relu", "normal"]))
    return dict(shape=(n, h, w, c), pool=p, strides=s, pads=pads, out=(oh, ow), values=values,
                dtype=draw(st.sampled_from([np.float32, np.float64])),
                layout=draw(st.sampled_from(["c", "slice", "transpose"])),
                seed=draw(st.integers(0, 2**31 - 1)))


@SETTINGS
@given(pool_cases())
def test_maxpool_matches_numpy_exactly(case):
    if min(case["out"]) < 1:
        return
    rng = np.random.default_rng(case["seed"])
    dt = case["dtype"]
    if case["values"] == "few_ints":  # heavy ties
        x = rng.integers(-1, 2, case["shape"]).astype(dt)
    elif case["values"] == "zeros_after_relu":  # mostly all-zero windows
        x = np.maximum(rng.standard_normal(case["shape"]) - 1.5, 0).astype(dt)
    else:
        x = rng.standard_normal(case["shape"]).astype(dt)
    x_in = layout(x, case["layout"])
    args = (case["pool"], case["strides"], case["pads"])
    y, arg = nb.maxpool2d_forward(x_in, *args)
    y_r, arg_r = ref.maxpool2d_forward(x, *args)
    assert y.dtype == dt and arg.dtype == np.int32
    np.testing.assert_array_equal(arg, arg_r)
    np.testing.assert_array_equal(y, y_r)
    dy = layout(rng.standard_normal(y.shape).astype(dt), case["layout"])
    dy_copy = dy.copy()
    dx = nb.maxpool2d_backward(dy, arg, x.shape, *args)
    dx_r = ref.maxpool2d_backward(np.ascontiguousarray(dy), arg_r, x.shape, *args)
    assert dx.dtype == dt
    np.testing.assert_array_equal(dx, dx_r)
    assert np.array_equal(dy, dy_copy) and np.array_equal(x_in, x)


def test_maxpool_tie_goes_to_first_in_row_major_order():
    x = np.array([[1, 2], [2, 2]], dtype=np.float32).reshape(1, 2, 2, 1)
    y, arg = nb.maxpool2d_forward(x, (2, 2), (2, 2), (0, 0, 0, 0))
    assert y.item() == 2 and arg.item() == 1
    dx = nb.maxpool2d_backward(np.ones((1, 1, 1, 1), np.float32), arg, x.shape, (2, 2), (2, 2), (0, 0, 0, 0))
    np.testing.assert_array_equal(dx.reshape(2, 2), [[0, 1], [0, 0]])


def test_maxpool_nan_and_padding_follow_numpy():
    x = np.array([[1, np.nan], [np.nan, 5]], dtype=np.float64).reshape(1, 2, 2, 1)
    for pads in ((0, 0, 0, 0), (1, 0, 1, 0)):
        oh = (2 + pads[0] + pads[1] - 2) // 1 + 1
        got = nb.maxpool2d_forward(x, (2, 2), (1, 1), pads)
        want = ref.maxpool2d_forward(x, (2, 2), (1, 1), pads)
        assert got[0].shape == (1, oh, oh, 1)
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_array_equal(got[0], want[0])  # NaN == NaN for assert_array_equal


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_relu_exact(dt):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 4, 2)).astype(dt)
    x[0, 0, 0] = 0.0
    x[0, 0, 1, 0] = np.nan
    for x_in in (x, layout(x, "slice"), layout(x, "transpose")):
        y = nb.relu_forward(x_in)
        assert y.dtype == dt
        np.testing.assert_array_equal(y, ref.relu_forward(x))
        dy = rng.standard_normal(x.shape).astype(dt)
        dx = nb.relu_backward(layout(dy, "transpose"), y)
        assert dx.dtype == dt
        np.testing.assert_array_equal(dx, ref.relu_backward(dy, y))
        assert (dx[y == 0] == 0).all()  # the gradient at exactly 0 is 0
        assert np.array_equal(x_in, x, equal_nan=True)


@st.composite
def dense_cases(draw):
    # sizes that are multiples of 16 (several 64-row blocks, a partial last one) reach the float32
    # FMA-tile backward; the others its BLAS path
    return dict(n=draw(st.integers(1, 70)),
                i=draw(st.one_of(st.integers(1, 150), st.sampled_from([16, 48, 64, 80, 144]))),
                o=draw(st.one_of(st.integers(1, 140), st.sampled_from([16, 32, 64, 128]))),
                relu=draw(st.booleans()), need_dx=draw(st.booleans()), bias=draw(st.booleans()),
                dtype=draw(st.sampled_from([np.float32, np.float64])), tiles=draw(st.booleans()),
                transposed=draw(st.booleans()), seed=draw(st.integers(0, 2**31 - 1)))


@settings(SETTINGS, max_examples=60)
@given(dense_cases())
def test_dense_matches_numpy(case):
    with tiles(case["tiles"]):
        _check_dense(case)


def _check_dense(case):
    rng = np.random.default_rng(case["seed"])
    dt = case["dtype"]
    x = rng.standard_normal((case["n"], case["i"])).astype(dt)
    k = rng.standard_normal((case["i"], case["o"])).astype(dt)
    b = rng.standard_normal(case["o"]).astype(dt) if case["bias"] else None
    x_in = np.asfortranarray(x) if case["transposed"] else x
    y = nb.dense_forward(x_in, k, b, relu=case["relu"])
    assert_close(y, ref.dense_forward(x, k, b, relu=case["relu"]), dt, "dense forward")
    dy = rng.standard_normal(y.shape).astype(dt)
    got = nb.dense_backward(dy, x_in, k, need_dx=case["need_dx"])
    want = ref.dense_backward(dy, x, k, need_dx=case["need_dx"])
    for name, g, w in zip(("dx", "dkernel", "dbias"), got, want):
        if w is None:
            assert g is None
        else:
            assert_close(g, w, dt, f"dense {name}")
    assert np.array_equal(x_in, x)


@pytest.mark.parametrize("n_in", [16, 64, 80, 208, 4144])
def test_dense_tiles_path_is_taken_and_matches(monkeypatch, n_in):
    """float32 with out (and, backward, in) a multiple of 16 goes to the FMA tiles: whole and
    partial 64-row blocks, one and four slices of the inner dimension (4144 = 4 x 1036). They
    must agree with numpy and be bitwise stable across calls."""
    if not config.TILES:
        pytest.skip("no AVX-512: the tiles are off on this CPU")
    calls = []
    for name in ("_dense_fwd_tiles", "_dense_bwd_tiles"):
        monkeypatch.setattr(dense, name, lambda *a, real=getattr(dense, name), name=name: calls.append(name) or real(*a))
    rng = np.random.default_rng(n_in)
    x = rng.standard_normal((37, n_in)).astype(np.float32)
    k = rng.standard_normal((n_in, 48)).astype(np.float32)
    b = rng.standard_normal(48).astype(np.float32)
    assert_close(nb.dense_forward(x, k, b, relu=True), ref.dense_forward(x, k, b, relu=True), np.float32, "forward")
    dy = rng.standard_normal((37, 48)).astype(np.float32)
    got = nb.dense_backward(dy, x, k)
    for name, g, w in zip(("dx", "dkernel", "dbias"), got, ref.dense_backward(dy, x, k)):
        assert_close(g, w, np.float32, f"dense {name}")
    again = nb.dense_backward(dy, x, k)
    assert all(np.array_equal(a, b) for a, b in zip(got, again))
    assert calls == ["_dense_fwd_tiles", "_dense_bwd_tiles", "_dense_bwd_tiles"]


@pytest.mark.parametrize("use_tiles", [True, False])
@pytest.mark.parametrize("where", [None, ("nan", 0, 0), ("inf", 5, 70), ("-inf", 36, 143), ("overflow", 0, 0)])
def test_dense_backward_reports_non_finite_gradients(use_tiles, where):
    """check_finite=True adds whether dkernel/dbias are all finite: the tiles check each block in
    registers, the BLAS path and numpy check the result; all must agree, wherever the bad value is."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((37, 144)).astype(np.float32)  # 3 blocks of 64 rows (the last partial)
    k = rng.standard_normal((144, 32)).astype(np.float32)
    dy = rng.standard_normal((37, 32)).astype(np.float32)
    if where is not None:
        kind, s, i = where
        if kind == "overflow":  # finite inputs whose products overflow float32
            x[:, 100] = 3e38
        else:
            x[s, i] = float(kind)
    with tiles(use_tiles):
        *grads, finite = nb.dense_backward(dy, x, k, check_finite=True)
    with np.errstate(all="ignore"):
        *want, want_finite = ref.dense_backward(dy, x, k, check_finite=True)
    assert finite is want_finite is (where is None)
    assert len(grads) == 3 and np.isfinite(grads[1]).all() == finite
    assert nb.dense_backward(dy, x, k)[1].shape == (144, 32)  # without the flag: three values


@pytest.mark.parametrize("backend_module", [nb, ref])
def test_conv_backward_refuses_a_relu_output_of_another_shape(backend_module):
    x = np.zeros((2, 6, 6, 16), np.float32)
    k = np.zeros((3, 3, 16, 16), np.float32)
    dy = np.zeros((2, 4, 4, 16), np.float32)
    with pytest.raises(ValueError, match=r"relu_y has shape \(2, 4, 4, 8\), dy has \(2, 4, 4, 16\)"):
        backend_module.conv2d_backward(dy, x, k, (1, 1), (0, 0, 0, 0), relu_y=np.zeros((2, 4, 4, 8), np.float32))


def _model_like_case(n=6, seed=3, dt=np.float32, f=32):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 14, 14, 16)).astype(dt)
    k = rng.standard_normal((3, 3, 16, f)).astype(dt)
    dy = rng.standard_normal((n, 12, 12, f)).astype(dt)
    return x, k, dy


@pytest.fixture(params=["tiles", "im2col+gemm"])
def conv_path(request):
    """Run once with the FMA tiles (where the CPU has them) and once with im2col + GEMM."""
    with tiles(request.param == "tiles"):
        yield request.param


def test_conv_backward_is_bitwise_deterministic(conv_path):
    x, k, dy = _model_like_case()
    first = nb.conv2d_backward(dy, x, k, (1, 1), (0, 0, 0, 0))
    second = nb.conv2d_backward(dy, x, k, (1, 1), (0, 0, 0, 0))
    for a, b in zip(first, second):
        assert a.tobytes() == b.tobytes()


def test_results_do_not_depend_on_the_thread_count(conv_path):
    import numba

    x, k, dy = _model_like_case(n=9)
    threads = numba.get_num_threads()
    if threads < 2:
        pytest.skip("one numba thread only")

    y = nb.conv2d_forward(x, k, None, (1, 1), (0, 0, 0, 0), relu=True)
    xf = x.reshape(9, -1)  # 3136 features: the dense tiles with 16 units, BLAS with 5
    w16, w5 = (np.random.default_rng(1).standard_normal((xf.shape[1], u)).astype(np.float32) for u in (16, 5))
    dy16 = np.random.default_rng(2).standard_normal((9, 16)).astype(np.float32)

    def run():
        p, m, v = w16.copy(), np.zeros_like(w16), np.zeros_like(w16)  # 50k weights: Adam's parallel loop
        numba_optim.adam_update(p, w16 * 1e-3, m, v, *(np.float32(s) for s in (0.1, 0.001, 1e-3, 1e-7)))
        return (*nb.conv2d_backward(dy, x, k, (1, 1), (0, 0, 0, 0)),
                *nb.conv2d_backward(dy, x, k, (1, 1), (0, 0, 0, 0), relu_y=y),
                nb.conv2d_forward(x, k, None, (1, 1), (0, 0, 0, 0)),
                *nb.dense_backward(dy.reshape(9, -1)[:, :5], xf, w5), nb.dense_forward(xf, w5, None),
                *nb.dense_backward(dy16, xf, w16, check_finite=True)[:3], nb.dense_forward(xf, w16, None), p, m, v)

    many = run()
    numba.set_num_threads(1)
    try:
        one = run()
    finally:
        numba.set_num_threads(threads)
    for a, b in zip(many, one):
        assert a.tobytes() == b.tobytes()


def test_blas_thread_count_is_restored():
    if not blas.FAST:
        pytest.skip("BLAS-in-numba path not available")
    before = blas.openblas.threads()
    x, k, dy = _model_like_case(n=2)
    nb.conv2d_backward(dy, x, k, (1, 1), (0, 0, 0, 0))
    nb.dense_forward(x.reshape(2, -1), np.ones((x[0].size, 3), np.float32), None)
    assert blas.openblas.threads() == before


def test_fallback_path_matches(monkeypatch):
    monkeypatch.setattr(blas, "FAST", False)
    x, k, dy = _model_like_case(n=2, dt=np.float64)
    y = nb.conv2d_forward(x, k, None, (2, 1), (1, 1, 0, 1), relu=True)
    assert_close(y, ref.conv2d_forward(x, k, None, (2, 1), (1, 1, 0, 1), relu=True), np.float64, "fallback")
    got = nb.dense_backward(np.ones((2, 3)), x.reshape(2, -1), np.ones((x[0].size, 3)))
    want = ref.dense_backward(np.ones((2, 3)), x.reshape(2, -1), np.ones((x[0].size, 3)))
    for g, w in zip(got, want):
        assert_close(g, w, np.float64, "fallback dense")
    # float32 with 32 filters: the tiles need no BLAS; dx of a strided conv falls back whole
    x, k, dy = _model_like_case(n=2)
    for strides in ((1, 1), (2, 2)):
        y = nb.conv2d_forward(x, k, None, strides, (0, 0, 0, 0))
        assert_close(y, ref.conv2d_forward(x, k, None, strides, (0, 0, 0, 0)), np.float32, "fallback f32")
        dy = np.ones_like(y)
        for g, w in zip(nb.conv2d_backward(dy, x, k, strides, (0, 0, 0, 0)),
                        ref.conv2d_backward(dy, x, k, strides, (0, 0, 0, 0))):
            assert_close(g, w, np.float32, "fallback f32 backward")


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_empty_batch(dt):
    x, k = np.zeros((0, 5, 5, 16), dt), np.ones((3, 3, 16, 32), dt)
    y = nb.conv2d_forward(x, k, np.ones(32, dt), (1, 1), (1, 1, 1, 1), relu=True)
    assert y.shape == (0, 5, 5, 32) and y.dtype == dt
    for need_dx in (True, False):
        dx, dk, db = nb.conv2d_backward(y, x, k, (1, 1), (1, 1, 1, 1), need_dx=need_dx)
        assert (dx is None) == (not need_dx) and not dk.any() and not db.any() and dk.shape == k.shape
    p, a = nb.maxpool2d_forward(x, (2, 2), (2, 2), (0, 0, 0, 0))
    assert p.shape == (0, 2, 2, 16)
    assert nb.maxpool2d_backward(p, a, x.shape, (2, 2), (2, 2), (0, 0, 0, 0)).shape == x.shape
    xf = x.reshape(0, 400)
    h = nb.dense_forward(xf, np.ones((400, 3), dt), None)
    assert h.shape == (0, 3) and not nb.dense_backward(h, xf, np.ones((400, 3), dt))[1].any()


def test_small_inputs_take_the_numpy_path_with_the_same_results():
    rng = np.random.default_rng(5)
    x, k, b = rng.standard_normal((4, 30)), rng.standard_normal((30, 5)), rng.standard_normal(5)
    y = rng.standard_normal((3, 7))
    fast = (nb.dense_forward(x, k, b, relu=True), *nb.dense_backward(np.ones((4, 5)), x, k),
            nb.relu_forward(y), nb.relu_backward(y, np.maximum(y, 0)))
    saved = config.SMALL_GEMM, config.SMALL_ELEMENTWISE
    config.SMALL_GEMM, config.SMALL_ELEMENTWISE = 1 << 30, 1 << 30
    try:
        small = (nb.dense_forward(x, k, b, relu=True), *nb.dense_backward(np.ones((4, 5)), x, k),
                 nb.relu_forward(y), nb.relu_backward(y, np.maximum(y, 0)))
    finally:
        config.SMALL_GEMM, config.SMALL_ELEMENTWISE = saved
    for a, c in zip(fast, small):
        assert_close(a, c, np.float64, "small path")


def test_threading_info():
    info = nb.threading_info()
    assert info["layer"] in ("omp", "tbb", "workqueue")
    assert info["num_threads"] >= 1
    assert info["denormals_flushed_in_kernels"] == (platform.machine().lower() in ("x86_64", "amd64", "i386", "i686"))
    assert nb.NAME == "numba"


@pytest.mark.slow
def test_boundscheck_smoke(tmp_path):
    """Random small shapes with NUMBA_BOUNDSCHECK=1 (own cache dir: bounds-checked code must not
    end up in the normal cache)."""
    script = textwrap.dedent("""
        import numpy as np
        from minicnn.kernels import numba_backend as nb, numpy_backend as ref
        from minicnn.kernels.numba import config
        from minicnn.kernels.shapes import window_output
        config.SMALL_GEMM, config.SMALL_ELEMENTWISE = -1, 0  # the numba kernels even for tiny shapes
        rng = np.random.default_rng(0)
        for t in range(40):
            n, h, w = rng.integers(1, 4), rng.integers(1, 8), rng.integers(1, 8)
            c, f = [1, 3, 16][t % 3], [2, 16, 32, 5][t % 4]  # tiles (multiples of 16) and the other paths
            kh, kw = rng.integers(1, h + 1), rng.integers(1, w + 1)
            s = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
            (oh, ow), pads = window_output((int(h), int(w)), (int(kh), int(kw)), s, ["valid", "same"][t % 2])
            if min(oh, ow) < 1:
                continue
            dt = [np.float32, np.float64][t % 2]
            x = rng.standard_normal((n, h, w, c)).astype(dt)
            k = rng.standard_normal((kh, kw, c, f)).astype(dt)
            y = nb.conv2d_forward(x, k, None, s, pads, relu=True)
            dy = rng.standard_normal(y.shape).astype(dt)
            ry = y if t % 2 else None  # relu's gradient fused or not
            got = nb.conv2d_backward(dy, x, k, s, pads, need_dx=bool(t % 3), relu_y=ry)
            want = ref.conv2d_backward(dy, x, k, s, pads, need_dx=bool(t % 3), relu_y=ry)
            assert all(g is None or np.allclose(g, w_, rtol=1e-4, atol=1e-4) for g, w_ in zip(got, want))
            p, a = nb.maxpool2d_forward(x, (kh, kw), s, pads)
            nb.maxpool2d_backward(p, a, x.shape, (kh, kw), s, pads)
            nb.relu_backward(dy, nb.relu_forward(y))
            w3 = rng.standard_normal((x[0].size, 16 if t % 4 == 0 else 3)).astype(dt)  # 16: dense tiles (float32)
            nb.dense_backward(nb.dense_forward(x.reshape(n, -1), w3, None), x.reshape(n, -1), w3, check_finite=True)
        print("ok")
    """)
    env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path / "numba_cache")}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-4000:]
    assert out.stdout.strip().endswith("ok")
