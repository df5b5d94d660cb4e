"""inspect_model: per-layer records and statistics, checked on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pytest

import minicnn
from minicnn.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from minicnn.study import format_table, inspect_model, pool_tie_share, top_k


def hand_model(kernel, pool=True):
    """1x3x3 conv with a given kernel (no bias) [-> 2x2 max pool] -> flatten -> dense(2, softmax)."""
    layers = [Conv2D(1, 3, activation="relu", use_bias=False)]
    if pool:
        layers.append(MaxPool2D(2))
    layers += [Flatten(), Dense(2, activation="softmax")]
    model = minicnn.Sequential(layers, input_shape=(6, 6, 1), dtype="float64", seed=0)
    model.build()
    model.layers[0].set_weights([np.asarray(kernel, np.float64).reshape(3, 3, 1, 1)])
    return model


EDGE = np.array([[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]], np.float64)


def test_relu_zero_share_and_pool_ties_on_an_edge():
    # left half 0, right half 1: the edge filter fires (3) only where the window straddles
    # the edge (output columns 1 and 2 of 4), elsewhere 0 -> half the conv outputs are zero.
    x = np.zeros((6, 6, 1))
    x[:, 3:] = 1.0
    records = inspect_model(hand_model(EDGE), x)
    conv, pool, flat, dense = records
    np.testing.assert_array_equal(conv.output[:, :, 0], [[0, 3, 3, 0]] * 4)
    assert conv.output_shape == (4, 4, 1)
    assert conv.zero_share == pytest.approx(0.5)
    assert (conv.minimum, conv.maximum, conv.mean) == (0.0, 3.0, 1.5)
    # every 2x2 window is [[0, 3], [0, 3]] or [[3, 0], [3, 0]]: the max 3 occurs twice -> all tie
    np.testing.assert_array_equal(pool.output[:, :, 0], [[3, 3], [3, 3]])
    assert pool.tie_share == 1.0
    assert pool.zero_share == 0.0          # pooling a ReLU output still counts as after-ReLU
    assert flat.output_shape == (4,) and flat.zero_share == 0.0
    assert dense.zero_share is None and dense.tie_share is None
    assert dense.is_probabilities and dense.output.sum() == pytest.approx(1.0)
    assert conv.tie_share is None


def test_pool_ties_counted_per_window_and_channel():
    layer = MaxPool2D(2)
    layer.build((4, 4, 2), np.float64)
    ch0 = np.array([[1, 1, 0, 2],      # window (0,0): 1,1,0,0 -> tie (two 1s)
                    [0, 0, 2, 1],      # window (0,1): 0,2,2,1 -> tie (two 2s)
                    [3, 0, 0, 0],      # window (1,0): 3,0,0,0 -> no tie
                    [0, 0, 0, 0]])     # window (1,1): all 0   -> tie (four 0s)
    ch1 = np.arange(16.0).reshape(4, 4)  # strictly increasing: no ties
    x = np.stack([ch0, ch1], axis=-1)
    assert pool_tie_share(x, layer) == pytest.approx(3 / 8)
    # the first maximum (TensorFlow's rule) is the one the layer records
    layer.forward(x[None], training=False)
    np.testing.assert_array_equal(layer.last_argmax[0, :, :, 0], [[0, 1], [0, 0]])


def test_pool_ties_ignore_same_padding():
    layer = MaxPool2D(2, padding="same")
    layer.build((3, 3, 1), np.float64)
    x = np.array([[5, 1, 7], [2, 3, 4], [9, 8, 6]], np.float64)[:, :, None]
    # windows: [5 1;2 3], [7;4] (padded -inf), [9 8], [6] -> no ties although padding repeats -inf
    assert pool_tie_share(x, layer) == 0.0
    x2 = np.array([[5, 5, 7], [2, 3, 4], [9, 8, 6]], np.float64)[:, :, None]
    assert pool_tie_share(x2, layer) == pytest.approx(1 / 4)


def test_zero_share_only_after_relu():
    model = minicnn.Sequential([Conv2D(2, 3), ReLU(), Flatten(), Dense(3)], input_shape=(5, 5, 1),
                               dtype="float64", seed=1)
    model.build()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 5, 1))
    conv, relu, flat, dense = inspect_model(model, x)
    assert conv.zero_share is None               # linear conv: negative values, no ReLU yet
    assert conv.minimum < 0
    assert relu.zero_share == pytest.approx(float((conv.output <= 0).mean()))
    assert flat.zero_share == relu.zero_share
    assert dense.zero_share is None and not dense.is_probabilities


def test_seed_model_records(seed_model, seven):
    records = inspect_model(seed_model, seven)
    assert [r.kind for r in records] == ["Conv2D", "Conv2D", "Flatten", "Dense", "Dense"]
    assert [r.output_shape for r in records] == [(26, 26, 32), (24, 24, 64), (36864,), (128,), (10,)]
    _, outs = seed_model.forward(seven[None], record=True)
    for r, o in zip(records, outs):
        np.testing.assert_array_equal(r.output, o[0])
        assert r.minimum == pytest.approx(float(o.min())) and r.maximum == pytest.approx(float(o.max()))
        if r.zero_share is not None:
            assert r.zero_share == pytest.approx(float((o == 0).mean()))


@pytest.mark.parametrize("shape", [(28, 28), (28, 28, 1), (1, 28, 28, 1)])
def test_accepts_common_input_shapes(seed_model, seven, shape):
    records = inspect_model(seed_model, seven.reshape(shape))
    assert records[0].output_shape == (26, 26, 32)


def test_uint8_input_is_scaled(seed_model, seven):
    a = inspect_model(seed_model, seven)
    b = inspect_model(seed_model, np.rint(seven * 255).astype(np.uint8))
    np.testing.assert_allclose(a[-1].output, b[-1].output, rtol=1e-4)


def test_bad_input_shape_is_a_clear_error(seed_model):
    with pytest.raises(ValueError, match=r"inspect needs one input of shape \(28, 28, 1\)"):
        inspect_model(seed_model, np.zeros((2, 28, 28, 1), np.float32))


def test_table_lists_every_layer(seed_model, seven):
    records = inspect_model(seed_model, seven)
    table = format_table(records)
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["#", "layer", "type", "output"]
    assert "(26, 26, 32)" in lines[2] and "conv2d" in lines[2]
    assert "(36864,)" in lines[4]
    assert f"{100 * records[0].zero_share:.1f}%" in lines[2]
    assert "pool ties" in table


def test_top_k_order_and_labels():
    p = np.array([0.1, 0.5, 0.05, 0.35])
    assert top_k(p, 3, ["a", "b", "c", "d"]) == [(1, "b", 0.5), (3, "d", 0.35), (0, "a", 0.1)]
