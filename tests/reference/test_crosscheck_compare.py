"""reference.crosscheck.compare and .tolerances: the numbers of one comparison, its verdict, the
tolerance table and its rule; and the package's import policy. No TensorFlow computation (the
package imports TensorFlow, hence the ``tf`` mark)."""

from __future__ import annotations

import ast
import math
import os

import numpy as np
import pytest

pytestmark = [pytest.mark.tf]
pytest.importorskip("tensorflow")

import reference.crosscheck as xc  # noqa: E402
from reference.crosscheck.compare import compare, info, rel_diffs, series_check, verdict_text  # noqa: E402
from reference.crosscheck.tolerances import RULE, TOLERANCES, is_judged, table_for, tolerance  # noqa: E402

PACKAGE = os.path.dirname(xc.__file__)


def test_compare_numbers_and_argmax():
    ref = np.zeros((2, 3, 4))
    ref[1, 2, 3] = -4.0
    mine = ref.copy()
    mine[0, 1, 2] = 1e-3
    mine[1, 2, 3] = -4.0 + 2e-3
    r = compare(mine, ref, 1e-3)
    assert r["shape"] == [2, 3, 4] and r["argmax"] == [1, 2, 3]
    assert r["max_abs"] == pytest.approx(2e-3) and r["ref_max"] == 4.0
    assert r["mean_abs"] == pytest.approx(3e-3 / 24)
    assert r["rel"] == pytest.approx(5e-4)
    assert (r["judged"], r["passed"], r["status"]) == (True, True, "ok")
    assert compare(mine, ref, 4e-4)["status"] == "FAIL"


def test_rule_boundary_is_inclusive_and_atol_adds():
    ref = np.array([2.0, -1.0])
    mine = ref + np.array([0.0, 0.5])          # max|d| = 0.5 = 0.25 * max|ref|
    assert compare(mine, ref, 0.25)["passed"]
    assert not compare(mine, ref, 0.2499)["passed"]
    assert compare(mine, ref, 0.2, atol=0.1)["passed"]


def test_all_zero_reference_must_be_matched_exactly():
    z = np.zeros(5)
    assert compare(z, z, 1e-10)["passed"] and compare(z, z, 1e-10)["rel"] == 0.0
    r = compare(z + 1e-300, z, 1e-10)
    assert not r["passed"] and math.isinf(r["rel"])


def test_shape_mismatch_and_non_finite_fail():
    r = compare(np.zeros((2, 3)), np.zeros((3, 2)), 1.0)
    assert r["status"] == "FAIL" and r["note"] == "shape mismatch" and r["mine_shape"] == [2, 3]
    bad = np.array([1.0, np.nan])
    assert compare(bad, np.array([1.0, 1.0]), 1e9)["status"] == "FAIL"
    assert compare(np.ones(2), np.array([1.0, np.inf]), 1e9)["status"] == "FAIL"


def test_not_judged_is_never_passed():
    r = compare(np.ones(3) * 100, np.ones(3), None)
    assert (r["judged"], r["passed"], r["status"], r["rtol"], r["atol"]) == (False, None, "not judged", None, None)
    assert r["rel"] == pytest.approx(99.0)
    assert verdict_text(r) == "not judged"
    s = series_check("free-running loss", [1.0, 2.0], [1.0, 1.0], None, reason="why")
    assert (s["judged"], s["passed"], s["status"], s["reason"]) == (False, None, "not judged", "why")
    assert info("x", 3.0)["passed"] is None


def test_series_check():
    s = series_check("step-by-step loss", [1.0, 2.5, 0.0], [1.0, 2.0, 0.0], 0.25)  # boundary inclusive
    assert s["rel_diff"] == [0.0, 0.25, 0.0] and s["value"] == 0.25
    assert s["passed"] and verdict_text(s) == "ok (rtol 2.50e-01)"
    assert not series_check("l", [1.0, float("nan")], [1.0, 1.0], 1.0)["passed"]
    assert verdict_text(series_check("l", [2.0], [1.0], 1e-4)) == "FAIL (rtol 1.00e-04)"
    assert rel_diffs([1.0, 3.0], [0.0, 2.0]) == [1.0, 0.5]


def test_tolerance_table_is_unchanged():
    """The numbers of docs/parity.md, "Tolerances": nothing loosened."""
    assert TOLERANCES == {
        ("float64", "out"): (1e-10, 0.0), ("float64", "grad"): (1e-10, 0.0),
        ("float64", "loss"): (1e-9, 0.0), ("float64", "weights"): (1e-9, 0.0),
        ("float64", "loss/floatx-float32"): (1e-6, 0.0),
        ("float32", "out"): (1e-5, 0.0), ("float32", "grad"): (1e-4, 0.0),
        ("float32", "loss"): (1e-4, 0.0), ("float32", "weights"): (None, None)}
    assert tolerance("float64", "loss", "float32") == (1e-6, 0.0)
    assert tolerance("float64", "loss", "float64") == tolerance("float64", "loss") == (1e-9, 0.0)
    assert tolerance(np.float32, "grad") == (1e-4, 0.0)
    assert not is_judged("float32", "weights") and is_judged("float64", "weights")
    assert table_for("float64")["float64/out"] == {"rtol": 1e-10, "atol": 0.0}
    assert set(table_for("float32")) == {f"float32/{c}" for d, c in TOLERANCES if d == "float32"}
    assert "max|d| <= atol + rtol * max|ref|" in RULE
    parity = os.path.join(PACKAGE, "..", "..", "docs", "parity.md")
    with open(parity, encoding="utf-8") as f:
        assert "max|d| <= atol + rtol * max|ref|" in f.read()


def test_public_names():
    for name in ("TOLERANCES", "crosscheck", "format_report", "load_mnist_batch", "run", "setup_tensorflow",
                 "compare", "tolerance"):
        assert hasattr(xc, name), name


def test_no_function_level_imports():
    """TensorFlow, Keras and minicnn are imported at module level (see the package docstring)."""
    for fname in sorted(os.listdir(PACKAGE)):
        if not fname.endswith(".py"):
            continue
        with open(os.path.join(PACKAGE, fname), encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = [n for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom))]
                assert not inner, f"{fname}:{fn.name} imports inside a function (line {inner[0].lineno})"
