"""Derived numbers: GFLOP/s, % of the measured FMA peak, ratios to TensorFlow, images/s.

FLOPs come from the model (``models.describe``), the peak from ``peak.fma_probe`` (all cores,
per dtype: the best of the run's probes; if other processes visibly held a core during it, cores x
the one-core figure). A "% of peak" above 100 means the probe under-measured the machine; such
cases are listed in ``peak_violations`` and the report says so.
"""

from __future__ import annotations

import math

from .ops import LOSS_OP
from .peak import plausibility
from .timing import ratio
from .traffic import step_bytes

#: every framework the report knows, in table order
FRAMEWORKS = ("minicnn-numba", "minicnn-numba-pool", "minicnn-numba-gemm", "minicnn-numba-malloc", "minicnn-numpy",
              "tensorflow", "pytorch")
REFERENCE = "tensorflow"


def peaks(R) -> dict:
    """{dtype: {"all_cores": GFLOP/s, "per_core": GFLOP/s, "blas": GFLOP/s}} from every probe."""
    out = {}
    for key in ("peak", "peak_recheck"):
        for dt, f in (R.get(key) or {}).get("fma", {}).items():
            e = out.setdefault(dt, {"all_cores": 0.0, "per_core": 0.0, "blas": None})
            e["all_cores"] = max(e["all_cores"], f.get("all_cores_gflops") or 0.0)
            e["per_core"] = max(e["per_core"], f.get("per_core_gflops") or 0.0)
    for dt, b in (R.get("peak") or {}).get("blas", {}).items():
        out.setdefault(dt, {"all_cores": 0.0, "per_core": 0.0})["blas"] = b.get("gflops")
    ghz = ((R.get("peak") or {}).get("clock") or {}).get("ghz")
    for dt, e in out.items():
        f = ((R.get("peak") or R.get("peak_recheck") or {}).get("fma") or {}).get(dt, {})
        # threads on SMT siblings share one core's FMA units: count physical cores
        cores = min(f.get("threads", 1), (R.get("machine") or {}).get("physical_cores") or f.get("threads", 1))
        e["plausibility"] = pl = plausibility(e["per_core"], f.get("lanes", 0), ghz, cores, e["all_cores"])
        # the denominator of "% of peak": the all-cores probe, unless other processes held a core
        # during it; then cores x one core (an upper bound: no core runs faster than one alone)
        if pl["disturbed"]:
            e["denominator"], e["denominator_source"] = e["per_core"] * cores, "cores x one core"
        else:
            e["denominator"], e["denominator_source"] = e["all_cores"], "all cores"
    return out


def _gf(flops, t):
    if not flops or not t or not t.get("median_ms"):
        return None
    return flops / t["median_ms"] / 1e6


def _pct(gf, peak):
    return 100.0 * gf / peak if gf and peak else None


def _traffic(desc, batch, t, what) -> dict:
    """The analytic bytes of the step or inference batch (``traffic.py``) and the bandwidth the
    measured time implies (a lower bound: the model is compulsory traffic)."""
    tr = desc.get("traffic")
    if not tr or not t.get("median_ms"):
        return {}
    b = step_bytes(tr, batch, desc["itemsize"], what)
    return {"model_mb": b / 1e6, "model_gb_s": b / t["median_ms"] / 1e6}


#: per framework, the batch-1 call its latency is quoted for (minicnn: what a user calls)
LATENCY_CALL = {"minicnn-numba": "predict", "minicnn-numba-pool": "predict", "minicnn-numpy": "predict",
                "pytorch": "no_grad"}
#: TensorFlow's calls the goal compares with: the faster of the two
TF_LATENCY_CALLS = ("model_call", "predict_on_batch")


def latency(R) -> dict:
    """{label: {dtype: {framework: {"call", "median_ms", "p95_ms", "vs_tf"}}}}: batch-1 latency;
    vs_tf = the faster of TF's ``model(x)`` and ``predict_on_batch`` over this framework's call."""
    out = {}
    for fw in FRAMEWORKS:
        for label, by_dt in _fw_models(R, fw).items():
            for dtype, node in by_dt.items():
                lat = node.get("latency") or {}
                if "error" in lat or not lat:
                    continue
                tf = ((_fw_models(R, REFERENCE).get(label) or {}).get(dtype) or {}).get("latency") or {}
                ref = [tf[c]["median_ms"] for c in TF_LATENCY_CALLS if (tf.get(c) or {}).get("median_ms")]
                call = LATENCY_CALL.get(fw, "predict_on_batch" if fw == REFERENCE else None)
                t = lat.get(call) or {}
                if not t.get("median_ms"):
                    continue
                out.setdefault(label, {}).setdefault(dtype, {})[fw] = {
                    "call": call, "median_ms": t["median_ms"], "p95_ms": t.get("p95_ms"),
                    "vs_tf": min(ref) / t["median_ms"] if ref and fw != REFERENCE else None}
    return out


def _fw_models(R, fw):
    return ((R.get("frameworks") or {}).get(fw) or {}).get("models") or {}


def analyse(R) -> dict:
    P = peaks(R)
    A = {"peaks": P, "ops": {}, "steps": {}, "infer": {}, "latency": latency(R), "peak_violations": []}
    fws = [fw for fw in FRAMEWORKS if _fw_models(R, fw)]

    def timing(fw, label, dtype, *path):
        node = _fw_models(R, fw).get(label, {}).get(dtype, {})
        for p in path:
            node = node.get(p) if isinstance(node, dict) else None
            if node is None:
                return None
        return node

    def check(kind, where, fw, pct):
        if pct is not None and pct > 100.0:
            A["peak_violations"].append({"what": kind, "where": where, "framework": fw, "pct_peak": pct})

    for label, by_dtype in (R.get("models") or {}).items():
        for dtype, desc in by_dtype.items():
            peak = P.get(dtype, {}).get("denominator")
            batches = sorted({b for fw in fws for b in (timing(fw, label, dtype, "batches") or {})}, key=int)
            for b in batches:
                n = int(b)
                rows = []
                for layer in desc["layers"] + [{"name": LOSS_OP, "type": "loss", "flops_fwd": 0,
                                                 "flops_bwd_in_step": 0}]:
                    row = {"op": layer["name"], "type": layer["type"],
                           "input_shape": layer.get("input_shape"), "output_shape": layer.get("output_shape"),
                           "flops": {"fwd": n * layer["flops_fwd"], "bwd": n * layer["flops_bwd_in_step"]},
                           "by_framework": {}}
                    for fw in fws:
                        t = timing(fw, label, dtype, "batches", b, "ops", layer["name"])
                        if not t:
                            continue
                        e = {}
                        for d in ("fwd", "bwd"):
                            gf = _gf(row["flops"][d], t.get(d))
                            ref = timing(REFERENCE, label, dtype, "batches", b, "ops", layer["name"], d)
                            e[d] = {"gflops": gf, "pct_peak": _pct(gf, peak),
                                    "vs_tf": ratio(t.get(d), ref) if ref and t.get(d) else None}
                            check("op", f"{label} {dtype} B={b} {layer['name']} {d}", fw, e[d]["pct_peak"])
                        row["by_framework"][fw] = e
                    rows.append(row)
                A["ops"].setdefault(label, {}).setdefault(dtype, {})[b] = rows
                for fw in fws:
                    t = timing(fw, label, dtype, "batches", b, "train_step")
                    if not t or "median_ms" not in t:
                        continue
                    ref = timing(REFERENCE, label, dtype, "batches", b, "train_step")
                    gf = _gf(n * desc["train_flops_per_sample"], t)
                    e = {"img_s": n / t["median_ms"] * 1e3, "gflops": gf, "pct_peak": _pct(gf, peak),
                         "vs_tf": ratio(t, ref) if ref else None, **_traffic(desc, n, t, "step"),
                         "epoch_s_extrapolated": t["median_ms"] * math.ceil(R["meta"].get("train_samples", 60000) / n)
                         / 1e3}
                    check("train step", f"{label} {dtype} B={b}", fw, e["pct_peak"])
                    A["steps"].setdefault(label, {}).setdefault(dtype, {}).setdefault(b, {})[fw] = e
            ibatches = sorted({b for fw in fws for b in (timing(fw, label, dtype, "infer") or {})}, key=int)
            for b in ibatches:
                for fw in fws:
                    t = timing(fw, label, dtype, "infer", b)
                    if not t or "median_ms" not in t:
                        continue
                    ref = timing(REFERENCE, label, dtype, "infer", b)
                    gf = _gf(int(b) * desc["infer_flops_per_sample"], t)
                    e = {"img_s": int(b) / t["median_ms"] * 1e3, "gflops": gf, "pct_peak": _pct(gf, peak),
                         "vs_tf": ratio(t, ref) if ref else None, **_traffic(desc, int(b), t, "infer")}
                    check("inference", f"{label} {dtype} B={b}", fw, e["pct_peak"])
                    A["infer"].setdefault(label, {}).setdefault(dtype, {}).setdefault(b, {})[fw] = e
    return A
