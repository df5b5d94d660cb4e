"""The single-channel conv forward and dkernel/dbias without im2col (minicnn.kernels.numba.conv_planar)
against the numpy backend, and which convs conv2d_forward / conv2d_backward send to them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from minicnn.kernels import numpy_backend as ref
from minicnn.kernels.shapes import window_output

nb = pytest.importorskip("minicnn.kernels.numba_backend")

from minicnn.kernels.numba import blas, conv_planar, info  # noqa: E402
from tests.kernels.numba.kernelcheck import SETTINGS, Canary, assert_close, one_thread, tiles  # noqa: E402

pytestmark = pytest.mark.usefixtures("numba_kernels_even_for_small_inputs")


def _direct(x, kernel, b, pads, dilation, relu):
    """planar_forward called directly, into an output of the reference's shape."""
    want = ref.conv2d_forward(x, kernel, b, (1, 1), pads, relu=relu, dilation=dilation)
    y = np.empty(want.shape, dtype=x.dtype)
    conv_planar.planar_forward(x, kernel, b, pads, dilation, relu, y)
    return y, want


def _lenet_conv1(n, dt, seed):
    """x, kernel and bias of LeNet-5's first layer (28 x 28 x 1 -> 5 x 5 x 6) for a batch of n."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 28, 28, 1)).astype(dt), rng.standard_normal((5, 5, 1, 6)).astype(dt),
            rng.standard_normal(6).astype(dt))


@st.composite
def planar_cases(draw, most=conv_planar.MAX_FILTERS):
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    pads = tuple(draw(st.integers(0, 3)) for _ in range(4))
    return dict(n=draw(st.integers(0, 3)), h=h, w=w, kh=kh, kw=kw, f=draw(st.integers(1, most)), pads=pads,
                dilation=(dh, dw), relu=draw(st.booleans()),
                dtype=draw(st.sampled_from([np.float32, np.float64])), seed=draw(st.integers(0, 2**31 - 1)))


def _case_arrays(case):
    """(rng, dtype, x, kernel) of a drawn case; cases whose kernel spans more than the padded
    image (no output) are rejected."""
    hp = case["h"] + case["pads"][0] + case["pads"][1]
    wp = case["w"] + case["pads"][2] + case["pads"][3]
    assume(hp > (case["kh"] - 1) * case["dilation"][0] and wp > (case["kw"] - 1) * case["dilation"][1])
    rng = np.random.default_rng(case["seed"])
    dt = case["dtype"]
    x = rng.standard_normal((case["n"], case["h"], case["w"], 1)).astype(dt)
    k = rng.standard_normal((case["kh"], case["kw"], 1, case["f"])).astype(dt)
    return rng, dt, x, k


@SETTINGS
@given(planar_cases())
def test_planar_forward_matches_numpy(case):
    """Any kernel size, asymmetric padding and dilation, 1-16 filters, empty batches; the
    chunks end mid-row and past the image (positions with j >= OW are thrown away)."""
    rng, dt, x, k = _case_arrays(case)
    b = rng.standard_normal(case["f"]).astype(dt)
    y, want = _direct(x, k, b, case["pads"], case["dilation"], case["relu"])
    assert_close(y, want, dt, "planar forward")


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_planar_forward_on_lenets_first_layer_over_many_chunks(dt):
    """LeNet-5's conv1 at batch 7: 28 x 32 flat positions per image, many chunks per image."""
    x, k, b = _lenet_conv1(7, dt, seed=1)
    assert conv_planar.chunk_length(6, np.dtype(dt).itemsize) < 28 * 32
    y, want = _direct(x, k, b, (2, 2, 2, 2), (1, 1), False)
    assert_close(y, want, dt, "LeNet conv1")


def test_chunk_length_keeps_the_accumulators_in_cache():
    assert conv_planar.chunk_length(6, 4) == conv_planar.MAX_CHUNK
    assert conv_planar.chunk_length(16, 4) == 256 and conv_planar.chunk_length(16, 8) == 128
    assert conv_planar.chunk_length(4096, 8) == conv_planar.MIN_CHUNK
    for f in range(1, 40):
        for isz in (4, 8):
            length = conv_planar.chunk_length(f, isz)
            assert length % conv_planar.LANE == 0
            assert f * length * isz <= conv_planar.ACC_BYTES or length == conv_planar.MIN_CHUNK


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_planar_forward_keeps_nan_and_relu(dt):
    """relu fused: negatives to 0, NaN stays NaN (as in numpy's maximum)."""
    x = np.zeros((1, 4, 4, 1), dt)
    x[0, 1, 1, 0] = np.nan
    k = np.ones((1, 1, 1, 2), dt)
    y, _ = _direct(x, k, np.array([-1.0, 2.0], dt), (0, 0, 0, 0), (1, 1), True)
    assert np.isnan(y[0, 1, 1]).all()
    mask = np.ones((4, 4), bool)
    mask[1, 1] = False
    assert (y[0][mask][:, 0] == 0).all() and (y[0][mask][:, 1] == 2).all()


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_planar_forward_is_bitwise_independent_of_the_thread_count(dt):
    x, k, b = _lenet_conv1(5, dt, seed=2)
    run = lambda: _direct(x, k, b, (2, 2, 2, 2), (1, 1), True)[0]  # noqa: E731
    assert run().tobytes() == one_thread(run).tobytes()


def test_planar_forward_reads_its_inputs_only_within_their_bounds():
    """Inputs as views into NaN-margined buffers, the output into a sentinel-margined one."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 9, 11, 1)).astype(np.float32)
    k = rng.standard_normal((3, 3, 1, 5)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    want = ref.conv2d_forward(x, k, b, (1, 1), (1, 2, 0, 1), dilation=(2, 1))
    xc, kc, bc = (Canary.holding(a) for a in (x, k, b))
    yc = Canary(want.shape, np.float32)
    conv_planar.planar_forward(xc.a, kc.a, bc.a, (1, 2, 0, 1), (2, 1), False, yc.a)
    assert np.isfinite(yc.a).all()
    assert_close(yc.a, want, np.float32, "forward")
    assert all(c.intact() for c in (xc, kc, bc, yc))


@pytest.mark.skipif(not blas.FAST, reason="no BLAS to call from numba: every conv is on numpy")
@pytest.mark.parametrize(("c", "f", "strides", "planar"), [
    (1, 6, (1, 1), True), (1, 16, (1, 1), True),
    (1, 17, (1, 1), False), (3, 6, (1, 1), False), (1, 6, (2, 1), False)])
def test_conv2d_forward_sends_one_channel_few_filter_convs_to_it(c, f, strides, planar):
    """With the tiles off (im2col + GEMM otherwise): one input channel, stride 1, at most
    MAX_FILTERS filters -> the planar kernel; any other conv -> im2col + GEMM."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 10, 10, c)).astype(np.float32)
    k = rng.standard_normal((3, 3, c, f)).astype(np.float32)
    with tiles(False):
        nb.conv2d_forward(x, k, None, strides, (1, 1, 1, 1))
        with info.trace_kernels() as names:
            y = nb.conv2d_forward(x, k, None, strides, (1, 1, 1, 1))
    assert_close(y, ref.conv2d_forward(x, k, None, strides, (1, 1, 1, 1)), np.float32, "forward")
    if planar:
        assert names == ["conv_planar._planar_fwd"]
    else:
        assert names == ["conv._conv_fwd_gemm"]


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_planar_forward_of_window_output_shapes(dt):
    """'same' and 'valid' padding as the layers compute them, even kernel sizes included."""
    rng = np.random.default_rng(5)
    for (kh, kw) in ((2, 2), (4, 3), (5, 5)):
        for padding in ("same", "valid"):
            (oh, ow), pads = window_output((8, 7), (kh, kw), (1, 1), padding)
            x = rng.standard_normal((2, 8, 7, 1)).astype(dt)
            k = rng.standard_normal((kh, kw, 1, 3)).astype(dt)
            y, want = _direct(x, k, np.zeros(3, dt), pads, (1, 1), True)
            assert y.shape == (2, oh, ow, 3)
            assert_close(y, want, dt, f"{kh}x{kw} {padding}")


# ----------------------------------------------------------------------------- backward
def _backward(dy, x, k, pads, dilation=(1, 1), relu_y=None, need_dx=False):
    """conv2d_backward with the tiles off (where the planar dkernel serves), and the numpy reference."""
    with tiles(False):
        got = nb.conv2d_backward(dy, x, k, (1, 1), pads, need_dx=need_dx, relu_y=relu_y, dilation=dilation)
    want = ref.conv2d_backward(dy, x, k, (1, 1), pads, need_dx=need_dx, relu_y=relu_y, dilation=dilation)
    return got, want


def _lenet_dy(n, dt, seed):
    """x, kernel and the output gradient of LeNet-5's first layer for a batch of n."""
    x, k, _ = _lenet_conv1(n, dt, seed)
    return x, k, np.random.default_rng(seed + 1).standard_normal((n, 28, 28, 6)).astype(dt)


@pytest.mark.skipif(not blas.FAST, reason="the planar backward calls BLAS from numba")
@SETTINGS
@given(planar_cases(most=conv_planar.MAX_FILTERS_BACKWARD), st.booleans())
def test_planar_backward_matches_numpy(case, need_dx):
    """dkernel and dbias (and dx, by GEMM beside them) for any kernel size, padding, dilation,
    1-64 filters, relu's gradient or none, empty batches."""
    rng, dt, x, k = _case_arrays(case)
    y = ref.conv2d_forward(x, k, None, (1, 1), case["pads"], relu=True, dilation=case["dilation"])
    dy = rng.standard_normal(y.shape).astype(dt)
    got, want = _backward(dy, x, k, case["pads"], case["dilation"], y if case["relu"] else None, need_dx)
    assert (got[0] is None) == (not need_dx)
    for name, g, w in zip(("dx", "dkernel", "dbias"), got, want):
        if w is not None:
            assert g.shape == w.shape
            assert_close(g, w, dt, f"planar backward {name}")


@pytest.mark.skipif(not blas.FAST, reason="the planar backward calls BLAS from numba")
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_planar_backward_within_its_error_model(dt):
    """LeNet-5's conv1 at batch 64 (4 images per group) against the exact sums (float64 of the
    same values): each dkernel and dbias entry within (m + 1) u sum|x dz|, m the longest chain of
    additions that can reach it: a GEMV's dot over the S = 28 x 32 flat positions (BLAS's inner
    order unknown: at most S), the images of a group, the groups."""
    x, k, dy = _lenet_dy(64, dt, seed=6)
    got, _ = _backward(dy, x, k, (2, 2, 2, 2))
    exact = ref.conv2d_backward(dy.astype(np.float64), x.astype(np.float64), k.astype(np.float64), (1, 1),
                                (2, 2, 2, 2), need_dx=False)
    scale = ref.conv2d_backward(np.abs(dy).astype(np.float64), np.abs(x).astype(np.float64), k.astype(np.float64),
                                (1, 1), (2, 2, 2, 2), need_dx=False)
    m = 28 * 32 + -(-64 // conv_planar.MAX_GROUPS) + conv_planar.MAX_GROUPS
    u = np.finfo(dt).eps / 2
    for name, g, e, s in zip(("dkernel", "dbias"), got[1:], exact[1:], scale[1:]):
        assert (np.abs(g - e) <= (m + 1) * u * s).all(), f"{name}: {np.abs(g - e).max()} beyond the bound"


@pytest.mark.skipif(not blas.FAST, reason="the planar backward calls BLAS from numba")
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_planar_backward_is_bitwise_independent_of_the_thread_count(dt):
    x, k, dy = _lenet_dy(37, dt, seed=7)  # 37 images: groups of 3, the last one short
    y = np.maximum(ref.conv2d_forward(x, k, None, (1, 1), (2, 2, 2, 2)), 0)
    run = lambda: _backward(dy, x, k, (2, 2, 2, 2), relu_y=y)[0]  # noqa: E731
    a, b = run(), one_thread(run)
    assert a[1].tobytes() == b[1].tobytes() and a[2].tobytes() == b[2].tobytes()


def _close_with_nonfinite(got, want, dt):
    """NaN and +-inf in the same places, the finite values within the tolerance."""
    assert np.array_equal(np.isnan(got), np.isnan(want)) and np.array_equal(np.isposinf(got), np.isposinf(want))
    assert np.array_equal(np.isneginf(got), np.isneginf(want))
    fin = np.isfinite(want)
    assert_close(got[fin], want[fin], dt, "finite entries")


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_planar_backward_leaves_nonfinite_images_to_the_gemm(dt):
    """An image cell of inf: the exact sums give inf only to the taps that meet it; the planar
    grid would also multiply it by the zero dz of its thrown-away positions (0 * inf = NaN), so
    such an x takes im2col + GEMM. A NaN in dy propagates (it meets real cells only)."""
    x, k, dy = _lenet_dy(3, dt, seed=8)
    x[1, 5, 0, 0] = np.inf  # column 0: what the previous row's thrown-away positions read
    dy = dy[:, 2:-2, 2:-2]  # 'valid': 24 x 24
    with tiles(False):
        nb.conv2d_backward(dy, x, k, (1, 1), (0, 0, 0, 0), need_dx=False)
        with info.trace_kernels() as names:
            got = nb.conv2d_backward(dy, x, k, (1, 1), (0, 0, 0, 0), need_dx=False)
    # inf meets dy's zeros nowhere in the exact sums, but BLAS's kernels may multiply it by a zero
    # of their own (a padded lane): whether numpy then warns "invalid value encountered in matmul"
    # depends on the BLAS core (float64 on OpenBLAS's SkylakeX kernels does; Haswell's did not)
    with np.errstate(invalid="ignore"):
        want = ref.conv2d_backward(dy, x, k, (1, 1), (0, 0, 0, 0), need_dx=False)
    assert "conv_planar._planar_bwd" not in names
    assert np.isfinite(want[1]).any() and not np.isfinite(want[1]).all()
    _close_with_nonfinite(got[1], want[1], dt)
    x, k, dy = _lenet_dy(3, dt, seed=9)
    dy[2, 10, 11, 4] = np.nan
    got, want = _backward(dy, x, k, (2, 2, 2, 2))
    assert np.isnan(got[1][..., 4]).all() and np.isfinite(got[1][..., [0, 1, 2, 3, 5]]).all()  # (either path)
    assert np.isnan(got[2][4]) and np.isfinite(np.delete(got[2], 4)).all()
    _close_with_nonfinite(got[1], want[1], dt)


@pytest.mark.skipif(not blas.FAST, reason="the planar backward calls BLAS from numba")
def test_planar_backward_reads_and_writes_only_within_bounds():
    """Inputs in NaN-margined buffers, dkernel and dbias in sentinel-margined ones."""
    rng = np.random.default_rng(10)
    x = rng.standard_normal((5, 9, 11, 1)).astype(np.float32)
    k = rng.standard_normal((3, 3, 1, 5)).astype(np.float32)
    y = np.maximum(ref.conv2d_forward(x, k, None, (1, 1), (1, 2, 0, 1), dilation=(2, 1)), 0)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    want = ref.conv2d_backward(dy, x, k, (1, 1), (1, 2, 0, 1), need_dx=False, relu_y=y, dilation=(2, 1))
    ins = [Canary.holding(a) for a in (dy, x, k, y)]
    dk, db = Canary((3 * 3 * 5,), np.float32), Canary((5,), np.float32)
    conv_planar.planar_backward(ins[0].a, ins[1].a, ins[2].a, (1, 2, 0, 1), (2, 1), ins[3].a, dk.a, db.a)
    assert_close(dk.a.reshape(k.shape), want[1], np.float32, "dkernel")
    assert_close(db.a, want[2], np.float32, "dbias")
    assert all(c.intact() for c in (*ins, dk, db))


@pytest.mark.skipif(not blas.FAST, reason="no BLAS to call from numba: every conv is on numpy")
@pytest.mark.parametrize(("c", "f", "strides", "need_dx", "planar"), [
    (1, 6, (1, 1), False, True), (1, 16, (1, 1), True, True), (1, 64, (1, 1), False, True),
    (1, 65, (1, 1), False, False), (3, 6, (1, 1), False, False), (1, 6, (2, 1), False, False)])
def test_conv2d_backward_sends_one_channel_few_filter_convs_to_it(c, f, strides, need_dx, planar):
    """With the tiles off: the planar dkernel/dbias for one input channel, stride 1, at most
    MAX_FILTERS_BACKWARD filters, dx (when asked for) by im2col + GEMM beside it; every other conv
    on im2col + GEMM alone."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 10, 10, c)).astype(np.float32)
    k = rng.standard_normal((3, 3, c, f)).astype(np.float32)
    dy = rng.standard_normal(ref.conv2d_forward(x, k, None, strides, (1, 1, 1, 1)).shape).astype(np.float32)
    with tiles(False):
        run = lambda: nb.conv2d_backward(dy, x, k, strides, (1, 1, 1, 1), need_dx=need_dx)  # noqa: E731
        run()
        with info.trace_kernels() as names:
            got = run()
    want = ref.conv2d_backward(dy, x, k, strides, (1, 1, 1, 1), need_dx=need_dx)
    for g, w in zip(got, want):
        if w is not None:
            assert_close(g, w, np.float32, "backward")
    assert ("conv_planar._planar_bwd" in names) == planar
    assert ("conv._conv_bwd_gemm" in names) == (not planar or need_dx)
