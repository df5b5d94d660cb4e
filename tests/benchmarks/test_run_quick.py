"""``python -m benchmarks.run --quick`` end to end on a tiny model (TensorFlow skipped)."""

from __future__ import annotations

import json

import pytest

from benchmarks import run
from minicnn.layers import Conv2D, Dense, Flatten, MaxPool2D
from minicnn import Sequential


def _tiny_config(tmp_path):
    m = Sequential([Conv2D(16, 3, activation="relu"), MaxPool2D(2), Flatten(), Dense(3, activation="softmax")],
                   input_shape=(8, 8, 1), seed=0, name="tiny")
    p = tmp_path / "tiny.json"
    p.write_text(json.dumps(m.get_config()))
    return str(p)


def _run(tmp_path, skip):
    out = tmp_path / "out"
    rc = run.main(["--quick", "--model", _tiny_config(tmp_path), "--batch", "4", "--infer-batch", "6",
                   "--input-shape", "8,8,1", "--classes", "3", "--skip", skip, "--out", str(out)])
    assert rc == 0
    return json.loads((out / "results.json").read_text()), (out / "results.md").read_text()


def test_quick_numpy_only(tmp_path):
    R, md = _run(tmp_path, "peak,numba,tensorflow,pytorch,alternatives,memory,compile,first_epoch")
    node = R["frameworks"]["minicnn-numpy"]["models"]["tiny"]["float32"]
    ops = node["batches"]["4"]["ops"]
    assert set(ops) == {"conv2d", "max_pooling2d", "flatten", "dense", "loss"}
    assert node["batches"]["4"]["train_step"]["median_ms"] > 0 and node["infer"]["6"]["median_ms"] > 0
    assert R["models"]["tiny"]["float32"]["layers"][0]["output_shape"] == [6, 6, 16]
    assert "### tiny, float32, batch 4" in md and "conv2d (Conv2D) fwd" in md
    assert "not measured (`--skip peak`)" in md
    # batch-1 latency: every call with a median and a p95
    lat = node["latency"]
    assert set(lat) == {"predict", "call", "forward"}
    assert all(0 < t["median_ms"] <= t["p95_ms"] <= t["max_ms"] and t["n"] == 100 for t in lat.values())
    assert R["derived"]["latency"]["tiny"]["float32"]["minicnn-numpy"]["call"] == "predict"
    # bytes moved beside the step time, the goal table, the perf statement
    step = R["derived"]["steps"]["tiny"]["float32"]["4"]["minicnn-numpy"]
    assert step["model_mb"] > 0 and step["model_gb_s"] > 0
    assert {g["verdict"] for g in R["derived"]["goals"]} <= {"met", "not met", "met (partial)", "not measured"}
    for title in ("## Goal table (issue 12)", "## Batch-1 latency", "## Bytes moved per step"):
        assert title in md
    assert R["traffic"]["perf"]["available"] or "not measurable here" in md


@pytest.mark.slow
def test_quick_numba_with_the_peak_probe(tmp_path):
    R, md = _run(tmp_path, "numpy,tensorflow,pytorch,memory,first-epoch")
    A = R["derived"]
    assert A["peaks"]["float32"]["all_cores"] > 0
    assert R["peak"]["fma"]["float32"]["asm"]["ok"]
    assert "minicnn-numba-gemm" in R["frameworks"] and "cold" in R["compile"]
    assert "FMA peak, all cores" in md
    # which numba path each op ran, recorded by trace_kernels
    node = R["frameworks"]["minicnn-numba"]["models"]["tiny"]["float32"]
    paths = node["batches"]["4"]["ops"]["conv2d"]["paths"]
    assert paths["fwd"]["kernels"] and paths["fwd"]["path"] and paths["bwd"]["path"]
    assert node["batches"]["4"]["train_step"]["paths"]["kernels"]
    # what the thread picker chose for the measured step and batch-1 pass (after its trials)
    if R["frameworks"]["minicnn-numba"]["info"]["threading"]["num_threads"] > 1:
        for picked in (node["batches"]["4"]["train_step"]["threads"]["4"], node["latency"]["threads"]["1"]):
            assert picked["threads"] in ("one", "pool") and picked["one_ms"] > 0 and picked["pool_ms"] > 0
    assert R["frameworks"]["minicnn-numba"]["info"]["threading"]["codegen"]["vector_isa"] in md
    assert "## Which numba path each op ran" in md and "| conv2d |" in md


def test_fit_section_fits_every_model(tmp_path):
    # numba and TensorFlow skipped: the numpy backend fits the first model only, so the second
    # model's entry is there and empty (what a run with numba and TensorFlow fills)
    other = Sequential([Flatten(), Dense(3, activation="softmax")], input_shape=(8, 8, 1), seed=0, name="flat")
    p2 = tmp_path / "flat.json"
    p2.write_text(json.dumps(other.get_config()))
    out = tmp_path / "out"
    rc = run.main(["--quick", "--model", f"{_tiny_config(tmp_path)},{p2}", "--batch", "4", "--fit-samples", "16",
                   "--input-shape", "8,8,1", "--classes", "3", "--dataset", "none-such", "--out", str(out),
                   "--skip", "peak,ops,steps,latency,traffic,alternatives,compile,first_epoch,numba,tensorflow,pytorch"])
    assert rc == 0
    R, md = json.loads((out / "results.json").read_text()), (out / "results.md").read_text()
    assert list(R["fit"]) == ["tiny", "flat"] and R["fit"]["flat"] == {}
    fit = R["fit"]["tiny"]["minicnn-numpy"]
    assert fit["samples_trained"] == 16 and fit["fit_seconds"] > 0 and fit["model"] == "tiny"
    assert "| minicnn-numpy | tiny float32 |" in md and "fit: tiny, minicnn-numpy" in md


def test_bad_flags():
    with pytest.raises(SystemExit):
        run.parse_args(["--dtype", "float16"])
    with pytest.raises(SystemExit):
        run.parse_args(["--batch", "0"])
    with pytest.raises(SystemExit):
        run.parse_args(["--skip", "everything"])
    with pytest.raises(SystemExit):
        run.parse_args(["--batch", "32", "--ops-batch", "100"])
    a = run.parse_args(["--preset", "all", "--batch", "32,100,256", "--dtype", "float32,float64", "--skip", "fit,tf"])
    assert a.batches == [32, 100, 256] and a.dtypes == ["float32", "float64"]
    assert a.ops_batches == [100] and a.ops_dtypes == ["float32"] and a.reference_grid == "reduced"
    assert a.skip_set == {"memory", "tensorflow"} and len(a.specs) >= 2
    a = run.parse_args(["--batch", "32,256", "--dtype", "float64,float32", "--ops-batch", "all", "--ops-dtype", "all"])
    assert a.ops_batches == [32, 256] and a.ops_dtypes == ["float64", "float32"]
