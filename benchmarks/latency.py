"""The batch-1 latency section of the report: one image through each framework's inference call,
many back-to-back calls, median and p95 (``timing.measure_latency``; the sides' ``latency``)."""

from __future__ import annotations

from .analyse import FRAMEWORKS
from .paths import threads_note

DASH = "—"

#: the calls each side times, in table order, and how the table names them
CALLS = {"predict": "minicnn `model.predict(x)`", "call": "minicnn `model(x)`",
         "forward": "minicnn `model.forward(x)` (no checks)", "model_call": "Keras `model(x)` (eager)",
         "predict_on_batch": "Keras `predict_on_batch`", "tf_function": "`tf.function` forward",
         "no_grad": "PyTorch `no_grad` eager"}


def section(R, A) -> list[str]:
    rows = []
    for fw in FRAMEWORKS:
        for label, by_dt in (((R.get("frameworks") or {}).get(fw) or {}).get("models") or {}).items():
            for dt, node in by_dt.items():
                lat = node.get("latency") or {}
                if "error" in lat:
                    rows.append(f"| {label} | {dt} | {fw} | error: {lat['error'][:200]} | | | |")
                    continue
                d = ((A.get("latency") or {}).get(label, {}).get(dt) or {}).get(fw) or {}
                for call, t in lat.items():
                    if not isinstance(t, dict) or "median_ms" not in t:
                        continue
                    vs = d.get("vs_tf") if d.get("call") == call else None
                    rows.append(f"| {label} | {dt} | {fw}{threads_note(lat)} | {CALLS.get(call, call)} | "
                                f"{t['median_ms']:.3f} | "
                                f"{t['p95_ms']:.3f} | {DASH if vs is None else f'**{vs:.2f}x**'} |")
    if not rows:
        return []
    return ["## Batch-1 latency\n",
            "One image through each framework's inference call: back-to-back calls after the warm-up "
            "(`timing.measure_latency`: 20 calls, or more to cover minicnn's thread-picker trials), "
            "no sample discarded; ms. \"vs TF\": the faster of Keras's `model(x)` and `predict_on_batch` over "
            "this call (the goal's comparison). \"(1 thread)\": minicnn's thread picker ran the pass on the "
            "calling thread, measured faster there than on the pool.\n",
            "| model | dtype | framework | call | median ms | p95 ms | vs TF |", "|---|---|---|---|---|---|---|"] + sorted(
                rows, key=lambda r: r.split("|")[1]) + [""]
