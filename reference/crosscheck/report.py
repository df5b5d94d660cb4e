"""The human-readable report (the JSON report is the report dict itself).

Every line that states a comparison says whether it is judged: layer rows carry their rtol and
"ok"/"FAIL"; training lines end in "ok (rtol ...)", "FAIL (rtol ...)" or "not judged"; the lines
of information (unpinned gradients, max-pool ties, Keras's loss path) say so.
"""

from __future__ import annotations

from .bisect import bisect_lines
from .compare import NOT_JUDGED, verdict_text
from .histogram import LABELS, compact
from .tolerances import DOC

INFO = "information, not judged"


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return "0" if v == 0 else f"{v:.2e}"
    return str(v)


def _shape(s):
    return "(" + ",".join(map(str, s or [])) + ")"


def _table(head, rows):
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows)]
    fmt = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return [fmt(head), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows]


def _ulps(r):
    """max|d| in ULPs of max|ref| (normwise; the elementwise maximum, which is large wherever a
    value is near 0, is in the JSON only)."""
    return "-" if r.get("ulps") is None else _fmt(float(r["ulps"])) if r["ulps"] >= 1e4 else f"{r['ulps']:.3g}"


def device_line(d) -> str:
    """'device: CPU (no GPU visible)' or 'device: GPU ...; TF32 off, op determinism on', with the
    state TensorFlow reports when it differs from what was asked."""
    if not d:
        return "device: -"
    text = d["text"]
    if d["kind"] == "GPU" and (d.get("tf32") or d.get("op_determinism") is False):
        text += f" (TensorFlow reports TF32 {d.get('tf32')}, op determinism {d.get('op_determinism')})"
    return text


def _header_lines(h):
    t = h["threads"]
    lines = [
        (f"minicnn crosscheck: model '{h['model']}' ({h['params']:,} params), {h['dtype']}, "
         f"batch {h['batch']} ({h['data']})"),
        "versions: " + ", ".join(f"{k} {val}" for k, val in h["versions"].items()),
        f"minicnn backend: {h['backend']}" + (f" ({t['numba']} numba threads)" if t["numba"] else "")
        + f" | TensorFlow: {', '.join(h['tf_devices'])}, intra-op {t['tf_intra_op']} / inter-op "
        f"{t['tf_inter_op']} threads, oneDNN {h['onednn']}, TF32 {'on' if h['tf32'] else 'off'}",
        (f"seed {h['seed']}; {h['upstream_gradient']}; dropout in inference mode; gradients compared at "
         "minicnn's activations"),
        f"rule: {h['rule']}; tolerances and their reasons: {DOC}, \"Tolerances\"",
        device_line(h.get("device")),
    ]
    if "reduction_rule" in h:
        lines.append(f"tolerance of long reductions: {h['reduction_rule']}")
    if "keras_floatx" in h:
        lines.append(f"optimizer hyperparameters: {h['hyperparameter_rule']}")
    if "maxpool_ties" in h:
        m = h["maxpool_ties"]
        lines.append(f"max-pool windows with tied maxima: {m['exact_ties']:,} of {m['windows']:,} ({m['share']:.1%}) "
                     f"exact, {m['near_ties']:,} within rounding (gap <= out rtol x max|input|) ({INFO})")
    return lines


#: the compact histogram's heading: what each column of the line is
HISTOGRAM_HEAD = ("elementwise relative error |d|/max(|ref|, tiny) by decade, one column per bin: exact, <=1e-17, "
                  "1e-16 ... 1e-1, 1, >1 (' ' none, then .:-=+*#@ by log of the count; counts in the JSON, "
                  "rel_histogram; tables with --histograms):")


def histogram_lines(rows, indent="  ") -> list[str]:
    """One compact line per row: its name, the sparkline and the bins of the median and max."""
    rows = [r for r in rows if r.get("rel_histogram")]
    if not rows:
        return []
    names = [f"{r['layer']}/{r['tensor']}" for r in rows]
    w = max(map(len, names))
    return [indent + HISTOGRAM_HEAD] + [f"{indent}  {n.ljust(w)}  {compact(r['rel_histogram'])}"
                                        for n, r in zip(names, rows)]


def histogram_tables(rows, title) -> list[str]:
    """The full counts, one row per tensor and one column per bin (``--histograms``)."""
    rows = [r for r in rows if r.get("rel_histogram")]
    if not rows:
        return []
    head = ("tensor",) + LABELS + ("NaN/Inf",)
    body = [(f"{r['layer']}/{r['tensor']}", *r["rel_histogram"]["counts"], r["rel_histogram"]["nonfinite"])
            for r in rows]
    return ["", f"{title}: elementwise relative errors per decade (counts)"] + _table(head, body)


def _layer_lines(report):
    head = ("layer", "tensor", "shape", "max|d|", "mean|d|", "max|d|/max|ref|", "ulps", "argmax", "rtol", "status")
    rows = [(r["layer"], r["tensor"], _shape(r["shape"]), _fmt(r["max_abs"]), _fmt(r["mean_abs"]), _fmt(r["rel"]),
             _ulps(r), _shape(r["argmax"]), _fmt(r["rtol"]),
             r["status"] + (f" ({r['failure']})" if r.get("failure") in ("NaN", "Inf", "shape") else ""))
            for r in report["layers"]]
    lines = _table(head, rows)
    lines += [f"  {r['layer']}/{r['tensor']}: {r['note']}" for r in report["layers"]
              if r.get("failure") in ("NaN", "Inf")]
    longer = [f"{r['layer']}/{r['tensor']} {_fmt(r['rtol'])} (n {r['reduction_terms']:,})" for r in report["layers"]
              if r.get("rtol_table") is not None and r["rtol"] > r["rtol_table"]]
    if longer:
        lines.append("gradient tolerances raised for the length of their reduction: " + ", ".join(longer))
    raised = [f"{r['layer']} {_fmt(r['rtol'])}" for r in report["layers"] if r.get("rtol_floor", 0.0) > r["rtol"] * 0.999
              and r.get("rtol_floor", 0.0) > 0]
    if raised:
        lines.append("output tolerances raised to the layer's own error floor (Layer.output_rtol_floor; "
                     f"BatchNormalization: kappa u N*H*W / 16, its batch statistics): {', '.join(raised)}")
    lines += histogram_lines(report["layers"], indent="")
    e = report.get("end_to_end")
    if e:
        lines.append(f"without pinning (one TF tape, each side at its own activations): output "
                     f"{_fmt(e['output_rel'])}, input gradient {_fmt(e['input_grad_rel'])}, weight gradients "
                     f"{_fmt(e['max_weight_grad_rel'])} of max|ref| ({INFO})")
    s = report["summary"]
    w = s["worst_layer_row"]
    failed = [r for r in report["layers"] if not r["passed"]]
    lines += ["", f"layers: {s['layer_rows_passed']}/{s['layer_rows']} tensors within tolerance (judged); worst "
              f"{w['layer']}/{w['tensor']} at {_fmt(w['rel'])} of max|ref| (rtol {_fmt(w['rtol'])}); max by kind: "
              + ", ".join(f"{t} {_fmt(val)}" for t, val in s["max_rel_by_tensor"].items())]
    if failed:
        lines.append("  FAILED: " + ", ".join(f"{r['layer']}/{r['tensor']} ({_fmt(r['rel'])} > rtol {_fmt(r['rtol'])})"
                                             for r in failed))
    return lines


def _step_lines(tr):
    """The first, second, middle and last steps' losses, each with its verdict."""
    rtol, judged_stepwise = tr["loss_rtol"], "stepwise" in tr
    lines = []
    for k in sorted({0, 1, tr["steps"] // 2, tr["steps"] - 1}):
        if not 0 <= k < tr["steps"]:
            continue
        mine, free, free_d = tr["loss_minicnn"][k], tr["loss_keras"][k], tr["loss_rel_diff"][k]
        if judged_stepwise:
            sw = tr["stepwise"]
            d = sw["loss_rel_diff"][k]
            lines.append(f"  step {k + 1:>3}: loss minicnn {mine:.12g}  keras step by step {sw['loss_keras'][k]:.12g}  "
                         f"rel diff {_fmt(d)} {'ok' if d <= rtol else 'FAIL'} (rtol {_fmt(rtol)}) | free-running "
                         f"keras {free:.12g}  rel diff {_fmt(free_d)} {NOT_JUDGED}")
        else:
            lines.append(f"  step {k + 1:>3}: loss minicnn {mine:.12g}  keras {free:.12g}  rel diff {_fmt(free_d)} "
                         f"{'ok' if free_d <= rtol else 'FAIL'} (rtol {_fmt(rtol)})")
    return lines


def _not_judged(check):
    """'not judged (why)'."""
    return f"{NOT_JUDGED} ({check['reason']})" if check.get("reason") else NOT_JUDGED


def _check_lines(tr):
    """One line per training check, each ending in its verdict. The free-running weights line
    is the heading of the weights table (:func:`_weights_lines`)."""
    lines = []
    for c in tr["checks"]:
        name, v = c["check"], _fmt(c["value"])
        if name == "free-running weights":
            continue
        if name == "step-by-step loss":
            text = (f"step by step (Keras given minicnn's weights and optimizer state before every step): max "
                    f"relative loss difference {v}")
        elif name == "free-running loss":
            text = f"free-running: max relative loss difference over {tr['steps']} steps {v}"
        elif name == "step-by-step weights":
            text = f"step by step, weights after each step: max {v} of max|ref|"
        else:
            text = f"{name}: {v}"
        line = f"  {text}: {verdict_text(c) if c['judged'] else _not_judged(c)}"
        if name == "free-running loss" and "float64_context" in tr:
            fc = tr["float64_context"]
            line += (f"; for scale, Keras float32 vs Keras float64 from the same start: loss "
                     f"{_fmt(fc['keras32_vs_keras64_loss'])}, weights {_fmt(fc['keras32_vs_keras64_weights'])}")
        lines.append(line)
    return lines


def _weights_lines(tr):
    """The weights after K free-running steps: a heading with the verdict, then one row each."""
    rows = tr["weights"]
    if not rows:
        return []
    if tr["weights_judged"]:
        rtols = sorted({r["rtol"] for r in rows})
        heading = f"judged at rtol {', '.join(map(_fmt, rtols))}"
    else:
        heading = _not_judged(next(c for c in tr["checks"] if c["check"] == "free-running weights"))
    head = ("layer", "weight", "shape", "max|d|", "mean|d|", "max|d|/max|ref|", "rtol", "status")
    table = _table(head, [(r["layer"], r["tensor"], _shape(r["shape"]), _fmt(r["max_abs"]), _fmt(r["mean_abs"]),
                           _fmt(r["rel"]), _fmt(r["rtol"]), r["status"]) for r in rows])
    return ([f"  weights after {tr['steps']} free-running steps, {heading}:"] + ["  " + ln for ln in table]
            + histogram_lines(rows, indent="  "))


def _training_lines(tr):
    judged = "step by step" if tr["judged"] == "stepwise" else "free-running"
    lines = ["", (f"training: {tr['steps']} steps of {tr['optimizer_config']}, batch {tr['batch']}, "
                  f"{tr['distinct_batches']} distinct batches, dropout off in both; Keras (floatx "
                  f"{tr.get('keras_floatx', '-')}): compile + train_on_batch (graph mode, no XLA); judged {judged}")]
    lines += _step_lines(tr)
    lines += _check_lines(tr)
    lp = tr.get("loss_path")
    if lp:
        lines.append(f"  Keras loss on a softmax output: {lp['keras_used']} (probe with last layer x{lp['scale']:g}: "
                     f"Keras {lp['keras_loss']:.6g}, fused {lp['fused_from_logits']:.6g}, clipped "
                     f"{lp['clipped_probabilities']:.6g}); minicnn: {lp['minicnn_uses']} ({INFO})")
    lines += _weights_lines(tr)
    lines.append(f"  time: minicnn {tr['seconds']['minicnn']:.1f} s, keras {tr['seconds']['keras']:.1f} s")
    return lines


def format_report(report: dict, histograms: bool = False) -> str:
    """Header, one row per (layer, tensor), training, the bisection when run, and the RESULT
    line; ``histograms`` adds the full per-decade counts of every tensor."""
    lines = _header_lines(report["header"]) + [""] + _layer_lines(report)
    if report.get("training"):
        lines += _training_lines(report["training"])
    if report.get("bisect"):
        lines += bisect_lines(report["bisect"])
    if histograms:
        lines += histogram_tables(report["layers"], "layers")
        if report.get("training"):
            lines += histogram_tables(report["training"]["weights"], f"weights after {report['training']['steps']} steps")
    s = report["summary"]
    j = s["judged"]
    lines.append("")
    if j["failed"]:
        lines.append("failed: " + ", ".join(j["failed"]))
    ff = s.get("first_failure")
    if ff:
        what = f"{ff['layer']}/{ff['tensor']}" if ff.get("layer") else ff["check"]
        detail = (f"{ff['failure']} mismatch: {ff['note']}" if ff["failure"] in ("NaN", "Inf")
                  else f"{_fmt(ff.get('rel'))} of max|ref|, {_fmt(ff.get('ulps'))} ulps" if ff.get("layer") else "")
        lines.append(f"first failure: {what}" + (f" ({detail})" if detail else "") + f"; chosen as {ff['rule']}")
    lines.append(f"RESULT: {'PASS' if s['passed'] else 'FAIL'} ({report['seconds']:.1f} s): {j['passed']}/{j['total']} "
                 f"judged checks within tolerance; not judged (information): {'; '.join(s['not_judged'])}")
    return "\n".join(lines)
