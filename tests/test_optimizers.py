"""Optimizers against Keras 3's update rules written out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from minicnn.optimizers import SGD, Adam, RMSprop, get


def f32(v):
    """A hyperparameter as Keras hands it to a float64 variable: rounded through float32."""
    return float(np.float32(v))


def lr_as(v, learning_rate_dtype):
    """The learning rate a float64 weight sees: exact by default (Keras under floatx float64),
    rounded through float32 with learning_rate_dtype='float32' (Keras's default floatx)."""
    return f32(v) if learning_rate_dtype == "float32" else float(v)


def run(opt, grads, p0):
    p = p0.copy()
    for g in grads:
        opt.step([("w", p, g)])
    return p


@pytest.fixture
def case(rng):
    return rng.standard_normal(6), [rng.standard_normal(6) for _ in range(5)]


@pytest.mark.parametrize("lr_dtype", [None, "float32", "float64"])
def test_sgd_plain_momentum_nesterov(case, lr_dtype):
    p0, grads = case
    lr, mom = lr_as(0.1, lr_dtype), f32(0.9)  # momentum goes through tf.cast: float32 always
    p = p0.copy()
    for g in grads:
        p = p - lr * g
    np.testing.assert_array_equal(run(SGD(0.1, learning_rate_dtype=lr_dtype), grads, p0), p)
    for nesterov in (False, True):
        p, m = p0.copy(), np.zeros_like(p0)
        for g in grads:
            m = mom * m - lr * g
            p = p + (mom * m - lr * g if nesterov else m)
        opt = SGD(0.1, momentum=0.9, nesterov=nesterov, learning_rate_dtype=lr_dtype)
        np.testing.assert_allclose(run(opt, grads, p0), p, rtol=1e-15)


@pytest.mark.parametrize("lr_dtype", [None, "float32"])
def test_adam_keras_epsilon_hat(case, lr_dtype):
    p0, grads = case
    lr, b1, b2, eps = 1e-3, 0.9, 0.999, 1e-7
    p, m, v = p0.copy(), 0 * p0, 0 * p0
    for t, g in enumerate(grads, 1):
        m = m + (g - m) * (1 - b1)
        v = v + (g * g - v) * (1 - b2)
        # the betas of the bias correction go through tf.cast (float32) whatever floatx
        alpha = lr_as(lr, lr_dtype) * np.sqrt(1 - f32(b2) ** t) / (1 - f32(b1) ** t)
        p = p - m * alpha / (np.sqrt(v) + eps)
    opt = Adam(learning_rate_dtype=lr_dtype)
    assert (opt.learning_rate, opt.beta_1, opt.beta_2, opt.epsilon) == (lr, b1, b2, eps)  # Keras defaults
    np.testing.assert_allclose(run(opt, grads, p0), p, rtol=1e-13)
    assert opt.iterations == 5


def test_adam_epsilon_placement_matters_for_tiny_gradients():
    # MNIST border pixels have near-zero gradients: there the two placements differ visibly
    g = [np.full(3, 1e-9)]
    keras = run(Adam(epsilon_mode="keras"), g, np.zeros(3))
    torch = run(Adam(epsilon_mode="pytorch"), g, np.zeros(3))
    assert not np.allclose(keras, torch, rtol=1e-3)


@pytest.mark.parametrize("lr_dtype", [None, "float32"])
def test_rmsprop_epsilon_inside_the_root(case, lr_dtype):
    p0, grads = case
    lr = lr_as(1e-3, lr_dtype)
    p, v = p0.copy(), 0 * p0
    for g in grads:
        v = 0.9 * v + (1 - 0.9) * g * g
        p = p - lr * g / np.sqrt(v + 1e-7)
    np.testing.assert_allclose(run(RMSprop(learning_rate_dtype=lr_dtype), grads, p0), p, rtol=1e-13)
    # momentum and centering: rho and momentum are Python floats in Keras (exact in float64)
    p, v, mo, ag = p0.copy(), 0 * p0, 0 * p0, 0 * p0
    for g in grads:
        v = 0.9 * v + (1 - 0.9) * g * g
        ag = 0.9 * ag + (1 - 0.9) * g
        mo = 0.5 * mo + lr * g / np.sqrt(v - ag * ag + 1e-7)
        p = p - mo
    opt = RMSprop(momentum=0.5, centered=True, learning_rate_dtype=lr_dtype)
    np.testing.assert_allclose(run(opt, grads, p0), p, rtol=1e-13)


def test_learning_rate_dtype_config_and_float32_weights(case):
    assert Adam().get_config()["learning_rate_dtype"] is None
    opt = get(SGD(0.1, learning_rate_dtype="float32").get_config())
    assert opt.learning_rate_dtype == "float32" and isinstance(opt, SGD)
    with pytest.raises(ValueError, match="learning_rate_dtype must be"):
        Adam(learning_rate_dtype="float16")
    # float32 weights see float32(lr) whatever the held dtype (Keras casts it to the weight's)
    p0, grads = (a.astype(np.float32) for a in (case[0], np.array(case[1])))
    a = run(Adam(learning_rate_dtype="float64"), grads, p0)
    b = run(Adam(learning_rate_dtype="float32"), grads, p0)
    np.testing.assert_array_equal(a, b)


def test_updates_are_in_place_and_keep_dtype(rng):
    p = rng.standard_normal(4).astype(np.float32)
    ref = p
    Adam().step([("w", p, np.ones(4, np.float32))])
    assert p is ref and p.dtype == np.float32


def test_state_round_trip(case):
    p0, grads = case
    a = Adam()
    pa = run(a, grads[:3], p0)
    b = Adam()
    b.set_state({k: v.copy() for k, v in a.get_state().items()})
    np.testing.assert_array_equal(run(b, grads[3:], pa), run(a, grads[3:], pa))


def test_get_and_errors():
    assert isinstance(get("adam"), Adam) and get("sgd", learning_rate=0.5).learning_rate == 0.5
    with pytest.raises(ValueError, match="unknown optimizer 'adagrad'"):
        get("adagrad")
    with pytest.raises(ValueError, match="learning_rate must be a positive number"):
        Adam(learning_rate=-1)


def test_default_learning_rate_dtype_is_the_weights():
    p = np.zeros(1)
    SGD(0.1).step([("w", p, np.ones(1))])
    assert p[0] == -0.1  # exact, as Keras under floatx float64
    q = np.zeros(1)
    SGD(0.1, learning_rate_dtype="float32").step([("w", q, np.ones(1))])
    assert q[0] == -float(np.float32(0.1))  # as Keras under its default floatx
