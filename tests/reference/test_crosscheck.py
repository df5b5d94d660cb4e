"""minicnn vs TensorFlow/Keras, layer by layer and over optimizer steps, on real MNIST images.

The presets run through the real command (``python -m minicnn crosscheck``) in a subprocess;
the generated architectures run in this process through :func:`reference.crosscheck.crosscheck`.
The package's parts have their own files: test_crosscheck_compare (comparisons, tolerances,
imports), _sides (the two sides of the layer pass), _training, _report, _teeth (injected errors
are caught and named).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.tf, pytest.mark.mnist]
tf = pytest.importorskip("tensorflow")

from minicnn import build_preset  # noqa: E402
from minicnn.cli import main  # noqa: E402
from minicnn.presets import PRESETS  # noqa: E402
from reference.crosscheck import TOLERANCES, crosscheck, format_report, load_mnist_batch  # noqa: E402
from tests.helpers import mnist_dir  # noqa: E402
from tests.reference.archgen import SEEDS, generate  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_cli(tmp_path, *args):
    out = tmp_path / "report.json"
    env = {**os.environ, "MINICNN_DATA_DIR": mnist_dir(), "TF_CPP_MIN_LOG_LEVEL": "2"}
    r = subprocess.run([sys.executable, "-m", "minicnn", "crosscheck", *args, "--json", str(out)],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    report = json.loads(out.read_text()) if out.exists() else None
    return r, report


def assert_tight(report, dtype):
    rt_out, rt_grad = TOLERANCES[(dtype, "out")][0], TOLERANCES[(dtype, "grad")][0]
    for row in report["layers"]:
        assert row["passed"], row
        # the table's tolerance, or a layer's own error floor where it states one (BatchNorm)
        assert row["rel"] <= max(rt_out if row["tensor"] == "out" else rt_grad, row.get("rtol_floor", 0.0))


#: every preset in both dtypes through the real command (pooled stays in the fast set)
PRESET_CASES = [pytest.param(p, d, marks=() if p == "pooled" else pytest.mark.slow)
                for p in PRESETS for d in ("float32", "float64")]


@pytest.mark.parametrize("preset, dtype", PRESET_CASES)
def test_presets_via_cli(tmp_path, preset, dtype):
    r, report = run_cli(tmp_path, "--preset", preset, "--dtype", dtype, "--steps", "50", "--batch", "32")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "RESULT: PASS" in r.stdout
    assert report["summary"]["passed"]
    assert_tight(report, dtype)
    h = report["header"]
    assert h["dtype"] == dtype and h["versions"]["tensorflow"] == tf.__version__ and h["tf32"] is False
    assert "MNIST test images [0:1600]" in h["data"]
    tr = report["training"]
    assert tr["steps"] == 50 and tr["optimizer"] == "adam" and tr["loss_passed"]
    assert tr["loss_path"]["keras_used"] == tr["loss_path"]["minicnn_uses"] == "fused (from logits)"
    if dtype == "float64":  # free-running losses and final weights, tight
        assert tr["judged"] == "free-running"
        assert tr["max_loss_rel_diff"] <= 1e-9
        assert all(w["rel"] <= 1e-9 for w in tr["weights"])
    else:  # step by step, at the 1e-4 target; free-running is information, never passed
        assert tr["judged"] == "stepwise" and tr["stepwise"]["max_loss_rel_diff"] <= 1e-4
        assert tr["weights_passed"] is None and all(w["status"] == "not judged" for w in tr["weights"])
        free = [ln for ln in r.stdout.splitlines() if ln.startswith("  free-running:")]
        assert len(free) == 1 and ": not judged (" in free[0]
        assert "free-running weights" in report["summary"]["not_judged"]
    assert report["summary"]["judged"]["failed"] == []
    if preset == "pooled":
        ties = h["maxpool_ties"]
        assert ties["exact_ties"] > 0.3 * ties["windows"]  # real MNIST after ReLU: ties are the norm


#: float32 for the original generated set only. The zoo's seeds (8-13) are judged in float64:
#: in float32 their small-channel BatchNorm/depthwise weight gradients are sums of N*H*W terms
#: that cancel (gen9: dgamma 3.6e-4, depthwise dW 1.3e-4 of max|ref| against Keras), beyond the
#: table's 1e-4, which does not scale with a reduction's length and cancellation yet; the seven
#: presets are judged in float32 (test_presets_via_cli).
GENERATED_CASES = [(s, "float64") for s in SEEDS] + [(s, "float32") for s in SEEDS if s < 8]


@pytest.mark.parametrize("seed, dtype", GENERATED_CASES)
def test_generated_architectures(seed, dtype):
    x, y, where = load_mnist_batch(16 * 4, sample="random", seed=seed, data_dir=mnist_dir(), dtype=dtype)
    model = generate(seed, dtype)
    report = crosscheck(model, x, y, dtype=dtype, steps=4, optimizer="adam", seed=seed, batch=16,
                        data_source=where)
    assert report["summary"]["passed"], format_report(report)
    assert_tight(report, dtype)
    if dtype == "float64":
        assert report["training"]["max_loss_rel_diff"] <= 1e-9
        assert report["end_to_end"]["input_grad_rel"] <= 1e-10


def test_sgd_and_sampled_batch(tmp_path):
    r, report = run_cli(tmp_path, "--preset", "pooled", "--dtype", "float64", "--optimizer", "sgd",
                        "--steps", "10", "--batch", "16", "--sample", "random", "--seed", "3")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert report["training"]["optimizer_config"].startswith("SGD(")
    assert report["training"]["max_loss_rel_diff"] <= 1e-9
    assert "sampled with seed 3" in report["header"]["data"]


def test_model_file_and_errors(tmp_path, capsys):
    m = build_preset("pooled", seed=5)
    m.save(tmp_path / "p.keras")
    m.save(tmp_path / "p.weights.h5")
    r, report = run_cli(tmp_path, "--model", str(tmp_path / "p.weights.h5"), "--preset", "pooled", "--steps", "2",
                        "--batch", "8")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert report["header"]["model"] == "pooled"
    os.environ.setdefault("MINICNN_DATA_DIR", mnist_dir())
    assert main(["crosscheck", "--model", str(tmp_path / "missing.keras")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["crosscheck", "--batch", "0"]) == 1
    assert "--batch" in capsys.readouterr().err
