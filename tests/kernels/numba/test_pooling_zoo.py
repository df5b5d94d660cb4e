"""The pooling zoo on numba (minicnn.kernels.numba.avgpool): average pooling (valid and same),
global average/max pooling, zero padding, each forward and backward *bitwise* the numpy kernel's
(the same operations in the same order; a NaN's sign and payload aside), for both dtypes, odd shapes, non-contiguous inputs, both
paths (one call on the calling thread, or split over the threads by ``fanout.run``), any thread count, and
extreme values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from minicnn.kernels import numpy_pooling as ref
from minicnn.kernels.shapes import window_output

nb = pytest.importorskip("minicnn.kernels.numba_backend")

from tests.kernels.numba.kernelcheck import (  # noqa: E402
    SETTINGS, SHIPPED_FANOUT_MIN_FLOPS, Canary, fanout_threshold, layout, one_thread)

DTYPES = [np.float32, np.float64]


def pool_path(path):
    """"serial": every call on the calling thread; else every call split over the threads."""
    return fanout_threshold(1 << 62 if path == "serial" else 0)


def bitwise(got, want, what):
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype}, numpy {want.dtype}"
    assert got.shape == want.shape and got.flags.c_contiguous, what
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan), f"{what}: NaN positions differ"
    # every bit but a NaN's sign and payload (IEEE leaves them open: inf + -inf gives the CPU's
    # default NaN, NaN + NaN either operand's, and LLVM may swap an addition's operands)
    assert got[~nan].tobytes() == want[~nan].tobytes(), f"{what}: not bitwise numpy's"


def make(rng, shape, dt, style):
    """'normal'; 'ties' (few integers: max ties); 'extreme' (+-large, +-inf, NaN, +-0, denormals)."""
    if style == "ties":
        return rng.integers(-1, 2, shape).astype(dt)
    x = rng.standard_normal(shape).astype(dt)
    if style == "extreme":
        fi = np.finfo(dt)
        special = np.array([np.nan, np.inf, -np.inf, fi.max, -fi.max, 0.0, -0.0, fi.smallest_subnormal,
                            -fi.tiny / 2, 1e30], dtype=dt)
        flat = x.reshape(-1)
        k = max(1, flat.size // 9)
        idx = rng.choice(flat.size, size=k, replace=False)
        flat[idx] = np.resize(special, k)
    return x


@st.composite
def avg_cases(draw):
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    p = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.sampled_from(["valid", "same"]))
    (oh, ow), pads = window_output((h, w), p, s, padding)
    return dict(shape=(draw(st.integers(1, 3)), h, w, draw(st.integers(1, 7))), pool=p, strides=s, pads=pads,
                out=(oh, ow), dtype=draw(st.sampled_from(DTYPES)), style=draw(st.sampled_from(["normal", "extreme"])),
                layout=draw(st.sampled_from(["c", "slice", "transpose"])),
                path=draw(st.sampled_from(["serial", "parallel"])), seed=draw(st.integers(0, 2**31 - 1)))


@SETTINGS
@given(avg_cases())
def test_avgpool_is_numpys_bit_for_bit(case):
    assume(min(case["out"]) >= 1)
    rng = np.random.default_rng(case["seed"])
    dt = case["dtype"]
    x = make(rng, case["shape"], dt, case["style"])
    args = (case["pool"], case["strides"], case["pads"])
    x_in = layout(x, case["layout"])
    kept = x_in.copy()
    with pool_path(case["path"]), np.errstate(all="ignore"):
        y = nb.avgpool2d_forward(x_in, *args)
        y_r = ref.avgpool2d_forward(x, *args)
        bitwise(y, y_r, "avgpool forward")
        dy = layout(make(rng, y.shape, dt, case["style"]), case["layout"])
        dy_kept = dy.copy()
        bitwise(nb.avgpool2d_backward(dy, x.shape, *args),
                ref.avgpool2d_backward(np.ascontiguousarray(dy), x.shape, *args), "avgpool backward")
    assert np.array_equal(x_in, kept, equal_nan=True) and np.array_equal(dy, dy_kept, equal_nan=True)


@pytest.mark.parametrize("dt", DTYPES)
def test_avgpool_same_counts_only_real_cells(dt):
    """'same' 2x2 on 3x3: the corner window holds one real cell, so its mean is that cell."""
    x = np.arange(9, dtype=dt).reshape(1, 3, 3, 1)
    (_, _), pads = window_output((3, 3), (2, 2), (2, 2), "same")
    y = nb.avgpool2d_forward(x, (2, 2), (2, 2), pads)
    assert y[0, :, :, 0].tolist() == [[2.0, 3.5], [6.5, 8.0]]


@st.composite
def global_cases(draw):
    # C = 1 sums pairwise in numpy (H*W above 8 and above 128 take other branches); C > 1 in order
    c = draw(st.sampled_from([1, 1, 2, 3, 17]))
    h, w = draw(st.sampled_from([(1, 1), (2, 3), (3, 3), (7, 7), (9, 15), (12, 12), (40, 37)]))
    return dict(shape=(draw(st.integers(1, 4)), h, w, c), dtype=draw(st.sampled_from(DTYPES)),
                style=draw(st.sampled_from(["normal", "ties", "extreme"])),
                layout=draw(st.sampled_from(["c", "slice", "transpose"])),
                path=draw(st.sampled_from(["serial", "parallel"])), seed=draw(st.integers(0, 2**31 - 1)))


@SETTINGS
@given(global_cases())
def test_global_pooling_is_numpys_bit_for_bit(case):
    rng = np.random.default_rng(case["seed"])
    dt, shape = case["dtype"], case["shape"]
    x = make(rng, shape, dt, case["style"])
    x_in = layout(x, case["layout"])
    kept = x_in.copy()
    dy = make(rng, (shape[0], shape[3]), dt, "normal")
    with pool_path(case["path"]), np.errstate(all="ignore"):
        bitwise(nb.global_avgpool2d_forward(x_in), ref.global_avgpool2d_forward(x), "global avg forward")
        bitwise(nb.global_avgpool2d_backward(dy, shape), ref.global_avgpool2d_backward(dy, shape),
                "global avg backward")
        y = nb.global_maxpool2d_forward(x_in)
        y_r = ref.global_maxpool2d_forward(x)
        assert np.array_equal(np.isnan(y), np.isnan(y_r)) and np.array_equal(y, y_r, equal_nan=True)
        bitwise(nb.global_maxpool2d_backward(dy, x_in, y_r), ref.global_maxpool2d_backward(dy, x, y_r),
                "global max backward")
    assert np.array_equal(x_in, kept, equal_nan=True)


def test_global_max_gradient_shares_ties_and_nan_channels_are_nan():
    x = np.array([[1, 3], [3, 2]], np.float32).reshape(1, 2, 2, 1)
    x = np.concatenate([x, np.full_like(x, np.nan)], axis=3)
    y = nb.global_maxpool2d_forward(x)
    assert y[0, 0] == 3 and np.isnan(y[0, 1])
    with np.errstate(invalid="ignore"):
        dx = nb.global_maxpool2d_backward(np.ones((1, 2), np.float32), x, y)
    assert dx[0, :, :, 0].tolist() == [[0, 0.5], [0.5, 0]] and np.isnan(dx[..., 1]).all()


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("pads", [(0, 0, 0, 0), (1, 1, 1, 1), (2, 0, 0, 3), (0, 4, 1, 0)])
@pytest.mark.parametrize("shape", [(3, 5, 4, 1), (2, 3, 7, 6), (1, 1, 1, 2)])
def test_zero_padding_is_numpys_bit_for_bit(dt, pads, shape):
    rng = np.random.default_rng(sum(shape) + sum(pads))
    x = make(rng, shape, dt, "extreme")
    for path in ("serial", "parallel"):
        with pool_path(path):
            for how in ("c", "slice", "transpose"):
                x_in = layout(x, how)
                y = nb.zeropad2d_forward(x_in, pads)
                bitwise(y, ref.zeropad2d_forward(x, pads), "zero padding")
                dx = nb.zeropad2d_backward(layout(y, how), pads)
                bitwise(dx, ref.zeropad2d_backward(y, pads), "crop")
                assert not np.shares_memory(dx, y)


@pytest.mark.parametrize("dt", DTYPES)
def test_both_paths_and_any_thread_count_give_the_same_bits_and_stay_in_bounds(dt):
    """Realistic shapes on the serial and the parallel kernels, with 1 and 2 threads; inputs in
    NaN-margined buffers (a read outside would leak NaN into the results, which are bitwise numpy's)."""
    rng = np.random.default_rng(5)
    xc = Canary.holding(make(rng, (9, 14, 13, 6), dt, "normal"))
    gc = Canary.holding(make(rng, (9, 7, 7, 16), dt, "ties"))
    (_, _), same = window_output((14, 13), (3, 3), (2, 2), "same")

    def run():
        x, g = xc.a, gc.a
        out = []
        for pads in ((0, 0, 0, 0), same):
            y = nb.avgpool2d_forward(x, (3, 3), (2, 2), pads)
            out += [y, nb.avgpool2d_backward(y, x.shape, (3, 3), (2, 2), pads)]
        for pads in ((0, 0, 0, 0), (0, 1, 0, 1)):  # disjoint windows (2x2/2): C = 6 one pass, C = 16 the general gather
            for a in (x, g):
                y = nb.avgpool2d_forward(a, (2, 2), (2, 2), pads)
                out += [y, nb.avgpool2d_backward(y, a.shape, (2, 2), (2, 2), pads)]
        gy = nb.global_maxpool2d_forward(g)
        dy = g[:, 0, 0, :] * 2
        out += [nb.global_avgpool2d_forward(g), nb.global_avgpool2d_backward(dy, g.shape), gy,
                nb.global_maxpool2d_backward(dy, g, gy)]
        p = nb.zeropad2d_forward(x, (1, 2, 3, 0))
        return out + [p, nb.zeropad2d_backward(p, (1, 2, 3, 0))]

    want = []
    for pads in ((0, 0, 0, 0), same):
        y = ref.avgpool2d_forward(xc.a, (3, 3), (2, 2), pads)
        want += [y, ref.avgpool2d_backward(y, xc.a.shape, (3, 3), (2, 2), pads)]
    for pads in ((0, 0, 0, 0), (0, 1, 0, 1)):
        for a in (xc.a, gc.a):
            y = ref.avgpool2d_forward(a, (2, 2), (2, 2), pads)
            want += [y, ref.avgpool2d_backward(y, a.shape, (2, 2), (2, 2), pads)]
    results = []
    for path in ("serial", "parallel"):
        with pool_path(path):
            results.append(run())
            results.append(one_thread(run))
    for got in results:
        for a, b in zip(got, results[0]):
            assert a.tobytes() == b.tobytes()
        for a, b in zip(got, want):
            bitwise(a, b, "avgpool")
    assert xc.intact() and gc.intact()


@fanout_threshold(SHIPPED_FANOUT_MIN_FLOPS)
def test_the_shipped_thresholds_on_preset_shapes():
    """LeNet-5's average pooling (100, 28, 28, 6) and a global pooling input (100, 7, 7, 64) with
    the shipped fan-out threshold and work estimates: numpy's bits."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((100, 28, 28, 6)).astype(np.float32)
    y = nb.avgpool2d_forward(x, (2, 2), (2, 2), (0, 0, 0, 0))
    bitwise(y, ref.avgpool2d_forward(x, (2, 2), (2, 2), (0, 0, 0, 0)), "avgpool")
    bitwise(nb.avgpool2d_backward(y, x.shape, (2, 2), (2, 2), (0, 0, 0, 0)),
            ref.avgpool2d_backward(y, x.shape, (2, 2), (2, 2), (0, 0, 0, 0)), "avgpool backward")
    g = rng.standard_normal((100, 7, 7, 64)).astype(np.float32)
    bitwise(nb.global_avgpool2d_forward(g), ref.global_avgpool2d_forward(g), "global avg")
    bitwise(nb.global_maxpool2d_forward(g), ref.global_maxpool2d_forward(g), "global max")


def test_other_dtypes_empty_inputs_and_bad_shapes():
    x16 = np.arange(2 * 4 * 4 * 3, dtype=np.float16).reshape(2, 4, 4, 3)
    np.testing.assert_array_equal(nb.avgpool2d_forward(x16, (2, 2), (2, 2), (0, 0, 0, 0)),
                                  ref.avgpool2d_forward(x16, (2, 2), (2, 2), (0, 0, 0, 0)))
    np.testing.assert_array_equal(nb.global_avgpool2d_forward(x16), ref.global_avgpool2d_forward(x16))
    np.testing.assert_array_equal(nb.zeropad2d_forward(x16, (1, 1, 1, 1)), ref.zeropad2d_forward(x16, (1, 1, 1, 1)))
    for dt in DTYPES:
        e = np.zeros((0, 4, 4, 3), dt)
        assert nb.avgpool2d_forward(e, (2, 2), (2, 2), (0, 0, 0, 0)).shape == (0, 2, 2, 3)
        assert nb.global_maxpool2d_forward(e).shape == (0, 3)
        assert nb.zeropad2d_forward(e, (1, 1, 1, 1)).shape == (0, 6, 6, 3)
        assert nb.zeropad2d_backward(np.zeros((0, 6, 6, 3), dt), (1, 1, 1, 1)).shape == (0, 4, 4, 3)
    with pytest.raises(ValueError, match="avgpool2d_backward"):
        nb.avgpool2d_backward(np.zeros((1, 3, 3, 1)), (1, 4, 4, 1), (2, 2), (2, 2), (0, 0, 0, 0))
    with pytest.raises(ValueError, match="global_maxpool2d_backward"):
        nb.global_maxpool2d_backward(np.zeros((2, 3)), np.zeros((2, 4, 4, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="zeropad2d_backward"):
        nb.zeropad2d_backward(np.zeros((1, 2, 2, 1)), (2, 1, 0, 0))
