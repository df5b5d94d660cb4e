"""Run ``minicnn crosscheck`` on every preset in float32 and float64 and write the table of
worst tensors into docs/parity.md (between the ``parity-table`` markers).

    MINICNN_DATA_DIR=/path/to/mnist python docs/make_parity_table.py            # all presets
    MINICNN_DATA_DIR=/path/to/mnist python docs/make_parity_table.py --preset seed --dtype float64

Each run is ``minicnn crosscheck --preset P --dtype D --json FILE`` (batch 32, 50 Adam steps, seed
0: the CLI's defaults), one subprocess per run so that nothing carries over between them. The
JSON reports are kept in docs/parity-runs/ (one per preset and dtype) so that every figure in the
table can be traced to the report it came from. A run that fails its checks is still tabulated,
with its status; the script's exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RUNS = os.path.join(HERE, "parity-runs")
PARITY = os.path.join(HERE, "parity.md")
START, END = "<!-- parity-table:start -->", "<!-- parity-table:end -->"
sys.path.insert(0, ROOT)  # run from a checkout without installing

from minicnn.presets import PRESETS  # noqa: E402

DTYPES = ("float32", "float64")
KINDS = ("out", "dX", "dW", "db")


def run(preset: str, dtype: str) -> dict:
    """One crosscheck subprocess; returns its JSON report (written to docs/parity-runs/)."""
    os.makedirs(RUNS, exist_ok=True)
    path = os.path.join(RUNS, f"{preset}-{dtype}.json")
    cmd = [sys.executable, "-m", "minicnn", "crosscheck", "--preset", preset, "--dtype", dtype,
           "--json", path]
    print("$", " ".join(cmd[1:]), flush=True)
    done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    result = [line for line in done.stdout.splitlines() if line.startswith("RESULT")]
    print("  ", result[-1] if result else done.stdout[-2000:], flush=True)
    if not os.path.exists(path):
        raise SystemExit(f"crosscheck --preset {preset} --dtype {dtype} wrote no report "
                         f"(exit status {done.returncode})")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _e(x) -> str:
    return "-" if x is None else ("0" if x == 0 else f"{x:.1e}")


def row(report: dict) -> str:
    head, summary, training = report["header"], report["summary"], report["training"]
    worst = summary["worst_layer_row"]
    by_kind = summary["max_rel_by_tensor"]
    stepwise = training.get("stepwise", {}).get("max_loss_rel_diff")
    weights = summary.get("max_weight_rel_diff")
    status = "pass" if summary["passed"] else "FAIL: " + ", ".join(summary["judged"]["failed"])
    cells = [head["model"], head["dtype"], f"{head['params']:,}",
             *(_e(by_kind.get(k)) for k in KINDS),
             f"{worst['layer']}/{worst['tensor']} {_e(worst['rel'])} (rtol {_e(worst['rtol'])})",
             _e(stepwise), _e(training.get("max_loss_rel_diff")), _e(weights),
             "judged" if training.get("weights_judged") else "info",
             f"{summary['judged']['passed']}/{summary['judged']['total']} {status}"]
    return "| " + " | ".join(cells) + " |"


def table(reports: list[dict]) -> str:
    head = reports[0]["header"]
    v = head["versions"]
    lines = [
        f"Measured by `python docs/make_parity_table.py` (minicnn {v['minicnn']}, numpy {v['numpy']}, "
        f"numba {v['numba']}, TensorFlow {v['tensorflow']}, Keras {v['keras']}; backend "
        f"{head['backend']}, {head['threads']['numba']} numba threads, oneDNN "
        f"{head['onednn'].split(' ')[0]}; {head['data']}; 50 Adam steps). Columns: the largest "
        "`max|d|/max|ref|` over the layers for each tensor kind, the worst judged layer tensor "
        "against its tolerance, the largest relative loss difference step by step and "
        "free-running, and the largest relative weight difference after the free-running steps "
        "(judged in float64 only). Reports: `docs/parity-runs/`.",
        "",
        "| preset | dtype | params | out | dX | dW | db | worst layer tensor | loss step by step "
        "| loss free-running | weights after 50 steps | weights | judged checks |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|---|",
    ]
    lines += [row(r) for r in reports]
    return "\n".join(lines)


def write_table(text: str) -> None:
    with open(PARITY, encoding="utf-8") as f:
        doc = f.read()
    if START not in doc or END not in doc:
        raise SystemExit(f"{PARITY}: the markers {START} and {END} are missing")
    before, rest = doc.split(START, 1)
    after = rest.split(END, 1)[1]
    tmp = PARITY + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(before + START + "\n" + text + "\n" + END + after)
    os.replace(tmp, PARITY)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", action="append", choices=sorted(PRESETS), help="default: all")
    ap.add_argument("--dtype", action="append", choices=DTYPES, help="default: both")
    ap.add_argument("--no-run", action="store_true", help="only re-tabulate docs/parity-runs/")
    args = ap.parse_args(argv)
    presets = args.preset or list(PRESETS)
    dtypes = args.dtype or list(DTYPES)
    if not args.no_run:
        for p in presets:
            for d in dtypes:
                run(p, d)
    reports = []
    for p in PRESETS:  # the table always lists every report on disk, in the presets' order
        for d in DTYPES:
            path = os.path.join(RUNS, f"{p}-{d}.json")
            if os.path.exists(path):
                with open(path, encoding="utf-8") as f:
                    reports.append(json.load(f))
    write_table(table(reports))
    print(f"table of {len(reports)} runs written to {PARITY}")
    return 0 if all(r["summary"]["passed"] for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
