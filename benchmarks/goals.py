"""The goal table of issue 12: each goal, the measured figure of this run and met / not met.

:func:`goal_table` reads the raw results ``R`` and the derived numbers ``A`` (``analyse``); a
row's figure is the *worst* case over what it covers (e.g. the slowest preset), with the
cases below the target listed. ``verdict`` is "met", "not met" (a measured case misses the target,
whatever else is missing), "met (partial)" (every measured case meets it but the run did not cover
all the goal asks for, e.g. batch 100 only) or "not measured".
"""

from __future__ import annotations

DASH = "—"

FW = "minicnn-numba"


def _row(goal, target, cases, threshold, higher=True, wanted=None, unit="x", note=""):
    """A row from ``cases`` = {case name: value}; ``wanted`` = the case names the goal asks for."""
    vals = {k: v for k, v in cases.items() if v is not None and v == v}
    missing = sorted(set(wanted or ()) - set(vals))
    if not vals:
        return {"goal": goal, "target": target, "worst": None, "worst_case": None, "failing": [],
                "measured_cases": 0, "missing": missing, "verdict": "not measured", "note": note, "unit": unit}
    ok = (lambda v: v >= threshold) if higher else (lambda v: v <= threshold)
    worst_case = min(vals, key=vals.get) if higher else max(vals, key=vals.get)
    failing = sorted((k for k, v in vals.items() if not ok(v)), key=vals.get, reverse=not higher)
    verdict = "not met" if failing else "met (partial)" if missing else "met"
    return {"goal": goal, "target": target, "worst": vals[worst_case], "worst_case": worst_case,
            "failing": [f"{k} {vals[k]:.2f}{unit}" for k in failing], "measured_cases": len(vals),
            "missing": missing, "verdict": verdict, "note": note, "unit": unit}


def _presets(R):
    return list((R.get("models") or {}))


def fit_runs(R) -> dict:
    """The fit section as {model label: {framework: result}}. Runs before 2026-12-04 fitted one
    model and stored {framework: result}; those are read as that one model's."""
    F = R.get("fit") or {}
    if any(isinstance(v, dict) and {"framework", "fit_seconds", "error"} & set(v) for v in F.values()):
        label = next((v.get("model", "").split(" ")[0] for v in F.values() if v.get("model")), "") or "model"
        return {label: F}
    return F


def goal_table(R, A) -> list[dict]:
    S, I, L = A.get("steps", {}), A.get("infer", {}), A.get("latency", {})
    presets = _presets(R)

    def step(label, dt, b):
        return ((S.get(label, {}).get(dt, {}).get(str(b)) or {}).get(FW) or {}).get("vs_tf")

    rows = [_row("seed train step, batch 100, float32, vs TF", ">= 1.5x",
                 {"seed": step("seed", "float32", 100)}, 1.5, wanted=["seed"])]
    wanted = [f"{p} B={b}" for p in presets for b in (32, 100, 256)]
    rows.append(_row("every preset train step, batch 32/100/256, float32, vs TF", ">= 1.2x each",
                     {f"{p} B={b}": step(p, "float32", b) for p in presets for b in (32, 100, 256)}, 1.2,
                     wanted=wanted))
    rows.append(_row("every preset inference, batch 1000, vs TF", ">= 1.0x",
                     {p: ((I.get(p, {}).get("float32", {}).get("1000") or {}).get(FW) or {}).get("vs_tf")
                      for p in presets}, 1.0, wanted=presets))
    rows.append(_row("batch-1 latency: minicnn predict vs the faster of TF model(x) / predict_on_batch",
                     ">= 3x", {p: ((L.get(p, {}).get("float32") or {}).get(FW) or {}).get("vs_tf") for p in presets}, 3.0,
                     wanted=presets))
    rows.append(_row("every preset train step, float64 vs TF float64", ">= 1.0x",
                     {f"{p} B={b}": v.get(FW, {}).get("vs_tf") for p in presets
                      for b, v in (S.get(p, {}).get("float64") or {}).items()}, 1.0,
                     wanted=[f"{p} B=100" for p in presets]))
    fits = fit_runs(R)
    speed, rss, short = {}, {}, set()
    for label, runs in fits.items():
        mine, keras = runs.get(FW) or {}, runs.get("tensorflow") or {}
        if "fit_seconds" in mine and "fit_seconds" in keras:
            speed[label] = keras["fit_seconds"] / mine["fit_seconds"]
            rss[label] = mine["peak_rss_mb"] / keras["peak_rss_mb"]
            if (mine.get("samples_trained") or 0) < (R["meta"].get("train_samples") or 0):
                short.add(mine.get("samples_trained"))
    fit_note = f"a {'/'.join(map(str, sorted(short)))}-sample epoch (--quick or --fit-samples)" if short else ""
    rows.append(_row("a real fit epoch vs Keras fit", ">= 2x", speed, 2.0, wanted=presets, note=fit_note))
    rows.append(_row("peak RSS of the one-epoch fit vs Keras", "<= 0.5x", rss, 0.5, higher=False,
                     wanted=presets, note=fit_note))
    rows.append(_row("first-ever compile of the seed model's kernels (cold cache)", "<= 5 s",
                     {"seed": _seed_cold_compile(R)}, 5.0, higher=False, wanted=["seed"], unit=" s",
                     note="import (the native tile library) + first train step minus a steady one, empty "
                          "NUMBA_CACHE_DIR; counted only when seed is the first model the cold process compiles"))
    rows.append(_row("conv/dense ops with >= 16 channels in and out, % of the measured FMA peak",
                     ">= 75%", _wide_ops(A), 75.0, unit="%",
                     note="forward and backward of every such layer, every preset, dtype and batch"))
    rows.append(_first_epoch_row(R))
    return rows


def _first_epoch_row(R) -> dict:
    """``make train``'s first epoch over its second (section first_epoch): the wait for the
    background compile counts as part of epoch 1, since a newcomer waits for it all the same."""
    fe = R.get("first_epoch") or {}
    ok = "ratio_with_wait" in fe
    note = "the wait for the background compile counted in epoch 1"
    if ok:
        note += (f"; epoch 1 alone {fe['ratio']:.2f}x; epochs {fe['epoch_s'][0]:.1f} s and {fe['epoch_s'][1]:.1f} s, "
                 f"waited {fe['waited_s']:.1f} s")
        if fe.get("limit"):
            note += f"; a {fe['limit']:,}-image epoch, not make train's whole training set"
    elif fe.get("error"):
        note += f"; failed: {fe['error'][-200:]}"
    return _row("`make train` from a fresh clone: first epoch within 1.3x of the second", "<= 1.3x",
                {"seed": fe["ratio_with_wait"] if ok else None}, 1.3, higher=False, wanted=["seed"], note=note)


def _seed_cold_compile(R):
    """Seconds the seed model's first-ever step cost in the cold process, or None when that
    process compiled another model first: the section compiles its models one after the other in
    one process, so every later model reuses the kernels it shares with the earlier ones and its
    overhead is not a first-ever compile (``python -m benchmarks.compile_time --presets seed``
    measures it alone)."""
    cold = (R.get("compile") or {}).get("cold") or {}
    models = cold.get("models") or {}
    if next(iter(models), None) != "seed":
        return None
    return cold.get("import_s", 0.0) + models["seed"]["first_step_overhead_s"]


def _wide_ops(A) -> dict:
    out = {}
    for label, by_dt in (A.get("ops") or {}).items():
        for dt, by_b in by_dt.items():
            for b, rows in by_b.items():
                for r in rows:
                    shp_in, shp_out = r.get("input_shape") or [0], r.get("output_shape") or [0]
                    if r["type"] not in ("Conv2D", "Dense") or min(shp_in[-1], shp_out[-1]) < 16:
                        continue
                    for d in ("fwd", "bwd"):
                        pct = (r["by_framework"].get(FW, {}).get(d) or {}).get("pct_peak")
                        if pct is not None:
                            out[f"{label} {dt} B={b} {r['op']} {d}"] = pct
    return out


def section(rows) -> list[str]:
    """The markdown goal table."""
    L = ["## Goal table (issue 12)\n",
         "Each goal with the worst measured case of this run (the cases below the target listed); ratios are "
         "TensorFlow's time over minicnn-numba's in the same run (> 1: faster). \"met (partial)\": every "
         "measured case meets it, but the run did not cover all the goal asks for (listed).\n",
         "| goal | target | worst measured | verdict | below target | not covered by this run |",
         "|---|---|---|---|---|---|"]
    for r in rows:
        worst = DASH if r["worst"] is None else f"{r['worst']:.2f}{r['unit']} ({r['worst_case']})"
        fail = ", ".join(r["failing"][:12]) + (f" (+{len(r['failing']) - 12} more)" if len(r["failing"]) > 12 else "")
        miss = ", ".join(r["missing"][:8]) + (f" (+{len(r['missing']) - 8} more)" if len(r["missing"]) > 8 else "")
        note = f" ({r['note']})" if r.get("note") else ""
        verdict = f"**{r['verdict']}**" if r["verdict"].startswith("not met") else r["verdict"]
        L.append(f"| {r['goal']}{note} | {r['target']} | {worst} | {verdict} | {fail or DASH} | {miss or DASH} |")
    return L + [""]
