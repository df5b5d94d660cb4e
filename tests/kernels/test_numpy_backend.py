"""The numpy reference backend against the loop oracles of ``minicnn.kernels.naive``, in float64.

The conv backward oracle is written here as textbook loops (``naive`` has forward oracles only)
and is itself checked against finite differences, which are exact for a linear map.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from minicnn.kernels import naive
from minicnn.kernels import numpy_backend as npb
from minicnn.kernels.shapes import window_output

RTOL = 1e-12


def close(got, want, what=""):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    scale = max(np.abs(want).max(), 1e-300) if want.size else 1.0
    err = np.abs(got - want).max() / scale if want.size else 0.0
    assert err <= RTOL, f"{what}: relative error {err:.3g}"


def naive_conv2d_backward(dy, x, kernel, strides, pads):
    """dx, dkernel, dbias by explicit loops over every (output cell, kernel tap, channel)."""
    n, h, w, c = x.shape
    kh, kw, _, f = kernel.shape
    _, oh, ow, _ = dy.shape
    dx = np.zeros_like(x)
    dk = np.zeros_like(kernel)
    for b, i, j, o in itertools.product(range(n), range(oh), range(ow), range(f)):
        g = dy[b, i, j, o]
        for di, dj in itertools.product(range(kh), range(kw)):
            r, s = i * strides[0] + di - pads[0], j * strides[1] + dj - pads[2]
            if 0 <= r < h and 0 <= s < w:
                for ch in range(c):
                    dx[b, r, s, ch] += g * kernel[di, dj, ch, o]
                    dk[di, dj, ch, o] += g * x[b, r, s, ch]
    return dx, dk, dy.sum(axis=(0, 1, 2))


# (batch, H, W, C, KH, KW, F, strides, padding)
GRID = [
    (2, 6, 7, 3, 3, 3, 4, (1, 1), "valid"),
    (2, 7, 6, 2, 3, 3, 3, (2, 2), "valid"),
    (1, 6, 6, 2, 3, 3, 2, (1, 1), "same"),     # odd kernel, 'same'
    (2, 6, 5, 2, 2, 2, 3, (1, 1), "same"),     # even kernel: the extra pad goes bottom/right
    (1, 7, 7, 2, 4, 4, 2, (2, 2), "same"),     # even kernel, stride 2
    (1, 5, 6, 3, 3, 2, 2, (2, 3), "same"),
    (3, 4, 4, 5, 1, 1, 3, (1, 1), "valid"),    # 1x1
    (1, 5, 5, 2, 1, 1, 2, (2, 2), "same"),     # 1x1, stride 2
    (2, 5, 4, 1, 5, 4, 3, (1, 1), "valid"),    # kernel == input
]


def make_case(case, seed):
    n, h, w, c, kh, kw, f, strides, padding = case
    rng = np.random.default_rng(seed)
    (oh, ow), pads = window_output((h, w), (kh, kw), strides, padding)
    x = rng.standard_normal((n, h, w, c))
    k = rng.standard_normal((kh, kw, c, f))
    b = rng.standard_normal(f)
    dy = rng.standard_normal((n, oh, ow, f))
    return x, k, b, dy, strides, pads


@pytest.mark.parametrize("case", GRID, ids=[f"{c[:4]}-{c[4]}x{c[5]}-s{c[7]}-{c[8]}" for c in GRID])
@pytest.mark.parametrize("contiguous", [True, False])
def test_conv2d_forward_and_backward_match_loops(case, contiguous):
    x, k, b, dy, strides, pads = make_case(case, seed=len(str(case)))
    if not contiguous:  # the same values, read through strided views
        xw = np.zeros(x.shape[:2] + (2 * x.shape[2],) + x.shape[3:])
        xw[:, :, ::2] = x
        x = xw[:, :, ::2]
        dy = np.asfortranarray(dy)
    x_before, dy_before = x.copy(), dy.copy()
    cache = {}
    y = npb.conv2d_forward(x, k, b, strides, pads, cache=cache)
    close(y, naive.conv2d(x, k, b, strides, pads), "forward")
    close(npb.conv2d_forward(x, k, None, strides, pads), naive.conv2d(x, k, None, strides, pads), "no bias")
    yr = npb.conv2d_forward(x, k, b, strides, pads, relu=True)
    close(yr, np.maximum(naive.conv2d(x, k, b, strides, pads), 0), "relu")

    want = naive_conv2d_backward(dy, x, k, strides, pads)
    for got in (npb.conv2d_backward(dy, x, k, strides, pads, cache=cache),
                npb.conv2d_backward(dy, x, k, strides, pads)):
        for name, g, w in zip(("dx", "dkernel", "dbias"), got, want):
            close(g, w, name)
    dx, dk, db = npb.conv2d_backward(dy, x, k, strides, pads, need_dx=False)
    assert dx is None
    close(dk, want[1], "dkernel without dx")
    assert np.array_equal(x, x_before) and np.array_equal(dy, dy_before)
    assert y.dtype == np.float64


def test_conv_backward_oracle_matches_finite_differences():
    """L(x, k) = <conv(x, k), dy> is linear in x and in k, so central differences are exact."""
    x, k, b, dy, strides, pads = make_case(GRID[4], seed=1)

    def loss(xx, kk):
        return float((naive.conv2d(xx, kk, None, strides, pads) * dy).sum())

    dx, dk, _ = naive_conv2d_backward(dy, x, k, strides, pads)
    for idx in [(0, 0, 0, 0), (0, 3, 2, 1), (0, 6, 6, 1)]:
        e = np.zeros_like(x)
        e[idx] = 1.0
        assert abs((loss(x + e, k) - loss(x - e, k)) / 2 - dx[idx]) < 1e-9
    for idx in [(0, 0, 0, 0), (3, 1, 1, 1), (2, 3, 0, 1)]:
        e = np.zeros_like(k)
        e[idx] = 1.0
        assert abs((loss(x, k + e) - loss(x, k - e)) / 2 - dk[idx]) < 1e-9


def test_float32_in_float32_out():
    x, k, b, dy, strides, pads = make_case(GRID[0], seed=2)
    f = np.float32
    y = npb.conv2d_forward(x.astype(f), k.astype(f), b.astype(f), strides, pads)
    assert y.dtype == f
    assert all(g.dtype == f for g in npb.conv2d_backward(dy.astype(f), x.astype(f), k.astype(f), strides, pads))


POOLS = [((2, 2), (2, 2), "valid"), ((3, 3), (2, 2), "valid"), ((2, 2), (1, 1), "same"),
         ((3, 3), (2, 2), "same"), ((2, 3), (1, 2), "same"), ((1, 1), (1, 1), "valid")]


@pytest.mark.parametrize("pool,strides,padding", POOLS)
@pytest.mark.parametrize("values", ["normal", "ties"])
def test_maxpool_matches_loops(pool, strides, padding, values):
    rng = np.random.default_rng(7)
    shape = (2, 7, 6, 3)
    x = rng.standard_normal(shape) if values == "normal" else rng.integers(0, 3, shape).astype(np.float64)
    (oh, ow), pads = window_output(shape[1:3], pool, strides, padding)
    y, arg = npb.maxpool2d_forward(x, pool, strides, pads)
    y_n, arg_n = naive.maxpool2d(x, pool, strides, pads)
    np.testing.assert_array_equal(arg, arg_n)
    np.testing.assert_array_equal(y, y_n)
    assert arg.dtype == np.int32 and y.shape == (2, oh, ow, 3)
    dy = rng.standard_normal(y.shape)
    dy_before = dy.copy()
    dx = npb.maxpool2d_backward(dy, arg, shape, pool, strides, pads)
    close(dx, naive.maxpool2d_backward(dy, arg_n, shape, pool, strides, pads), "pool backward")
    assert np.array_equal(dy, dy_before)


def test_maxpool_tie_routes_to_first_max_in_row_major_order():
    x = np.array([[1.0, 2.0], [2.0, 2.0]]).reshape(1, 2, 2, 1)
    y, arg = npb.maxpool2d_forward(x, (2, 2), (2, 2), (0, 0, 0, 0))
    assert y.item() == 2.0 and arg.item() == 1
    dx = npb.maxpool2d_backward(np.array([[[[5.0]]]]), arg, x.shape, (2, 2), (2, 2), (0, 0, 0, 0))
    np.testing.assert_array_equal(dx[0, :, :, 0], [[0.0, 5.0], [0.0, 0.0]])


def test_relu_gradient_at_zero_is_zero_and_dy_is_untouched():
    x = np.array([-1.0, 0.0, 2.0, -0.0])
    y = npb.relu_forward(x)
    np.testing.assert_array_equal(y, [0.0, 0.0, 2.0, 0.0])
    dy = np.array([3.0, 4.0, 5.0, 6.0])
    dy.flags.writeable = False  # any write would raise
    np.testing.assert_array_equal(npb.relu_backward(dy, y), [0.0, 0.0, 5.0, 0.0])


def test_backward_functions_never_write_into_their_inputs():
    x, k, b, dy, strides, pads = make_case(GRID[2], seed=3)
    for a in (x, k, dy):
        a.flags.writeable = False
    cache = {}
    npb.conv2d_forward(x, k, b, strides, pads, cache=cache)
    npb.conv2d_backward(dy, x, k, strides, pads, cache=cache)
    y, arg = npb.maxpool2d_forward(x, (2, 2), (2, 2), (0, 0, 0, 0))
    for a in (y, arg):
        a.flags.writeable = False
    npb.maxpool2d_backward(y, arg, x.shape, (2, 2), (2, 2), (0, 0, 0, 0))
    xd, kd, dyd = x.reshape(1, -1), np.ones((x.size, 3)), np.ones((1, 3))
    for a in (xd, kd, dyd):
        a.flags.writeable = False
    npb.dense_backward(dyd, xd, kd)


@pytest.mark.parametrize("n,i,o", [(1, 1, 1), (3, 7, 5), (4, 20, 2)])
def test_dense_matches_loops(n, i, o):
    rng = np.random.default_rng(n * 100 + i)
    x, k, b = rng.standard_normal((n, i)), rng.standard_normal((i, o)), rng.standard_normal(o)
    close(npb.dense_forward(x, k, b), naive.dense(x, k, b), "dense")
    close(npb.dense_forward(x, k, b, relu=True), np.maximum(naive.dense(x, k, b), 0), "dense relu")
    dy = rng.standard_normal((n, o))
    dx, dk, db = npb.dense_backward(dy, x, k)
    close(dx, naive.dense(dy, k.T, None), "dense dx")
    close(dk, naive.dense(x.T, dy, None), "dense dkernel")
    close(db, dy.sum(axis=0), "dense dbias")
    assert npb.dense_backward(dy, x, k, need_dx=False)[0] is None
