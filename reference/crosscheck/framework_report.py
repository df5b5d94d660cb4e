"""The text of the three-framework report (:func:`reference.crosscheck.frameworks.frameworks_check`)."""

from __future__ import annotations


def _e(v) -> str:
    return "-" if v is None else f"{v:.1e}"


def format_frameworks_report(report) -> str:
    h = report["header"]
    sides = list(report["layers"][0]["vs_float64"]) if report["layers"] else []
    fws = [s for s in sides if s != "minicnn"]
    lines = [f"minicnn crosscheck --frameworks {','.join(fws)}: model '{h['model']}' ({h['params']:,} parameters), "
             f"{h['dtype']}, batch {h['batch']}, {h['data']}",
             f"reference: {h['reference']}; minicnn backend {h['minicnn_backend']}",
             f"upstream gradient: {h['upstream_gradient']}"]
    for n, meta in h["frameworks"].items():
        ver = meta.get(n, "")
        lines.append(f"  {n:<10} Keras {meta['keras']} {n} {ver} on {meta['device']}"
                     + (f" (x64 {meta['x64']})" if "x64" in meta else "")
                     + (f" (CUDA build {meta['cuda_build']})" if "cuda_build" in meta else "")
                     + f", {meta['seconds']:.1f} s")
    lines.append("")
    lines.append("distance from float64 exact arithmetic, max|d| / max|ref| per (layer, tensor); "
                 "'vs minicnn' = each framework against minicnn; * = outside the row's tolerance")
    head = f"{'layer':<26}{'tensor':<8}" + "".join(f"{s:>12}" for s in sides) + "".join(
        f"{'vs mc ' + s[:5]:>13}" for s in fws) + f"{'rtol':>9}  closest"
    lines += [head, "-" * len(head)]
    for r in report["layers"]:
        cells = "".join(f"{_e(r['vs_float64'][s]) + ('*' if s in r['outliers'] else ' '):>12}" for s in sides)
        cells += "".join(f"{_e(r['vs_minicnn'][s]):>13}" for s in fws)
        lines.append(f"{r['layer'][:25]:<26}{r['tensor']:<8}{cells}{_e(r['rtol']):>9}  {r['closest']}")
    s = report["summary"]
    lines += ["", "max distance from float64 by layer kind:",
              f"{'kind':<20}" + "".join(f"{n:>12}" for n in sides)]
    for kind, vals in s["max_vs_float64_by_kind"].items():
        lines.append(f"{kind:<20}" + "".join(f"{_e(vals.get(n)):>12}" for n in sides))
    lines.append("closest to float64 (rows): " + ", ".join(f"{n} {c}" for n, c in s["closest_count"].items()))
    tr = report.get("training")
    if tr:
        lines += ["", f"training: {tr['steps']} steps of {tr['optimizer']}, batch {tr['batch']}, same start and batches; "
                      "loss per step (float64 reference first)",
                  f"{'step':<6}{'float64':>14}" + "".join(f"{n:>14}" for n in tr["losses"])]
        k = len(tr["loss_float64"])
        for i in sorted(set([0, 1, 2, k // 2, k - 1]) & set(range(k))):
            lines.append(f"{i + 1:<6}{tr['loss_float64'][i]:>14.8f}" + "".join(f"{v[i]:>14.8f}" for v in tr["losses"].values()))
        for label, key in (("step-1 loss vs float64", "step1_loss_vs_float64"), ("max loss vs float64", "max_loss_vs_float64"),
                           ("final weights vs float64", "final_weights_vs_float64"),
                           ("final weights vs minicnn", "final_weights_vs_minicnn")):
            lines.append(f"{label:<26}" + "  ".join(f"{n} {_e(v)}" for n, v in tr[key].items()))
    bad = {n: v for n, v in s["outliers"].items() if v}
    lines.append("")
    lines.append("RESULT: every side within tolerance of float64" if not bad else
                 "RESULT: outside tolerance of float64: " + "; ".join(f"{n}: {', '.join(v[:6])}"
                                                                     + (" ..." if len(v) > 6 else "") for n, v in bad.items()))
    lines.append(f"({report['seconds']:.1f} s)")
    return "\n".join(lines)
