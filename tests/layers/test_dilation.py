"""Dilated convolutions (Conv2D's ``dilation_rate``): the im2col kernels against loop oracles over
an edge grid, the output-size/padding arithmetic, gradients, and Keras's rules for the option.

Tolerances: ORACLE_RTOL (1e-12) and GRADCHECK_RTOL (1e-6) from tests/helpers.py, for the reasons
given there (float64, the same sums in another order; finite differences' error model).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from minicnn import gradcheck
from minicnn.errors import KerasConfigError
from minicnn.kernels import naive
from minicnn.kernels import numpy_backend as npb
from minicnn.kernels.shapes import effective_size, window_output
from minicnn.layers import Conv2D
from tests.helpers import GRADCHECK_RTOL, ORACLE_RTOL, rel_err


def naive_conv2d_backward(dy, x, kernel, strides, pads, dilation):
    """dx, dkernel, dbias by loops over every (output cell, kernel tap, channel)."""
    n, h, w, _ = x.shape
    kh, kw, _, f = kernel.shape
    dx, dk = np.zeros_like(x), np.zeros_like(kernel)
    for b, i, j, o in itertools.product(range(n), range(dy.shape[1]), range(dy.shape[2]), range(f)):
        for di, dj in itertools.product(range(kh), range(kw)):
            r = i * strides[0] + di * dilation[0] - pads[0]
            s = j * strides[1] + dj * dilation[1] - pads[2]
            if 0 <= r < h and 0 <= s < w:
                dx[b, r, s, :] += dy[b, i, j, o] * kernel[di, dj, :, o]
                dk[di, dj, :, o] += dy[b, i, j, o] * x[b, r, s, :]
    return dx, dk, dy.sum(axis=(0, 1, 2))


# (batch, H, W, C, KH, KW, F, strides, padding, dilation). The kernels also take strides > 1 with
# dilation > 1 (Conv2D refuses it, as Keras; the depthwise layers use it).
GRID = [
    (2, 7, 8, 2, 3, 3, 3, (1, 1), "valid", (2, 2)),
    (1, 7, 8, 2, 3, 3, 2, (1, 1), "same", (2, 2)),     # odd kernel, 'same': pad (dk - 1) / 2 each side
    (2, 6, 7, 3, 2, 2, 2, (1, 1), "same", (2, 2)),     # even kernel: span 3, padding even again
    (1, 8, 7, 2, 2, 3, 3, (1, 1), "same", (3, 2)),     # span 4 x 5: the odd pad row goes bottom
    (1, 9, 6, 1, 4, 2, 2, (1, 1), "valid", (2, 3)),    # span 7 x 4
    (2, 5, 5, 2, 3, 3, 2, (1, 1), "valid", (2, 2)),    # span == input: a 1x1 output
    (1, 4, 5, 2, 3, 2, 2, (1, 1), "same", (3, 4)),     # span larger than the input ('same' pads it)
    (1, 5, 6, 2, 1, 1, 3, (1, 1), "valid", (3, 3)),    # 1x1 kernel: dilation changes nothing
    (2, 9, 8, 2, 3, 2, 2, (2, 3), "same", (2, 2)),     # kernel level only: strided and dilated
    (1, 9, 9, 2, 2, 2, 2, (2, 2), "valid", (3, 1)),
]


def make_case(case, seed):
    n, h, w, c, kh, kw, f, strides, padding, dilation = case
    rng = np.random.default_rng(seed)
    (oh, ow), pads = window_output((h, w), (kh, kw), strides, padding, dilation)
    return (rng.standard_normal((n, h, w, c)), rng.standard_normal((kh, kw, c, f)), rng.standard_normal(f),
            rng.standard_normal((n, oh, ow, f)), strides, pads, dilation)


def case_id(c):
    return f"{c[1]}x{c[2]}x{c[3]}-k{c[4]}x{c[5]}-s{c[7][0]}{c[7][1]}-{c[8]}-d{c[9][0]}{c[9][1]}"


@pytest.mark.parametrize("case", GRID, ids=case_id)
def test_dilated_conv_kernels_match_loops(case):
    x, k, b, dy, strides, pads, dilation = make_case(case, seed=len(str(case)))
    x_before, dy_before = x.copy(), dy.copy()
    cache = {}
    y = npb.conv2d_forward(x, k, b, strides, pads, cache=cache, dilation=dilation)
    want = naive.conv2d(x, k, b, strides, pads, dilation)
    assert y.shape == want.shape == dy.shape
    assert rel_err(y, want) <= ORACLE_RTOL
    relu = npb.conv2d_forward(x, k, b, strides, pads, relu=True, dilation=dilation)
    assert rel_err(relu, np.maximum(want, 0)) <= ORACLE_RTOL
    grads = naive_conv2d_backward(dy, x, k, strides, pads, dilation)
    for got in (npb.conv2d_backward(dy, x, k, strides, pads, cache=cache, dilation=dilation),
                npb.conv2d_backward(dy, x, k, strides, pads, dilation=dilation)):
        for name, g, w in zip(("dx", "dkernel", "dbias"), got, grads):
            assert rel_err(g, w) <= ORACLE_RTOL, name
    assert np.array_equal(x, x_before) and np.array_equal(dy, dy_before)


def test_dilation_one_is_the_ordinary_convolution():
    x, k, b, _, strides, _, _ = make_case(GRID[1], seed=3)
    _, pads = window_output(x.shape[1:3], k.shape[:2], strides, "same")
    assert np.array_equal(npb.conv2d_forward(x, k, b, strides, pads, dilation=(1, 1)),
                          npb.conv2d_forward(x, k, b, strides, pads))


def test_dilated_im2col_and_col2im_are_adjoint():
    """<im2col(x), cols> == <x, col2im(cols)>: the backward scatters exactly where forward read."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 9, 8, 3))
    for ksize, strides, dilation, padding in [((3, 2), (1, 1), (2, 3), "same"), ((2, 3), (2, 1), (3, 2), "valid")]:
        out_hw, pads = window_output((9, 8), ksize, strides, padding, dilation)
        cols = npb.im2col(x, ksize, strides, pads, out_hw, dilation)
        c = rng.standard_normal(cols.shape)
        back = npb.col2im(c, x.shape, ksize, strides, pads, out_hw, dilation)
        assert abs((cols * c).sum() - (x * back).sum()) <= 1e-12 * np.abs(cols * c).sum()


@pytest.mark.parametrize("n, k, s, d, padding", [
    (n, k, s, d, p) for n in (1, 4, 7, 10) for k in (1, 2, 3) for s in (1, 2, 3) for d in (1, 2, 3)
    for p in ("valid", "same")])
def test_output_sizes_and_pads_use_the_dilated_span(n, k, s, d, padding):
    """Keras's compute_conv_output_shape (keras/src/ops/operation_utils.py) and TF's 'same'
    padding (keras/src/backend/tensorflow/nn.py, _pad_same_spatial_channels_last), written out."""
    (out, _), (top, bottom, _, _) = window_output((n, 5), (k, 1), (s, 1), padding, (d, 1))
    span = effective_size(k, d)
    assert span == d * (k - 1) + 1
    if padding == "valid":
        assert out == max((n - span) // s + 1, 0) and top == bottom == 0
    else:
        assert out == -(-n // s)
        total = max((out - 1) * s + span - n, 0)
        assert (top, bottom) == (total // 2, total - total // 2)


LAYER_CASES = [  # (input shape, filters, kernel, padding, dilation): stride 1, as Keras requires
    ((7, 8, 2), 3, (3, 3), "valid", (2, 2)),
    ((6, 7, 2), 2, (2, 3), "same", (2, 2)),
    ((8, 6, 1), 2, (3, 2), "same", (3, 2)),
    ((5, 5, 2), 2, (3, 3), "valid", (2, 2)),   # a 1x1 output
]


@pytest.mark.parametrize("case", LAYER_CASES, ids=str)
@pytest.mark.parametrize("activation", [None, "relu"])
def test_dilated_conv2d_layer_forward_and_gradients(backend, case, activation, rng):
    shape, f, k, padding, d = case
    layer = Conv2D(f, k, padding=padding, dilation_rate=d, activation=activation, name="conv2d")
    layer.build(shape, np.float64, np.random.default_rng(0))
    layer.params["bias"][...] = rng.standard_normal(f)
    x = rng.standard_normal((2, *shape))
    z = naive.conv2d(x, layer.params["kernel"], layer.params["bias"], (1, 1), layer.pads, d)
    assert rel_err(layer.forward(x), z if activation is None else np.maximum(z, 0)) <= ORACLE_RTOL
    errs = gradcheck.check_layer(layer, x, seed=2)
    assert set(errs) == {"input", "kernel", "bias"} and max(errs.values()) <= GRADCHECK_RTOL, errs


def test_strides_with_dilation_are_refused_as_keras_refuses_them():
    for strides, dilation in [(2, 2), ((1, 2), (2, 1)), ((2, 1), 3)]:
        with pytest.raises(ValueError, match=r"`strides > 1` not supported in conjunction with `dilation_rate > 1`"):
            Conv2D(2, 3, strides=strides, dilation_rate=dilation)
    Conv2D(2, 3, strides=2, dilation_rate=1), Conv2D(2, 3, strides=1, dilation_rate=2)  # each alone is fine
    with pytest.raises(ValueError, match="dilation_rate must be positive"):
        Conv2D(2, 3, dilation_rate=0)


def test_keras_config_carries_the_dilation():
    layer = Conv2D(2, 3, padding="same", dilation_rate=(2, 3), name="c")
    cfg = layer.keras_config()
    assert cfg["dilation_rate"] == [2, 3] and cfg["groups"] == 1
    back = Conv2D.from_keras_config({"name": "c", **cfg}, "layer 'c'")
    assert back.dilation_rate == (2, 3) and back.get_config() == layer.get_config()
    assert Conv2D.from_keras_config({**cfg, "dilation_rate": 2}, "w").dilation_rate == (2, 2)
    with pytest.raises(ValueError, match="strides > 1"):
        Conv2D.from_keras_config({**cfg, "strides": [2, 2]}, "w")
    with pytest.raises(KerasConfigError, match="groups=2"):
        Conv2D.from_keras_config({**cfg, "groups": 2}, "w")


def test_a_dilated_kernel_larger_than_its_input_is_named():
    layer = Conv2D(2, 3, dilation_rate=3, name="conv2d")
    with pytest.raises(ValueError, match=r"kernel \(3, 3\) dilated by \(3, 3\) \(spanning \(7, 7\)\) is larger "
                                         r"than its input \(6, 6\)"):
        layer.build((6, 6, 1))
    assert Conv2D(2, 3, dilation_rate=3).compute_output_shape((7, 7, 1)) == (1, 1, 2)
    assert Conv2D(2, 3, dilation_rate=3, padding="same").compute_output_shape((6, 6, 1)) == (6, 6, 2)


def test_flops_and_description():
    layer = Conv2D(4, 3, dilation_rate=2, name="c")
    layer.build((9, 9, 2), np.float64)
    assert layer.output_shape == (5, 5, 4)
    assert layer.flops() == 2 * 5 * 5 * 4 * 3 * 3 * 2  # dilation moves the taps, not their count
    assert layer.describe() == "4 filters 3x3 dilation 2x2"
    assert Conv2D(4, 3).describe() == "4 filters 3x3"


KERAS_GRID = [  # (input shape, kernel, padding, dilation) forward against Keras 3 / TF
    ((7, 8, 2), (3, 3), "valid", (2, 2)), ((7, 8, 2), (3, 3), "same", (2, 2)),
    ((6, 7, 2), (2, 2), "same", (2, 2)), ((8, 7, 2), (2, 3), "same", (3, 2)),
    ((9, 6, 1), (4, 2), "valid", (2, 3)), ((4, 5, 2), (3, 2), "same", (3, 4)),
]


@pytest.mark.tf
def test_dilated_conv2d_matches_keras_over_the_grid():
    tf = pytest.importorskip("tensorflow")
    convert = pytest.importorskip("reference.convert")
    rng = np.random.default_rng(9)
    for shape, k, padding, d in KERAS_GRID:
        layer = Conv2D(3, k, padding=padding, dilation_rate=d, name="conv2d")
        layer.build(shape, np.float64, rng)
        layer.params["bias"][...] = rng.standard_normal(3)
        klayer = convert.keras_layer(layer, "float64", shape)
        klayer.build((None, *shape))
        klayer.set_weights(layer.get_weights())
        x = rng.standard_normal((2, *shape))
        want = klayer(tf.constant(x)).numpy()
        assert want.shape[1:] == layer.output_shape, (shape, k, padding, d)
        assert rel_err(layer.forward(x), want) <= 1e-10, (shape, k, padding, d)  # KERAS_RTOL of the contract
