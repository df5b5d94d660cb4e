"""Golden values: hand-computed cases from TensorFlow's, Keras's and ONNX's own test suites
(tests/golden/*.json; each case names its file and test), run against both minicnn backends.

The numbers are copied from the suites; the code below only feeds them to minicnn. A case passes
within the tolerance its suite uses (stated in the file). No TensorFlow needed.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from minicnn import activations, losses, optimizers
from minicnn import layers
from minicnn.layers import AveragePooling2D, Conv2D, DepthwiseConv2D, MaxPool2D

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")
FILES = sorted(f for f in os.listdir(GOLDEN) if f.endswith(".json"))
DT = np.float64


def load(fname):
    with open(os.path.join(GOLDEN, fname), encoding="utf-8") as f:
        return json.load(f)


def cases(*fnames):
    out = []
    for fname in fnames:
        for i, case in enumerate(load(fname)["cases"]):
            out.append(pytest.param(case, id=f"{fname[:-5]}:{i}:{case['test']}"))
    return out


def ramp(shape):
    """conv_ops_test.py's _CreateNumpyTensor: 1, 2, 3, ... in the given shape."""
    return np.arange(1, int(np.prod(shape)) + 1, dtype=DT).reshape(shape)


def tf_pool_ramp(shape):
    """pooling_ops_test.py's _VerifyOneType input: ((f + 128) % 255) - 127."""
    f = np.arange(int(np.prod(shape)))
    return (((f + 128) % 255) - 127).astype(DT).reshape(shape)


def pool_input(spec):
    if "tf_ramp" in spec:
        return tf_pool_ramp(spec["tf_ramp"])
    return np.asarray(spec["values"], dtype=DT).reshape(spec["shape"])


def floats(values):
    return np.array([float(v) for v in values], dtype=DT)


def built(layer, input_shape):
    layer.build(tuple(input_shape[1:]), DT, np.random.default_rng(0))
    return layer


def check(got, case):
    np.testing.assert_allclose(np.ravel(got), np.ravel(np.asarray(case["expected"], dtype=DT)),
                               rtol=case.get("rtol", 1e-6), atol=case.get("atol", 1e-6), err_msg=case["test"])


def test_every_golden_file_cites_its_source():
    assert {"tf_conv_ops.json", "tf_depthwise_conv.json", "tf_pooling_ops.json", "onnx_pool.json",
            "keras_ops_losses.json", "keras_optimizers.json"} <= set(FILES)
    for fname in FILES:
        data = load(fname)
        assert data["repository"] and ("file" in data or "files" in data or all("file" in c for c in data["cases"]))
        assert data["cases"] and all(c["test"] and "expected" in c for c in data["cases"]), fname


@pytest.mark.parametrize("case", cases("tf_conv_ops.json"))
def test_conv2d(backend, case):
    fh, fw, cin, cout = case["filter"]
    layer = built(Conv2D(cout, (fh, fw), strides=tuple(case["strides"]), padding=case["padding"], use_bias=False),
                  case["input"])
    layer.set_weights([ramp(case["filter"])])
    if case["op"] == "conv2d":
        check(layer.forward(ramp(case["input"]), training=True), case)
        return
    x = ramp(case["input"]) if case["op"] == "conv2d_backprop_filter" else np.zeros(case["input"], DT)
    y = layer.forward(x, training=True)
    assert list(y.shape) == case["output"]
    dx = layer.backward(ramp(case["output"]))
    check(dx if case["op"] == "conv2d_backprop_input" else layer.grads["kernel"], case)


@pytest.mark.parametrize("case", cases("tf_depthwise_conv.json"))
def test_depthwise_conv2d(backend, case):
    fh, fw, _, mult = case["filter"]
    layer = built(DepthwiseConv2D((fh, fw), strides=tuple(case["strides"]), padding=case["padding"],
                                  depth_multiplier=mult, use_bias=False), case["input"])
    layer.set_weights([ramp(case["filter"])])
    check(layer.forward(ramp(case["input"]), training=True), case)


@pytest.mark.parametrize("case", cases("tf_pooling_ops.json", "onnx_pool.json"))
def test_pooling(backend, case):
    cls = AveragePooling2D if case["op"] == "avg_pool" else MaxPool2D
    if case["op"] == "max_pool_grad":
        x = floats(case["input"]).reshape(case["input_sizes"])
    else:
        x = pool_input(case["input"])
    layer = built(cls(tuple(case["ksize"]), strides=tuple(case["strides"]), padding=case["padding"]), x.shape)
    y = layer.forward(x, training=True)
    if case["op"] != "max_pool_grad":
        check(y, case)
        return
    assert list(y.shape) == case["output_sizes"]
    check(layer.backward(floats(case["output_backprop"]).reshape(case["output_sizes"])), case)


LOSSES = {"categorical_crossentropy": losses.CategoricalCrossentropy,
          "sparse_categorical_crossentropy": losses.SparseCategoricalCrossentropy}


@pytest.mark.parametrize("case", cases("keras_ops_losses.json"))
def test_keras_ops_and_losses(backend, case):
    op = case["op"]
    if op in ("softmax", "log_softmax"):
        check(getattr(activations, op)(np.asarray(case["x"], DT)), case)
    elif op == "relu":
        check(activations.relu(np.asarray(case["x"], DT), **case["kwargs"]), case)
    elif op == "layer":
        x = np.atleast_2d(np.asarray(case["x"], DT))
        layer = built(getattr(layers, case["layer"])(**case["kwargs"]), x.shape)
        check(layer.forward(x, training=True), case)
    else:
        name = op.removesuffix("_mean")
        loss = LOSSES[name](from_logits=case["from_logits"])
        y_true = np.asarray(case["y_true"], DT if not name.startswith("sparse") else np.int64)
        y_pred = np.asarray(case["y_pred"], DT)
        if op.endswith("_mean"):
            check(loss(y_true, y_pred), case)
        else:  # one value per sample: the mean over a batch of one
            check([loss(y_true[i:i + 1], y_pred[i:i + 1]) for i in range(len(y_pred))], case)


@pytest.mark.parametrize("case", cases("keras_optimizers.json"))
def test_keras_optimizer_steps(backend, case):
    # Keras's test variables are float32 (backend.Variable under the default floatx)
    v0 = case["var0"]
    p = (np.full(v0["full"][0], v0["full"][1]) if isinstance(v0, dict) else np.asarray(v0)).astype(np.float32)
    named = {"first_grads": np.full(10, 0.01, np.float32), "grads": np.arange(0.1, 1.1, 0.1).astype(np.float32)}
    opt = optimizers.get(case["optimizer"], **case["kwargs"])
    for g, expected in zip(case["grads"], case["expected"], strict=True):
        g = named[g] if isinstance(g, str) else np.asarray(g, np.float32)
        opt.step([("w", p, g)])
        want = np.broadcast_to(np.asarray(expected, DT), p.shape)
        np.testing.assert_allclose(p, want, rtol=case["rtol"], atol=case["atol"], err_msg=case["test"])
