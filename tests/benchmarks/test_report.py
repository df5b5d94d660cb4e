"""Derived numbers and the markdown report (benchmarks.analyse, benchmarks.report) on synthetic
results: no measurement runs here."""

from __future__ import annotations

import pytest

from benchmarks import analyse, models, paths, report
from benchmarks.timing import summarize
from minicnn.layers import Dense, Flatten
from minicnn import Sequential


def _t(ms):
    return summarize([ms * 0.9, ms, ms * 1.2])


def _results(conv_ms=1.0, peak_gflops=100.0):
    m = Sequential([Flatten(), Dense(8, activation="relu"), Dense(3, activation="softmax")],
                   input_shape=(4, 4, 1), seed=0, name="tiny")
    m.build()
    desc = models.describe(m)
    names = [l["name"] for l in desc["layers"]] + ["loss"]

    def side(scale):
        ops = {n: {"fwd": _t(conv_ms * scale), "bwd": _t(2 * conv_ms * scale)} for n in names}
        return {"info": {}, "models": {"tiny": {"float32": {
            "batches": {"10": {"ops": ops, "train_step": _t(10 * scale)}}, "infer": {"20": _t(4 * scale)}}}}}

    R = {"meta": {"started": "now", "quick": True, "command": "python -m benchmarks.run --quick",
                  "duration_s": 1, "models": ["tiny"], "dtypes": ["float32"], "batches": [10],
                  "infer_batches": [20], "train_samples": 100},
         "machine": {"cpu_model": "Test CPU", "microarchitecture": "Testlake", "isa": ["avx2"],
                     "blas": {"name": "openblas", "core_type": "Haswell"}, "env": {"OPENBLAS_CORETYPE": "Haswell"}},
         "peak": {"fma": {"float32": {"per_core_gflops": peak_gflops / 2, "all_cores_gflops": peak_gflops,
                                      "lanes": 8, "threads": 2, "vector_bits": 256, "chains": 12, "unroll": 4,
                                      "asm": {"ok": True, "example": "vfmadd213ps %ymm0", "stack_refs_in_loop": 0,
                                              "fma_instructions_in_loop": 48, "other_instructions_in_loop": []}}},
                  "blas": {"float32": {"gflops": 0.5 * peak_gflops, "n": 512}}, "clock": {"ghz": 3.0}},
         "models": {"tiny": {"float32": desc}},
         "frameworks": {"minicnn-numba": side(1.0), "tensorflow": side(2.0),
                        "pytorch": {"skipped": "torch is not importable"}}}
    return R, desc


def test_analyse_percent_of_peak_and_ratios():
    R, desc = _results()
    A = analyse.analyse(R)
    assert A["peaks"]["float32"]["all_cores"] == 100.0
    rows = A["ops"]["tiny"]["float32"]["10"]
    dense = next(r for r in rows if r["type"] == "Dense")
    flops = 10 * desc["layers"][1]["flops_fwd"]
    e = dense["by_framework"]["minicnn-numba"]["fwd"]
    assert e["gflops"] == pytest.approx(flops / 1.0 / 1e6)
    assert e["pct_peak"] == pytest.approx(100 * e["gflops"] / 100.0)
    assert e["vs_tf"] == pytest.approx(2.0)
    st = A["steps"]["tiny"]["float32"]["10"]["minicnn-numba"]
    assert st["img_s"] == pytest.approx(1000.0) and st["vs_tf"] == pytest.approx(2.0)
    assert st["epoch_s_extrapolated"] == pytest.approx(10 * 10 / 1e3)
    assert A["peak_violations"] == []


def test_a_disturbed_all_cores_probe_falls_back_to_cores_x_one_core():
    R, _ = _results()
    R["peak"]["fma"]["float32"]["all_cores_gflops"] = 55.0  # one core's 50 + a little: a core was held
    A = analyse.analyse(R)
    pk = A["peaks"]["float32"]
    assert pk["plausibility"]["disturbed"] and pk["denominator"] == 100.0
    assert pk["denominator_source"] == "cores x one core"
    assert "held a core" in report.markdown(R, A)


def test_a_result_above_the_peak_is_flagged():
    R, _ = _results(peak_gflops=1e-6)
    A = analyse.analyse(R)
    assert A["peak_violations"]
    assert "exceed the measured peak" in report.markdown(R, A)


def test_markdown_order_and_content():
    R, _ = _results()
    md = report.markdown(R, analyse.analyse(R))
    assert md.startswith("# minicnn benchmark results")
    order = [md.index(s) for s in ("## Machine", "Floating-point peak", "## Train step and inference",
                                   "## Per op")]
    assert order == sorted(order)
    assert "Testlake" in md and "**Haswell**" in md and "| OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE | Haswell / None |" in md
    assert "**100 GFLOP/s** (all cores)" in md and "50 GFLOP/s (n=512; 50% of peak)" in md
    assert "| 10 | minicnn-numba |" in md and "2.00x" in md
    assert "dense (Dense) fwd | (16) → (8)" in md
    assert "torch is not importable" in md


def test_the_first_epoch_section_gives_both_ratios_and_its_run_time():
    R, _ = _results()
    assert "make train's first epoch" not in report.markdown(R, analyse.analyse(R))
    R["first_epoch"] = {"startup_s": 4.0, "waited_s": 2.5, "epoch_s": [12.0, 10.0], "ratio": 1.2,
                        "ratio_with_wait": 1.45, "limit": 6000, "warmup_line": "minicnn: kernels ... (waited 2.5 s)",
                        "wall_s": 30.0, "cpu_s": 50.0}
    md = report.markdown(R, analyse.analyse(R))
    assert "## `make train`'s first epoch" in md
    assert "| 6,000 images | 4.0 | 2.5 | 12.0 | 10.0 | 1.20x | 1.45x |" in md
    assert "| make train's first epoch | 30 | 50 |" in md
    R["first_epoch"] = {"error": "RuntimeError: no MNIST", "wall_s": 1.0, "cpu_s": 0.5}
    assert "Failed: RuntimeError: no MNIST" in report.markdown(R, analyse.analyse(R))


def test_fmt_ms():
    assert report.fmt_ms(None) == "—"
    assert report.fmt_ms({"unresolved": True}) == "< noise"
    t = summarize([0.5, 0.25, 1.0])
    assert report.fmt_ms(t) == "0.500 [0.25–1]"
    t["noisy"] = True
    assert report.fmt_ms(t).endswith(" *")


def test_the_thread_pickers_choice_is_named_where_it_ran_on_one_thread():
    one, pool = {"threads": "one", "pool": 2}, {"threads": "pool", "pool": 2}
    assert paths.threads_note({"threads": {"32": one}}) == " (1 thread)"
    assert paths.threads_note({"threads": {"128": pool, "104": one}}) == " (1 thread: chunks of 104)"
    assert paths.threads_note({"threads": {"32": pool}}) == paths.threads_note({}) == ""
    R, _ = _results()
    R["frameworks"]["minicnn-numba"]["models"]["tiny"]["float32"]["batches"]["10"]["train_step"]["threads"] = {
        "10": one}
    md = report.markdown(R, analyse.analyse(R))
    assert "| 10 | minicnn-numba (1 thread) |" in md and "| 10 | tensorflow |" in md
