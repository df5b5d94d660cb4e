"""minicnn.gradcheck's error model: correct gradients pass whatever the rounding, wrong ones fail."""

from __future__ import annotations

import numpy as np
import pytest

from minicnn import gradcheck
from minicnn.layers import Conv2D, Dense
from tests.helpers import GRADCHECK_RTOL


def _quadratic(a, c):
    return float(np.sum(c * a * a))


def test_correct_gradient_of_a_smooth_function_passes():
    rng = np.random.default_rng(0)
    a, c = rng.standard_normal(50), rng.uniform(0.5, 2.0, 50)
    errs = gradcheck.directional_errors(lambda: _quadratic(a, c), {"a": a}, {"a": 2 * c * a}, n_directions=5)
    assert errs["a"] <= GRADCHECK_RTOL


@pytest.mark.parametrize("wrong", [1e-2, 1e-4])
def test_a_gradient_off_by_a_small_factor_is_caught_at_that_size(wrong):
    rng = np.random.default_rng(1)
    a, c = rng.standard_normal(50), rng.uniform(0.5, 2.0, 50)
    errs = gradcheck.directional_errors(lambda: _quadratic(a, c), {"a": a}, {"a": 2 * c * a * (1 + wrong)},
                                        n_directions=3)
    # the unexplained error is of the order of the gradient's own relative error
    assert wrong / 3 < errs["a"] < wrong * 3


def test_a_transposed_gradient_is_caught():
    rng = np.random.default_rng(2)
    m = rng.standard_normal((6, 6))
    a = rng.standard_normal(6)
    errs = gradcheck.directional_errors(lambda: float(a @ m @ a), {"a": a}, {"a": 2 * m @ a})  # m not symmetric
    assert errs["a"] > 1e-2


def test_tiny_derivative_next_to_a_large_loss_is_no_false_alarm():
    # L = 1e8 + 1e-4 * sum(a): the loss's rounding (1e8 * 2**-53 / h ~ 1e-2) swamps the derivative
    # (1e-4); the old check reported a relative error of ~100 here, the error model explains it
    rng = np.random.default_rng(3)
    a = rng.standard_normal(10)
    errs = gradcheck.directional_errors(lambda: 1e8 + 1e-4 * float(np.sum(a)), {"a": a},
                                        {"a": np.full(10, 1e-4)}, details=True)
    assert errs["a"]["rel_err"] <= GRADCHECK_RTOL
    assert errs["a"]["noise"] > abs(errs["a"]["numeric"] - errs["a"]["analytic"]) / gradcheck.SAFETY


def test_the_noise_estimate_covers_the_actual_finite_difference_error():
    # for a function with a known derivative, |numeric - exact| <= the estimated noise
    rng = np.random.default_rng(4)
    for scale in (1.0, 1e6, 1e12):
        a = rng.standard_normal(20)
        d = rng.standard_normal(20)
        d /= np.linalg.norm(d)
        exact = float(np.sum(np.cos(a) * d))
        numeric, noise = gradcheck.directional_derivative(
            lambda: float(np.sum(np.sin(a))) + scale, a, d, eps=1e-6)
        assert abs(numeric - exact) <= noise


def test_layer_checks_report_every_weight_and_the_input():
    rng = np.random.default_rng(5)
    layer = Conv2D(3, 3, activation=None)
    layer.build((6, 6, 2), np.float64, rng)
    errs = gradcheck.check_layer(layer, rng.standard_normal((2, 6, 6, 2)))
    assert set(errs) == {"input", "kernel", "bias"}
    assert max(errs.values()) <= GRADCHECK_RTOL


def test_a_broken_layer_backward_is_caught(monkeypatch):
    rng = np.random.default_rng(6)
    layer = Dense(4)
    layer.build((5,), np.float64, rng)
    real = Dense._linear_backward

    def broken(self, dz):
        dx = real(self, dz)
        self.grads["kernel"] = self.grads["kernel"] * 1.001
        return dx

    monkeypatch.setattr(Dense, "_linear_backward", broken)
    errs = gradcheck.check_layer(layer, rng.standard_normal((3, 5)))
    assert errs["kernel"] > 1e-4 and errs["input"] <= GRADCHECK_RTOL


def test_float32_arrays_are_refused():
    a = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="float64"):
        gradcheck.directional_errors(lambda: 0.0, {"a": a}, {"a": a})
