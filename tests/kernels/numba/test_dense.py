"""dense of the numba backend (minicnn.kernels.numba.dense) against the numpy backend: the FMA
tiles, the sliced/blocked GEMMs and the numpy fallback."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicnn.kernels import numpy_backend as ref

nb = pytest.importorskip("minicnn.kernels.numba_backend")

from minicnn.kernels.numba import blas, config, dense  # noqa: E402
from tests.kernels.numba.kernelcheck import SETTINGS, Canary, assert_close, model_like_case, tiles  # noqa: E402

pytestmark = pytest.mark.usefixtures("numba_kernels_even_for_small_inputs")


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
        pytest.skip("the tiles are off (no AVX-512, or MINICNN_NUMBA_TILES=0)")
    calls = []
    for name in ("_dense_fwd_tiles", "_dense_bwd_tiles"):
        monkeypatch.setattr(dense, name,
                            lambda *a, real=getattr(dense, name), name=name: calls.append(name) or real(*a))
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
    # (fanout.run may split a launch into blocks: one call each)
    assert calls[0] == "_dense_fwd_tiles"
    assert set(calls) == {"_dense_fwd_tiles", "_dense_bwd_tiles"} and calls.index("_dense_bwd_tiles") > 0


@pytest.mark.parametrize("use_tiles", [True, False])
@pytest.mark.parametrize("where", [None, ("nan", 0, 0), ("inf", 5, 70), ("-inf", 36, 143), ("overflow", 0, 0)])
def test_dense_backward_reports_non_finite_gradients(monkeypatch, use_tiles, where):
    """check_finite=True adds whether dkernel/dbias are all finite: the tiles check each block in
    registers, the BLAS path each block right after its GEMM, numpy the result; all must agree,
    wherever the bad value is (the first, second or last block of dkernel's rows)."""
    ran = []
    for name in ("_dense_bwd", "_dense_bwd_tiles"):
        monkeypatch.setattr(dense, name, lambda *a, real=getattr(dense, name), name=name: ran.append(name) or real(*a))
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
    assert set(ran) == {"_dense_bwd_tiles" if use_tiles and config.TILES else "_dense_bwd"}  # (once per thread)
    assert finite is want_finite is (where is None)
    assert len(grads) == 3 and np.isfinite(grads[1]).all() == finite
    assert nb.dense_backward(dy, x, k)[1].shape == (144, 32)  # without the flag: three values


def test_dense_fallback_path_matches(monkeypatch):
    monkeypatch.setattr(blas, "FAST", False)
    x, _, _ = model_like_case(n=2, dt=np.float64)
    got = nb.dense_backward(np.ones((2, 3)), x.reshape(2, -1), np.ones((x[0].size, 3)))
    want = ref.dense_backward(np.ones((2, 3)), x.reshape(2, -1), np.ones((x[0].size, 3)))
    for g, w in zip(got, want):
        assert_close(g, w, np.float64, "fallback dense")


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_dense_empty_batch(dt):
    xf = np.zeros((0, 400), dt)
    h = nb.dense_forward(xf, np.ones((400, 3), dt), None)
    assert h.shape == (0, 3) and not nb.dense_backward(h, xf, np.ones((400, 3), dt))[1].any()


@pytest.mark.parametrize(("dt", "n_in", "n_out"), [(np.float32, 144, 48), (np.float32, 4144, 16),
                                                   (np.float32, 150, 5), (np.float64, 144, 48)])
def test_dense_reads_its_inputs_only_within_their_bounds(dt, n_in, n_out):
    """x, kernel, bias and dy as C-contiguous views into NaN-margined buffers (read in place): a
    read past either end would put a NaN into the results. Tiles (float32, 16 | out), BLAS."""
    rng = np.random.default_rng(n_in)
    x = rng.standard_normal((37, n_in)).astype(dt)
    k = rng.standard_normal((n_in, n_out)).astype(dt)
    b = rng.standard_normal(n_out).astype(dt)
    dy = rng.standard_normal((37, n_out)).astype(dt)
    xc, kc, bc, dyc = (Canary.holding(a) for a in (x, k, b, dy))
    for use_tiles in (True, False):
        with tiles(use_tiles):
            y = nb.dense_forward(xc.a, kc.a, bc.a, relu=True)
            assert np.isfinite(y).all()
            assert_close(y, ref.dense_forward(x, k, b, relu=True), dt, "forward")
            *got, finite = nb.dense_backward(dyc.a, xc.a, kc.a, check_finite=True)
            assert finite
            for name, g, w in zip(("dx", "dkernel", "dbias"), got, ref.dense_backward(dy, x, k)):
                assert np.isfinite(g).all(), f"{name}: a NaN from outside an input"
                assert_close(g, w, dt, name)
    assert all(c.intact() for c in (xc, kc, bc, dyc))
