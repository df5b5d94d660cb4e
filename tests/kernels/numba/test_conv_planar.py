"""The single-channel conv forward without im2col (minicnn.kernels.numba.conv_planar) against the
numpy backend, and which convs conv2d_forward sends to it."""

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
def planar_cases(draw):
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    pads = tuple(draw(st.integers(0, 3)) for _ in range(4))
    return dict(n=draw(st.integers(0, 3)), h=h, w=w, kh=kh, kw=kw, f=draw(st.integers(1, 16)), pads=pads,
                dilation=(dh, dw), relu=draw(st.booleans()),
                dtype=draw(st.sampled_from([np.float32, np.float64])), seed=draw(st.integers(0, 2**31 - 1)))


@SETTINGS
@given(planar_cases())
def test_planar_forward_matches_numpy(case):
    """Any kernel size, asymmetric padding and dilation, 1-16 filters, empty batches; the
    chunks end mid-row and past the image (positions with j >= OW are thrown away)."""
    hp = case["h"] + case["pads"][0] + case["pads"][1]
    wp = case["w"] + case["pads"][2] + case["pads"][3]
    assume(hp > (case["kh"] - 1) * case["dilation"][0] and wp > (case["kw"] - 1) * case["dilation"][1])
    rng = np.random.default_rng(case["seed"])
    dt = case["dtype"]
    x = rng.standard_normal((case["n"], case["h"], case["w"], 1)).astype(dt)
    k = rng.standard_normal((case["kh"], case["kw"], 1, case["f"])).astype(dt)
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
        assert names == ["conv_planar._pad_flat", "conv_planar._planar_fwd"]
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
