"""Run ``minicnn crosscheck --frameworks tensorflow,jax,torch`` on a few presets and write the
"Three frameworks" table into docs/parity.md (between the ``frameworks-table`` markers).

    MINICNN_DATA_DIR=/path/to/mnist python docs/make_frameworks_table.py              # seed, pooled, mobile; float32
    MINICNN_DATA_DIR=/path/to/mnist python docs/make_frameworks_table.py --dtype float64 --preset seed
    python docs/make_frameworks_table.py --table-only                                  # redo the table from the JSON

Each run is ``minicnn crosscheck --preset P --dtype D --frameworks tensorflow,jax,torch --steps
STEPS --json docs/parity-runs/frameworks-P-D.json`` (batch 32, Adam, seed 0), one subprocess per
run; its text report goes to the ``.txt`` beside the JSON. The table gives, per layer kind, each
side's largest distance from the float64 reference over every run of that dtype, with the run it
came from. A run whose check finds a side outside tolerance is still tabulated (its JSON says
which rows); the script's exit status is then 1.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RUNS = os.path.join(HERE, "parity-runs")
PARITY = os.path.join(HERE, "parity.md")
START, END = "<!-- frameworks-table:start -->", "<!-- frameworks-table:end -->"
PRESETS = ("seed", "pooled", "mobile")
SIDES = ("minicnn", "tensorflow", "jax", "torch")


def run(preset, dtype, steps) -> int:
    base = os.path.join(RUNS, f"frameworks-{preset}-{dtype}")
    cmd = [sys.executable, "-m", "minicnn", "crosscheck", "--preset", preset, "--dtype", dtype,
           "--frameworks", "tensorflow,jax,torch", "--steps", str(steps), "--json", base + ".json"]
    print(" ".join(cmd[1:]), flush=True)
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if not os.path.exists(base + ".json"):
        sys.stderr.write(r.stderr)
        raise SystemExit(f"{preset} {dtype}: no report written (exit {r.returncode})")
    with open(base + ".txt", "w") as f:
        f.write(r.stdout)
    return r.returncode


def table(dtype) -> str:
    """Markdown: per layer kind, each side's max distance from float64 over this dtype's runs."""
    worst: dict = {}
    for path in sorted(glob.glob(os.path.join(RUNS, f"frameworks-*-{dtype}.json"))):
        with open(path) as f:
            rep = json.load(f)
        for kind, vals in rep["summary"]["max_vs_float64_by_kind"].items():
            row = worst.setdefault(kind, {s: (0.0, "") for s in SIDES})
            for s in SIDES:
                if s in vals and vals[s] is not None and vals[s] >= row[s][0]:
                    row[s] = (vals[s], rep["header"]["model"])
    runs = sorted(os.path.basename(p) for p in glob.glob(os.path.join(RUNS, f"frameworks-*-{dtype}.json")))
    lines = [f"**{dtype}** (runs: {', '.join(runs)}); max|d| / max|ref| against the float64 reference, "
             "worst over the runs (the model it came from in brackets):", "",
             "| layer kind | " + " | ".join(SIDES) + " |", "|---" * (len(SIDES) + 1) + "|"]
    for kind, row in worst.items():
        lines.append(f"| {kind} | " + " | ".join(f"{v:.1e} ({m})" if v else "0" for v, m in (row[s] for s in SIDES)) + " |")
    return "\n".join(lines)


def write_table(dtypes) -> None:
    body = "\n\n".join(table(d) for d in dtypes if glob.glob(os.path.join(RUNS, f"frameworks-*-{d}.json")))
    with open(PARITY) as f:
        text = f.read()
    if START not in text or END not in text:
        raise SystemExit(f"{PARITY} has no {START} ... {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    with open(PARITY, "w") as f:
        f.write(head + START + "\n" + body + "\n" + END + tail)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", action="append", choices=("lenet5", "seed", "pooled", "cifar_cnn", "vgg_bn",
                                                         "allconv", "mobile"))
    ap.add_argument("--dtype", action="append", choices=("float32", "float64"))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args()
    status = 0
    if not args.table_only:
        for dtype in args.dtype or ["float32"]:
            for preset in args.preset or PRESETS:
                status |= run(preset, dtype, args.steps) != 0
    write_table(("float32", "float64"))
    return status


if __name__ == "__main__":
    sys.exit(main())
