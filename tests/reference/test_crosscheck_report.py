"""reference.crosscheck.report and the summary: every line says whether it is judged and at
which tolerance; the float32 free-running comparison says "not judged"; the JSON report is the
same data. One small crosscheck per dtype on random images (no MNIST needed)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

pytestmark = [pytest.mark.tf]
pytest.importorskip("tensorflow")

from reference.crosscheck import RULE, crosscheck, format_report, summarise  # noqa: E402
from tests.reference.archgen import generate  # noqa: E402

STEPS, BATCH = 3, 4


def small_report(dtype):
    rng = np.random.default_rng(0)
    x = rng.random((STEPS * BATCH, 28, 28, 1))
    y = rng.integers(0, 10, STEPS * BATCH)  # integer labels are one-hot encoded by crosscheck
    return crosscheck(generate(3, dtype), x, y, dtype=dtype, steps=STEPS, seed=0, batch=BATCH,
                      data_source="random images")


@pytest.fixture(scope="module")
def f32():
    return small_report("float32")


@pytest.fixture(scope="module")
def f64():
    return small_report("float64")


def lines_of(report):
    return format_report(report).splitlines()


def test_float32_free_running_lines_say_not_judged(f32):
    lines = lines_of(f32)
    free = [ln for ln in lines if ln.startswith("  free-running:")]
    assert len(free) == 1 and ": not judged (free-running float32 trajectories are ill-conditioned" in free[0]
    assert " ok" not in free[0] and "pass" not in free[0].lower()
    heading = next(ln for ln in lines if ln.startswith("  weights after"))
    assert heading.startswith(f"  weights after {STEPS} free-running steps, not judged (")
    table = lines[lines.index(heading) + 3:lines.index(heading) + 3 + len(f32["training"]["weights"])]
    assert table and all(ln.rstrip().endswith("not judged") for ln in table)
    steps = [ln for ln in lines if ln.startswith("  step ") and ": loss minicnn" in ln]
    assert steps and all(ln.split("| free-running keras")[1].rstrip().endswith("not judged") for ln in steps)
    assert all(" ok (rtol 1.00e-04) |" in ln for ln in steps)  # the step-by-step loss is judged
    sw = next(ln for ln in lines if ln.startswith("  step by step, weights after each step"))
    assert sw.split(": ", 1)[1].startswith("max") and ": not judged (" in sw
    s = f32["summary"]
    assert {"free-running loss", "free-running weights", "step-by-step weights"} <= set(s["not_judged"])
    assert f32["training"]["weights_passed"] is None
    assert "free-running weights" in lines[-1] and lines[-1].startswith("RESULT: PASS (")


def test_float64_training_lines_are_judged(f64):
    lines = lines_of(f64)
    free = next(ln for ln in lines if ln.startswith("  free-running:"))
    assert free.endswith(": ok (rtol 1.00e-09)")
    heading = next(ln for ln in lines if ln.startswith("  weights after"))
    assert heading == f"  weights after {STEPS} free-running steps, judged at rtol 1.00e-09:"
    steps = [ln for ln in lines if ln.startswith("  step ") and ": loss minicnn" in ln]
    assert len(steps) == 3 and all(ln.endswith("ok (rtol 1.00e-09)") for ln in steps)
    s = f64["summary"]
    assert not {"free-running loss", "free-running weights"} & set(s["not_judged"])
    assert s["judged"]["total"] == len(f64["layers"]) + 1 + len(f64["training"]["weights"])


def test_every_line_states_whether_it_is_judged(f32, f64):
    for report in (f32, f64):
        lines = lines_of(report)
        assert f"rule: {RULE}" in lines[4] and "docs/parity.md" in lines[4]
        start = lines.index(next(ln for ln in lines if ln.startswith("layer ")))
        rows = lines[start + 2:start + 2 + len(report["layers"])]
        rtols = {"out": report["tolerances"][f"{report['header']['dtype']}/out"]["rtol"],
                 "grad": report["tolerances"][f"{report['header']['dtype']}/grad"]["rtol"]}
        for ln, r in zip(rows, report["layers"]):
            rtol = rtols["out" if r["tensor"] == "out" else "grad"]
            assert ln.split()[:2] == [r["layer"], r["tensor"]] and ln.split()[-2:] == [f"{rtol:.2e}", "ok"]
        for ln in lines:
            if ln.startswith(("without pinning", "max-pool windows", "  Keras loss on")):
                assert ln.endswith("(information, not judged)"), ln
            if ln.startswith(("  step by step", "  free-running", "  step ")):
                assert "ok (rtol" in ln or "FAIL (rtol" in ln or "not judged" in ln, ln
        assert lines[-1].startswith("RESULT: PASS (") and "judged checks within tolerance" in lines[-1]
        j = report["summary"]["judged"]
        assert j["passed"] == j["total"] and j["failed"] == [] and f"{j['passed']}/{j['total']}" in lines[-1]


def test_table_keeps_the_readme_columns(f32):
    lines = lines_of(f32)
    assert lines[0].startswith(f"minicnn crosscheck: model 'gen3' ({f32['header']['params']:,} params), float32, "
                               "batch 4 (random images)")
    assert lines[1].startswith("versions: minicnn ")
    head = next(ln for ln in lines if ln.startswith("layer "))
    assert head.split() == ["layer", "tensor", "shape", "max|d|", "mean|d|", "max|d|/max|ref|", "ulps", "argmax", "rtol",
                            "status"]
    assert any(ln.startswith("layers: ") and "tensors within tolerance" in ln for ln in lines)


def test_json_is_the_same_data(f32, f64):
    for report in (f32, f64):
        back = json.loads(json.dumps(report))
        assert back["summary"] == json.loads(json.dumps(report["summary"]))
        assert back["summary"]["rule"] == RULE and back["header"]["rule"] == RULE
        assert [c["check"] for c in back["training"]["checks"]]
        assert all("judged" in r and "status" in r for r in back["layers"] + back["training"]["weights"])
    assert f32["training"]["weights_passed"] is None and f64["training"]["weights_passed"] is True


def test_a_failure_is_rendered_and_named(f64):
    bad = copy.deepcopy(f64)
    row = bad["layers"][2]
    row.update(passed=False, status="FAIL")
    bad["training"]["weights"][0].update(passed=False, status="FAIL")
    bad["summary"] = summarise(bad)
    name = f"{row['layer']}/{row['tensor']}"
    w = bad["training"]["weights"][0]
    assert bad["summary"]["judged"]["failed"] == [name, f"weights {w['layer']}/{w['tensor']}"]
    text = format_report(bad)
    assert f"FAILED: {name} (" in text and f"failed: {name}, weights {w['layer']}/{w['tensor']}" in text
    assert text.splitlines()[-1].startswith("RESULT: FAIL (")
