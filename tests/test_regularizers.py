"""kernel_regularizer / bias_regularizer / alpha_regularizer: Keras 3's L1, L2, L1L2 and what the
trainer does with them (the penalty is in the loss that fit, train_on_batch and evaluate report;
its gradient is in the weights' gradients before the update and before the non-finite guard),
checked against Keras in float64 when TensorFlow is installed."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from minicnn import Sequential, gradcheck, load_model, regularizers
from minicnn import layers as L
from minicnn.errors import NonFiniteError
from minicnn.optimizers import SGD
from tests.helpers import GRADCHECK_RTOL, rel_err

F32_001 = float(np.float32(0.01))  # 0.009999999776482582: every factor reaches the weights via float32
#: float64, minicnn vs Keras on the same model, weights and batch: the same formulas summed in
#: another order (BLAS vs Eigen reductions), ~1e-16 per operation over a few dozen operations
KERAS_RTOL = 1e-12


# ----------------------------------------------------------------------------- the regularizers
def test_penalties_and_gradients_are_keras_formulas():
    w = np.array([[-2.0, 0.0], [0.5, 3.0]])
    assert regularizers.L2()(w) == F32_001 * 13.25  # l2 * sum(w^2), no 1/2
    assert regularizers.L1()(w) == F32_001 * 5.5
    assert regularizers.L1L2(0.01, 0.01)(w) == F32_001 * 5.5 + F32_001 * 13.25
    assert regularizers.L1L2()(w) == 0.0
    np.testing.assert_array_equal(regularizers.L2(0.5).gradient(w), 0.5 * 2 * w)
    np.testing.assert_array_equal(regularizers.L1(0.5).gradient(w), [[-0.5, 0.0], [0.5, 0.5]])  # 0 at 0
    np.testing.assert_array_equal(regularizers.L1L2(0.5, 0.25).gradient(w), 0.5 * np.sign(w) + 0.25 * 2 * w)


@pytest.mark.parametrize("reg", [regularizers.L1(0.3), regularizers.L2(0.7), regularizers.L1L2(0.2, 0.4)])
def test_gradients_match_finite_differences(reg):
    w = np.random.default_rng(0).standard_normal((4, 3))
    w = np.where(np.abs(w) < 0.1, 0.1, w)  # away from |w|'s kink
    errs = gradcheck.directional_errors(lambda: reg(w), {"w": w}, {"w": reg.gradient(w)})
    assert errs["w"] <= GRADCHECK_RTOL


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(dtype):
    w = np.ones((3, 2), dtype)
    for reg in (regularizers.L1(), regularizers.L2(), regularizers.L1L2(0.1, 0.2)):
        assert reg(w).dtype == dtype and reg.gradient(w).dtype == dtype


def test_strings_defaults_and_serialisation():
    assert regularizers.get("l2") == regularizers.L2(0.01)
    assert regularizers.get("l1") == regularizers.L1(0.01)
    assert regularizers.get("l1_l2") == regularizers.L1L2(0.01, 0.01)  # the Keras docstring's defaults
    assert regularizers.get("l1l2") == regularizers.L1L2(0.0, 0.0)  # Keras's get(): the class, defaults
    assert regularizers.get(None) is None
    assert regularizers.L1(0.01).get_config() == {"l1": F32_001}  # Keras keeps L1's factor in float32
    assert regularizers.L2(0.01).get_config() == {"l2": 0.01}
    spec = regularizers.serialize(regularizers.L1L2(0.01, 0.02))
    assert spec == {"module": "keras.regularizers", "class_name": "L1L2", "config": {"l1": 0.01, "l2": 0.02},
                    "registered_name": None}
    assert regularizers.get(spec) == regularizers.L1L2(0.01, 0.02)
    assert regularizers.get({"class_name": "L2", "config": {"l2": 0.02}}) == regularizers.L2(0.02)  # Keras 2
    assert regularizers.get({"class_name": "L2"}) == regularizers.L2()


@pytest.mark.parametrize("bad, match", [
    ("l3", "unknown regularizer 'l3'"),
    ({"class_name": "OrthogonalRegularizer", "config": {"factor": 0.01}}, "not supported"),
    ({"class_name": "L2", "config": {"l2": 0.01}, "registered_name": "Custom>L2"}, "not supported"),
    ({"class_name": "L2", "config": {"l1": 0.01}}, "unexpected options"),
    (regularizers.L2, "cannot interpret"),
    ({"class_name": "L2", "config": {"l2": -1.0}}, "non-negative"),
    ({"class_name": "L1", "config": {"l1": float("inf")}}, "non-negative"),
])
def test_what_cannot_be_honoured_is_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        regularizers.get(bad)
    with pytest.raises(ValueError, match=match):
        L.Dense(2, kernel_regularizer=bad)


def test_keras_configs_are_read_and_written():
    d = L.Dense(3, kernel_regularizer="l2", bias_regularizer=regularizers.L1(0.02))
    cfg = d.keras_config()
    assert cfg["kernel_regularizer"]["class_name"] == "L2" and cfg["bias_regularizer"]["config"] == {
        "l1": float(np.float32(0.02))}
    back = L.Dense.from_keras_config({"name": "d", **cfg}, "here")
    assert back.regularizers == d.regularizers and back.get_config() == {**d.get_config(), "name": "d"}
    with pytest.raises(ValueError, match=r"here: option kernel_regularizer=.*Orthogonal"):
        L.Conv2D.from_keras_config({"filters": 2, "kernel_size": 3, "kernel_regularizer": {
            "class_name": "OrthogonalRegularizer", "config": {"factor": 0.01, "mode": "rows"}}}, "here")
    with pytest.raises(ValueError, match="activity_regularizer"):  # an activity penalty: not supported
        L.Dense.from_keras_config({"units": 2, "activity_regularizer": {"class_name": "L2"}}, "here")


# ----------------------------------------------------------------------------- in a model
def model(dtype="float64", seed=0, last="softmax", kind="conv"):
    """Every regularizer on every kind of weight: Conv2D, PReLU, Dense ('conv'), or
    DepthwiseConv2D and SeparableConv2D ('separable')."""
    if kind == "conv":
        layers = [L.Conv2D(3, 2, activation="elu", kernel_regularizer="l2", bias_regularizer="l1"),
                  L.PReLU(shared_axes=[1, 2], alpha_regularizer=regularizers.L1L2(0.02, 0.03)),
                  L.Flatten(), L.Dense(5, activation="gelu", kernel_regularizer=regularizers.L1L2(0.01, 0.05))]
    else:
        layers = [L.DepthwiseConv2D(2, activation="silu", depthwise_regularizer="l2", bias_regularizer="l1"),
                  L.SeparableConv2D(3, 2, activation="tanh", depthwise_regularizer=regularizers.L1(0.02),
                                    pointwise_regularizer=regularizers.L2(0.03),
                                    bias_regularizer=regularizers.L1L2(0.01, 0.04)),
                  L.Flatten()]
    m = Sequential([*layers, L.Dense(4, activation=last, bias_regularizer=regularizers.L2(0.1))],
                   input_shape=(5, 4, 2), dtype=dtype, seed=seed)
    m.build()
    rng = np.random.default_rng(seed + 1)
    for layer in m.layers:  # non-zero biases and PReLU slopes
        for p in layer.params.values():
            p[...] = rng.uniform(-0.6, 0.6, p.shape)
    m.compile(SGD(learning_rate=0.125), "categorical_crossentropy")  # 0.125: exact in float32 and float64
    return m


def batch(n=6, seed=2):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 5, 4, 2)), np.eye(4)[rng.integers(0, 4, n)]


def penalty_by_hand(m):
    total = 0.0
    for layer in m.layers:
        for k, reg in layer.regularizers.items():
            total += reg(layer.params[k])
    return total


def test_the_loss_fit_and_evaluate_report_includes_the_penalty():
    m = model()
    x, y = batch()
    out = m.forward(x)
    data = m.loss.logits_loss_and_grad(y, m.layers[-1].logits, need_grad=False)[0]
    pen = penalty_by_hand(m)
    assert pen > 0.05 and m.regularization_loss() == pytest.approx(pen, rel=1e-15)
    assert m.batch_loss(y, out) == pytest.approx(data + pen, rel=1e-15)
    # batches of 4 and 2: each batch's mean loss plus the penalty, weighted by its size
    assert m.evaluate(x, y, batch_size=4)[0] == pytest.approx(data + pen, rel=1e-14)
    assert m.train_on_batch(x, y)[0] == pytest.approx(data + pen, rel=1e-15)
    m2 = model()
    history = m2.fit(x, y, batch_size=6, epochs=1, shuffle=False, verbose=0)
    assert history.history["loss"][0] == pytest.approx(data + pen, rel=1e-15)


@pytest.mark.parametrize("last, kind", [("softmax", "conv"), ("sigmoid", "conv"), ("tanh", "conv"),
                                        ("softmax", "separable")])
def test_model_gradients_with_penalties_match_finite_differences(backend, last, kind):
    m = model(last=last, kind=kind)
    x, y = batch()
    assert max(gradcheck.check_model(m, x, y).values()) <= GRADCHECK_RTOL


def test_the_update_uses_the_penalised_gradient():
    m, plain = model(), model()
    for layer in plain.layers:
        layer.regularizers = {}
    x, y = batch()
    out = plain.forward(x, training=True)
    _, g, fused = plain.loss_and_output_grad(y, out)
    plain.backward(g, from_logits=fused)
    expected = {}
    for layer, twin in zip(m.layers, plain.layers):
        for k in twin.trainable_names:
            reg = layer.regularizers.get(k)
            grad = twin.grads[k] + (reg.gradient(twin.params[k]) if reg else 0)
            expected[f"{layer.name}/{k}"] = twin.params[k] - 0.125 * grad
    m.train_on_batch(x, y)
    for key, p in m.named_weights():
        assert rel_err(p, expected[key]) <= 1e-15, key


def test_a_penalty_that_overflows_stops_the_step_before_the_update():
    m = model(dtype="float32")
    m.layers[3].params["kernel"][0, 0] = 1e30  # its square overflows float32: the loss is inf
    before = [w.copy() for w in m.get_weights()]
    x, y = batch()
    with np.errstate(over="ignore"), pytest.raises(NonFiniteError, match="non-finite loss"):
        m.train_on_batch(x.astype(np.float32), y)
    assert all(np.array_equal(a, b) for a, b in zip(before, m.get_weights()))


def test_penalised_gradients_are_checked_by_the_guard_again():
    m = model(dtype="float32")
    x, y = batch()
    out = m.forward(x.astype(np.float32), training=True)
    _, g, fused = m.loss_and_output_grad(y, out)
    m.backward(g, from_logits=fused)
    # the dense backend's finiteness verdict was taken before the penalty gradient was added
    assert all(layer.grads_finite is None for layer in m.layers if layer.regularizers)


def test_model_files_keep_the_regularizers(tmp_path):
    m = model()
    m.save(tmp_path / "m.npz")
    back = load_model(tmp_path / "m.npz")
    assert back.get_config() == m.get_config()
    assert [layer.regularizers for layer in back.layers] == [layer.regularizers for layer in m.layers]


# ----------------------------------------------------------------------------- against Keras
@contextlib.contextmanager
def keras_float64():
    """Keras with floatx float64, so that its compiled loss computes in the model's dtype (with
    float32 it casts the predictions first, dropping the logits); regularizer factors reach a
    float64 weight through float32 either way."""
    keras = pytest.importorskip("keras")
    previous = keras.config.floatx()
    keras.config.set_floatx("float64")
    try:
        yield keras
    finally:
        keras.config.set_floatx(previous)


@pytest.mark.tf
def test_keras_regularizers_compute_the_same_penalties():
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    w = np.random.default_rng(0).standard_normal((7, 5))
    for mine, theirs in ((regularizers.L1(0.01), keras.regularizers.L1(0.01)),
                         (regularizers.L2(0.03), keras.regularizers.L2(0.03)),
                         (regularizers.L1L2(0.01, 0.07), keras.regularizers.L1L2(0.01, 0.07))):
        for dtype in ("float32", "float64"):
            wt = tf.Variable(w.astype(dtype))
            with tf.GradientTape() as tape:
                value = theirs(wt)
            grad = tape.gradient(value, wt).numpy()
            tol = 1e-15 if dtype == "float64" else 1e-6  # float32: another summation order
            assert rel_err(mine(w.astype(dtype)), value.numpy()) <= tol
            assert rel_err(mine.gradient(w.astype(dtype)), grad) <= tol
        assert mine.get_config() == theirs.get_config()


@pytest.mark.tf
@pytest.mark.parametrize("last, kind", [("softmax", "conv"), ("sigmoid", "conv"), ("softmax", "separable")])
def test_loss_and_gradients_equal_keras_in_float64(last, kind):
    tf = pytest.importorskip("tensorflow")
    convert = pytest.importorskip("reference.convert")
    m = model(last=last, kind=kind)
    x, y = batch()
    out = m.forward(x, training=True)
    loss, g, fused = m.loss_and_output_grad(y, out)
    m.backward(g, from_logits=fused)
    grads = [gr for _, _, gr in m.named_parameters()]
    with keras_float64():
        k = convert.to_keras(m)
        k.compile(loss="categorical_crossentropy", jit_compile=False)
        with tf.GradientTape() as tape:
            pred = k(x, training=True)
            kloss = k.compute_loss(x=x, y=y, y_pred=pred, training=True)
        kgrads = tape.gradient(kloss, k.trainable_weights)
        penalty = float(tf.add_n(k.losses))
    assert penalty == pytest.approx(float(m.regularization_loss()), rel=KERAS_RTOL)
    assert loss == pytest.approx(float(kloss), rel=KERAS_RTOL)
    assert len(grads) == len(kgrads)
    for (key, _, _), gr, kg in zip(m.named_parameters(), grads, kgrads):
        assert rel_err(gr, kg.numpy()) <= KERAS_RTOL, key


@pytest.mark.tf
def test_train_on_batch_fit_and_evaluate_follow_keras():
    pytest.importorskip("tensorflow")
    convert = pytest.importorskip("reference.convert")
    m = model()
    x, y = batch(12)
    with keras_float64() as keras:
        k = convert.to_keras(m)
        k.compile(optimizer=keras.optimizers.SGD(learning_rate=0.125), loss="categorical_crossentropy",
                  jit_compile=False)
        theirs = [float(k.train_on_batch(x[i:i + 6], y[i:i + 6])) for i in (0, 6, 0, 6, 0)]
        mine = [m.train_on_batch(x[i:i + 6], y[i:i + 6])[0] for i in (0, 6, 0, 6, 0)]
        # five SGD steps: the float64 differences of one step (~1e-16) grow a little with each
        np.testing.assert_allclose(mine, theirs, rtol=KERAS_RTOL)
        for a, b in zip(m.get_weights(), k.get_weights()):
            assert rel_err(a, b) <= KERAS_RTOL
        assert m.evaluate(x, y, batch_size=5)[0] == pytest.approx(float(k.evaluate(x, y, batch_size=5, verbose=0)),
                                                                  rel=KERAS_RTOL)
        h_mine = m.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history["loss"]
        h_theirs = k.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(h_mine, h_theirs, rtol=KERAS_RTOL)
