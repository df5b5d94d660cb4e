"""conv2d of the numba backend (minicnn.kernels.numba.conv) against the numpy backend, on both
paths (FMA tiles and im2col + GEMM), every layout and dtype."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minicnn.kernels import numpy_backend as ref
from minicnn.kernels.shapes import window_output

nb = pytest.importorskip("minicnn.kernels.numba_backend")

from minicnn.kernels.numba import blas  # noqa: E402
from tests.kernels.numba.kernelcheck import (  # noqa: E402
    SETTINGS, Canary, assert_close, layout, model_like_case, one_thread, tiles)

pytestmark = pytest.mark.usefixtures("numba_kernels_even_for_small_inputs")


@st.composite
def conv_cases(draw):
    n = draw(st.integers(1, 4))
    h = draw(st.integers(1, 9))
    w = draw(st.integers(1, 9))
    # channel counts that are and are not multiples of the vector width (16 float32 / 8 float64
    # lanes) reach the FMA-tile kernels and the direct-loop / im2col + GEMM fallbacks
    c = draw(st.sampled_from([1, 2, 3, 5, 6, 8, 16, 17]))
    kh = draw(st.sampled_from([1, 2, 3, 4, h]))
    kw = draw(st.sampled_from([1, 2, 3, 5, w]))
    f = draw(st.sampled_from([1, 2, 3, 5, 6, 8, 16, 20, 32, 48]))
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
    assume(min(case["out"]) >= 1)  # else the kernel does not fit: the layer rejects the shape first
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
    dil = dict(dilation=case.get("dilation", (1, 1)))

    y = nb.conv2d_forward(x_in, k_in, b, *args, relu=case["relu"], cache={}, **dil)
    y_ref = ref.conv2d_forward(x, k, b, *args, relu=case["relu"], cache={}, **dil)
    assert y.shape == y_ref.shape
    assert_close(y, y_ref, dt, "forward")

    dy = layout(rng.standard_normal(y.shape).astype(dt), case["layout"])
    dy_copy = dy.copy()
    cache = {}
    nb.conv2d_forward(x_in, k_in, b, *args, cache=cache, **dil)
    # with relu, the backward takes the forward's output and fuses relu's gradient
    relu_y = y_ref if case["relu"] else None  # one mask for both (no flip of a value at 0)
    dx, dk, db = nb.conv2d_backward(dy, x_in, k_in, *args, need_dx=case["need_dx"], cache=cache, relu_y=relu_y,
                                    **dil)
    dx_r, dk_r, db_r = ref.conv2d_backward(np.ascontiguousarray(dy), x, k, *args, need_dx=case["need_dx"],
                                           relu_y=relu_y, **dil)
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
def dilated_conv_cases(draw):
    """Dilation 1-3 with kernels 1-5 and strides 1-2 (the kernels take strides with dilation;
    Conv2D refuses the pair, as Keras does). Channel counts that are not multiples of 16 and
    filter counts that are (those reach the tiles when not dilated)."""
    h, w = draw(st.integers(1, 10)), draw(st.integers(1, 10))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    s = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    d = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.sampled_from(["valid", "same"]))
    (oh, ow), pads = window_output((h, w), (kh, kw), s, padding, d)
    return dict(n=draw(st.integers(1, 4)), h=h, w=w, c=draw(st.sampled_from([1, 2, 3, 5, 7, 16, 17])), kh=kh, kw=kw,
                f=draw(st.sampled_from([1, 3, 5, 16, 32])), strides=s, pads=pads, dilation=d, out=(oh, ow),
                relu=draw(st.booleans()), need_dx=draw(st.booleans()), bias=draw(st.booleans()),
                dtype=draw(st.sampled_from([np.float32, np.float64])),
                layout=draw(st.sampled_from(["c", "c", "slice", "transpose"])),
                tiles=draw(st.booleans()), seed=draw(st.integers(0, 2**31 - 1)))


@settings(SETTINGS, max_examples=80)
@given(dilated_conv_cases())
def test_dilated_conv2d_matches_numpy(case):
    assume(min(case["out"]) >= 1)
    with tiles(case["tiles"]):
        _check_conv(case)


@pytest.mark.parametrize(("dt", "c", "f"), [(np.float32, 16, 32), (np.float64, 3, 5)])
def test_dilated_conv_is_bitwise_independent_of_the_thread_count(conv_path, dt, c, f):
    import numba

    threads = numba.get_num_threads()
    if threads < 2:
        pytest.skip("one numba thread only")
    x, k, _ = model_like_case(n=9, dt=dt, f=f)
    x, k = np.ascontiguousarray(x[..., :c]), np.ascontiguousarray(k[:, :, :c])
    (oh, ow), pads = window_output((14, 14), (3, 3), (1, 1), "same", (2, 3))
    dy = np.sin(np.arange(9 * oh * ow * f)).reshape(9, oh, ow, f).astype(dt)

    def run():
        y = nb.conv2d_forward(x, k, None, (1, 1), pads, relu=True, dilation=(2, 3))
        y2 = nb.conv2d_forward(x, k, None, (2, 1), (0, 0, 0, 0), dilation=(2, 2))  # strided and dilated
        return (y, *nb.conv2d_backward(dy, x, k, (1, 1), pads, relu_y=y, dilation=(2, 3)),
                y2, *nb.conv2d_backward(np.ones_like(y2), x, k, (2, 1), (0, 0, 0, 0), dilation=(2, 2)))

    many = run()
    one = one_thread(run)
    for a, b in zip(many, one):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize(("dt", "c", "f"), [(np.float32, 16, 32), (np.float64, 3, 5)])
def test_dilated_conv_reads_its_inputs_only_within_their_bounds(conv_path, dt, c, f, padding):
    """As the undilated test below, with dilation (2, 3) and strides (2, 1) ('valid': the forward
    tiles read x in place, float32 with 32 filters)."""
    x, k, _ = model_like_case(n=3, dt=dt, f=f)
    x, k = x[..., :c], np.ascontiguousarray(k[:, :, :c, :f])
    args = ((2, 1), window_output((14, 14), (3, 3), (2, 1), padding, (2, 3))[1])
    y_ref = ref.conv2d_forward(x, k, np.ones(f, dt), *args, relu=True, dilation=(2, 3))
    dy = np.random.default_rng(4).standard_normal(y_ref.shape).astype(dt)
    xc, kc, bc, dyc, yc = (Canary.holding(a) for a in (x, k, np.ones(f, dt), dy, y_ref))
    assert_close(nb.conv2d_forward(xc.a, kc.a, bc.a, *args, relu=True, dilation=(2, 3)), y_ref, dt, "forward")
    for need_dx in (True, False):
        got = nb.conv2d_backward(dyc.a, xc.a, kc.a, *args, need_dx=need_dx, relu_y=yc.a, dilation=(2, 3))
        want = ref.conv2d_backward(dy, x, k, *args, need_dx=need_dx, relu_y=y_ref, dilation=(2, 3))
        for name, g, w in zip(("dx", "dkernel", "dbias"), got, want):
            assert (g is None) == (w is None)
            if w is not None:
                assert np.isfinite(g).all(), f"{name}: a NaN from outside an input"
                assert_close(g, w, dt, name)
    assert all(c_.intact() for c_ in (xc, kc, bc, dyc, yc))


def test_dilated_conv_checks_its_shapes():
    x, k = np.zeros((2, 9, 9, 3)), np.zeros((3, 3, 3, 4))
    with pytest.raises(ValueError, match="conv2d_forward: dilation must be 2 positive ints"):
        nb.conv2d_forward(x, k, None, (1, 1), (0, 0, 0, 0), dilation=(1, 0))
    with pytest.raises(ValueError, match=r"dy has shape \(2, 7, 7, 4\), the forward's output has \(2, 5, 7, 4\)"):
        nb.conv2d_backward(np.zeros((2, 7, 7, 4)), x, k, (1, 1), (0, 0, 0, 0), dilation=(2, 1))


@pytest.mark.parametrize("backend_module", [nb, ref])
def test_conv_backward_refuses_a_relu_output_of_another_shape(backend_module):
    x = np.zeros((2, 6, 6, 16), np.float32)
    k = np.zeros((3, 3, 16, 16), np.float32)
    dy = np.zeros((2, 4, 4, 16), np.float32)
    with pytest.raises(ValueError, match=r"relu_y has shape \(2, 4, 4, 8\), dy has \(2, 4, 4, 16\)"):
        backend_module.conv2d_backward(dy, x, k, (1, 1), (0, 0, 0, 0), relu_y=np.zeros((2, 4, 4, 8), np.float32))


def test_conv_backward_is_bitwise_deterministic(conv_path):
    x, k, dy = model_like_case()
    first = nb.conv2d_backward(dy, x, k, (1, 1), (0, 0, 0, 0))
    second = nb.conv2d_backward(dy, x, k, (1, 1), (0, 0, 0, 0))
    for a, b in zip(first, second):
        assert a.tobytes() == b.tobytes()


def test_conv_fallback_path_matches(monkeypatch):
    """Without BLAS in numba: the tiles need none, so with them on every undilated conv keeps
    them (strided dx included); with them off, everything goes to the numpy backend."""
    monkeypatch.setattr(blas, "FAST", False)
    x, k, dy = model_like_case(n=2, dt=np.float64)
    y = nb.conv2d_forward(x, k, None, (2, 1), (1, 1, 0, 1), relu=True)
    assert_close(y, ref.conv2d_forward(x, k, None, (2, 1), (1, 1, 0, 1), relu=True), np.float64, "fallback")
    x, k, dy = model_like_case(n=2)
    for strides in ((1, 1), (2, 2)):
        y = nb.conv2d_forward(x, k, None, strides, (0, 0, 0, 0))
        assert_close(y, ref.conv2d_forward(x, k, None, strides, (0, 0, 0, 0)), np.float32, "fallback f32")
        dy = np.ones_like(y)
        for g, w in zip(nb.conv2d_backward(dy, x, k, strides, (0, 0, 0, 0)),
                        ref.conv2d_backward(dy, x, k, strides, (0, 0, 0, 0))):
            assert_close(g, w, np.float32, "fallback f32 backward")


#: the zoo's conv shapes that the general tile paths serve: (H, W, C, F, k, strides, padding)
ZOO_CONVS = {
    "lenet5 conv1": (28, 28, 1, 6, 5, (1, 1), "same"),
    "lenet5 conv2": (14, 14, 6, 16, 5, (1, 1), "valid"),
    "allconv stride 2": (14, 14, 32, 32, 3, (2, 2), "same"),
    "cifar 3-channel input": (16, 16, 3, 32, 3, (1, 1), "same"),
    "odd channels, stride (2, 3)": (11, 13, 5, 7, 3, (2, 3), "same"),
    "1x1 to 10 classes": (7, 7, 64, 10, 1, (1, 1), "valid"),
}


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("shape", list(ZOO_CONVS), ids=list(ZOO_CONVS))
def test_zoo_convs_are_bitwise_independent_of_the_thread_count(conv_path, dt, shape):
    """Forward (bias, relu) and the whole backward (relu's gradient, dx, dkernel, dbias) on 1
    numba thread and on all of them, bit for bit, and within tolerance of the numpy backend;
    9 images: groups of the dkernel partial sums are not a multiple of the thread count."""
    import numba

    if numba.get_num_threads() < 2:
        pytest.skip("one numba thread only")
    h, w, c, f, k, strides, padding = ZOO_CONVS[shape]
    (oh, ow), pads = window_output((h, w), (k, k), strides, padding)
    rng = np.random.default_rng(h * c + f)
    x = rng.standard_normal((9, h, w, c)).astype(dt)
    kern = rng.standard_normal((k, k, c, f)).astype(dt)
    bias = rng.standard_normal(f).astype(dt)
    dy = rng.standard_normal((9, oh, ow, f)).astype(dt)

    def run():
        y = nb.conv2d_forward(x, kern, bias, strides, pads, relu=True)
        return (y, *nb.conv2d_backward(dy, x, kern, strides, pads, relu_y=y))

    many = run()
    one = one_thread(run)
    for a, b in zip(many, one):
        assert a.tobytes() == b.tobytes()
    y_ref = ref.conv2d_forward(x, kern, bias, strides, pads, relu=True)
    assert_close(many[0], y_ref, dt, "forward")
    for name, got, want in zip(("dx", "dkernel", "dbias"), many[1:],
                               ref.conv2d_backward(dy, x, kern, strides, pads, relu_y=y_ref)):
        assert_close(got, want, dt, name)


@pytest.mark.parametrize("need_dx", [True, False])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("shape", list(ZOO_CONVS), ids=list(ZOO_CONVS))
def test_gemm_backward_fuses_relu_bit_for_bit(dt, shape, need_dx):
    """On im2col + GEMM the backward masks each chunk of dy by relu's output into a per-thread
    buffer (relu_y=y): the same values summed in the same order as masking the whole dy first
    (relu_backward, then the backward without relu_y), so the same bits."""
    h, w, c, f, k, strides, padding = ZOO_CONVS[shape]
    (oh, ow), pads = window_output((h, w), (k, k), strides, padding)
    rng = np.random.default_rng(h * c + f + 1)
    x = rng.standard_normal((9, h, w, c)).astype(dt)
    kern = rng.standard_normal((k, k, c, f)).astype(dt)
    dy = rng.standard_normal((9, oh, ow, f)).astype(dt)
    with tiles(False):
        y = nb.conv2d_forward(x, kern, rng.standard_normal(f).astype(dt), strides, pads, relu=True)
        assert 0 < np.count_nonzero(y) < y.size  # the mask drops some of dy, not all
        fused = nb.conv2d_backward(dy, x, kern, strides, pads, need_dx=need_dx, relu_y=y)
        masked_first = nb.conv2d_backward(nb.relu_backward(dy, y), x, kern, strides, pads, need_dx=need_dx)
    assert (fused[0] is None) == (not need_dx)
    for a, b in zip(fused, masked_first):
        assert (a is None and b is None) or a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_conv_empty_batch(dt):
    x, k = np.zeros((0, 5, 5, 16), dt), np.ones((3, 3, 16, 32), dt)
    y = nb.conv2d_forward(x, k, np.ones(32, dt), (1, 1), (1, 1, 1, 1), relu=True)
    assert y.shape == (0, 5, 5, 32) and y.dtype == dt
    for need_dx in (True, False):
        dx, dk, db = nb.conv2d_backward(y, x, k, (1, 1), (1, 1, 1, 1), need_dx=need_dx)
        assert (dx is None) == (not need_dx) and not dk.any() and not db.any() and dk.shape == k.shape


@pytest.mark.parametrize("strides", [(1, 1), (2, 1)])
@pytest.mark.parametrize(("dt", "c", "f"), [(np.float32, 16, 32), (np.float32, 3, 5), (np.float64, 16, 16)])
def test_conv_reads_its_inputs_only_within_their_bounds(conv_path, dt, c, f, strides):
    """Inputs (x, kernel, bias, dy, relu_y) passed as C-contiguous views into buffers whose
    margins are NaN: the kernels read them in place (no padding, so no copies), and a read past
    either end would put a NaN into the results. Tiles (any channel count) and im2col + GEMM."""
    x, k, dy = model_like_case(n=3, dt=dt, f=f)
    x, k = x[..., :c], np.ascontiguousarray(k[:, :, :c, :f])
    y_ref = ref.conv2d_forward(x, k, np.ones(f, dt), strides, (0, 0, 0, 0), relu=True)
    dy = np.random.default_rng(4).standard_normal(y_ref.shape).astype(dt)
    xc, kc, bc, dyc, yc = (Canary.holding(a) for a in (x, k, np.ones(f, dt), dy, y_ref))
    y = nb.conv2d_forward(xc.a, kc.a, bc.a, strides, (0, 0, 0, 0), relu=True)
    assert_close(y, y_ref, dt, "forward")
    for need_dx in (True, False):
        got = nb.conv2d_backward(dyc.a, xc.a, kc.a, strides, (0, 0, 0, 0), need_dx=need_dx, relu_y=yc.a)
        want = ref.conv2d_backward(dy, x, k, strides, (0, 0, 0, 0), need_dx=need_dx, relu_y=y_ref)
        for name, g, w in zip(("dx", "dkernel", "dbias"), got, want):
            assert (g is None) == (w is None)
            if w is not None:
                assert np.isfinite(g).all(), f"{name}: a NaN from outside an input"
                assert_close(g, w, dt, name)
    assert all(c_.intact() for c_ in (xc, kc, bc, dyc, yc))
