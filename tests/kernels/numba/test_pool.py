"""Max pooling of the numba backend (minicnn.kernels.numba.pool): exactly the numpy backend's
maxima, argmax and gradients (ties, NaN, padding)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from minicnn.kernels import numpy_backend as ref
from minicnn.kernels.shapes import window_output

nb = pytest.importorskip("minicnn.kernels.numba_backend")

from tests.kernels.numba.kernelcheck import SETTINGS, layout  # noqa: E402

pytestmark = pytest.mark.usefixtures("numba_kernels_even_for_small_inputs")


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
    assume(min(case["out"]) >= 1)  # else the window does not fit: the layer rejects the shape first
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
def test_maxpool_empty_batch(dt):
    x = np.zeros((0, 5, 5, 16), dt)
    p, a = nb.maxpool2d_forward(x, (2, 2), (2, 2), (0, 0, 0, 0))
    assert p.shape == (0, 2, 2, 16)
    assert nb.maxpool2d_backward(p, a, x.shape, (2, 2), (2, 2), (0, 0, 0, 0)).shape == x.shape
