"""The layer contract, run the same way for every registered layer (Keras's run_layer_test).

Adding a layer to minicnn is its own file, its entry in ``minicnn.layers.LAYERS`` and one line in
:data:`CASES` below; ``test_every_registered_layer_has_a_case`` fails until that line exists.

Each case builds the layer on an input shape and draws inputs away from its kinks and ties, then
checks: config and Keras-config round trips; shapes and weights as the layer describes them;
dtype kept in float32 and float64; ``dy`` never written; float64 gradients against finite
differences; numba == numpy; and, with TensorFlow installed, forward and backward against the
Keras layer built from the config the layer writes into Keras files, in training mode (the Keras
layer called with ``training=True``, as ``fit`` does; weights such as BatchNormalization's moving
statistics updated alike) and in inference mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest

from minicnn import gradcheck, kernels
from minicnn import layers as L
from minicnn import regularizers as R
from tests.helpers import GRADCHECK_RTOL, rel_err

#: float64 numba vs numpy: the same maths, summed in another order
BACKEND_RTOL = {np.float64: 1e-12, np.float32: 1e-5}
#: float64 minicnn vs Keras on one layer (same formula, another summation order)
KERAS_RTOL = 1e-10


def normal(rng, shape):
    return rng.standard_normal(shape)


def away_from_zero(rng, shape):
    """Values whose |x| >= 0.1: a finite difference never crosses ReLU's kink."""
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < 0.1, np.sign(x) * 0.1 + x, x)


def tie_free(rng, shape):
    """A shuffled linspace: no two cells are equal or close, so max-pool windows have no ties."""
    return rng.permutation(np.linspace(-3.0, 3.0, math.prod(shape))).reshape(shape)


def away_from_threshold(rng, shape):
    """Values at least 0.05 from ReLU-max-slope-threshold's kinks (0.45 and 1.2)."""
    x = rng.uniform(-1.0, 2.0, shape)
    for kink in (0.45, 1.2):
        x = np.where(np.abs(x - kink) < 0.05, kink + 0.05 * np.sign(x - kink + 1e-9), x)
    return x


#: every activation besides relu/softmax/linear, on Dense, Conv2D and Activation
ZOO_ACTIVATIONS = ("tanh", "sigmoid", "leaky_relu", "elu", "selu", "gelu", "silu", "softplus")


@dataclass
class Case:
    make: object                 # () -> a fresh, unbuilt layer
    input_shape: tuple           # per sample
    draw: object = normal        # (rng, shape) -> float64 input
    id: str = ""
    keras: bool = True           # compare with the Keras layer when TensorFlow is installed
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.id = self.id or type(self.make()).__name__


#: one line per layer configuration (a layer class may have several)
CASES = [
    Case(lambda: L.Conv2D(3, 3, padding="same", activation="relu"), (6, 5, 2), away_from_zero, "Conv2D-relu-same"),
    Case(lambda: L.Conv2D(2, (2, 3), strides=2, use_bias=False), (7, 6, 3), id="Conv2D-stride2-nobias"),
    Case(lambda: L.Dense(4, activation="softmax"), (6,), id="Dense-softmax"),
    Case(lambda: L.Dense(3, activation="relu"), (5,), away_from_zero, "Dense-relu"),
    Case(lambda: L.MaxPool2D(2), (4, 6, 2), tie_free, "MaxPool2D"),
    Case(lambda: L.MaxPool2D(3, strides=2, padding="same"), (5, 5, 2), tie_free, "MaxPool2D-same"),
    Case(lambda: L.Flatten(), (3, 2, 2)),
    Case(lambda: L.ReLU(), (5,), away_from_zero),
    Case(lambda: L.Softmax(), (5,)),
    Case(lambda: L.Activation("relu"), (2, 3, 2), away_from_zero, "Activation-relu"),
    Case(lambda: L.Activation("softmax"), (4,), id="Activation-softmax"),
    Case(lambda: L.Activation(None), (4,), id="Activation-linear"),
    Case(lambda: L.Dropout(0.0), (6,), id="Dropout"),  # rate 0: training and inference agree with Keras
    Case(lambda: L.Rescaling(1 / 255, offset=-0.5), (3, 3, 2)),
    Case(lambda: L.AveragePooling2D(2), (4, 6, 2), id="AveragePooling2D"),
    Case(lambda: L.AveragePooling2D(3, strides=2, padding="same"), (6, 5, 2), id="AveragePooling2D-same-stride2"),
    Case(lambda: L.AveragePooling2D((2, 3), strides=1, padding="same"), (3, 4, 2), id="AveragePooling2D-same-overlap"),
    Case(lambda: L.GlobalAveragePooling2D(), (3, 4, 2), id="GlobalAveragePooling2D"),
    Case(lambda: L.GlobalAveragePooling2D(keepdims=True), (3, 4, 2), id="GlobalAveragePooling2D-keepdims"),
    Case(lambda: L.GlobalMaxPooling2D(), (3, 4, 2), tie_free, "GlobalMaxPooling2D"),
    Case(lambda: L.GlobalMaxPooling2D(keepdims=True), (3, 4, 2), tie_free, "GlobalMaxPooling2D-keepdims"),
    Case(lambda: L.ZeroPadding2D(), (3, 4, 2), id="ZeroPadding2D"),
    Case(lambda: L.ZeroPadding2D(((1, 2), (0, 3))), (3, 3, 1), id="ZeroPadding2D-asymmetric"),
    Case(lambda: L.Reshape((4, -1)), (2, 3, 4), id="Reshape-infer"),
    Case(lambda: L.Reshape((1, 1, 6)), (6,), id="Reshape-to-maps"),
    Case(lambda: L.BatchNormalization(), (5,), id="BatchNormalization-2d"),
    Case(lambda: L.BatchNormalization(), (3, 4, 3), id="BatchNormalization-4d"),
    Case(lambda: L.BatchNormalization(center=False, momentum=0.9), (4,), id="BatchNormalization-2d-nocenter"),
    Case(lambda: L.BatchNormalization(scale=False, epsilon=0.01), (2, 3, 2), id="BatchNormalization-4d-noscale"),
    Case(lambda: L.BatchNormalization(center=False, scale=False), (3, 2, 4), id="BatchNormalization-4d-plain"),
    Case(lambda: L.Conv2D(2, 3, dilation_rate=2), (7, 8, 2), id="Conv2D-dilation2-valid"),
    Case(lambda: L.Conv2D(3, (2, 3), padding="same", dilation_rate=2, activation="relu"), (6, 7, 2),
         away_from_zero, "Conv2D-dilation2-same-relu"),
    Case(lambda: L.DepthwiseConv2D(3), (5, 6, 3), id="DepthwiseConv2D-m1"),
    Case(lambda: L.DepthwiseConv2D((3, 2), depth_multiplier=2, activation="relu"), (6, 5, 2), away_from_zero,
         "DepthwiseConv2D-m2-relu"),
    Case(lambda: L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, use_bias=False), (7, 6, 2),
         id="DepthwiseConv2D-stride2-same"),
    Case(lambda: L.DepthwiseConv2D(2, strides=2, padding="same", dilation_rate=2), (7, 8, 2),
         id="DepthwiseConv2D-stride2-dilation2-same"),  # Keras allows this for depthwise, not Conv2D
    Case(lambda: L.SeparableConv2D(3, 3, padding="same", depth_multiplier=2, activation="relu"), (6, 5, 2),
         away_from_zero, "SeparableConv2D-relu-same"),
    Case(lambda: L.SeparableConv2D(2, (2, 3), strides=2, dilation_rate=(2, 1), use_bias=False,
                                   activation="softmax"), (8, 7, 3), id="SeparableConv2D-stride2-dilated-softmax"),
    # activations and regularizers (tests/layers/test_activations.py has their family tests)
    *[Case(lambda a=a: L.Dense(3, activation=a), (4,), away_from_zero, f"Dense-{a}") for a in ZOO_ACTIVATIONS],
    *[Case(lambda a=a: L.Conv2D(2, 2, activation=a), (3, 3, 2), away_from_zero, f"Conv2D-{a}") for a in ZOO_ACTIVATIONS],
    *[Case(lambda a=a: L.Activation(a), (2, 3, 2), away_from_zero, f"Activation-{a}") for a in ZOO_ACTIVATIONS],
    Case(lambda: L.Dense(3, activation="relu", kernel_regularizer="l2", bias_regularizer=R.L1(0.02)), (4,),
         away_from_zero, "Dense-relu-regularized"),
    Case(lambda: L.Conv2D(2, 2, kernel_regularizer=R.L1L2(0.01, 0.03)), (3, 3, 2), id="Conv2D-regularized"),
    Case(lambda: L.LeakyReLU(), (2, 3, 2), away_from_zero),
    Case(lambda: L.LeakyReLU(0.05), (5,), away_from_zero, "LeakyReLU-0.05"),
    Case(lambda: L.ELU(), (2, 3, 2), away_from_zero),
    Case(lambda: L.ELU(0.4), (5,), away_from_zero, "ELU-0.4"),
    Case(lambda: L.ReLU(max_value=0.8), (6,), away_from_zero, "ReLU-max"),
    Case(lambda: L.ReLU(max_value=6.0, negative_slope=0.1), (6,), away_from_zero, "ReLU-relu6-slope"),
    Case(lambda: L.ReLU(negative_slope=0.2), (6,), away_from_zero, "ReLU-slope"),
    Case(lambda: L.ReLU(max_value=1.2, negative_slope=0.3, threshold=0.45), (8,), away_from_threshold,
         "ReLU-max-slope-threshold"),
    Case(lambda: L.PReLU(), (2, 3, 2), away_from_zero),
    Case(lambda: L.PReLU(shared_axes=[1, 2], alpha_regularizer="l2"), (3, 2, 3), away_from_zero,
         "PReLU-shared-regularized"),
    Case(lambda: L.DepthwiseConv2D(2, depth_multiplier=2, activation="gelu", depthwise_regularizer="l2",
                                   bias_regularizer="l1"), (4, 3, 2), id="DepthwiseConv2D-gelu-regularized"),
    Case(lambda: L.SeparableConv2D(3, 2, activation="elu", depthwise_regularizer="l1", pointwise_regularizer="l2",
                                   bias_regularizer=R.L1L2(0.01, 0.02)), (4, 3, 2), away_from_zero,
         "SeparableConv2D-elu-regularized"),
]

#: weights drawn positive by :func:`build` (a variance is never negative)
POSITIVE_WEIGHTS = {"moving_variance"}


def build(case: Case, dtype=np.float64, seed=0):
    layer = case.make()
    layer.name = layer.kind
    layer.build(case.input_shape, dtype, np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    for k in layer.params:  # non-zero biases and weights of both signs
        low, high = (0.25, 1.5) if k in POSITIVE_WEIGHTS else (-1, 1)
        layer.params[k][...] = rng.uniform(low, high, layer.params[k].shape)
    return layer


def sample(case: Case, batch=2, dtype=np.float64, seed=0):
    return case.draw(np.random.default_rng(seed + 2), (batch, *case.input_shape)).astype(dtype)


def run(layer, x, dy):
    """(y, dx, grads) of one training pass."""
    y = layer.forward(x, training=True)
    dx = layer.backward(dy)
    return y, dx, {k: v.copy() for k, v in layer.grads.items()}


def test_every_registered_layer_has_a_case():
    covered = {type(c.make()) for c in CASES}
    missing = [cls.__name__ for cls in L.LAYERS if cls not in covered]
    assert not missing, f"add a line to CASES for {missing}"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_config_round_trip(case):
    layer = build(case)
    again = type(layer).from_config(layer.get_config())
    assert again.get_config() == layer.get_config()
    again.build(case.input_shape, np.float64, np.random.default_rng(0))
    again.set_weights(layer.get_weights())
    x = sample(case)
    np.testing.assert_array_equal(again.forward(x), layer.forward(x))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_keras_config_round_trip(case):
    layer = build(case)
    cfg = {"name": layer.name, "trainable": True, "dtype": "float64", **layer.keras_config()}
    cls = L.KERAS_CLASSES[layer.keras_class_name()]
    assert cls is type(layer)
    back = cls.from_keras_config(cfg, where=f"layer {layer.name!r}")
    assert back.get_config() == layer.get_config()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_layer_describes_its_shapes_and_size(case):
    layer = build(case)
    shapes = layer.weight_shapes(case.input_shape)
    assert list(shapes) == [k for k in layer.weight_names if k in layer.params]
    assert {k: v.shape for k, v in layer.params.items()} == shapes
    assert layer.planned_params(case.input_shape) == layer.count_params() == sum(v.size for v in layer.params.values())
    assert layer.compute_output_shape(case.input_shape) == layer.output_shape
    for backward in (False, True):
        assert isinstance(layer.flops(backward=backward), int) and layer.flops(backward=backward) >= 0
    assert isinstance(layer.describe(), str) and isinstance(layer.fuses, tuple)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_dtype_is_kept_and_dy_is_never_written(backend, case, dtype):
    layer = build(case, dtype)
    x = sample(case, dtype=dtype)
    y = layer.forward(x, training=True)
    dy = np.random.default_rng(3).uniform(-1, 1, y.shape).astype(dtype)
    before = dy.copy()
    dx = layer.backward(dy)
    np.testing.assert_array_equal(dy, before)
    assert y.dtype == dtype and dx.dtype == dtype
    assert all(g.dtype == dtype for g in layer.grads.values())
    assert y.shape == (2, *layer.output_shape) and dx.shape == x.shape


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_gradients_match_finite_differences(backend, case):
    layer = build(case)
    errs = gradcheck.check_layer(layer, sample(case))
    assert max(errs.values()) <= GRADCHECK_RTOL, errs


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_numba_equals_numpy(case, dtype):
    x = sample(case, batch=3, dtype=dtype)
    results = {}
    previous = kernels._current
    try:
        for name in ("numpy", "numba"):
            kernels.use_backend(name)
            layer = build(case, dtype)
            dy = np.random.default_rng(4).uniform(-1, 1, (3, *layer.output_shape)).astype(dtype)
            results[name] = run(layer, x, dy)
    finally:
        kernels._current = previous
    (y0, dx0, g0), (y1, dx1, g1) = results["numpy"], results["numba"]
    tol = BACKEND_RTOL[dtype]
    assert rel_err(y1, y0) <= tol and rel_err(dx1, dx0) <= tol
    assert all(rel_err(g1[k], g0[k]) <= tol for k in g0)


def test_backward_without_forward_fails_clearly():
    for case in [c for c in CASES if c.make().backward_needs_forward]:
        layer = build(case)
        with pytest.raises(ValueError, match=r"backward\(\) called without a forward"):
            layer.backward(np.ones((1, *layer.output_shape)))


@pytest.mark.tf
@pytest.mark.parametrize("case", [c for c in CASES if c.keras], ids=lambda c: c.id)
def test_matches_the_keras_layer_its_config_describes(case):
    tf = pytest.importorskip("tensorflow")
    convert = pytest.importorskip("reference.convert")
    layer = build(case)
    klayer = convert.keras_layer(layer, "float64", case.input_shape)
    klayer.build((None, *case.input_shape))
    klayer.set_weights(layer.get_weights())
    x = sample(case)
    y, dx, grads = run(layer, x, np.random.default_rng(5).uniform(-1, 1, (2, *layer.output_shape)))
    dy = np.random.default_rng(5).uniform(-1, 1, y.shape)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:  # training mode, as Keras's fit calls its layers
        tape.watch(xt)
        yt = klayer(xt, training=True)
        scalar = tf.reduce_sum(yt * dy)
    kdx, *kgrads = tape.gradient(scalar, [xt, *klayer.trainable_weights])
    assert rel_err(y, yt.numpy()) <= KERAS_RTOL
    assert rel_err(dx, kdx.numpy()) <= KERAS_RTOL
    assert len(kgrads) == len(layer.trainable_names)
    for k, kg in zip(layer.trainable_names, kgrads):
        assert rel_err(grads[k], kg.numpy()) <= KERAS_RTOL, k
    # weights after the training call: updated alike (BatchNormalization's moving statistics)
    names = [k for k in layer.weight_names if k in layer.params]
    for k, mine, theirs in zip(names, layer.get_weights(), klayer.get_weights(), strict=True):
        assert rel_err(mine, theirs) <= KERAS_RTOL, k
    # inference mode, with those weights
    assert rel_err(layer.forward(x, training=False), klayer(xt, training=False).numpy()) <= KERAS_RTOL
