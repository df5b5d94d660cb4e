"""BatchNormalization: loop oracle, finite differences (training and inference mode), moving
statistics, batch of one, dtypes, summary, Keras options; with TensorFlow, Keras 3's layer itself
(both modes, k training calls, hyperparameters not rounded) and a whole model trained by both.

Tolerances (relative, max|a - b| / max|b|): the oracle and the Keras layer in float64 differ from
minicnn by summation order only (ORACLE_RTOL, KERAS_RTOL); float32 against Keras 1e-6 (a few
ulps: TensorFlow reduces in another order); the 5-step model trajectory 1e-9 (the crosscheck's
float64 target).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from minicnn import Sequential, gradcheck, optimizers
from minicnn.errors import KerasConfigError
from minicnn.kernels import naive
from minicnn.layers import BatchNormalization, Conv2D, Dense, Flatten, MaxPool2D, ReLU
from tests.helpers import GRADCHECK_RTOL, ORACLE_RTOL, rel_err

#: float64 minicnn vs Keras's layer (another summation order in the moments)
KERAS_RTOL = 1e-13
#: float32 minicnn vs Keras's layer
KERAS32_RTOL = 1e-6
#: float64 5-step Adam trajectory of a whole model vs Keras train_on_batch
TRAJECTORY_RTOL = 1e-9

SHAPES = [(6, 4), (3, 5, 4, 3)]  # (N, C) and (N, H, W, C)
OPTIONS = [{}, {"center": False}, {"scale": False}, {"center": False, "scale": False, "momentum": 0.9}]
OPTION_IDS = ["default", "nocenter", "noscale", "plain-m0.9"]


def make(input_shape, dtype=np.float64, seed=0, **options):
    """A built layer with random gamma/beta and moving statistics (a positive variance)."""
    layer = BatchNormalization(**options)
    layer.name = "bn"
    layer.build(input_shape, dtype, np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    for k, p in layer.params.items():
        p[...] = rng.uniform(0.25, 1.5, p.shape) if k == "moving_variance" else rng.uniform(-1, 1, p.shape)
    return layer


def data(shape, dtype=np.float64, seed=2):
    """Mean 1, standard deviation 2: normalising changes the values a lot."""
    return (np.random.default_rng(seed).standard_normal(shape) * 2 + 1).astype(dtype)


def upstream(shape, dtype=np.float64, seed=3):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(dtype)


# ------------------------------------------------------------------------------- definitions
def test_defaults_are_keras_3s():
    layer = BatchNormalization()
    assert (layer.axis, layer.momentum, layer.epsilon, layer.center, layer.scale) == (-1, 0.99, 1e-3, True, True)
    layer.build((4, 4, 3), np.float32)
    assert list(layer.params) == ["gamma", "beta", "moving_mean", "moving_variance"]
    for k, value in {"gamma": 1, "beta": 0, "moving_mean": 0, "moving_variance": 1}.items():
        assert layer.params[k].dtype == np.float32 and np.array_equal(layer.params[k], np.full(3, value)), k
    assert layer.trainable_names == ["gamma", "beta"] and sorted(layer.grads) == ["beta", "gamma"]
    assert layer.count_params() == 12 and layer.count_trainable_params() == 6


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
def test_weights_follow_center_and_scale(options):
    layer = make((5,), **options)
    expected = [k for k, on in (("gamma", layer.scale), ("beta", layer.center)) if on]
    assert layer.trainable_names == expected and sorted(layer.grads) == sorted(expected)
    assert list(layer.params) == [*expected, "moving_mean", "moving_variance"]


def test_summary_counts_the_moving_statistics_as_non_trainable():
    # Keras 3.15's summary of the same model: BN row 128; totals 12,554 / 12,490 / 64 (256.00 B)
    m = Sequential([Conv2D(32, 3), BatchNormalization(), ReLU(), Flatten(), Dense(10, activation="softmax")],
                   input_shape=(8, 8, 3))
    text = m.summary(print_fn=None)
    assert re.search(r"│ batch_normalization \(BatchNormalization\)\s+│ \(None, 6, 6, 32\)\s+│\s+128 │", text)
    assert " Total params: 12,554 (49.04 KB)" in text
    assert " Trainable params: 12,490 (48.79 KB)" in text
    assert " Non-trainable params: 64 (256.00 B)" in text
    bn = m.get_layer("batch_normalization")
    assert bn.count_params() == 128 and bn.count_trainable_params() == 64
    assert [k for k, _, _ in m.named_parameters() if k.startswith("batch_normalization/")] == [
        "batch_normalization/gamma", "batch_normalization/beta"]


@pytest.mark.parametrize("bad, message", [
    ({"momentum": float("nan")}, "momentum"), ({"epsilon": -1e-3}, "epsilon"), ({"axis": 1.0}, "axis"),
    ({"gamma_initializer": "glorot_uniform"}, "zeros' or 'ones"),
])
def test_bad_arguments_are_refused(bad, message):
    with pytest.raises((ValueError, TypeError), match=message):
        BatchNormalization(**bad)


@pytest.mark.parametrize("axis, shape, ok", [(-1, (4, 4, 3), True), (3, (4, 4, 3), True), (1, (5,), True),
                                             (1, (4, 4, 3), False), (2, (4, 4, 3), False), (0, (5,), False)])
def test_only_the_last_axis(axis, shape, ok):
    layer = BatchNormalization(axis=axis)
    if ok:
        assert layer.compute_output_shape(shape) == shape
    else:
        with pytest.raises(ValueError, match=rf"axis={axis} .*last \(channels\) axis only"):
            layer.build(shape)


# ------------------------------------------------------------------------------- the maths
@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=["2d", "4d"])
def test_training_pass_matches_the_loop_oracle(backend, shape, options):
    layer = make(shape[1:], **options)
    gamma, beta = layer.params.get("gamma"), layer.params.get("beta")
    mm, mv = layer.params["moving_mean"].copy(), layer.params["moving_variance"].copy()
    x, dy = data(shape), upstream(shape)
    y = layer.forward(x, training=True)
    want, mean, var = naive.batchnorm(x, gamma, beta)
    assert rel_err(y, want) <= ORACLE_RTOL
    m = layer.momentum
    assert rel_err(layer.params["moving_mean"], mm * m + mean * (1 - m)) <= ORACLE_RTOL
    assert rel_err(layer.params["moving_variance"], mv * m + var * (1 - m)) <= ORACLE_RTOL
    dx = layer.backward(dy)
    want_dx, dgamma, dbeta = naive.batchnorm_backward(dy, x, gamma)
    assert rel_err(dx, want_dx) <= ORACLE_RTOL
    if layer.scale:
        assert rel_err(layer.grads["gamma"], dgamma) <= ORACLE_RTOL
    if layer.center:
        assert rel_err(layer.grads["beta"], dbeta) <= ORACLE_RTOL
    assert layer.grads_finite is True


@pytest.mark.parametrize("shape", SHAPES, ids=["2d", "4d"])
def test_inference_uses_the_moving_statistics_and_changes_nothing(backend, shape):
    layer = make(shape[1:])
    before = [w.copy() for w in layer.get_weights()]
    x = data(shape)
    y = layer.forward(x, training=False)
    want, _, _ = naive.batchnorm(x, layer.params["gamma"], layer.params["beta"],
                                 layer.params["moving_mean"], layer.params["moving_variance"])
    assert rel_err(y, want) <= ORACLE_RTOL
    assert all(np.array_equal(a, b) for a, b in zip(layer.get_weights(), before))


def test_training_output_ignores_the_moving_statistics(backend):
    a, b = make((3, 2, 4), seed=0), make((3, 2, 4), seed=0)
    b.params["moving_mean"][...] += 5.0
    b.params["moving_variance"][...] *= 7.0
    x = data((2, 3, 2, 4))
    for _ in range(3):  # the statistics drift apart; the training outputs stay bitwise equal
        assert np.array_equal(a.forward(x, training=True), b.forward(x, training=True))
    assert not np.array_equal(a.params["moving_mean"], b.params["moving_mean"])


def test_moving_statistics_after_k_training_steps(backend):
    layer = make((4, 4, 3))
    mm, mv = layer.params["moving_mean"].copy(), layer.params["moving_variance"].copy()
    refs = [layer.params["moving_mean"], layer.params["moving_variance"]]
    for k in range(5):
        x = data((4, 4, 4, 3), seed=10 + k)
        layer.forward(x, training=True)
        _, mean, var = naive.batchnorm(x, None, None)
        mm, mv = mm * 0.99 + mean * (1.0 - 0.99), mv * 0.99 + var * (1.0 - 0.99)
    assert rel_err(layer.params["moving_mean"], mm) <= ORACLE_RTOL
    assert rel_err(layer.params["moving_variance"], mv) <= ORACLE_RTOL
    # updated in place: whoever holds the arrays (optimizer, callers) sees the new values
    assert layer.params["moving_mean"] is refs[0] and layer.params["moving_variance"] is refs[1]


def test_the_biased_variance_goes_into_the_moving_variance():
    layer = make((2,), momentum=0.0)  # momentum 0: the moving variance becomes the batch's
    x = data((5, 2))
    layer.forward(x, training=True)
    np.testing.assert_allclose(layer.params["moving_variance"], x.var(axis=0, ddof=0), rtol=1e-14)
    assert not np.allclose(layer.params["moving_variance"], x.var(axis=0, ddof=1), rtol=1e-3)


@pytest.mark.parametrize("shape", [(1, 3), (1, 1, 1, 3)], ids=["2d", "4d-1x1"])
def test_batch_of_one_in_training(backend, shape):
    # variance 0: every value is its mean, so the output is beta (up to rounding of
    # x * inv + (beta - mean * inv)), the moving variance only decays, and dx is exactly 0
    layer = make(shape[1:])
    mv = layer.params["moving_variance"].copy()
    x = data(shape)
    y = layer.forward(x, training=True)
    np.testing.assert_allclose(y.reshape(-1), layer.params["beta"], rtol=0, atol=1e-12)
    assert np.array_equal(layer.params["moving_variance"], mv * 0.99 + 0.0)
    dx = layer.backward(upstream(shape))
    assert np.array_equal(dx, np.zeros(shape)) and np.array_equal(layer.grads["gamma"], np.zeros(3))
    assert np.array_equal(layer.grads["beta"], upstream(shape).reshape(-1))


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=["2d", "4d"])
def test_gradients_through_the_batch_statistics(backend, shape, options):
    layer = make(shape[1:], **options)
    errs = gradcheck.check_layer(layer, data(shape))
    assert set(errs) == {"input", *layer.trainable_names}
    assert max(errs.values()) <= GRADCHECK_RTOL, errs


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=["2d", "4d"])
def test_gradients_of_a_frozen_layer(backend, shape, options):
    # training=False forward, then backward: the affine map with the moving statistics
    layer = make(shape[1:], **options)
    x, g = data(shape), upstream(shape)
    y = layer.forward(x, training=False)
    dx = layer.backward(g)
    arrays = {"input": x.copy(), **{k: layer.params[k] for k in layer.trainable_names}}
    grads = {"input": dx, **{k: layer.grads[k].copy() for k in layer.trainable_names}}
    errs = gradcheck.directional_errors(lambda: np.sum(layer.forward(arrays["input"]) * g), arrays, grads,
                                        loss_scale=float(np.sum(np.abs(y * g))))
    assert max(errs.values()) <= GRADCHECK_RTOL, errs
    # and its closed form: dx = dy * gamma / sqrt(moving_variance + epsilon)
    gamma = layer.params.get("gamma", 1.0)
    assert rel_err(dx, g * gamma / np.sqrt(layer.params["moving_variance"] + layer.epsilon)) <= ORACLE_RTOL


@pytest.mark.parametrize("shape", SHAPES, ids=["2d", "4d"])
def test_float32_is_kept_and_close_to_float64(backend, shape):
    l32, l64 = make(shape[1:], np.float32), make(shape[1:], np.float64)
    l64.set_weights([w.astype(np.float64) for w in l32.get_weights()])
    x, dy = data(shape, np.float32), upstream(shape, np.float32)
    for training in (True, False):
        y32, y64 = l32.forward(x, training=training), l64.forward(x.astype(np.float64), training=training)
        dx32, dx64 = l32.backward(dy), l64.backward(dy.astype(np.float64))
        assert y32.dtype == dx32.dtype == np.float32
        assert all(p.dtype == np.float32 for p in l32.params.values())
        assert all(g.dtype == np.float32 for g in l32.grads.values())
        assert rel_err(y32, y64) <= 1e-6 and rel_err(dx32, dx64) <= 1e-5
        for k in l32.params:
            assert rel_err(l32.params[k], l64.params[k]) <= 1e-6, k


def test_backward_never_writes_into_dy_and_needs_a_forward():
    layer = make((3,))
    with pytest.raises(ValueError, match=r"backward\(\) called without a forward"):
        layer.backward(np.ones((2, 3)))
    layer.forward(data((4, 3)), training=True)
    dy = upstream((4, 3))
    before = dy.copy()
    layer.backward(dy)
    assert np.array_equal(dy, before)


# ------------------------------------------------------------------------------- Keras configs
def keras_cfg(**changes):
    cfg = {"name": "bn", "trainable": True, "dtype": "float32", **BatchNormalization().keras_config()}
    cfg.update(changes)
    return cfg


@pytest.mark.parametrize("option, value", [
    ("renorm", True), ("synchronized", True), ("renorm_clipping", {"rmax": 3.0}),
    ("gamma_regularizer", {"class_name": "L2", "config": {"l2": 0.01}}),
    ("beta_regularizer", {"class_name": "L1", "config": {"l1": 0.01}}),
    ("gamma_constraint", {"class_name": "NonNeg", "config": {}}),
    ("beta_constraint", {"class_name": "MaxNorm", "config": {}}), ("axis", [1, 2]), ("axis", "last"),
    ("center", "yes"),
])
def test_keras_options_minicnn_cannot_honour_are_refused(option, value):
    with pytest.raises(KerasConfigError, match=f"layer 'bn'.*{option}"):
        BatchNormalization.from_keras_config(keras_cfg(**{option: value}), "layer 'bn'")


def test_keras_options_read_back():
    layer = BatchNormalization.from_keras_config(
        keras_cfg(axis=[3], momentum=0.9, epsilon=1e-5, center=False, renorm_momentum=0.5,
                  gamma_initializer={"class_name": "RandomNormal", "config": {}}), "layer 'bn'")
    assert (layer.axis, layer.momentum, layer.epsilon, layer.center, layer.scale) == (3, 0.9, 1e-5, False, True)
    assert layer.gamma_initializer == "ones"  # another initializer: the weights come from the file
    with pytest.raises(ValueError, match="axis=1"):  # a Keras axis that is not the last
        BatchNormalization.from_keras_config(keras_cfg(axis=1), "layer 'bn'").build((4, 4, 3))


# ------------------------------------------------------------------------------- Keras 3 itself
@pytest.fixture(scope="module")
def tf():
    tf = pytest.importorskip("tensorflow")
    from reference.crosscheck import setup_tensorflow
    setup_tensorflow()
    return tf


def keras_twin(layer, dtype):
    """Keras's layer from the config minicnn writes, with the same weights."""
    from reference import convert
    klayer = convert.keras_layer(layer, dtype, layer.input_shape)
    klayer.build((None, *layer.input_shape))
    klayer.set_weights(layer.get_weights())
    return klayer


def keras_pass(tf, klayer, x, dy, training):
    """(y, dx, {trainable weight: gradient}) of one Keras call of ``klayer`` on ``x``."""
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        yt = klayer(xt, training=training)
        scalar = tf.reduce_sum(yt * dy)
    dx, *grads = tape.gradient(scalar, [xt, *klayer.trainable_weights])
    names = [w.path.split("/")[-1] for w in klayer.trainable_weights]
    return yt.numpy(), dx.numpy(), {n: g.numpy() for n, g in zip(names, grads)}


@pytest.mark.tf
def test_keras_config_is_what_keras_writes(tf):
    import keras
    for options in [{}, {"center": False, "momentum": 0.9}, {"scale": False, "epsilon": 1e-5, "axis": 3}]:
        mine = BatchNormalization(**options).keras_config()
        theirs = keras.layers.BatchNormalization(**options).get_config()
        for k in ("name", "dtype", "trainable"):
            theirs.pop(k)
        assert list(mine.items()) == list(theirs.items()), options  # same values, same order


@pytest.mark.tf
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=["2d", "4d"])
def test_k_calls_in_both_modes_match_keras(tf, shape, options, dtype):
    """Three training calls (different batches), then inference, then a frozen backward."""
    tol = KERAS_RTOL if dtype == "float64" else KERAS32_RTOL
    layer = make(shape[1:], np.dtype(dtype), **options)
    klayer = keras_twin(layer, dtype)
    for k in range(3):
        x, dy = data(shape, dtype, seed=20 + k), upstream(shape, dtype, seed=30 + k)
        y, dx = layer.forward(x, training=True), layer.backward(dy)
        ky, kdx, kgrads = keras_pass(tf, klayer, x, dy, training=True)
        assert y.dtype == ky.dtype == np.dtype(dtype)
        assert rel_err(y, ky) <= tol and rel_err(dx, kdx) <= tol * 10, k
        assert sorted(kgrads) == sorted(layer.trainable_names)
        for name, kg in kgrads.items():
            assert rel_err(layer.grads[name], kg) <= tol * 10, (k, name)
        for name, mine, theirs in zip([w.path.split("/")[-1] for w in klayer.weights], layer.get_weights(),
                                      klayer.get_weights(), strict=True):
            assert rel_err(mine, theirs) <= tol, (k, name)
    x, dy = data(shape, dtype, seed=40), upstream(shape, dtype, seed=41)
    y, dx = layer.forward(x, training=False), layer.backward(dy)
    ky, kdx, kgrads = keras_pass(tf, klayer, x, dy, training=False)
    assert rel_err(y, ky) <= tol and rel_err(dx, kdx) <= tol
    for name, kg in kgrads.items():
        assert rel_err(layer.grads[name], kg) <= tol * 10, name


@pytest.mark.tf
def test_float64_hyperparameters_are_not_rounded_through_float32(tf):
    # Keras adds epsilon and multiplies by momentum as Python floats: a float64 layer sees the
    # doubles 1e-3 and 0.99 (unlike Rescaling's scale or Adam's betas). A batch variance of ~1e-4
    # makes epsilon's rounding visible: float32(1e-3) would move the output by ~2e-8.
    layer = make((3, 3, 5))
    rounded = make((3, 3, 5), epsilon=float(np.float32(1e-3)), momentum=float(np.float32(0.99)))
    klayer = keras_twin(layer, "float64")
    x = data((4, 3, 3, 5)) * 0.01
    ky = keras_pass(tf, klayer, x, np.ones_like(x), training=True)[0]
    assert rel_err(layer.forward(x, training=True), ky) <= 1e-14
    assert rel_err(rounded.forward(x, training=True), ky) > 1e-9  # the test tells the two apart
    for k, theirs in zip(("moving_mean", "moving_variance"), klayer.get_weights()[2:]):
        assert rel_err(layer.params[k], theirs) <= 1e-15, k
        assert rel_err(rounded.params[k], theirs) > 1e-10, k


@pytest.mark.tf
@pytest.mark.parametrize("shape", [(1, 3), (1, 1, 1, 3)], ids=["2d", "4d-1x1"])
def test_batch_of_one_matches_keras(tf, shape):
    layer = make(shape[1:])
    klayer = keras_twin(layer, "float64")
    x, dy = data(shape), upstream(shape)
    y, dx = layer.forward(x, training=True), layer.backward(dy)
    ky, kdx, kgrads = keras_pass(tf, klayer, x, dy, training=True)
    assert np.array_equal(y, ky)  # the same rounding of x * inv + (beta - mean * inv)
    np.testing.assert_allclose(dx, kdx, rtol=0, atol=1e-12)  # 0 here; Keras's rounding residue
    assert all(np.abs(layer.grads[k] - kgrads[k]).max() <= 1e-12 for k in kgrads)
    assert all(np.array_equal(a, b) for a, b in zip(layer.get_weights(), klayer.get_weights()))


def bn_model(seed=0, dtype="float64"):
    """A small VGG-style net: conv-BN-relu blocks, a BN after a Dense, softmax.

    The layers before a BN have no bias, as usual: BN subtracts the batch mean, so such a bias
    has a zero gradient, and what both frameworks compute for it is rounding noise (~1e-16) that
    Adam turns into updates of ~lr * 1e-16 / epsilon: noise, not a trajectory to compare."""
    return Sequential([Conv2D(4, 3, padding="same", use_bias=False), BatchNormalization(), ReLU(), MaxPool2D(2),
                       Conv2D(6, 3, use_bias=False), BatchNormalization(momentum=0.9), ReLU(), Flatten(),
                       Dense(8, use_bias=False), BatchNormalization(center=False), ReLU(),
                       Dense(3, activation="softmax")],
                      input_shape=(8, 8, 2), dtype=dtype, seed=seed)


@pytest.mark.tf
def test_a_bn_model_trains_like_keras_in_float64(tf):
    import keras

    from reference.convert import to_keras
    from reference.crosscheck import LEARNING_RATES
    rng = np.random.default_rng(7)
    x = rng.standard_normal((40, 8, 8, 2)) * 0.5 + 0.3
    y = np.eye(3)[rng.integers(0, 3, 40)]
    lr = LEARNING_RATES["adam"]
    model = bn_model()
    previous = keras.config.floatx()
    keras.config.set_floatx("float64")
    try:
        kmodel = to_keras(model)
        kmodel.compile(optimizer=keras.optimizers.Adam(learning_rate=lr),
                       loss=keras.losses.CategoricalCrossentropy(), run_eagerly=False, jit_compile=False)
        model.compile(optimizers.Adam(learning_rate=lr), "categorical_crossentropy")
        for step in range(5):
            xb, yb = x[8 * step:8 * step + 8], y[8 * step:8 * step + 8]
            loss = model.train_on_batch(xb, yb)[0]
            kloss = float(np.asarray(kmodel.train_on_batch(xb, yb)))
            assert abs(loss - kloss) <= TRAJECTORY_RTOL * abs(kloss), step
    finally:
        keras.config.set_floatx(previous)
    names = [k for k, _ in model.named_weights()]
    assert sum("moving" in k for k in names) == 6
    for name, mine, theirs in zip(names, model.get_weights(), kmodel.get_weights(), strict=True):
        assert theirs.dtype == np.float64 and rel_err(mine, theirs) <= TRAJECTORY_RTOL, name
    xt = x[:16]
    assert rel_err(model.predict(xt), kmodel(tf.constant(xt), training=False).numpy()) <= TRAJECTORY_RTOL


def test_output_rtol_floor_follows_the_error_model():
    """kappa * u * n / 16: kappa = max|x| / max|x - mean| per channel (1 for centred data)."""
    from minicnn.layers import BatchNormalization
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 5, 5, 3))
    bn = BatchNormalization()
    u32 = float(np.finfo(np.float32).eps) / 2
    n = 8 * 5 * 5
    centred = x - x.reshape(-1, 3).mean(axis=0)
    assert bn.output_rtol_floor(centred, np.float32) == pytest.approx(u32 * n / 16)
    shifted = centred + 100.0  # far from zero: subtracting the mean cancels ~log10(100/3) digits
    kappa = (np.abs(shifted).reshape(-1, 3).max(axis=0) / np.abs(centred).reshape(-1, 3).max(axis=0)).max()
    assert bn.output_rtol_floor(shifted, np.float32) == pytest.approx(kappa * u32 * n / 16)
    assert bn.output_rtol_floor(centred, np.float64) < 1e-14
