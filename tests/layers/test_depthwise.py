"""DepthwiseConv2D and SeparableConv2D: the depthwise kernels against loop oracles over an edge
grid, the layers against the oracles and finite differences, and their Keras options.

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
from minicnn.kernels.shapes import window_output
from minicnn.layers import Conv2D, DepthwiseConv2D, SeparableConv2D
from tests.helpers import GRADCHECK_RTOL, ORACLE_RTOL, rel_err


def naive_depthwise_backward(dy, x, kernel, strides, pads, dilation):
    """dx, dkernel, dbias of the depthwise convolution by loops (channel ch * M + m sees ch)."""
    n, h, w, c = x.shape
    kh, kw, _, mult = kernel.shape
    dx, dk = np.zeros_like(x), np.zeros_like(kernel)
    for b, i, j, ch, m in itertools.product(range(n), range(dy.shape[1]), range(dy.shape[2]), range(c), range(mult)):
        g = dy[b, i, j, ch * mult + m]
        for di, dj in itertools.product(range(kh), range(kw)):
            r = i * strides[0] + di * dilation[0] - pads[0]
            s = j * strides[1] + dj * dilation[1] - pads[2]
            if 0 <= r < h and 0 <= s < w:
                dx[b, r, s, ch] += g * kernel[di, dj, ch, m]
                dk[di, dj, ch, m] += g * x[b, r, s, ch]
    return dx, dk, dy.sum(axis=(0, 1, 2))


# (batch, H, W, C, KH, KW, M, strides, padding, dilation): the edge grid
GRID = [
    (2, 6, 7, 3, 3, 3, 1, (1, 1), "valid", (1, 1)),
    (1, 6, 6, 2, 3, 3, 2, (1, 1), "same", (1, 1)),     # odd kernel, 'same', multiplier 2
    (2, 6, 5, 2, 2, 2, 3, (1, 1), "same", (1, 1)),     # even kernel: the extra pad goes bottom/right
    (1, 7, 6, 2, 3, 3, 2, (2, 2), "same", (1, 1)),     # stride 2 'same' (MobileNet's downsampling)
    (1, 7, 7, 3, 4, 4, 1, (2, 2), "same", (1, 1)),     # even kernel, stride 2
    (2, 8, 7, 2, 3, 2, 2, (2, 3), "valid", (1, 1)),
    (1, 7, 8, 2, 3, 3, 1, (1, 1), "same", (2, 2)),     # dilated
    (1, 9, 8, 2, 2, 3, 2, (2, 2), "same", (2, 2)),     # strided and dilated (Keras allows it here)
    (2, 9, 9, 1, 3, 2, 2, (3, 1), "valid", (2, 3)),
    (2, 5, 4, 2, 5, 4, 2, (1, 1), "valid", (1, 1)),    # kernel == input: a 1x1 output
    (3, 4, 4, 3, 1, 1, 2, (1, 1), "valid", (1, 1)),    # 1x1: a per-channel scale
    (1, 3, 4, 2, 3, 3, 1, (2, 2), "same", (1, 1)),     # input smaller than stride * output
]


def make_case(case, seed):
    n, h, w, c, kh, kw, m, strides, padding, dilation = case
    rng = np.random.default_rng(seed)
    (oh, ow), pads = window_output((h, w), (kh, kw), strides, padding, dilation)
    return (rng.standard_normal((n, h, w, c)), rng.standard_normal((kh, kw, c, m)), rng.standard_normal(c * m),
            rng.standard_normal((n, oh, ow, c * m)), strides, pads, dilation)


def case_id(c):
    return f"{c[1]}x{c[2]}x{c[3]}-k{c[4]}x{c[5]}-m{c[6]}-s{c[7][0]}{c[7][1]}-{c[8]}-d{c[9][0]}{c[9][1]}"


@pytest.mark.parametrize("case", GRID, ids=case_id)
@pytest.mark.parametrize("contiguous", [True, False])
def test_depthwise_kernels_match_loops(case, contiguous):
    x, k, b, dy, strides, pads, dilation = make_case(case, seed=len(str(case)))
    if not contiguous:  # the same values, read through strided views
        xw = np.zeros(x.shape[:2] + (2 * x.shape[2],) + x.shape[3:])
        xw[:, :, ::2] = x
        x = xw[:, :, ::2]
        dy = np.asfortranarray(dy)
    x_before, dy_before = x.copy(), dy.copy()
    cache = {}
    y = npb.depthwise_conv2d_forward(x, k, b, strides, pads, cache=cache, dilation=dilation)
    want = naive.depthwise_conv2d(x, k, b, strides, pads, dilation)
    assert y.shape == want.shape == dy.shape
    assert rel_err(y, want) <= ORACLE_RTOL
    assert rel_err(npb.depthwise_conv2d_forward(x, k, None, strides, pads, dilation=dilation),
                   naive.depthwise_conv2d(x, k, None, strides, pads, dilation)) <= ORACLE_RTOL
    relu = npb.depthwise_conv2d_forward(x, k, b, strides, pads, relu=True, dilation=dilation)
    assert rel_err(relu, np.maximum(want, 0)) <= ORACLE_RTOL

    grads = naive_depthwise_backward(dy, x, k, strides, pads, dilation)
    for got in (npb.depthwise_conv2d_backward(dy, x, k, strides, pads, cache=cache, dilation=dilation),
                npb.depthwise_conv2d_backward(dy, x, k, strides, pads, dilation=dilation)):
        for name, g, w in zip(("dx", "dkernel", "dbias"), got, grads):
            assert g.shape == w.shape and rel_err(g, w) <= ORACLE_RTOL, name
    dx, dk, _ = npb.depthwise_conv2d_backward(dy, x, k, strides, pads, need_dx=False, dilation=dilation)
    assert dx is None and rel_err(dk, grads[1]) <= ORACLE_RTOL
    # relu fused into the backward: dy masked where the relu output was not positive
    masked = naive_depthwise_backward(np.where(relu > 0, dy, 0), x, k, strides, pads, dilation)
    for g, w in zip(npb.depthwise_conv2d_backward(dy, x, k, strides, pads, relu_y=relu, dilation=dilation), masked):
        assert rel_err(g, w) <= ORACLE_RTOL
    assert np.array_equal(x, x_before) and np.array_equal(dy, dy_before)


def test_depthwise_backward_oracle_matches_finite_differences():
    """L(x, k) = <depthwise(x, k), dy> is linear in x and in k: central differences are exact."""
    x, k, _, dy, strides, pads, dilation = make_case(GRID[7], seed=1)

    def loss(xx, kk):
        return float((naive.depthwise_conv2d(xx, kk, None, strides, pads, dilation) * dy).sum())

    dx, dk, _ = naive_depthwise_backward(dy, x, k, strides, pads, dilation)
    for idx in [(0, 0, 0, 0), (0, 4, 3, 1), (0, 8, 7, 1), (0, 2, 6, 0)]:
        e = np.zeros_like(x)
        e[idx] = 1.0
        assert abs((loss(x + e, k) - loss(x - e, k)) / 2 - dx[idx]) < 1e-9  # rounding of O(10) sums
    for idx in [(0, 0, 0, 0), (1, 2, 1, 1), (0, 1, 0, 1)]:
        e = np.zeros_like(k)
        e[idx] = 1.0
        assert abs((loss(x, k + e) - loss(x, k - e)) / 2 - dk[idx]) < 1e-9


def test_output_channel_order_is_channel_times_multiplier_plus_m():
    """Keras/TF's order (verified against tf.nn.depthwise_conv2d: a 1x1 kernel with values
    10 c + m on ones gives [0, 1, 10, 11, 20, 21])."""
    k = np.array([[[[10.0 * c + m for m in range(2)] for c in range(3)]]])  # (1, 1, 3, 2)
    y = npb.depthwise_conv2d_forward(np.ones((1, 1, 1, 3)), k, None, (1, 1), (0, 0, 0, 0))
    np.testing.assert_array_equal(y.ravel(), [0, 1, 10, 11, 20, 21])


def test_float32_in_float32_out():
    x, k, b, dy, strides, pads, dilation = make_case(GRID[3], seed=2)
    f = np.float32
    y = npb.depthwise_conv2d_forward(x.astype(f), k.astype(f), b.astype(f), strides, pads, dilation=dilation)
    assert y.dtype == f
    got = npb.depthwise_conv2d_backward(dy.astype(f), x.astype(f), k.astype(f), strides, pads, dilation=dilation)
    assert all(g.dtype == f for g in got)


# ----------------------------------------------------------------------------- the layers
def built(layer, shape, rng):
    layer.name = layer.name or layer.kind
    layer.build(shape, np.float64, np.random.default_rng(0))
    for key in layer.params:  # non-zero biases, weights of both signs
        layer.params[key][...] = rng.uniform(-1, 1, layer.params[key].shape)
    return layer


LAYER_CASES = [  # (input shape, kernel, strides, padding, dilation, multiplier)
    ((6, 7, 3), (3, 3), (1, 1), "valid", (1, 1), 1),
    ((7, 6, 2), (3, 3), (2, 2), "same", (1, 1), 2),
    ((6, 6, 2), (2, 2), (1, 1), "same", (1, 1), 3),
    ((8, 9, 2), (3, 2), (1, 1), "same", (2, 3), 1),
    ((9, 8, 2), (2, 2), (2, 2), "same", (2, 2), 2),
    ((4, 4, 2), (4, 4), (1, 1), "valid", (1, 1), 2),
]


@pytest.mark.parametrize("case", LAYER_CASES, ids=str)
@pytest.mark.parametrize("activation", [None, "relu"])
def test_depthwise_layer_forward_and_gradients(backend, case, activation, rng):
    shape, k, s, padding, d, m = case
    layer = built(DepthwiseConv2D(k, strides=s, padding=padding, depth_multiplier=m, dilation_rate=d,
                                  activation=activation), shape, rng)
    x = rng.standard_normal((2, *shape))
    z = naive.depthwise_conv2d(x, layer.params["kernel"], layer.params["bias"], s, layer.pads, d)
    assert layer.output_shape == z.shape[1:] == (*z.shape[1:3], shape[-1] * m)
    assert rel_err(layer.forward(x), z if activation is None else np.maximum(z, 0)) <= ORACLE_RTOL
    errs = gradcheck.check_layer(layer, x, seed=2)
    assert set(errs) == {"input", "kernel", "bias"} and max(errs.values()) <= GRADCHECK_RTOL, errs


@pytest.mark.parametrize("case", LAYER_CASES, ids=str)
@pytest.mark.parametrize("activation", [None, "relu", "softmax"])
def test_separable_layer_forward_and_gradients(backend, case, activation, rng):
    shape, k, s, padding, d, m = case
    layer = built(SeparableConv2D(3, k, strides=s, padding=padding, dilation_rate=d, depth_multiplier=m,
                                  activation=activation), shape, rng)
    x = rng.standard_normal((2, *shape))
    z = naive.separable_conv2d(x, layer.params["depthwise_kernel"], layer.params["pointwise_kernel"],
                               layer.params["bias"], s, layer.pads, d)
    want = {None: z, "relu": np.maximum(z, 0),
            "softmax": naive.softmax(z.reshape(-1, 3)).reshape(z.shape)}[activation]
    assert rel_err(layer.forward(x), want) <= ORACLE_RTOL
    errs = gradcheck.check_layer(layer, x, seed=4)
    assert set(errs) == {"input", "depthwise_kernel", "pointwise_kernel", "bias"}
    assert max(errs.values()) <= GRADCHECK_RTOL, errs


def test_separable_is_a_depthwise_then_a_1x1_conv(backend, rng):
    """The same outputs and gradients as DepthwiseConv2D (no bias) -> Conv2D 1x1 with the weights."""
    shape = (7, 6, 2)
    sep = built(SeparableConv2D(4, 3, strides=2, padding="same", depth_multiplier=2, activation="relu"), shape, rng)
    dw = built(DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, use_bias=False), shape, rng)
    pw = built(Conv2D(4, 1, activation="relu"), dw.output_shape, rng)
    dw.params["kernel"][...] = sep.params["depthwise_kernel"]
    pw.params["kernel"][...], pw.params["bias"][...] = sep.params["pointwise_kernel"], sep.params["bias"]
    x = rng.standard_normal((3, *shape))
    y = sep.forward(x, training=True)
    assert rel_err(y, pw.forward(dw.forward(x, training=True), training=True)) <= ORACLE_RTOL
    dy = rng.standard_normal(y.shape)
    dx = sep.backward(dy)
    assert rel_err(dx, dw.backward(pw.backward(dy))) <= ORACLE_RTOL
    assert rel_err(sep.grads["depthwise_kernel"], dw.grads["kernel"]) <= ORACLE_RTOL
    assert rel_err(sep.grads["pointwise_kernel"], pw.grads["kernel"]) <= ORACLE_RTOL
    assert rel_err(sep.grads["bias"], pw.grads["bias"]) <= ORACLE_RTOL


def test_first_layer_skips_the_input_gradient(rng):
    for layer in (DepthwiseConv2D(3, depth_multiplier=2), SeparableConv2D(2, 3)):
        layer = built(layer, (5, 5, 2), rng)
        full = layer.flops(backward=True)
        layer.need_dx = False
        x = rng.standard_normal((2, 5, 5, 2))
        y = layer.forward(x, training=True)
        assert layer.backward(np.ones_like(y)) is None
        assert all(np.isfinite(g).all() for g in layer.grads.values())
        assert layer.flops(backward=True) < full


def test_weights_shapes_flops_and_description(rng):
    dw = built(DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2), (8, 8, 3), rng)
    assert dw.output_shape == (4, 4, 6) and dw.weight_shapes((8, 8, 3)) == {"kernel": (3, 3, 3, 2), "bias": (6,)}
    assert dw.flops() == 2 * 4 * 4 * 6 * 9 and dw.flops(backward=True) == 2 * dw.flops()
    assert dw.describe() == "depthwise 3x3 x2"
    sep = built(SeparableConv2D(5, 3, depth_multiplier=2, dilation_rate=2), (8, 8, 3), rng)
    assert sep.output_shape == (4, 4, 5)
    assert sep.weight_shapes((8, 8, 3)) == {"depthwise_kernel": (3, 3, 3, 2), "pointwise_kernel": (1, 1, 6, 5),
                                            "bias": (5,)}
    assert sep.count_params() == 3 * 3 * 3 * 2 + 6 * 5 + 5
    assert sep.flops() == 2 * (4 * 4 * 6 * 9 + 4 * 4 * 6 * 5)
    assert sep.describe() == "5 filters separable 3x3 x2 dilation 2x2"


def test_glorot_fans_count_the_multiplier_not_the_channels():
    """Keras's compute_fans on (KH, KW, C, M): fan_in = C KH KW, fan_out = M KH KW."""
    dw = DepthwiseConv2D(3, depth_multiplier=4, name="d")
    dw.build((6, 6, 8), np.float64, np.random.default_rng(1))
    limit = np.sqrt(6 / (8 * 9 + 4 * 9))
    assert np.abs(dw.params["kernel"]).max() <= limit < 1.05 * np.abs(dw.params["kernel"]).max()
    assert not dw.params["bias"].any()


@pytest.mark.parametrize("bad, match", [
    (lambda: DepthwiseConv2D(3, depth_multiplier=0), "depth_multiplier"),
    (lambda: DepthwiseConv2D((3, 0)), "kernel_size"),
    (lambda: DepthwiseConv2D(3, dilation_rate=(1, 0)), "dilation_rate"),
    (lambda: DepthwiseConv2D(3, padding="causal"), "padding"),
    (lambda: SeparableConv2D(0, 3), "filters"),
    (lambda: SeparableConv2D(2, 3, depth_multiplier=1.5), "depth_multiplier"),
    (lambda: SeparableConv2D(2, 3, pointwise_initializer="orthogonal"), "initializer"),
])
def test_bad_constructor_arguments(bad, match):
    with pytest.raises(ValueError, match=match):
        bad()


def test_a_kernel_larger_than_its_input_is_named(rng):
    with pytest.raises(ValueError, match=r"layer 'depthwise_conv2d'.*kernel \(3, 3\) dilated by \(2, 2\)"):
        built(DepthwiseConv2D(3, dilation_rate=2), (4, 4, 1), rng)
    with pytest.raises(ValueError, match=r"layer 'separable_conv2d'.*kernel \(5, 5\) is larger"):
        built(SeparableConv2D(2, 5), (4, 4, 1), rng)


# ----------------------------------------------------------------------------- Keras configs
def test_keras_configs_have_keras_keys():
    """The keys of Keras 3.15's get_config (base_depthwise_conv.py, base_separable_conv.py) minus
    name, trainable and dtype, in its order."""
    assert list(DepthwiseConv2D(3).keras_config()) == [
        "depth_multiplier", "kernel_size", "strides", "padding", "data_format", "dilation_rate", "activation",
        "use_bias", "depthwise_initializer", "bias_initializer", "depthwise_regularizer", "bias_regularizer",
        "activity_regularizer", "depthwise_constraint", "bias_constraint"]
    assert list(SeparableConv2D(2, 3).keras_config()) == [
        "depth_multiplier", "filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate",
        "activation", "use_bias", "depthwise_initializer", "pointwise_initializer", "bias_initializer",
        "depthwise_regularizer", "pointwise_regularizer", "bias_regularizer", "activity_regularizer",
        "depthwise_constraint", "pointwise_constraint", "bias_constraint"]


@pytest.mark.parametrize("cls, cfg", [
    (DepthwiseConv2D, {"kernel_size": 3}),
    (SeparableConv2D, {"filters": 2, "kernel_size": 3}),
])
def test_keras_options_minicnn_cannot_honour_are_refused_by_name(cls, cfg):
    cls.from_keras_config({**cfg, "depthwise_initializer": {"class_name": "Orthogonal"}}, "w")  # ignored
    orthogonal = {"class_name": "OrthogonalRegularizer", "config": {"factor": 0.01, "mode": "rows"}}
    for option, value in [("data_format", "channels_first"), ("depthwise_regularizer", orthogonal),
                          ("depthwise_constraint", {"class_name": "NonNeg"}), ("bias_regularizer", "l3"),
                          ("activity_regularizer", "l1"), ("activation", "mish"), ("padding", "causal")]:
        with pytest.raises(KerasConfigError, match=rf"layer 'x': option {option}="):
            cls.from_keras_config({**cfg, option: value}, "layer 'x'")
    with pytest.raises(ValueError, match="depth_multiplier"):
        cls.from_keras_config({**cfg, "depth_multiplier": 0}, "layer 'x'")


def test_separable_refuses_pointwise_constraints_and_reads_pointwise_regularizers():
    with pytest.raises(KerasConfigError, match="pointwise_constraint"):
        SeparableConv2D.from_keras_config({"filters": 2, "kernel_size": 3, "pointwise_constraint": {"class_name": "NonNeg"}},
                                          "w")
    layer = SeparableConv2D.from_keras_config({"filters": 2, "kernel_size": 3, "pointwise_regularizer": {"class_name": "L2"}},
                                              "w")
    assert list(layer.regularizers) == ["pointwise_kernel"]  # tests/test_regularizers.py checks the penalty


def test_depthwise_reads_the_legacy_weight_name():
    """Keras 2 files call the depthwise kernel ``depthwise_kernel``; Keras 3 calls it ``kernel``."""
    assert DepthwiseConv2D.keras_weight_aliases == {"depthwise_kernel": "kernel"}
    assert DepthwiseConv2D.weight_names == ("kernel", "bias")
    assert SeparableConv2D.weight_names == ("depthwise_kernel", "pointwise_kernel", "bias")
