"""Every layer: forward against a float64 loop oracle, backward against finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from minicnn import gradcheck
from minicnn.kernels import naive
from minicnn.layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Softmax

from tests.helpers import GRADCHECK_RTOL, ORACLE_RTOL, rel_err

F64 = np.float64

# (H, W, C, filters, kernel, strides, padding): the edge grid the issue names plus random extras
CONV_CASES = [
    (7, 7, 2, 3, (3, 3), (1, 1), "valid"),
    (7, 6, 2, 3, (3, 3), (2, 2), "valid"),       # stride 2
    (6, 6, 2, 3, (3, 3), (1, 1), "same"),        # same, odd kernel
    (6, 7, 2, 2, (2, 2), (1, 1), "same"),        # same, even kernel: pad goes bottom/right
    (7, 6, 3, 2, (4, 2), (2, 2), "same"),        # same, even kernel, stride 2
    (5, 5, 3, 4, (1, 1), (1, 1), "valid"),       # 1x1 kernel
    (4, 4, 1, 2, (4, 4), (1, 1), "valid"),       # kernel == input
    (8, 5, 2, 3, (3, 2), (3, 2), "same"),
]


def built(layer, input_shape, dtype=F64, seed=0):
    layer.name = layer.name or layer.kind
    layer.build(input_shape, dtype, np.random.default_rng(seed))
    return layer


def randomize_bias(layer, rng):
    if "bias" in layer.params:  # zeros by default; random values test the bias path
        layer.params["bias"][...] = rng.standard_normal(layer.params["bias"].shape)


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("batch", [1, 3])
def test_conv2d_forward_matches_oracle(backend, case, batch, rng):
    h, w, c, f, k, s, pad = case
    layer = built(Conv2D(f, k, strides=s, padding=pad), (h, w, c))
    randomize_bias(layer, rng)
    x = rng.standard_normal((batch, h, w, c))
    y = layer.forward(x)
    ref = naive.conv2d(x, layer.params["kernel"], layer.params["bias"], layer.strides, layer.pads)
    assert y.shape == ref.shape == (batch, *layer.output_shape)
    assert y.dtype == F64
    assert rel_err(y, ref) <= ORACLE_RTOL


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("activation", [None, "relu"])
def test_conv2d_gradients(backend, case, activation, rng):
    h, w, c, f, k, s, pad = case
    layer = built(Conv2D(f, k, strides=s, padding=pad, activation=activation), (h, w, c))
    randomize_bias(layer, rng)
    x = rng.standard_normal((2, h, w, c))
    errs = gradcheck.check_layer(layer, x, seed=3)
    assert set(errs) == {"input", "kernel", "bias"}
    assert max(errs.values()) <= GRADCHECK_RTOL, errs


def test_conv2d_non_contiguous_input_and_no_bias(backend, rng):
    layer = built(Conv2D(3, 3, strides=2, padding="same", use_bias=False), (6, 5, 2))
    base = rng.standard_normal((2, 5, 12, 2)).transpose(0, 2, 1, 3)[:, ::2]  # (2, 6, 5, 2), strided
    assert not base.flags.c_contiguous
    y = layer.forward(base)
    ref = naive.conv2d(np.ascontiguousarray(base), layer.params["kernel"], None, layer.strides, layer.pads)
    assert rel_err(y, ref) <= ORACLE_RTOL
    errs = gradcheck.check_layer(layer, base, seed=5)
    assert set(errs) == {"input", "kernel"} and max(errs.values()) <= GRADCHECK_RTOL, errs


def test_tf_same_padding_puts_the_extra_row_bottom_right():
    layer = built(Conv2D(1, 2, padding="same"), (4, 4, 1))
    assert layer.pads == (0, 1, 0, 1)
    layer = built(Conv2D(1, 3, strides=2, padding="same"), (6, 6, 1))
    assert layer.pads == (0, 1, 0, 1) and layer.output_shape == (3, 3, 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept_end_to_end(backend, dtype, rng):
    layers = [built(Conv2D(2, 3, activation="relu"), (6, 6, 1), dtype),
              built(MaxPool2D(2), (4, 4, 2), dtype), built(Flatten(), (2, 2, 2), dtype),
              built(Dense(3, activation="softmax"), (8,), dtype)]
    x = rng.standard_normal((2, 6, 6, 1)).astype(dtype)
    for layer in layers:
        x = layer.forward(x, training=True)
        assert x.dtype == dtype
    dy = rng.standard_normal(x.shape).astype(dtype)
    for layer in reversed(layers):
        dy = layer.backward(dy)
        assert dy.dtype == dtype
        assert all(g.dtype == dtype for g in layer.grads.values())


POOL_CASES = [((6, 6, 2), (2, 2), None, "valid"), ((7, 7, 2), (2, 2), None, "valid"),
              ((7, 7, 2), (3, 3), (2, 2), "same"), ((6, 5, 1), (2, 2), (1, 1), "same"),
              ((5, 5, 3), (3, 2), (2, 1), "valid"), ((4, 4, 1), (1, 1), None, "valid")]


@pytest.mark.parametrize("case", POOL_CASES)
def test_maxpool_forward_and_gradient(backend, case, rng):
    shape, pool, strides, pad = case
    layer = built(MaxPool2D(pool, strides, pad), shape)
    x = rng.permutation(np.arange(np.prod((2, *shape)), dtype=F64)).reshape((2, *shape)) / 7.0  # no ties
    y = layer.forward(x)
    ref, _ = naive.maxpool2d(x, layer.pool_size, layer.strides, layer.pads)
    assert rel_err(y, ref) == 0.0
    errs = gradcheck.check_layer(layer, x, seed=1, eps=1e-4)  # values are >= 1/7 apart: no crossing
    assert errs["input"] <= GRADCHECK_RTOL, errs


def test_maxpool_tie_sends_gradient_to_first_max_in_row_major_order(backend):
    layer = built(MaxPool2D(2), (2, 2, 1))
    x = np.array([1.0, 2.0, 2.0, 2.0]).reshape(1, 2, 2, 1)
    layer.forward(x, training=True)
    dx = layer.backward(np.ones((1, 1, 1, 1)))
    np.testing.assert_array_equal(dx.reshape(-1), [0, 1, 0, 0])
    x = np.zeros((1, 2, 2, 1))  # an all-zero window (typical after ReLU): the first cell wins
    layer.forward(x, training=True)
    np.testing.assert_array_equal(layer.backward(np.full((1, 1, 1, 1), 3.0)).reshape(-1), [3, 0, 0, 0])


def test_relu_gradient_at_zero_is_zero(backend):
    layer = built(ReLU(), (3,))
    x = np.array([[-1.0, 0.0, 1.0]])
    np.testing.assert_array_equal(layer.forward(x, training=True), [[0, 0, 1]])
    np.testing.assert_array_equal(layer.backward(np.array([[5.0, 5.0, 5.0]])), [[0, 0, 5]])


def test_relu_gradient(backend, rng):
    layer = built(ReLU(), (4, 3))
    x = rng.standard_normal((2, 4, 3))
    x[np.abs(x) < 1e-3] = 0.5  # dodge the kink
    assert gradcheck.check_layer(layer, x)["input"] <= GRADCHECK_RTOL


@pytest.mark.parametrize("activation", [None, "relu", "softmax"])
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("batch", [1, 4])
def test_dense_forward_and_gradients(backend, activation, use_bias, batch, rng):
    layer = built(Dense(5, activation=activation, use_bias=use_bias), (7,))
    randomize_bias(layer, rng)
    x = rng.standard_normal((batch, 7))
    z = naive.dense(x, layer.params["kernel"], layer.params.get("bias"))
    ref = {None: z, "relu": np.maximum(z, 0), "softmax": naive.softmax(z)}[activation]
    assert rel_err(layer.forward(x), ref) <= ORACLE_RTOL
    errs = gradcheck.check_layer(layer, x)
    assert max(errs.values()) <= GRADCHECK_RTOL, errs


def test_softmax_layer(rng):
    layer = built(Softmax(), (6,))
    x = rng.standard_normal((3, 6)) * 5
    assert rel_err(layer.forward(x), naive.softmax(x)) <= ORACLE_RTOL
    assert gradcheck.check_layer(layer, x)["input"] <= GRADCHECK_RTOL


def test_flatten_is_hwc_order_and_round_trips(rng):
    layer = built(Flatten(), (2, 3, 4))
    x = rng.standard_normal((2, 2, 3, 4))
    y = layer.forward(x, training=True)
    assert y[1, 1 * 3 * 4 + 2 * 4 + 3] == x[1, 1, 2, 3]  # row index h*W*C + w*C + c, as Keras
    assert gradcheck.check_layer(layer, x)["input"] <= GRADCHECK_RTOL


def test_dropout_inverted_and_only_in_training(rng):
    layer = built(Dropout(0.25, seed=0), (1000,))
    x = np.ones((4, 1000))
    np.testing.assert_array_equal(layer.forward(x, training=False), x)
    y = layer.forward(x, training=True)
    kept = y != 0
    assert 0.7 < kept.mean() < 0.8
    np.testing.assert_allclose(y[kept], 1 / 0.75)
    dx = layer.backward(np.full_like(x, 2.0))
    np.testing.assert_array_equal(dx, np.where(kept, 2 / 0.75, 0))
    assert gradcheck.check_layer(layer, rng.standard_normal((2, 1000)))["input"] <= GRADCHECK_RTOL


def test_backward_never_writes_into_dy(backend, rng):
    layers = [built(Conv2D(2, 3, activation="relu"), (5, 5, 2)), built(MaxPool2D(2), (4, 4, 2)),
              built(Dense(3, activation="softmax"), (4,)), built(ReLU(), (4,)), built(Flatten(), (2, 2))]
    for layer in layers:
        x = rng.standard_normal((2, *layer.input_shape))
        y = layer.forward(x, training=True)
        dy = rng.standard_normal(y.shape)
        before = dy.copy()
        layer.backward(dy)
        np.testing.assert_array_equal(dy, before, err_msg=type(layer).__name__)


def test_backward_without_forward_fails_clearly():
    layer = built(Dense(2), (3,))
    with pytest.raises(ValueError, match="backward\\(\\) called without a forward"):
        layer.backward(np.ones((1, 2)))


def test_glorot_uniform_limits_and_zero_bias():
    conv = built(Conv2D(64, 3), (26, 26, 32), np.float32, seed=1)
    limit = np.sqrt(6 / (3 * 3 * 32 + 3 * 3 * 64))  # Keras counts the receptive field on both fans
    k = conv.params["kernel"]
    assert k.dtype == np.float32 and k.shape == (3, 3, 32, 64)
    assert np.abs(k).max() <= limit and np.abs(k).max() > 0.95 * limit
    assert abs(k.std() - limit / np.sqrt(3)) < 0.02 * limit  # variance of U(-a, a) is a^2 / 3
    assert not conv.params["bias"].any()
    again = built(Conv2D(64, 3), (26, 26, 32), np.float32, seed=1)
    np.testing.assert_array_equal(again.params["kernel"], k)  # seeded


@pytest.mark.parametrize("bad, match", [
    (lambda: Conv2D(0, 3), "filters"), (lambda: Conv2D(2, (3, 0)), "kernel_size"),
    (lambda: Conv2D(2, 3, padding="full"), "padding"), (lambda: Dense(2, activation="mish"), "activation"),
    (lambda: Dropout(1.0), "rate"), (lambda: MaxPool2D(2, strides=0), "strides"),
])
def test_bad_constructor_arguments(bad, match):
    with pytest.raises(ValueError, match=match):
        bad()


def test_impossible_shapes_name_the_layer():
    with pytest.raises(ValueError, match=r"layer 'conv2d'.*kernel \(5, 5\) is larger than its input \(4, 4\)"):
        built(Conv2D(2, 5), (4, 4, 1))
    with pytest.raises(ValueError, match=r"layer 'dense'.*add a Flatten"):
        built(Dense(3), (4, 4, 2))
    layer = built(Dense(3), (4,))
    with pytest.raises(ValueError, match=r"expected input shape \(batch, 4\), received \(2, 5\)"):
        layer.forward(np.ones((2, 5)))
