"""The analytic bytes-per-step model (benchmarks/traffic.py), counted by hand on a tiny model,
and the perf-stat parser."""

from __future__ import annotations

import pytest

from benchmarks import traffic
from minicnn import Sequential
from minicnn.layers import Conv2D, Dense, Flatten, MaxPool2D


def _tiny(dtype="float32"):
    # conv (4,4,1) -> (2,2,2): kernel 3*3*1*2 = 18 + bias 2 = 20 weights; relu fused
    # maxpool (2,2,2) -> (1,1,2); flatten -> 2; dense 2 -> 3: 6 + 3 = 9 weights, softmax
    m = Sequential([Conv2D(2, 3, activation="relu"), MaxPool2D(2), Flatten(), Dense(3, activation="softmax")],
                   input_shape=(4, 4, 1), seed=0, dtype=dtype)
    m.build()
    return m


def test_per_layer_elements_by_hand():
    m = _tiny()
    t = traffic.model_traffic(m)["layers"]
    conv, pool, flat, dense = (t[l.name] for l in m.layers)
    # conv, first layer: fwd reads x 16 + writes y 8, reads 20 weights; bwd reads dy 8, x 16, y 8
    # (relu), writes dW 20 and no dx, reads no weights; Adam 7 x 20
    assert conv == {"fwd_per_sample": 24, "fwd_fixed": 20, "bwd_per_sample": 32, "bwd_fixed": 20, "opt_fixed": 140}
    # maxpool: fwd 8 + 2; bwd dy 2 + argmax 2 + dx 8
    assert pool == {"fwd_per_sample": 10, "fwd_fixed": 0, "bwd_per_sample": 12, "bwd_fixed": 0, "opt_fixed": 0}
    assert flat == {"fwd_per_sample": 0, "fwd_fixed": 0, "bwd_per_sample": 0, "bwd_fixed": 0, "opt_fixed": 0}
    # dense: fwd x 2 + y 3, 9 weights; bwd dy 3 + dx 2 + x 2 + y 3 (softmax), dW 9 + weights 9 (for dx)
    assert dense == {"fwd_per_sample": 5, "fwd_fixed": 9, "bwd_per_sample": 10, "bwd_fixed": 18, "opt_fixed": 63}


def test_totals_and_bytes_by_hand():
    m = _tiny("float64")
    t = traffic.model_traffic(m)
    assert t["loss_per_sample"] == 9  # logits + labels read, gradient written: 3 x 3
    assert t["step_per_sample"] == 24 + 32 + 10 + 12 + 5 + 10 + 9 == 102
    assert t["step_fixed"] == (20 + 20 + 140) + (9 + 18 + 63) == 270
    assert t["infer_per_sample"] == 24 + 10 + 5 and t["infer_fixed"] == 29
    assert traffic.step_bytes(t, 10, 8) == (10 * 102 + 270) * 8
    assert traffic.step_bytes(t, 10, 8, "infer") == (10 * 39 + 29) * 8


def test_the_first_layer_writes_no_input_gradient():
    m = _tiny()
    conv = m.layers[0]
    inner = traffic.layer_traffic(conv, first=False)
    first = traffic.layer_traffic(conv, first=True)
    assert inner["bwd_per_sample"] - first["bwd_per_sample"] == 16  # dx (4*4*1) written
    assert inner["bwd_fixed"] - first["bwd_fixed"] == 20  # the weights read for dx


def test_an_unbuilt_model_is_refused():
    m = Sequential([Dense(3)], seed=0)
    with pytest.raises(ValueError, match="dense.*build the model first"):
        traffic.model_traffic(m)


def test_describe_carries_the_model():
    from benchmarks import models

    d = models.describe(_tiny())
    assert d["itemsize"] == 4 and d["traffic"]["step_per_sample"] == 102
    assert d["layers"][0]["traffic"]["opt_fixed"] == 140


def test_perf_csv_parser():
    text = ("<not supported>,,LLC-load-misses,0,100.00,,\n"
            "12345,,LLC-store-misses,1000,100.00,,\n# comment line\n")
    assert traffic.parse_perf_csv(text) == {"LLC-load-misses": None, "LLC-store-misses": 12345}


def test_perf_probe_answers_either_way():
    p = traffic.perf_probe()
    assert isinstance(p["available"], bool)
    assert p["available"] or p["reason"]


@pytest.mark.parametrize("perf", [{"available": False, "reason": "counters not supported: x"}])
def test_section_says_not_measurable(perf):
    R = {"models": {"tiny": {"float32": {"traffic": traffic.model_traffic(_tiny()), "itemsize": 4}}},
         "traffic": {"perf": perf, "measured": {}}}
    md = "\n".join(traffic.section(R))
    assert "not measurable here" in md and "| tiny | float32 | 0.4 | 0.00 | 0.2 |" in md


def test_measured_bytes_are_the_difference_of_two_runs(monkeypatch):
    """perf stat around k and 3k steps (a fake perf here: this VM has no counters): start-up
    cancels, (misses(15) - misses(5)) / 10 x 64 bytes per step."""
    import subprocess

    def fake_run(cmd, **kwargs):
        k = int(cmd[-1])
        loads, stores = 1000 + 300 * k, 50 + 20 * k  # 1000/50: start-up; 300/20 per step
        err = f"{loads},,LLC-load-misses,1,100.00,,\n{stores},,LLC-store-misses,1,100.00,,\n"
        return subprocess.CompletedProcess(cmd, 0, "", err)

    monkeypatch.setattr(traffic.shutil, "which", lambda name: "/usr/bin/perf")
    monkeypatch.setattr(traffic.subprocess, "run", fake_run)
    out = traffic.measured_step_bytes(lambda k: ["python", "steps", str(k)])
    assert out["misses_per_step"] == {"LLC-load-misses": 300, "LLC-store-misses": 20}
    assert out["bytes_per_step"] == 64 * 320 and out["steps"] == [5, 15]


def test_measured_bytes_report_perf_failing(monkeypatch):
    import subprocess

    monkeypatch.setattr(traffic.shutil, "which", lambda name: "/usr/bin/perf")
    monkeypatch.setattr(traffic.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(
        cmd, 0, "", "<not supported>,,LLC-load-misses,0,100.00,,\n"))
    assert "error" in traffic.measured_step_bytes(lambda k: ["x", str(k)])
