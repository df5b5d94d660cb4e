"""The README's headline table, generated from a run's ``results.json``:

    python -m benchmarks.headline benchmarks/results/results.json            # print the markdown
    python -m benchmarks.headline benchmarks/results/results.json --update README.md

The table names the machine (CPU model, microarchitecture, cores, the vector ISA numba compiled
for, numpy's BLAS library and core type) and has one row per preset: minicnn-numba's train step
and inference against TensorFlow, batch-1 latency, and the run's goal verdicts below it.
``--update`` replaces the block between ``<!-- headline:start -->`` and ``<!-- headline:end -->``
in the file (appending one if there is none). When the CPU of the table already there differs
from this run's, that table is kept beside the new one, under "Previous machine" (only the most
recent previous machine is kept).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

START, END = "<!-- headline:start -->", "<!-- headline:end -->"
PREV = "<!-- headline:previous -->"
FW, TF = "minicnn-numba", "tensorflow"
DASH = "—"


def machine_line(R) -> str:
    """One line naming the machine: the line compared to decide "same machine"."""
    M = R.get("machine") or {}
    blas = M.get("blas") or {}
    cg = ((((R.get("frameworks") or {}).get(FW) or {}).get("info") or {}).get("threading") or {}).get("codegen") or {}
    return (f"CPU: {M.get('cpu_model') or 'unknown'} ({M.get('microarchitecture') or 'unknown'}), "
            f"{M.get('physical_cores')} cores; numba codegen {cg.get('vector_isa', 'unknown')}; BLAS "
            f"{blas.get('name')} {blas.get('version')}, core {blas.get('core_type')}")


def _cpu_of(line: str) -> str:
    m = re.search(r"CPU: (.*?)(?:;|$)", line)
    return m.group(1).strip() if m else line.strip()


def _x(v) -> str:
    return DASH if v is None or v != v else f"{v:.2f}x"


def _cell(e, unit_ms=True) -> str:
    if not e:
        return DASH
    return f"{e['img_s']:,.0f} img/s ({_x(e.get('vs_tf'))})"


def table(R) -> str:
    """The headline markdown for results ``R`` (with ``R["derived"]``)."""
    A = R.get("derived") or {}
    meta = R.get("meta") or {}
    L = [f"**{machine_line(R)}.** Run {meta.get('started')} ({'quick' if meta.get('quick') else 'full'}): "
         f"`{meta.get('command')}`; ratios = TensorFlow's time / minicnn-numba's in the same run.\n",
         "| preset | dtype | train step, batch | minicnn-numba train (vs TF) | inference, batch | "
         "minicnn-numba inference (vs TF) | batch-1 predict ms (vs TF) |", "|---|---|---|---|---|---|---|"]
    for label, by_dt in (R.get("models") or {}).items():
        for dt in by_dt:
            steps = (A.get("steps") or {}).get(label, {}).get(dt, {})
            infer = (A.get("infer") or {}).get(label, {}).get(dt, {})
            lat = ((A.get("latency") or {}).get(label, {}).get(dt) or {}).get(FW)
            sb = "100" if "100" in steps else (sorted(steps, key=int) or [None])[-1]
            ib = "1000" if "1000" in infer else (sorted(infer, key=int) or [None])[-1]
            s, i = (steps.get(sb) or {}).get(FW), (infer.get(ib) or {}).get(FW)
            if not (s or i or lat):
                continue
            lcell = f"{lat['median_ms']:.2f} ({_x(lat.get('vs_tf'))})" if lat else DASH
            L.append(f"| {label} | {dt} | {sb or DASH} | {_cell(s)} | {ib or DASH} | {_cell(i)} | {lcell} |")
    goals = A.get("goals") or []
    if goals:
        L += ["", "Goals of issue 12 in this run (`results.md` has the cases below target):", ""]
        L += [f"- {g['goal']} {g['target']}: **{g['verdict']}**"
              + (f" (worst {g['worst']:.2f}{g['unit']}, {g['worst_case']})" if g.get("worst") is not None else "")
              for g in goals]
    return "\n".join(L) + "\n"


def update(text: str, new_table: str, new_machine: str) -> str:
    """``text`` with its headline block replaced by ``new_table``; the old table is kept as the
    previous machine's when its CPU differs (and dropped when it is the same CPU)."""
    block = f"{START}\n<!-- machine: {new_machine} -->\n{new_table}"
    if START not in text or END not in text:
        return text.rstrip("\n") + "\n\n" + block + END + "\n"
    head, rest = text.split(START, 1)
    old, tail = rest.split(END, 1)
    old_current = old.split(PREV, 1)[0]
    old_prev = old.split(PREV, 1)[1] if PREV in old else ""
    m = re.search(r"<!-- machine: (.*?) -->", old_current)
    if m and _cpu_of(m.group(1)) != _cpu_of(new_machine):
        body = old_current.replace(m.group(0), "").strip()
        block += f"\n{PREV}\n\nPrevious machine:\n\n{body}\n"
    elif old_prev.strip():
        block += f"\n{PREV}{old_prev.rstrip()}\n"
    return head + block + END + tail


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.headline", description=__doc__.split("\n\n")[0])
    ap.add_argument("results", help="a results.json written by python -m benchmarks.run")
    ap.add_argument("--update", metavar="FILE", help="replace the headline block in FILE (e.g. README.md)")
    a = ap.parse_args(argv)
    try:
        R = json.loads(Path(a.results).read_text())
    except (OSError, ValueError) as exc:
        print(f"benchmarks.headline: cannot read {a.results}: {exc}", file=sys.stderr)
        return 2
    if "derived" not in R:
        print(f"benchmarks.headline: {a.results} has no 'derived' section: not a benchmarks.run results.json",
              file=sys.stderr)
        return 2
    md = table(R)
    if sum(line.startswith("| ") for line in md.splitlines()) <= 1:  # the header row only
        print(f"benchmarks.headline: {a.results} has no minicnn-numba train-step, inference or latency figures "
              "(a results.json of an older format, or a run that skipped them)", file=sys.stderr)
        return 2
    if a.update:
        p = Path(a.update)
        new = update(p.read_text(), md, machine_line(R))
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(new)
        tmp.replace(p)  # whole file or nothing
    else:
        sys.stdout.write(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
