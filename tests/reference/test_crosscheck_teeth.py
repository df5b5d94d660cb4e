"""The check has teeth: a layer that is off by 1e-6 relative, forward or backward, fails its rows
in float64, and the report names it."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.tf]
pytest.importorskip("tensorflow")

import reference.convert as convert  # noqa: E402
from reference.crosscheck import crosscheck, format_report, load_mnist_batch  # noqa: E402
from tests.helpers import mnist_dir  # noqa: E402
from tests.reference.archgen import generate  # noqa: E402


def with_a_bug(monkeypatch, index, method):
    """Make crosscheck's minicnn copies (made by convert.clone) scale layer ``index``'s
    ``method`` ('forward' or 'backward') result by 1 + 1e-6."""
    real_clone = convert.clone

    def clone_with_a_bug(m, dtype=None, dropout_rate=None):
        c = real_clone(m, dtype, dropout_rate)
        layer = c.layers[index]
        real = getattr(layer, method)
        if method == "forward":
            layer.forward = lambda inp, training=False: real(inp, training) * 1.000001
        else:
            layer.backward = lambda dy: real(dy) * 1.000001
        return c

    monkeypatch.setattr(convert, "clone", clone_with_a_bug)  # crosscheck's minicnn side uses clones


@pytest.mark.mnist
def test_a_wrong_layer_is_caught(monkeypatch):
    """A first layer whose output is off by 1e-6 relative fails its rows in float64."""
    x, y, where = load_mnist_batch(8, data_dir=mnist_dir(), dtype="float64")
    with_a_bug(monkeypatch, 0, "forward")
    report = crosscheck(generate(2, "float64"), x, y, dtype="float64", steps=0, seed=0, data_source=where)
    assert not report["summary"]["passed"]
    first = report["layers"][0]
    assert (first["tensor"], first["passed"]) == ("out", False) and 5e-7 < first["rel"] < 2e-6
    assert "conv2d/out" in report["summary"]["judged"]["failed"]
    assert "RESULT: FAIL" in format_report(report)


def test_a_wrong_backward_is_caught_and_named(monkeypatch):
    """generate(2) is conv2d, max_pooling2d, flatten, dense. Scaling dense's input gradient by
    1 + 1e-6 fails dense/dX and everything minicnn chains from it (the earlier layers' dX, dW,
    db); dense's own weight gradients and every output stay within tolerance."""
    rng = np.random.default_rng(0)
    x = rng.random((8, 28, 28, 1))
    y = np.eye(10)[rng.integers(0, 10, 8)]
    with_a_bug(monkeypatch, 3, "backward")
    report = crosscheck(generate(2, "float64"), x, y, dtype="float64", steps=0, seed=0, data_source="random")
    rows = {f"{r['layer']}/{r['tensor']}": r for r in report["layers"]}
    failed = {k for k, r in rows.items() if not r["passed"]}
    assert failed == {"dense/dX", "flatten/dX", "max_pooling2d/dX", "conv2d/dX", "conv2d/dW", "conv2d/db"}
    assert 5e-7 < rows["dense/dX"]["rel"] < 2e-6
    assert all(r["status"] == "FAIL" for k, r in rows.items() if k in failed)
    s = report["summary"]
    assert not s["passed"] and set(s["judged"]["failed"]) == failed
    # the culprit, not the first failed row in table order (conv2d/dX)
    assert (s["first_failure"]["layer"], s["first_failure"]["tensor"]) == ("dense", "dX")
    text = format_report(report)
    assert "FAILED: " in text and "dense/dX (" in text and "RESULT: FAIL" in text
    assert "first failure: dense/dX (" in text
    dense_dx = next(ln for ln in text.splitlines() if ln.startswith("dense ") and " dX " in ln)
    assert dense_dx.rstrip().endswith("FAIL") and "1.00e-10" in dense_dx
