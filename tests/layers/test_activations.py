"""The activation family: values and gradients at the kinks (TensorFlow's, tabulated and checked
live), stability for large |z|, dtypes, names and aliases, option checks, and Keras's loss from
the logits of a model ending in sigmoid. Each configuration also has a line in
tests/layers/test_contract.py (gradchecks, Keras forward and backward at 1e-10, numba == numpy).
"""

from __future__ import annotations

import numpy as np
import pytest

from minicnn import Sequential, activations, gradcheck, kernels
from minicnn import layers as L
from minicnn.kernels import numpy_activations
from tests.helpers import GRADCHECK_RTOL, rel_err

#: where the kinks are, and a little beyond (6 is relu6's cap)
POINTS = [-1.0, 0.0, 1.0, 5.0, 6.0, 7.0]
F32_SLOPE_02, F32_SLOPE_03, F32_SLOPE_01 = 0.20000000298023224, 0.30000001192092896, 0.10000000149011612
SELU_SCALE = 1.0507009873554805

#: (y, dy/dz with dy = 1) at POINTS, as TensorFlow 2.21 / Keras 3.15 compute them in float64
#: (test_kink_table_is_what_tensorflow_computes re-derives every entry)
FUNCTION_KINKS = {
    "relu": ([0, 0, 1, 5, 6, 7], [0, 0, 1, 1, 1, 1]),
    "leaky_relu": ([-F32_SLOPE_02, 0, 1, 5, 6, 7], [F32_SLOPE_02, F32_SLOPE_02, 1, 1, 1, 1]),
    "elu": ([-0.6321205588285577, 0, 1, 5, 6, 7], [0.36787944117144233, 1, 1, 1, 1, 1]),
    "selu": ([-1.1113307378125628, 0] + [SELU_SCALE * v for v in POINTS[2:]], [0.6467686030348141] + [SELU_SCALE] * 5),
    "linear": (POINTS, [1] * 6),
}
LAYER_KINKS = {
    "LeakyReLU()": (lambda: L.LeakyReLU(), [-F32_SLOPE_03, 0, 1, 5, 6, 7], [F32_SLOPE_03, F32_SLOPE_03, 1, 1, 1, 1]),
    "LeakyReLU(0.0)": (lambda: L.LeakyReLU(0.0), [0, 0, 1, 5, 6, 7], [0, 0, 1, 1, 1, 1]),
    "ELU(0.5)": (lambda: L.ELU(0.5), [-0.31606027941427883, 0, 1, 5, 6, 7], [0.18393972058572117, 0.5, 1, 1, 1, 1]),
    "ELU(-0.5)": (lambda: L.ELU(-0.5), [0.31606027941427883, 0, 1, 5, 6, 7], [-0.18393972058572117, -0.5, 1, 1, 1, 1]),
    "ReLU()": (lambda: L.ReLU(), [0, 0, 1, 5, 6, 7], [0, 0, 1, 1, 1, 1]),
    "ReLU(max_value=6.0)": (lambda: L.ReLU(max_value=6.0), [0, 0, 1, 5, 6, 6], [0, 0, 1, 1, 0, 0]),
    "ReLU(max_value=5.0)": (lambda: L.ReLU(max_value=5.0), [0, 0, 1, 5, 5, 5], [0, 0, 1, 1, 0, 0]),
    "ReLU(negative_slope=0.1)": (lambda: L.ReLU(negative_slope=0.1), [-F32_SLOPE_01, 0, 1, 5, 6, 7],
                                 [F32_SLOPE_01, F32_SLOPE_01, 1, 1, 1, 1]),
    "ReLU(max_value=5.0, negative_slope=0.1)": (lambda: L.ReLU(max_value=5.0, negative_slope=0.1),
                                                [-0.1, 0, 1, 5, 5, 5], [0.1, 0, 1, 1, 0, 0]),
    "ReLU(threshold=1.0)": (lambda: L.ReLU(threshold=1.0), [0, 0, 0, 5, 6, 7], [0, 0, 0, 1, 1, 1]),
    "ReLU(negative_slope=0.1, threshold=1.0)": (lambda: L.ReLU(negative_slope=0.1, threshold=1.0),
                                                [-0.2, -0.1, 0, 5, 6, 7], [0.1, 0.1, 0, 1, 1, 1]),
    "ReLU(max_value=5.0, negative_slope=0.1, threshold=1.0)": (
        lambda: L.ReLU(max_value=5.0, negative_slope=0.1, threshold=1.0), [-0.2, -0.1, 0, 5, 5, 5],
        [0.1, 0.1, 0, 1, 0, 0]),
    "ReLU(max_value=6.0, threshold=1.0)": (lambda: L.ReLU(max_value=6.0, threshold=1.0), [0, 0, 0, 5, 6, 6],
                                           [0, 0, 0, 1, 1, 0]),  # clip, not relu6: gradient 1 at 6
    "ReLU(max_value=0.0)": (lambda: L.ReLU(max_value=0.0), [0] * 6, [0] * 6),
}
#: smooth functions at [-1, 0, 1] (TensorFlow's values; gelu with its float32 1/sqrt(2))
SMOOTH_KINKS = {
    "gelu": ([-0.15865525807260966, 0.0, 0.8413447419273903], [-0.08331546644653365, 0.5, 1.0833154664465336]),
    "silu": ([-0.2689414213699951, 0.0, 0.7310585786300049], [0.07232948812851325, 0.5, 0.9276705118714869]),
    "softplus": ([0.31326168751822286, 0.6931471805599453, 1.3132616875182228],
                 [0.2689414213699951, 0.5, 0.7310585786300049]),
    "sigmoid": ([0.2689414213699951, 0.5, 0.7310585786300049], [0.19661193324148185, 0.25, 0.19661193324148185]),
    "tanh": ([-0.7615941559557649, 0.0, 0.7615941559557649], [0.41997434161402614, 1.0, 0.41997434161402614]),
}
#: same formulas as TensorFlow's, another libm (erfc, exp, log1p): a few ulps
KINK_RTOL = 1e-15


def layer_pass(make, x):
    layer = make()
    layer.name = layer.kind
    layer.build(x.shape[1:], x.dtype, np.random.default_rng(0))
    y = layer.forward(x, training=True)
    return layer, y, layer.backward(np.ones_like(y))


def function_pass(name, x, dy=None):
    """(y, dz) for upstream ``dy`` (default ones: the gradient of sum(y), TensorFlow's convention)."""
    act = activations.Bound(name)
    cache = {}
    y = act.forward(x, cache)
    dy = np.ones_like(y) if dy is None else dy.astype(x.dtype)
    return y, act.backward(dy, cache[act.needs]) if act.needs else dy


@pytest.mark.parametrize("name", list(FUNCTION_KINKS) + list(SMOOTH_KINKS))
def test_functions_at_the_kinks_are_tensorflows(backend, name):
    y_ref, g_ref = {**FUNCTION_KINKS, **SMOOTH_KINKS}[name]
    x = np.array(POINTS[:len(y_ref)])
    y, g = function_pass(name, x)
    np.testing.assert_allclose(y, y_ref, rtol=KINK_RTOL, atol=0)
    np.testing.assert_allclose(g, g_ref, rtol=KINK_RTOL, atol=0)


@pytest.mark.parametrize("key", list(LAYER_KINKS))
def test_layers_at_the_kinks_are_tensorflows(backend, key):
    make, y_ref, g_ref = LAYER_KINKS[key]
    x = np.array([POINTS, POINTS[::-1]])
    _, y, g = layer_pass(make, x)
    np.testing.assert_allclose(y, [y_ref, y_ref[::-1]], rtol=KINK_RTOL, atol=0)
    np.testing.assert_allclose(g, [g_ref, g_ref[::-1]], rtol=KINK_RTOL, atol=0)


def test_prelu_at_the_kink_and_its_alpha_gradient(backend):
    layer = L.PReLU()
    layer.name = "p_re_lu"
    layer.build((3,), np.float64)
    layer.params["alpha"][...] = 0.5
    y = layer.forward(np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 3.0]]), training=True)
    dx = layer.backward(np.ones_like(y))
    np.testing.assert_array_equal(y, [[-0.5, 0, 1], [-1, 0, 3]])
    np.testing.assert_array_equal(dx, [[0.5, 0, 1], [0.5, 0, 1]])  # TensorFlow: 0 at 0 (both relus flat)
    np.testing.assert_array_equal(layer.grads["alpha"], [-3, 0, 0])  # sum of min(x, 0)


def test_prelu_alpha_shape_follows_shared_axes():
    for shared, shape in ((None, (4, 5, 3)), ([1, 2], (1, 1, 3)), (3, (4, 5, 1)), ([2], (4, 1, 3))):
        layer = L.PReLU(shared_axes=shared)
        assert layer.weight_shapes((4, 5, 3)) == {"alpha": shape}
    with pytest.raises(ValueError, match="shared_axes"):
        L.PReLU(shared_axes=[0])
    with pytest.raises(ValueError, match="shared_axes"):
        L.PReLU(shared_axes=[-1])
    layer = L.PReLU(shared_axes=[4])
    layer.name = "p"
    with pytest.raises(ValueError, match=r"layer 'p'.*shared_axes \[4\]"):
        layer.build((4, 5, 3))


@pytest.mark.tf
def test_kink_table_is_what_tensorflow_computes():
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    convert = pytest.importorskip("reference.convert")

    def probe(fn, x):
        xt = tf.constant(np.asarray(x, np.float64))
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = fn(xt)
        return y.numpy(), tape.gradient(y, xt).numpy()

    for name, (y_ref, g_ref) in {**FUNCTION_KINKS, **SMOOTH_KINKS}.items():
        y, g = probe(keras.activations.get(name), POINTS[:len(y_ref)])
        np.testing.assert_array_equal(y, y_ref, err_msg=name)
        np.testing.assert_array_equal(g, g_ref, err_msg=name)
    for key, (make, y_ref, g_ref) in LAYER_KINKS.items():
        layer, _, _ = layer_pass(make, np.array([POINTS]))
        y, g = probe(convert.keras_layer(layer, "float64", (6,)), [POINTS])
        np.testing.assert_array_equal(y[0], y_ref, err_msg=key)
        np.testing.assert_array_equal(g[0], g_ref, err_msg=key)


# ----------------------------------------------------------------------------- numerics
ALL = ("relu", "softmax", "tanh", "sigmoid", "leaky_relu", "elu", "selu", "gelu", "silu", "softplus", "linear")


@pytest.mark.parametrize("dtype, big", [(np.float64, 1e308), (np.float32, 3e38)])
@pytest.mark.parametrize("name", ALL)
def test_large_inputs_neither_overflow_nor_warn(backend, name, dtype, big):
    x = np.array([[-big, -800.0, -100.0, -30.0, 30.0, 100.0, 800.0, big]], dtype=dtype)
    if name == "softmax":
        x = x[:, 1:-1]  # softmax of +-1e308 side by side is inf - inf: no activation can help it
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # pytest also raises on warnings
        y, g = function_pass(name, x)
    assert y.dtype == dtype and g.dtype == dtype
    assert np.isfinite(y).all() and np.isfinite(g).all()


def test_large_input_limits():
    x = np.array([-1e308, -800.0, 800.0, 1e308])
    np.testing.assert_array_equal(activations.sigmoid(x), [0, 0, 1, 1])
    np.testing.assert_array_equal(activations.softplus(x), [0, 0, 800, 1e308])
    np.testing.assert_array_equal(activations.silu(x), [0, 0, 800, 1e308])
    np.testing.assert_array_equal(activations.gelu(x), [0, 0, 800, 1e308])
    np.testing.assert_array_equal(activations.elu(x), [-1, -1, 800, 1e308])
    # small |z|: no cancellation (softplus(-40) = exp(-40) to the last bits; elu via expm1)
    assert rel_err(activations.softplus(np.array([-40.0])), np.exp([-40.0])) < 1e-15
    assert rel_err(activations.elu(np.array([-1e-10])), np.expm1([-1e-10])) == 0
    assert rel_err(activations.sigmoid(np.array([-40.0])), [np.exp(-40.0) / (1 + np.exp(-40.0))]) < 1e-15


@pytest.mark.parametrize("name", ALL)
def test_float32_stays_float32_and_inputs_are_not_written(backend, name):
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    keep = x.copy()
    y, g = function_pass(name, x)
    assert y.dtype == np.float32 and g.dtype == np.float32
    np.testing.assert_array_equal(x, keep)


def test_float32_matches_float64():
    x = np.random.default_rng(1).standard_normal((4, 6))
    dy = np.random.default_rng(2).uniform(-1, 1, x.shape)  # not ones: softmax's gradient of sum(y) is 0
    for name in ALL:
        y64, g64 = function_pass(name, x, dy)
        y32, g32 = function_pass(name, x.astype(np.float32), dy)
        # float32 rounding of the same formulas (a few ulps of 6e-8), relative to the largest value
        assert rel_err(y32, y64) < 1e-6 and rel_err(g32, g64) < 1e-6, name


@pytest.mark.parametrize("make", [lambda: L.ELU(-0.5), lambda: L.ReLU(max_value=6.0, threshold=0.5),
                                  lambda: L.ReLU(max_value=6.0, negative_slope=0.25)], ids=["ELU-neg", "relu6-thr", "relu6-slope"])
def test_more_gradchecks_away_from_the_kinks(backend, make):
    layer = make()
    layer.name = layer.kind
    layer.build((40,), np.float64)
    x = np.random.default_rng(2).uniform(-2, 8, (3, 40))
    x = np.where(np.abs(x - np.round(x * 2) / 2) < 0.05, x + 0.1, x)  # kinks sit at multiples of 0.5
    assert max(gradcheck.check_layer(layer, x).values()) <= GRADCHECK_RTOL


def test_both_backends_expose_every_activation_kernel():
    for name in kernels.BACKENDS:
        module = kernels.use_backend(name)
        missing = [f for f in numpy_activations.__all__ if not callable(getattr(module, f, None))]
        assert not missing, (name, missing)
    kernels.use_backend("numpy")


# ----------------------------------------------------------------------------- names and options
def test_names_aliases_and_callables():
    assert activations.normalize("swish") == "silu"
    assert activations.normalize(activations.gelu) == "gelu"
    assert activations.normalize(activations.swish) == "silu"
    assert activations.normalize("linear") is None and activations.normalize(None) is None
    d = L.Dense(2, activation="swish")
    assert d.activation == "silu" and d.keras_config()["activation"] == "silu"  # as Keras writes it back
    assert L.Activation(activations.tanh).activation == "tanh"


@pytest.mark.parametrize("make", [lambda: L.Dense(2, activation="mish"), lambda: L.Activation("hard_sigmoid"),
                                  lambda: L.Conv2D(2, 3, activation=np.tanh)])
def test_an_unknown_activation_names_the_supported_ones(make):
    with pytest.raises(ValueError) as e:
        make()
    for name in ("linear (None)", "relu", "softmax", "tanh", "sigmoid", "leaky_relu", "elu", "selu", "gelu",
                 "silu", "softplus", "swish"):
        assert name in str(e.value)


@pytest.mark.parametrize("bad, match", [
    (lambda: L.ReLU(max_value=-1.0), "max_value cannot be negative"),
    (lambda: L.ReLU(negative_slope=-0.1), "negative_slope cannot be negative"),
    (lambda: L.ReLU(threshold=-0.5), "threshold cannot be negative"),
    (lambda: L.ReLU(negative_slope=None), "negative_slope must be a finite number"),
    (lambda: L.LeakyReLU(-0.2), "negative_slope cannot be negative"),
    (lambda: L.LeakyReLU(None), "negative_slope must be a finite number"),
    (lambda: L.ELU(float("nan")), "alpha must be a finite number"),
    (lambda: L.PReLU(alpha_initializer="orthogonal"), "unknown initializer"),
])
def test_options_keras_refuses_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        bad()


def test_keras_defaults_and_legacy_configs():
    assert L.LeakyReLU().negative_slope == 0.3  # keras/src/layers/activations/leaky_relu.py
    assert L.ELU().alpha == 1.0
    assert L.ReLU().keras_config() == {"max_value": None, "negative_slope": 0.0, "threshold": 0.0}
    assert L.PReLU().keras_config()["alpha_initializer"]["class_name"] == "Zeros"
    # Keras 2 wrote LeakyReLU's slope as 'alpha'
    assert L.LeakyReLU.from_keras_config({"name": "lr", "alpha": 0.1}, "here").negative_slope == 0.1
    with pytest.raises(ValueError, match="alpha_constraint"):
        L.PReLU.from_keras_config({"name": "p", "alpha_constraint": {"class_name": "NonNeg"}}, "here")
    # old minicnn model files wrote ReLU, Activation and Softmax with their name only
    assert L.ReLU.from_config({"name": "r"}).get_config() == L.ReLU(name="r").get_config()


def test_activation_layers_fuse_nothing_and_count_flops():
    for layer in (L.Activation("gelu"), L.ELU(), L.PReLU(), L.ReLU(max_value=2.0)):
        layer.name = layer.kind
        layer.build((3, 4), np.float64)
        assert layer.fuses == () and layer.flops() > 0 and layer.flops(backward=True) > 0


# ----------------------------------------------------------------------------- sigmoid + cross-entropy
def sigmoid_model(last, loss):
    m = Sequential(last, input_shape=(5,), dtype="float64", seed=0)
    m.compile("sgd", loss)
    return m


@pytest.mark.parametrize("loss", ["categorical_crossentropy", "sparse_categorical_crossentropy"])
@pytest.mark.parametrize("last", ["dense", "activation"])
def test_a_model_ending_in_sigmoid_takes_its_loss_from_the_logits_like_keras(backend, loss, last):
    layers = ([L.Dense(3, activation="sigmoid")] if last == "dense" else [L.Dense(3), L.Activation("sigmoid")])
    m = sigmoid_model(layers, loss)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 5))
    labels = np.array([0, 1, 2, 1])
    y = labels if loss.startswith("sparse") else np.eye(3)[labels]
    out = m.forward(x, training=True)
    z = m.layers[-1].logits
    np.testing.assert_allclose(out, 1 / (1 + np.exp(-z)), rtol=1e-15)
    shifted = z - z.max(1, keepdims=True)
    softmax_ce = -(shifted[np.arange(4), labels] - np.log(np.exp(shifted).sum(1))).mean()
    assert m.fused_softmax_loss
    assert m.evaluate(x, y)[0] == pytest.approx(softmax_ce, rel=1e-14)
    assert max(gradcheck.check_model(m, x, y).values()) <= GRADCHECK_RTOL


@pytest.mark.tf
def test_keras_too_takes_the_loss_of_a_sigmoid_model_from_its_logits():
    pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    convert = pytest.importorskip("reference.convert")
    m = sigmoid_model([L.Dense(3, activation="sigmoid")], "categorical_crossentropy")
    x = np.random.default_rng(0).standard_normal((4, 5))
    y = np.eye(3)[[0, 1, 2, 1]]
    # with floatx float32 Keras's loss (its dtype fixed at compile) would cast the float64
    # predictions to float32 first: the loss dtype must be the model's, as in reference.crosscheck
    previous = keras.config.floatx()
    keras.config.set_floatx("float64")
    try:
        k = convert.to_keras(m)
        k.compile(loss="categorical_crossentropy", jit_compile=False)
        keras_loss = float(k.evaluate(x, y, verbose=0))
    finally:
        keras.config.set_floatx(previous)
    # same formula (softmax cross-entropy of the logits), another summation order
    assert keras_loss == pytest.approx(m.evaluate(x, y)[0], rel=1e-14)
