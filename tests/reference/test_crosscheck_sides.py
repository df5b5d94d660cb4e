"""reference.crosscheck.sides and .layer_check: minicnn's side is the model's own passes, the
Keras side's pinning changes nothing where the gradient is smooth, and the max-pool tie counts
are the layer's own."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.tf]
pytest.importorskip("tensorflow")

from minicnn import Sequential  # noqa: E402
from minicnn.layers import Dense, Flatten, MaxPool2D  # noqa: E402
from reference.convert import clone, to_keras  # noqa: E402
from reference.crosscheck import setup_tensorflow  # noqa: E402
from reference.crosscheck.layer_check import layer_check, maxpool_ties  # noqa: E402
from reference.crosscheck.sides import keras_layer_pass, keras_tape_pass, layer_inputs, minicnn_pass  # noqa: E402
from tests.helpers import rel_err  # noqa: E402
from tests.reference.archgen import generate  # noqa: E402

setup_tensorflow()


def images(n, dtype, seed=0):
    return np.random.default_rng(seed).random((n, 28, 28, 1)).astype(dtype)


def upstream(model, n, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, *model.output_shape)).astype(model.dtype)


def test_minicnn_side_is_the_models_own_passes():
    m = clone(generate(1, "float64"), dropout_rate=0.0)
    x, g = images(4, "float64"), upstream(m, 4)
    calls = []
    forward, backward = m.forward, m.backward
    m.forward = lambda *a, **k: calls.append(("forward", k)) or forward(*a, **k)
    m.backward = lambda *a, **k: calls.append(("backward", k)) or backward(*a, **k)
    side = minicnn_pass(m, x, g)
    assert calls == [("forward", {"training": True, "record": True}),
                     ("backward", {"need_input_grad": True, "record": True, "penalties": False})]
    # the same numbers as a plain run of the model's passes
    ref = clone(m)
    out, outs = ref.forward(x, training=True, record=True)
    dx, dxs = ref.backward(g, need_input_grad=True, record=True)
    assert len(side.outputs) == len(side.input_grads) == len(m.layers)
    assert all(np.array_equal(a, b) for a, b in zip(side.outputs, outs)) and np.array_equal(side.outputs[-1], out)
    assert all(np.array_equal(a, b) for a, b in zip(side.input_grads, dxs)) and np.array_equal(side.input_grads[0], dx)
    for l in ref.trainable_layers:
        for k, v in l.grads.items():
            assert np.array_equal(side.weight_grads[l.name][k], v)
    shapes = [tuple(m.input_shape)] + [l.output_shape for l in m.layers[:-1]]
    assert [a.shape[1:] for a in layer_inputs(x, side)] == shapes


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_pinning_changes_nothing_in_float64(seed):
    """In float64 there are no near-ties: the Keras side pinned at minicnn's activations, the
    unpinned layer-by-layer pass and the one-tape pass agree to rounding."""
    m = clone(generate(seed, "float64"), dropout_rate=0.0)
    k = to_keras(clone(generate(seed, "float64"), dropout_rate=0.0))  # training mode, as the crosscheck
    x, g = images(6, "float64", seed), upstream(m, 6, seed)
    mine = minicnn_pass(m, x, g)
    pinned = keras_layer_pass(k, x, g, pinned=layer_inputs(x, mine))
    free = keras_layer_pass(k, x, g)
    tape_dx, tape_w, tape_out = keras_tape_pass(k, x, g)
    for a, b in zip(pinned.input_grads, free.input_grads):
        assert rel_err(a, b) <= 1e-12
    assert rel_err(free.input_grads[0], tape_dx) <= 1e-12
    ws = [free.weight_grads[l.name][n] for l in m.layers for n in l.weight_names if n in l.params]
    assert len(ws) == len(tape_w) and all(rel_err(a, b) <= 1e-12 for a, b in zip(ws, tape_w))
    report = layer_check(m, k, x, g, "float64")
    assert all(r["judged"] and r["passed"] for r in report["layers"])
    assert report["end_to_end"]["judged"] is False and report["end_to_end"]["input_grad_rel"] <= 1e-10


def test_maxpool_ties_are_the_layers_own():
    pool = MaxPool2D(2)
    m = Sequential([pool, Flatten(), Dense(10)], input_shape=(4, 4, 1), dtype="float64", seed=0)
    m.build()
    x = np.zeros((1, 4, 4, 1))
    x[0, 0, 0, 0] = 1.0                              # window (0, 0): one maximum
    x[0, 0, 2, 0], x[0, 0, 3, 0] = 0.5, 0.5 + 1e-9   # window (0, 1): a near-tie
    x[0, 2, 2, 0] = 2.0                              # window (1, 1): one maximum; (1, 0): all zeros, tied
    ties = maxpool_ties(m, [x, None, None], rtol=1e-6)
    assert (ties["windows"], ties["exact_ties"], ties["near_ties"]) == (4, 1, 1)
    assert ties["share"] == pool.tie_share(x) == 0.25
    assert ties["per_layer"][pool.name]["exact_ties"] == int((pool.window_gaps(x) == 0).sum())
    assert ties["judged"] is False
    flat = Sequential([Flatten(), Dense(10)], input_shape=(4, 4, 1), dtype="float64", seed=0)
    flat.build()
    assert maxpool_ties(flat, [x, None], 1e-6) is None
