"""``minicnn crosscheck --frameworks``: minicnn and Keras 3 on TensorFlow, JAX and torch, each
against a float64 reference (reference/crosscheck/frameworks.py, reference/framework_worker.py).

The error model (docs/parity.md, "Three frameworks" and "Tolerances"):

* float64: every side computes in float64, so each row's distance from the reference is within
  the float64 table (1e-10; the same maths in other summation orders is ~1e-15). Exception,
  read in Keras 3.15's ``keras/src/backend/common/dtypes.py``: ``result_type`` maps float64 to
  float32 on every backend but TensorFlow (``BIT64_TO_BIT32_DTYPE``, "to be aligned with JAX's
  default behavior"), and the ops that compute in ``result_type`` then reduce in float32: on JAX
  ``ops.mean`` (batch norm, global pooling), on torch ``ops.mean`` and ``ops.matmul`` (dense).
  Those rows are held to the float32 table instead, and only those.
* float32: the float32 table (1e-5 outputs, 1e-4 gradients, u n / 16 for long weight-gradient
  sums, BatchNormalization's floor): what two correct float32 implementations may differ by,
  hence a bound on each one's distance from exact.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

pytestmark = [pytest.mark.tf, pytest.mark.mnist]
pytest.importorskip("tensorflow")
pytest.importorskip("jax", reason="the jax extra (pip install -e '.[jax]') is not installed")
pytest.importorskip("torch", reason="the torch extra (pip install -e '.[torch]') is not installed")

from minicnn import build_preset  # noqa: E402
from minicnn.cli import main  # noqa: E402
from minicnn.io.keras import save_weights  # noqa: E402
from reference import convert  # noqa: E402
from reference.crosscheck import frameworks as fw  # noqa: E402
from reference.crosscheck.framework_report import format_frameworks_report  # noqa: E402
from reference.crosscheck.tolerances import reduction_rtol, tolerance  # noqa: E402
from reference.crosscheck.data import load_mnist_batch  # noqa: E402
from tests.helpers import mnist_dir  # noqa: E402

BATCH, STEPS = 2, 2  # small: each report starts three worker processes
#: layer kinds whose Keras ops run float64 in float32 on that backend (module docstring)
FLOAT32_IN_FLOAT64 = {"jax": {"batch norm", "global pooling"},
                      "torch": {"batch norm", "global pooling", "dense", "dense+softmax"}}

_CACHE: dict = {}


def report_for(preset, dtype):
    """One three-framework report per (preset, dtype), shared by the tests of this module."""
    if (preset, dtype) not in _CACHE:
        x, y, where = load_mnist_batch(BATCH * STEPS, data_dir=mnist_dir(), dtype=dtype)
        model = build_preset(preset, seed=0, dtype=dtype)
        _CACHE[(preset, dtype)] = fw.frameworks_check(model, x, y, dtype=dtype, steps=STEPS, batch=BATCH,
                                                      data_source=where, timeout=600)
    return _CACHE[(preset, dtype)]


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["seed", "pooled"])
def test_float64_every_framework_at_exact_arithmetic(preset):
    rep = report_for(preset, "float64")
    assert set(rep["header"]["frameworks"]) == set(fw.FRAMEWORKS)
    rt64 = tolerance("float64", "out")[0]
    rt32_out, rt32_grad = tolerance("float32", "out")[0], tolerance("float32", "grad")[0]
    float32_rows = {n: 0 for n in FLOAT32_IN_FLOAT64}
    for row in rep["layers"]:
        assert row["rtol"] <= 1e-9, row  # the float64 table (and its tiny reduction/BN floors)
        for side in ("minicnn", "tensorflow"):
            assert row["vs_float64"][side] <= row["rtol"], (side, row)
        for side, kinds in FLOAT32_IN_FLOAT64.items():
            d = row["vs_float64"][side]
            if row["kind"] in kinds and d > row["rtol"]:
                float32_rows[side] += 1
                assert d <= (rt32_out if row["tensor"] == "out" else rt32_grad), (side, row)
            else:
                assert d <= row["rtol"], (side, row)
    # the exception is real where it applies: torch's dense layers do compute in float32
    assert float32_rows["torch"] > 0
    assert rt64 == 1e-10  # the bound the other rows are held to
    tr = rep["training"]
    assert len(tr["loss_float64"]) == STEPS and all(len(v) == STEPS for v in tr["losses"].values())
    for side in ("minicnn", "tensorflow"):
        assert tr["max_loss_vs_float64"][side] <= tolerance("float64", "loss")[0], (side, tr)
        assert tr["final_weights_vs_float64"][side] <= tolerance("float64", "weights")[0], (side, tr)
    # JAX's and torch's Adam use the betas in float64, minicnn (the reference trajectory) rounds
    # them to float32 as TensorFlow does (docs/parity.md, "Three frameworks"): a 1e-6 relative
    # difference per update, well within float32's loss tolerance over two steps
    for side in ("jax", "torch"):
        assert tr["max_loss_vs_float64"][side] <= tolerance("float32", "loss")[0], (side, tr)


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["seed", "pooled"])
def test_float32_every_framework_within_the_error_model(preset):
    rep = report_for(preset, "float32")
    for row in rep["layers"]:
        # the row's tolerance is the crosscheck's table for this tensor (weight gradients: u n / 16
        # when that is larger)
        base = tolerance("float32", "out" if row["tensor"] == "out" else "grad")[0]
        assert row["rtol"] >= base
        for side, d in row["vs_float64"].items():
            assert d <= row["rtol"], (side, row)
        for side, d in row["vs_minicnn"].items():  # triangle inequality through the reference
            assert d <= row["vs_float64"][side] + row["vs_float64"]["minicnn"] + 1e-12, (side, row)
    assert rep["summary"]["passed"]
    assert any(r["vs_float64"]["tensorflow"] > 0 for r in rep["layers"] if r["kind"] == "conv")
    tr = rep["training"]
    for side, d in tr["step1_loss_vs_float64"].items():  # same weights, same batch: the loss alone
        assert d <= tolerance("float32", "loss")[0], (side, tr)
    text = format_frameworks_report(rep)
    for name in ("minicnn", "tensorflow", "jax", "torch", "float64", "cpu"):
        assert name in text.lower()


@pytest.mark.slow
def test_a_perturbed_weight_file_makes_that_framework_the_outlier(tmp_path):
    """Teeth: the jax worker gets a weights file whose first kernel is 1e-3 off; jax, and only
    jax, is flagged on that layer's output and dX, and the others stay within tolerance (torch
    stands for the unperturbed frameworks: one worker fewer to start)."""
    x, y, where = load_mnist_batch(BATCH, data_dir=mnist_dir())
    model = build_preset("pooled", seed=0)
    bad = convert.clone(model, dropout_rate=0.0)
    k = bad.layers[0].params["kernel"]
    k *= np.float32(1 + 1e-3)
    path = tmp_path / "bad.weights.h5"
    save_weights(bad, str(path))
    rep = fw.frameworks_check(model, x, y, frameworks=("jax", "torch"), steps=0, batch=BATCH,
                              weights_override={"jax": str(path)}, timeout=600)
    first = [r for r in rep["layers"] if r["layer"] == model.layers[0].name]
    assert {r["tensor"] for r in first if "jax" in r["outliers"]} >= {"out", "dX"}
    for r in first:  # dW and db rest on the pinned input and dy, not on the kernel
        if r["tensor"] in ("out", "dX"):
            assert r["closest"] != "jax", r
            assert r["vs_minicnn"]["jax"] > 100 * r["vs_minicnn"]["torch"], r
    assert rep["summary"]["outliers"]["jax"]
    for side in ("minicnn", "torch"):
        assert not rep["summary"]["outliers"][side], side
    assert not rep["summary"]["passed"]


def test_a_missing_backend_is_named_with_its_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(fw.importlib.util, "find_spec", lambda name, *a: None if name == "jax" else real(name, *a))
    with pytest.raises(ValueError, match=r"framework 'jax' is not installed.*\.\[jax\]"):
        fw.parse_frameworks("tensorflow,jax")
    assert fw.parse_frameworks("tensorflow,torch") == ["tensorflow", "torch"]


def test_unknown_framework_is_refused(capsys):
    with pytest.raises(ValueError, match="comma-separated subset of tensorflow,jax,torch"):
        fw.parse_frameworks("tensorflow,mxnet")
    assert main(["crosscheck", "--preset", "seed", "--frameworks", "mxnet", "--steps", "0",
                 "--data-dir", mnist_dir()]) == 1
    assert "mxnet" in capsys.readouterr().err


def test_reference_pass_is_float64_and_restores_the_backend():
    from minicnn.kernels import backend_name

    model = convert.clone(build_preset("pooled", seed=0), dropout_rate=0.0)
    x = np.random.default_rng(1).uniform(0, 1, (2, 28, 28, 1)).astype(np.float32)
    g = np.random.default_rng(2).uniform(-1, 1, (2, 10)).astype(np.float32)
    before = backend_name()
    mine = fw.minicnn_pass(model, x, g)
    pinned = fw.layer_inputs(x, mine)
    outs, dxs, grads = fw.reference_pass(model, pinned, list(mine.input_grads[1:]) + [g])
    assert backend_name() == before
    assert all(o.dtype == np.float64 for o in outs) and all(d.dtype == np.float64 for d in dxs)
    # float32 minicnn is within float32 rounding of it, and not equal to it
    conv = np.asarray(mine.outputs[0], np.float64)
    assert 0 < np.abs(conv - outs[0]).max() <= reduction_rtol(1e-5, "float32", 9) * np.abs(outs[0]).max()
    assert set(grads) == {l.name for l in model.layers if l.trainable_names}
