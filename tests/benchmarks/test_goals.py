"""The goal table's verdicts (benchmarks/goals.py) on synthetic results."""

from __future__ import annotations

import pytest

from benchmarks import goals

FW = "minicnn-numba"


def _results(step_ratios, infer=None, lat=None, fit=None, compile_s=None, ops=None, f64=None):
    """R and A with the given minicnn-numba ratios (TF's time / minicnn's)."""
    presets = sorted({p for p, _ in step_ratios} | set(infer or {}) | set(lat or {}))
    R = {"meta": {"train_samples": 60000}, "models": {p: {"float32": {}} for p in presets}}
    A = {"steps": {}, "infer": {}, "latency": {}, "ops": {}}
    for (p, b), v in step_ratios.items():
        A["steps"].setdefault(p, {}).setdefault("float32", {})[str(b)] = {FW: {"vs_tf": v}}
    for (p, b), v in (f64 or {}).items():
        A["steps"].setdefault(p, {}).setdefault("float64", {})[str(b)] = {FW: {"vs_tf": v}}
    for p, v in (infer or {}).items():
        A["infer"].setdefault(p, {}).setdefault("float32", {})["1000"] = {FW: {"vs_tf": v}}
    for p, v in (lat or {}).items():
        A["latency"].setdefault(p, {})["float32"] = {FW: {"vs_tf": v}}
    if fit:  # (minicnn s, Keras s, minicnn MB, Keras MB) for every preset, or {preset: that}
        per = fit if isinstance(fit, dict) else {p: fit for p in presets}
        R["fit"] = {p: {FW: {"model": p, "fit_seconds": f[0], "peak_rss_mb": f[2], "samples_trained": 60000},
                        "tensorflow": {"model": p, "fit_seconds": f[1], "peak_rss_mb": f[3]}}
                    for p, f in per.items()}
    if compile_s is not None:
        R["compile"] = {"cold": {"models": {"seed": {"first_step_overhead_s": compile_s}}}}
    if ops:
        A["ops"] = {"seed": {"float32": {"100": [
            {"op": name, "type": kind, "input_shape": i, "output_shape": o,
             "by_framework": {FW: {"fwd": {"pct_peak": f}, "bwd": {"pct_peak": b}}}}
            for name, kind, i, o, f, b in ops]}}}
    return R, A


def _by_goal(rows, word):
    (row,) = [r for r in rows if word in r["goal"]]
    return row


def test_verdicts_met_not_met_partial_and_not_measured():
    steps = {("seed", 100): 1.6, ("seed", 32): 1.3, ("seed", 256): 1.25,
             ("lenet5", 100): 0.5, ("lenet5", 32): 1.21}
    R, A = _results(steps, infer={"seed": 1.1, "lenet5": 0.9}, lat={"seed": 4.0, "lenet5": 3.5},
                    fit=(10.0, 25.0, 400.0, 1000.0), compile_s=6.0)
    rows = goals.goal_table(R, A)
    seed = _by_goal(rows, "seed train step")
    assert seed["verdict"] == "met" and seed["worst"] == 1.6
    every = _by_goal(rows, "batch 32/100/256")
    # lenet5 B=100 fails; lenet5 B=256 is missing, but a failure decides
    assert every["verdict"] == "not met" and every["worst_case"] == "lenet5 B=100"
    assert every["failing"] == ["lenet5 B=100 0.50x"] and every["missing"] == ["lenet5 B=256"]
    inf = _by_goal(rows, "inference")
    assert inf["verdict"] == "not met" and inf["failing"] == ["lenet5 0.90x"]
    assert _by_goal(rows, "latency")["verdict"] == "met"
    assert _by_goal(rows, "float64")["verdict"] == "not measured"
    assert _by_goal(rows, "real fit")["verdict"] == "met" and _by_goal(rows, "real fit")["worst"] == 2.5
    assert _by_goal(rows, "peak RSS")["verdict"] == "met" and _by_goal(rows, "peak RSS")["worst"] == 0.4
    comp = _by_goal(rows, "compile")
    assert comp["verdict"] == "not met" and comp["worst"] == 6.0  # lower is better
    assert _by_goal(rows, "make train")["verdict"] == "not measured"


def test_compile_counts_seed_only_when_it_compiled_first():
    # the cold process compiles its models in order: a seed after lenet5 reuses lenet5's kernels
    R, A = _results({("seed", 100): 1.6})
    R["compile"] = {"cold": {"import_s": 1.0, "models": {"lenet5": {"first_step_overhead_s": 10.0},
                                                         "seed": {"first_step_overhead_s": 1.5}}}}
    assert _by_goal(goals.goal_table(R, A), "compile")["verdict"] == "not measured"
    R["compile"]["cold"]["models"] = {"seed": {"first_step_overhead_s": 3.5}, "lenet5": {"first_step_overhead_s": 9.0}}
    comp = _by_goal(goals.goal_table(R, A), "compile")
    assert comp["verdict"] == "met" and comp["worst"] == 4.5  # the import (native library) counts


def test_partial_when_everything_measured_meets_it():
    R, A = _results({("seed", 100): 1.3})
    every = _by_goal(goals.goal_table(R, A), "batch 32/100/256")
    assert every["verdict"] == "met (partial)" and every["missing"] == ["seed B=256", "seed B=32"]


def test_wide_ops_only_conv_and_dense_with_16_channels():
    ops = [("conv2d", "Conv2D", [28, 28, 1], [26, 26, 32], 40.0, 30.0),      # 1 input channel: left out
           ("conv2d_1", "Conv2D", [26, 26, 32], [24, 24, 64], 80.0, 70.0),
           ("dense", "Dense", [36864], [128], 90.0, 76.0),
           ("dense_1", "Dense", [128], [10], 5.0, 5.0),                        # 10 outputs: left out
           ("max_pooling2d", "MaxPool2D", [24, 24, 64], [12, 12, 64], 1.0, 1.0)]
    R, A = _results({("seed", 100): 1.6}, ops=ops)
    row = _by_goal(goals.goal_table(R, A), "% of the measured FMA peak")
    assert row["measured_cases"] == 4 and row["verdict"] == "not met"
    assert row["failing"] == ["seed float32 B=100 conv2d_1 bwd 70.00%"]
    assert row["worst"] == 70.0


def test_markdown_section():
    R, A = _results({("seed", 100): 1.6, ("lenet5", 100): 0.5})
    md = "\n".join(goals.section(goals.goal_table(R, A)))
    assert "## Goal table (issue 12)" in md
    assert "| seed train step, batch 100, float32, vs TF | >= 1.5x | 1.60x (seed) | met |" in md
    assert "**not met**" in md and "lenet5 B=100 0.50x" in md


def test_make_train_first_epoch_counts_the_wait_for_the_kernels():
    R, A = _results({("seed", 100): 1.6})
    fe = {"epoch_s": [20.0, 19.0], "ratio": 20.0 / 19.0, "waited_s": 6.0, "ratio_with_wait": 26.0 / 19.0,
          "limit": 0}
    R["first_epoch"] = fe
    row = _by_goal(goals.goal_table(R, A), "make train")
    # epoch 1 alone is within 1.3x of epoch 2; with the 6 s wait for the compile it is not
    assert row["verdict"] == "not met" and row["worst"] == pytest.approx(26.0 / 19.0)
    assert "epoch 1 alone 1.05x" in row["note"] and "image epoch" not in row["note"]
    R["first_epoch"] = {**fe, "waited_s": 0.5, "ratio_with_wait": 20.5 / 19.0, "limit": 6000}
    row = _by_goal(goals.goal_table(R, A), "make train")
    assert row["verdict"] == "met" and "a 6,000-image epoch, not" in row["note"]
    R["first_epoch"] = {"error": "RuntimeError: minicnn train failed (2)"}
    row = _by_goal(goals.goal_table(R, A), "make train")
    assert row["verdict"] == "not measured" and "failed: RuntimeError" in row["note"]


def test_fit_goal_covers_every_preset():
    steps = {("seed", 100): 1.6, ("lenet5", 100): 1.6}
    R, A = _results(steps, fit={"seed": (10.0, 25.0, 400.0, 1000.0), "lenet5": (4.0, 6.0, 300.0, 900.0)})
    fit, rss = _by_goal(goals.goal_table(R, A), "real fit"), _by_goal(goals.goal_table(R, A), "peak RSS")
    assert fit["verdict"] == "not met" and fit["failing"] == ["lenet5 1.50x"] and fit["worst"] == 1.5
    assert rss["verdict"] == "met" and rss["worst"] == pytest.approx(0.4)  # the worst of 0.4 and 1/3
    R, A = _results(steps, fit={"seed": (10.0, 25.0, 400.0, 1000.0)})
    fit = _by_goal(goals.goal_table(R, A), "real fit")
    assert fit["verdict"] == "met (partial)" and fit["missing"] == ["lenet5"]
    # a short epoch is said so
    R["fit"]["seed"][FW]["samples_trained"] = 2000
    assert "a 2000-sample epoch" in _by_goal(goals.goal_table(R, A), "real fit")["note"]


def test_fit_runs_reads_the_one_model_format_of_older_runs():
    old = {FW: {"framework": FW, "model": "lenet5", "fit_seconds": 2.0, "peak_rss_mb": 300.0},
           "tensorflow": {"framework": "tensorflow", "model": "lenet5", "fit_seconds": 5.0, "peak_rss_mb": 900.0}}
    assert goals.fit_runs({"fit": old}) == {"lenet5": old}
    assert goals.fit_runs({"fit": {FW: {"error": "exit 1"}}}) == {"model": {FW: {"error": "exit 1"}}}
    new = {"seed": old}
    assert goals.fit_runs({"fit": new}) is new and goals.fit_runs({}) == {}
