"""Reports that localise (issue 15, item 4): the first failing layer and tensor is named, a NaN is
reported as a NaN mismatch (not as a large difference), ULP distances stand beside the relative
error, and gradient tolerances grow with the length of their reduction.

The report machinery is driven with minicnn on both sides (a model and its exact copy), so that a
single injected ULP is the only difference: against TensorFlow, float64 rows already differ by a
few ULPs of summation order."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.tf]
pytest.importorskip("tensorflow")

import reference.convert as convert  # noqa: E402
from minicnn import Sequential  # noqa: E402
from minicnn.layers import Conv2D, Dense, Flatten, MaxPool2D  # noqa: E402
from reference.crosscheck import compare, crosscheck, format_report  # noqa: E402
from reference.crosscheck import report as report_text  # noqa: E402
from reference.crosscheck.check import first_failure, summarise  # noqa: E402
from reference.crosscheck.compare import series_check  # noqa: E402
from reference.crosscheck.layer_check import layer_rows  # noqa: E402
from reference.crosscheck.sides import layer_inputs, minicnn_pass  # noqa: E402
from reference.crosscheck.tolerances import reduction_rtol  # noqa: E402
from tests.reference.archgen import generate  # noqa: E402

EXACT = {"out": (0.0, 0.0), "grad": (0.0, 0.0)}


def model():
    return Sequential([Conv2D(4, 3, activation="relu"), MaxPool2D(2), Flatten(), Dense(5)],
                      input_shape=(8, 8, 1), dtype="float64", seed=3)


def rows_with(inject, index):
    """Rows of a model against its exact copy, layer ``index``'s backward changed by ``inject``."""
    rng = np.random.default_rng(0)
    x = rng.random((4, 8, 8, 1))
    m = model()
    m.build()
    ref_model = convert.clone(m, "float64")
    g = rng.uniform(-1, 1, (4, 5))
    layer = m.layers[index]
    real = layer.backward
    layer.backward = lambda dy: inject(real(dy))
    mine = minicnn_pass(m, x, g)
    ref = minicnn_pass(ref_model, x, g)
    rows = layer_rows(m, mine, ref, "float64", layer_inputs(x, mine), tolerances=EXACT)
    report = {"header": {}, "layers": rows, "training": None}
    report["summary"] = summarise(report)
    return {f"{r['layer']}/{r['tensor']}": r for r in rows}, report


def test_one_ulp_in_one_backward_is_that_layers_first_failure():
    rows, report = rows_with(lambda dx: np.nextafter(dx, np.inf), 1)  # max_pooling2d's dX, +1 ULP
    failed = {k for k, r in rows.items() if not r["passed"]}
    # minicnn chains its own gradients: the conv layer before it fails too, the dense after it not
    assert "max_pooling2d/dX" in failed and "conv2d/dW" in failed and "dense/dW" not in failed
    r = rows["max_pooling2d/dX"]
    assert r["max_elementwise_ulps"] == 1 and 0 < r["ulps"] <= 1 and r["failure"] == "value" and r["rel"] < 1e-15
    ff = report["summary"]["first_failure"]
    assert (ff["layer"], ff["tensor"], ff["failure"]) == ("max_pooling2d", "dX", "value")
    assert "backward order" in ff["rule"]
    assert first_failure({"header": {}, "layers": [v for v in rows.values() if v["passed"]], "training": None}) is None


def test_a_nan_is_a_nan_mismatch_not_a_large_difference():
    def one_nan(dx):
        dx = dx.copy()
        dx.flat[5] = np.nan
        return dx

    rows, report = rows_with(one_nan, 3)  # dense's dX
    r = rows["dense/dX"]
    assert (r["passed"], r["failure"], r["nonfinite"]["mine_nan"], r["nonfinite"]["mismatches"]) == (False, "NaN", 1, 1)
    assert np.isfinite(r["rel"]) and r["rel"] == 0.0  # the finite positions agree exactly
    assert "NaN mismatch at" in r["note"]
    ff = report["summary"]["first_failure"]
    assert (ff["layer"], ff["tensor"], ff["failure"]) == ("dense", "dX", "NaN")
    text = "\n".join(report_text._layer_lines(report))
    assert "FAIL (NaN)" in text and "dense/dX: NaN mismatch at" in text


def test_nonfinite_positions_are_compared_before_values():
    a = np.array([1.0, np.nan, np.inf, 2.0])
    assert compare(a, a.copy(), 0.0)["passed"]  # the same NaN and Inf positions agree
    r = compare(np.array([1.0, np.inf, 3.0]), np.array([1.0, -np.inf, 3.0]), 1e9)
    assert (r["failure"], r["nonfinite"]["first"]) == ("Inf", [1])
    r = compare(np.array([1.0, 2.0]), np.array([np.nan, 2.0]), 1e9)
    assert r["failure"] == "NaN" and r["max_abs"] == 0.0


def test_ulps_and_the_reduction_rule():
    r = compare(np.array([1.0 + 2 ** -52, 0.5]), np.array([1.0, 0.5]), 1e-10)
    assert r["max_elementwise_ulps"] == 1 and r["ulps"] == 1.0
    f = np.float32
    assert compare(np.array([f(1), f(-0.0)]), np.array([f(1), f(0.0)]), 0.0)["max_elementwise_ulps"] == 0
    assert reduction_rtol(1e-10, "float64", 32 * 26 * 26) == 1e-10  # float64: the table
    u32 = 2.0 ** -24
    assert reduction_rtol(1e-4, "float32", 256 * 26 * 26) == pytest.approx(u32 * 256 * 26 * 26 / 16)
    assert reduction_rtol(1e-4, "float32", 32 * 26 * 26) == 1e-4


def test_the_report_states_keras_floatx_and_the_rules():
    rng = np.random.default_rng(1)
    x, y = rng.random((4, 28, 28, 1)), np.eye(10)[rng.integers(0, 10, 4)]
    report = crosscheck(generate(1, "float64"), x, y, dtype="float64", steps=1, optimizer="rmsprop",
                        keras_floatx="float32", data_source="random")
    h = report["header"]
    assert h["keras_floatx"] == "float32" and "learning_rate_dtype='float32'" in h["hyperparameter_rule"]
    assert "u * n / 16" in h["reduction_rule"] and report["summary"]["first_failure"] is None
    text = format_report(report)
    assert "optimizer hyperparameters: Keras floatx float32" in text and "RESULT: PASS" in text
    assert "tolerance of long reductions" in text and "ulps" in text
    with pytest.raises(ValueError, match="keras_floatx"):
        crosscheck(generate(1, "float32"), x, y, dtype="float32", steps=0, keras_floatx="float64")


def test_a_nan_loss_is_named():
    c = series_check("free-running loss", [1.0, float("nan"), 1.0], [1.0, 0.9, 1.0], 1e-9)
    assert (c["passed"], c["failure"], c["note"]) == (False, "NaN", "NaN mismatch at step 2")
    assert c["value"] == 0.0
    assert series_check("l", [1.0, 2.0], [1.0, 1.0], 1e-9)["failure"] == "value"
