"""The pooling zoo (AveragePooling2D, GlobalAverage/MaxPooling2D, ZeroPadding2D, Reshape): loop
oracles over an edge grid, exact values at the borders and on ties, options, odd batches, and
(marked tf) the same grids and configs against TensorFlow/Keras 3."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from minicnn import Sequential, load_model
from minicnn.errors import KerasConfigError
from minicnn.kernels import naive, numba_backend, numpy_backend
from minicnn.layers import (KERAS_CLASSES, AveragePooling2D, AvgPool2D, Conv2D, Dense, GlobalAveragePooling2D,
                            GlobalAvgPool2D, GlobalMaxPool2D, GlobalMaxPooling2D, MaxPool2D, Reshape, ZeroPadding2D)
from minicnn.layers.zero_padding import normalize_zero_padding
from tests.helpers import ORACLE_RTOL, rel_err

F64 = np.float64
#: float64 minicnn vs TensorFlow on one layer: the same formula summed in another order
TF_RTOL = 1e-12

# (H, W), pool, strides, padding: pool 2, 3 and a non-square one; strides 1 (overlapping
# windows), 2 and 3 (gaps when the stride exceeds the pool); 'same' puts the odd padding row and
# column bottom/right; odd sizes leave a last row/column that 'valid' windows never reach
SIZES = [(5, 7), (3, 3), (6, 4), (1, 5)]
POOLS = [2, 3, (2, 3)]
STRIDES = [1, 2, 3]
AVG_GRID = [(hw, p, s, pad) for hw, p, s, pad in itertools.product(SIZES, POOLS, STRIDES, ("valid", "same"))
            if pad == "same" or all(n >= k for n, k in zip(hw, (p, p) if isinstance(p, int) else p))]


def built(layer, input_shape, dtype=F64, name=None):
    layer.name = name or layer.kind
    layer.build(input_shape, dtype, np.random.default_rng(0))
    return layer


def grid_id(case):
    hw, p, s, pad = case
    return f"{hw[0]}x{hw[1]}-pool{p}-s{s}-{pad}".replace(" ", "")


# ----------------------------------------------------------------------------- AveragePooling2D
@pytest.mark.parametrize("case", AVG_GRID, ids=grid_id)
def test_average_pooling_matches_the_loops_over_the_edge_grid(backend, case, rng):
    hw, pool, strides, padding = case
    batch = 1 if hw == (5, 7) else 2  # batch 1 too
    layer = built(AveragePooling2D(pool, strides=strides, padding=padding), (*hw, 3))
    x = rng.standard_normal((batch, *hw, 3))
    y = layer.forward(x, training=True)
    ref = naive.avgpool2d(x, layer.pool_size, layer.strides, layer.pads)
    assert y.shape == ref.shape == (batch, *layer.output_shape)
    # ORACLE_RTOL: the oracle sums each window in the same order but in Python floats, and its
    # backward adds the overlapping shares to a cell in another order
    assert rel_err(y, ref) <= ORACLE_RTOL
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    assert rel_err(dx, naive.avgpool2d_backward(dy, x.shape, layer.pool_size, layer.strides, layer.pads)) <= ORACLE_RTOL
    # and backward is the adjoint of forward: <A x, dy> == <x, A^T dy> up to rounding
    assert abs(np.sum(y * dy) - np.sum(x * dx)) <= 1e-12 * np.sum(np.abs(y * dy))


def test_average_pooling_same_counts_only_real_cells_at_the_bottom_right_border(backend):
    # 3x3 input, 2x2 windows with stride 2, 'same': one padding row at the bottom and one
    # column at the right, so the windows hold 4, 2, 2 and 1 real cells (values checked in TF)
    layer = built(AveragePooling2D(2, strides=2, padding="same"), (3, 3, 1))
    assert layer.pads == (0, 1, 0, 1)
    x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    y = layer.forward(x, training=True)
    np.testing.assert_array_equal(y[0, :, :, 0], [[3.0, 4.5], [7.5, 9.0]])  # (3+6)/2, not (3+6)/4
    dx = layer.backward(np.ones_like(y))
    np.testing.assert_array_equal(dx[0, :, :, 0], [[0.25, 0.25, 0.5], [0.25, 0.25, 0.5], [0.5, 0.5, 1.0]])
    assert layer.flops() == 4 + 2 + 2 + 1 and layer.flops(backward=True) == 9 + 4


def test_average_pooling_overlapping_windows_add_their_shares(backend):
    # 3x3 windows, stride 1, 'same' on 3x3: the centre is in all 9 windows
    layer = built(AveragePooling2D(3, strides=1, padding="same"), (3, 3, 1))
    np.testing.assert_array_equal(layer.forward(np.ones((1, 3, 3, 1)), training=True), np.ones((1, 3, 3, 1)))
    dx = layer.backward(np.ones((1, 3, 3, 1)))[0, :, :, 0]
    corner = 1 / 4 + 2 / 6 + 1 / 9  # windows of 4 (corner), 6 (edge) and 9 (centre) real cells
    assert dx[0, 0] == pytest.approx(corner, rel=1e-15)
    assert dx[1, 1] == pytest.approx(4 / 4 + 4 / 6 + 1 / 9, rel=1e-15)


def test_average_pooling_defaults_and_valid_leftovers():
    layer = built(AveragePooling2D(), (5, 5, 1))  # pool (2, 2), strides = pool_size
    assert layer.strides == (2, 2) and layer.output_shape == (2, 2, 1)
    x = np.arange(25.0).reshape(1, 5, 5, 1)
    y = layer.forward(x, training=True)
    np.testing.assert_array_equal(y[0, :, :, 0], [[3.0, 5.0], [13.0, 15.0]])
    dx = layer.backward(np.ones_like(y))[0, :, :, 0]
    assert not dx[4].any() and not dx[:, 4].any()  # the last row and column are in no window
    assert AvgPool2D is AveragePooling2D and KERAS_CLASSES["AvgPool2D"] is AveragePooling2D


def test_average_pooling_larger_than_its_input_names_the_layer():
    with pytest.raises(ValueError, match=r"'ap' \(AveragePooling2D\).*pool window \(3, 3\) is larger"):
        AveragePooling2D(3, name="ap").build((2, 5, 1))


# ----------------------------------------------------------------------------- global pooling
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("shape", [(3, 4, 2), (1, 1, 3), (5, 3, 1)])
def test_global_average_pooling_matches_the_loops(backend, shape, keepdims, rng):
    layer = built(GlobalAveragePooling2D(keepdims=keepdims), shape)
    x = rng.standard_normal((2, *shape))
    y = layer.forward(x, training=True)
    assert y.shape == ((2, 1, 1, shape[2]) if keepdims else (2, shape[2]))
    ref = naive.global_avgpool2d(x)
    assert rel_err(y.reshape(2, -1), ref) <= ORACLE_RTOL  # summation order
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    np.testing.assert_array_equal(dx, np.broadcast_to(dy.reshape(2, 1, 1, -1) / (shape[0] * shape[1]), x.shape))


def test_global_average_pooling_exact_values(backend):
    layer = built(GlobalAveragePooling2D(), (2, 2, 1))
    y = layer.forward(np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 2, 2, 1), training=True)
    np.testing.assert_array_equal(y, [[2.5]])
    np.testing.assert_array_equal(layer.backward(np.array([[2.0]]))[0, :, :, 0], [[0.5, 0.5], [0.5, 0.5]])
    assert KERAS_CLASSES["GlobalAvgPool2D"] is GlobalAveragePooling2D is GlobalAvgPool2D


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("shape", [(3, 4, 2), (1, 1, 3), (2, 5, 1)])
def test_global_max_pooling_matches_the_loops_with_many_ties(backend, shape, keepdims, rng):
    layer = built(GlobalMaxPooling2D(keepdims=keepdims), shape)
    x = rng.integers(0, 3, (3, *shape)).astype(F64)  # three values only: most maxima are tied
    y = layer.forward(x, training=True)
    np.testing.assert_array_equal(y.reshape(3, -1), naive.global_maxpool2d(x))
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    # ORACLE_RTOL: dy / k against TF's (1 / k) * dy, one rounding apart
    assert rel_err(dx, naive.global_maxpool2d_backward(dy.reshape(3, -1), x)) <= ORACLE_RTOL
    # a share never leaks: each channel's gradient sums back to its dy
    assert rel_err(dx.sum(axis=(1, 2)), dy.reshape(3, -1)) <= 1e-15


def test_global_max_pooling_splits_the_gradient_of_an_exact_tie(backend):
    # TensorFlow's reduce_max gradient (checked by running it): a tie shares, all cells alike
    layer = built(GlobalMaxPooling2D(), (2, 2, 2))
    x = np.zeros((1, 2, 2, 2))
    x[0, :, :, 0] = [[1.0, 3.0], [3.0, 0.0]]  # the maximum twice
    x[0, :, :, 1] = 2.0                       # the maximum four times
    y = layer.forward(x, training=True)
    np.testing.assert_array_equal(y, [[3.0, 2.0]])
    dx = layer.backward(np.array([[1.0, 1.0]]))
    np.testing.assert_array_equal(dx[0, :, :, 0], [[0.0, 0.5], [0.5, 0.0]])
    np.testing.assert_array_equal(dx[0, :, :, 1], np.full((2, 2), 0.25))
    # unlike MaxPool2D's windows, where TensorFlow's MaxPoolGrad gives it all to the first maximum
    mp = built(MaxPool2D(2), (2, 2, 2))
    mp.forward(x, training=True)
    np.testing.assert_array_equal(mp.backward(np.ones((1, 1, 1, 2)))[0, :, :, 0], [[0.0, 1.0], [0.0, 0.0]])


def test_global_max_pooling_needs_its_forward_pass():
    layer = built(GlobalMaxPooling2D(), (2, 2, 1))
    with pytest.raises(ValueError, match=r"backward\(\) called without a forward"):
        layer.backward(np.ones((1, 1)))
    layer.forward(np.ones((1, 2, 2, 1)), training=False)  # inference keeps nothing
    with pytest.raises(ValueError, match=r"backward\(\) called without a forward"):
        layer.backward(np.ones((1, 1)))


def test_global_pooling_refuses_maps_of_another_rank_and_bad_keepdims():
    with pytest.raises(ValueError, match=r"'g' \(GlobalMaxPooling2D\): expects .*height, width, channels"):
        GlobalMaxPooling2D(name="g").build((4, 3))
    with pytest.raises(ValueError, match="keepdims must be True or False"):
        GlobalAveragePooling2D(keepdims=1)
    with pytest.raises(KerasConfigError, match="keepdims='yes'"):
        GlobalAveragePooling2D.from_keras_config({"keepdims": "yes"}, "layer 'g'")
    assert GlobalMaxPooling2D.from_keras_config({"name": "g"}, "w").keepdims is False  # tf.keras < 2.6
    assert KERAS_CLASSES["GlobalMaxPool2D"] is GlobalMaxPooling2D is GlobalMaxPool2D


# ----------------------------------------------------------------------------- ZeroPadding2D
@pytest.mark.parametrize("padding, pads", [
    (1, (1, 1, 1, 1)), (0, (0, 0, 0, 0)), ((1, 2), (1, 1, 2, 2)), (((1, 2), (3, 0)), (1, 2, 3, 0)),
    ((2, (0, 1)), (2, 2, 0, 1)), ([[0, 1], [2, 0]], (0, 1, 2, 0)),
])
def test_zero_padding_matches_the_loops_and_crops_back(backend, padding, pads, rng):
    layer = built(ZeroPadding2D(padding), (3, 2, 2))
    assert layer.pads == pads
    x = rng.standard_normal((2, 3, 2, 2))
    y = layer.forward(x, training=True)
    np.testing.assert_array_equal(y, naive.zeropad2d(x, pads))
    assert y.shape == (2, 3 + pads[0] + pads[1], 2 + pads[2] + pads[3], 2)
    assert not np.shares_memory(y, x)  # also with no padding at all
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    np.testing.assert_array_equal(dx, dy[:, pads[0]: pads[0] + 3, pads[2]: pads[2] + 2])
    assert dx.flags.c_contiguous and not np.shares_memory(dx, dy)


@pytest.mark.parametrize("bad", [-1, (1, 2, 3), ((1,), (2, 2)), ((1, -1), 0), True, "1", (1.5, 1), None])
def test_zero_padding_refuses_what_keras_refuses(bad):
    with pytest.raises(ValueError, match="ZeroPadding2D padding"):
        ZeroPadding2D(bad)
    with pytest.raises(KerasConfigError, match=r"layer 'zp'.*ZeroPadding2D padding"):
        ZeroPadding2D.from_keras_config({"padding": bad, "data_format": "channels_last"}, "layer 'zp'")


def test_zero_padding_forms_normalize_as_keras_does():
    assert normalize_zero_padding(2) == ((2, 2), (2, 2))
    assert normalize_zero_padding((1, 3)) == ((1, 1), (3, 3))
    assert normalize_zero_padding(((1, 2), (3, 4))) == ((1, 2), (3, 4))
    layer = ZeroPadding2D((1, 3))
    assert layer.keras_config() == {"padding": [[1, 1], [3, 3]], "data_format": "channels_last"}
    with pytest.raises(KerasConfigError, match="data_format='channels_first'"):
        ZeroPadding2D.from_keras_config({"padding": 1, "data_format": "channels_first"}, "layer 'zp'")


# ----------------------------------------------------------------------------- Reshape
def test_reshape_infers_minus_one_and_keeps_it_in_its_configs(rng):
    layer = built(Reshape((-1, 3)), (2, 3, 2))
    assert layer.output_shape == (4, 3)
    assert layer.get_config()["target_shape"] == layer.keras_config()["target_shape"] == [-1, 3]
    x = rng.standard_normal((2, 2, 3, 2))
    y = layer.forward(x)
    np.testing.assert_array_equal(y, x.reshape(2, 4, 3))  # C order, as Keras (and Flatten)
    np.testing.assert_array_equal(layer.backward(y), x)


@pytest.mark.parametrize("target, shape, match", [
    ((5,), (2, 3), r"'r' \(Reshape\): cannot reshape an input of shape \(2, 3\) \(6 values"),
    ((4, -1), (2, 3), r"'r' \(Reshape\).*6 is not a multiple of 4"),
])
def test_reshape_refuses_sizes_that_do_not_match_naming_the_layer(target, shape, match):
    with pytest.raises(ValueError, match=match):
        Reshape(target, name="r").build(shape)


@pytest.mark.parametrize("bad", [(-1, -1), (0, 6), (2, -2), (), (2.0, 3), 6, ("a",), (True, 1)])
def test_reshape_refuses_bad_target_shapes(bad):
    with pytest.raises(ValueError, match="Reshape target_shape"):
        Reshape(bad)
    with pytest.raises(KerasConfigError, match=r"layer 'r'.*Reshape target_shape"):
        Reshape.from_keras_config({"target_shape": bad}, "layer 'r'")


# ----------------------------------------------------------------------------- every layer
ZOO = [
    (lambda: AveragePooling2D(3, strides=2, padding="same"), (5, 4, 2)),
    (lambda: GlobalAveragePooling2D(keepdims=True), (3, 2, 2)),
    (lambda: GlobalMaxPooling2D(), (3, 2, 2)),
    (lambda: ZeroPadding2D(((0, 1), (2, 0))), (3, 2, 2)),
    (lambda: Reshape((-1,)), (3, 2, 2)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", [0, 1])
@pytest.mark.parametrize("make, shape", ZOO, ids=lambda v: type(v()).__name__ if callable(v) else "")
def test_zero_and_one_sample_batches_in_both_dtypes(backend, make, shape, batch, dtype):
    layer = built(make(), shape, dtype, name="z")
    x = np.random.default_rng(0).standard_normal((batch, *shape)).astype(dtype)
    y = layer.forward(x, training=True)
    assert y.shape == (batch, *layer.output_shape) and y.dtype == dtype
    dx = layer.backward(np.ones_like(y))
    assert dx.shape == x.shape and dx.dtype == dtype


def test_both_backends_have_the_pooling_kernels():
    # the numba backend re-exports the numpy kernels until its twins exist (phase 2)
    for name in ("avgpool2d_forward", "avgpool2d_backward", "global_avgpool2d_forward", "global_avgpool2d_backward",
                 "global_maxpool2d_forward", "global_maxpool2d_backward", "zeropad2d_forward", "zeropad2d_backward"):
        assert callable(getattr(numpy_backend, name)) and callable(getattr(numba_backend, name)), name


# ----------------------------------------------------------------------------- TensorFlow
@pytest.mark.tf
@pytest.mark.parametrize("case", [c for c in AVG_GRID if c[0] != (1, 5)], ids=grid_id)
def test_average_pooling_grid_matches_tensorflow(case, rng):
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    hw, pool, strides, padding = case
    layer = built(AveragePooling2D(pool, strides=strides, padding=padding), (*hw, 2))
    klayer = keras.layers.AveragePooling2D(pool, strides=strides, padding=padding, dtype="float64")
    x = rng.standard_normal((2, *hw, 2))
    y = layer.forward(x, training=True)
    dy = rng.standard_normal(y.shape)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        yt = klayer(xt)
        scalar = tf.reduce_sum(yt * dy)
    assert rel_err(y, yt.numpy()) <= TF_RTOL
    assert rel_err(layer.backward(dy), tape.gradient(scalar, xt).numpy()) <= TF_RTOL


@pytest.mark.tf
def test_global_max_pooling_ties_match_tensorflow(rng):
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    for keepdims in (False, True):
        layer = built(GlobalMaxPooling2D(keepdims=keepdims), (3, 4, 3))
        x = rng.integers(0, 2, (4, 3, 4, 3)).astype(F64)  # 0s and 1s: ties everywhere
        y = layer.forward(x, training=True)
        dy = rng.standard_normal(y.shape)
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            scalar = tf.reduce_sum(keras.layers.GlobalMaxPooling2D(keepdims=keepdims, dtype="float64")(xt) * dy)
        assert rel_err(layer.backward(dy), tape.gradient(scalar, xt).numpy()) <= TF_RTOL


@pytest.mark.tf
def test_configs_written_by_keras_are_read_and_written_back_alike():
    keras = pytest.importorskip("keras")
    made = [keras.layers.AveragePooling2D(3), keras.layers.AvgPool2D((2, 3), strides=1, padding="same"),
            keras.layers.GlobalAveragePooling2D(), keras.layers.GlobalAvgPool2D(keepdims=True),
            keras.layers.GlobalMaxPooling2D(), keras.layers.GlobalMaxPool2D(keepdims=True),
            keras.layers.ZeroPadding2D(), keras.layers.ZeroPadding2D((1, 2)), keras.layers.ZeroPadding2D(((1, 2), (0, 3))),
            keras.layers.ZeroPadding2D((2, (0, 1))), keras.layers.Reshape((-1, 2)), keras.layers.Reshape((3, 4))]
    for klayer in made:
        cfg = json.loads(json.dumps(klayer.get_config()))  # as the file holds it: tuples become lists
        cls = KERAS_CLASSES[type(klayer).__name__]
        layer = cls.from_keras_config(cfg, f"layer {klayer.name!r}")
        own = {k: v for k, v in cfg.items() if k not in ("name", "dtype", "trainable")}
        assert layer.keras_config() == own, klayer.name


# ----------------------------------------------------------------------------- in a model
def zoo_model(dtype="float64", seed=0):
    m = Sequential([Conv2D(3, 3, activation="relu", input_shape=(7, 7, 1)), AveragePooling2D(2, strides=2, padding="same"),
                    ZeroPadding2D((1, 0)), GlobalMaxPooling2D(keepdims=True), Reshape((-1,)), Dense(4, activation="softmax")],
                   dtype=dtype, seed=seed)
    m.build()
    return m


def test_a_zoo_model_trains_and_round_trips_through_npz(tmp_path, backend):
    rng = np.random.default_rng(0)
    x, labels = rng.standard_normal((24, 7, 7, 1)), rng.integers(0, 4, 24)
    m = zoo_model()
    m.compile("adam", "sparse_categorical_crossentropy")
    history = m.fit(x, labels, batch_size=8, epochs=2, verbose=0, seed=0)
    assert all(np.isfinite(v) for v in history.history["loss"])
    m.save(tmp_path / "zoo.npz")
    back = load_model(tmp_path / "zoo.npz")
    assert back.get_config() == m.get_config()
    np.testing.assert_array_equal(back.predict(x), m.predict(x))
