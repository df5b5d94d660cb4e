"""reference.crosscheck.training: what is judged in each dtype (float64 free-running; float32
step by step, its free-running losses and weights "not judged"), on small generated models and
random images."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.tf]
pytest.importorskip("tensorflow")

import reference.crosscheck.training as training  # noqa: E402
from reference.crosscheck import setup_tensorflow  # noqa: E402
from tests.reference.archgen import generate  # noqa: E402

setup_tensorflow()
STEPS, BATCH = 3, 4


def data(dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((STEPS * BATCH, 28, 28, 1)).astype(dtype)
    return x, np.eye(10, dtype=dtype)[rng.integers(0, 10, STEPS * BATCH)]


def run(dtype, seed=1, optimizer="adam"):
    x, y = data(dtype)
    return training.training_check(generate(seed, dtype), x, y, dtype, STEPS, optimizer, BATCH)


@pytest.fixture(scope="module")
def f32():
    return run("float32")


@pytest.fixture(scope="module")
def f64():
    return run("float64")


def test_float32_is_judged_step_by_step(f32):
    assert f32["judged"] == "stepwise"
    checks = {c["check"]: c for c in f32["checks"]}
    assert list(checks) == ["step-by-step loss", "step-by-step weights", "free-running loss", "free-running weights"]
    sw = checks["step-by-step loss"]
    assert (sw["judged"], sw["rtol"], sw["passed"], sw["status"]) == (True, 1e-4, True, "ok")
    assert sw["value"] == f32["stepwise"]["max_loss_rel_diff"] <= 1e-4
    assert f32["loss_passed"] is True
    assert len(f32["stepwise"]["loss_keras"]) == STEPS and len(f32["stepwise"]["weights"]) == len(f32["weights"])


def test_float32_free_running_is_not_judged(f32):
    """The free-running float32 losses and weights can neither pass nor fail."""
    for name in ("step-by-step weights", "free-running loss", "free-running weights"):
        c = next(c for c in f32["checks"] if c["check"] == name)
        assert (c["judged"], c["passed"], c["rtol"], c["status"]) == (False, None, None, "not judged"), c
        assert "docs/parity.md" in c["reason"]
    assert f32["weights_judged"] is False and f32["weights_passed"] is None
    assert all((r["judged"], r["passed"], r["rtol"], r["status"]) == (False, None, None, "not judged")
               for r in f32["weights"])
    fc = f32["float64_context"]
    assert set(fc) == {"keras32_vs_keras64_loss", "minicnn32_vs_keras64_loss", "keras32_vs_keras64_weights"}


def test_float64_is_judged_free_running(f64):
    assert f64["judged"] == "free-running" and "stepwise" not in f64 and "float64_context" not in f64
    (loss,) = f64["checks"]
    assert (loss["check"], loss["judged"], loss["rtol"], loss["passed"]) == ("free-running loss", True, 1e-9, True)
    assert loss["value"] == f64["max_loss_rel_diff"] <= 1e-9
    assert f64["weights_judged"] is True and f64["weights_passed"] is True
    assert all(r["judged"] and r["rtol"] == 1e-9 and r["passed"] and r["rel"] <= 1e-9 for r in f64["weights"])
    assert [f"{r['layer']}/{r['tensor']}" for r in f64["weights"]] == [
        k for k, _, _ in generate(1, "float64").named_parameters()]
    assert f64["loss_path"]["keras_used"] == f64["loss_path"]["minicnn_uses"] == "fused (from logits)"


def test_wrong_final_weights_fail_in_float64_and_are_only_reported_in_float32(monkeypatch):
    real = training.keras_trajectory

    def off_by_1e6(*args, **kwargs):
        losses, weights, seconds = real(*args, **kwargs)
        return losses, [w * 1.000001 for w in weights], seconds

    monkeypatch.setattr(training, "keras_trajectory", off_by_1e6)
    bad64 = run("float64", seed=2, optimizer="sgd")
    assert bad64["loss_passed"] and bad64["weights_passed"] is False
    assert all(r["status"] == "FAIL" for r in bad64["weights"])
    bad32 = run("float32", seed=2, optimizer="sgd")
    assert bad32["loss_passed"] and bad32["weights_passed"] is None
    assert all(r["status"] == "not judged" for r in bad32["weights"])


def test_batches_cycle_through_the_blocks():
    x = np.arange(10)[:, None]
    got = [xb[:, 0].tolist() for xb, _ in training.batches(x, x, 5, 4)]
    assert got == [[0, 1, 2, 3], [4, 5, 6, 7], [0, 1, 2, 3], [4, 5, 6, 7], [0, 1, 2, 3]]


def test_optimizer_pair():
    assert training.LEARNING_RATES["adam"] == 0.001 and training.LEARNING_RATES["sgd"] == 0.01
    mine, theirs, described = training.optimizer_pair("sgd-nesterov", "float64")
    assert described.startswith("SGD(learning_rate=0.01, learning_rate_dtype='float64', momentum=0.9, nesterov=True")
    assert theirs.learning_rate.dtype == "float64" and mine.learning_rate_dtype == "float64"
    mine, theirs, _ = training.optimizer_pair("rmsprop")  # Keras's default floatx
    assert theirs.learning_rate.dtype == "float32" and mine.learning_rate_dtype == "float32"
    with pytest.raises(ValueError, match="optimizer must be one of adam, sgd"):
        training.optimizer_pair("adamw")


@pytest.mark.parametrize("optimizer", ["sgd-momentum", "rmsprop"])
def test_float32_step_by_step_syncs_momenta_and_velocities(optimizer):
    """Keras gets minicnn's SGD momenta / RMSprop velocities before every step (KERAS_SLOTS)."""
    r = run("float32", optimizer=optimizer)
    assert r["loss_passed"] and r["stepwise"]["max_loss_rel_diff"] <= 1e-5, r["stepwise"]


def test_float64_under_keras_floatx_float32_is_stated_and_judged():
    x, y = data("float64")
    r = training.training_check(generate(1, "float64"), x, y, "float64", STEPS, "sgd-nesterov", BATCH, "float32")
    assert r["keras_floatx"] == "float32" and "rounded through float32" in r["hyperparameter_rule"]
    assert "learning_rate_dtype='float32'" in r["optimizer_config"]
    assert r["loss_rtol"] == 1e-6 and r["loss_passed"] and r["weights_passed"]
    assert max(w["rel"] for w in r["weights"]) <= 1e-12
