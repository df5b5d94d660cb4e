"""OpenBLAS's packing buffers on huge pages or not: the same measurements in fresh processes with
minicnn's advice on (default) and off (``MINICNN_BLAS_HUGEPAGES=0``), interleaved, as ratios.

``python -m benchmarks.blas_buffers [--preset seed] [--batch 100] [--dtype float32] [--rounds 5]
[--steps 15] [--json PATH]``: each round starts one process per setting (in turn, the order
alternating between rounds), which times

* ``sgemm 1 thread``: numpy's ``x @ w`` at the preset's first Dense layer (OpenBLAS switched to
  one thread, as minicnn's kernels call it), the case where a buffer's 4 KiB pages cost most;
* ``dense fwd``: ``numba_backend.dense_forward`` on the same shapes (its GEMM slices fanned out
  over numba's threads);
* ``train step``: ``train_on_batch`` of the preset (two warm-up steps; compile excluded, the numba
  cache is shared by the rounds).

Each process prints its medians; per round, off / on (> 1: the advice made it faster); at the end
the median and range of the rounds' ratios, the machine (CPU, BLAS core, THP mode) and what the
advice did. A process started with THP ``always`` or ``never`` measures nothing different: the
script says so.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = r"""
import json, statistics, sys, time
import numpy as np
import minicnn
from minicnn.kernels import numba_backend as nb
from minicnn.kernels.numba import blas
from benchmarks.models import preset_step_case
preset, dtype, batch, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
minicnn.use_backend("numba")
model, x, y = preset_step_case(preset, dtype, batch)
rng = np.random.default_rng(2)  # the dense layer's input (the step's batch came from seed 1)

def median_s(fn, n):
    fn(); fn()
    out = []
    for _ in range(n):
        t = time.perf_counter(); fn(); out.append(time.perf_counter() - t)
    return statistics.median(out)

res = {"huge_pages": blas.openblas.huge_pages, "thp": blas.thp_mode()}
dense = next(l for l in model.layers if type(l).__name__ == "Dense")
k, units = dense.params["kernel"].shape
a = rng.random((batch, k)).astype(dtype)
w = np.ascontiguousarray(dense.params["kernel"], dtype=dtype)
with blas.openblas:
    res["sgemm 1 thread"] = median_s(lambda: a @ w, 4 * steps)
res["dense fwd"] = median_s(lambda: nb.dense_forward(a, w, None), 4 * steps)
res["train step"] = median_s(lambda: model.train_on_batch(x, y), steps)
res["dense shape"] = [batch, int(k), int(units)]
print(json.dumps(res))
"""

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {"on": {}, "off": {"MINICNN_BLAS_HUGEPAGES": "0"}}
MEASURES = ("sgemm 1 thread", "dense fwd", "train step")


def run_one(setting: str, a, cache: str) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache, **SETTINGS[setting])
    if setting == "on":
        env.pop("MINICNN_BLAS_HUGEPAGES", None)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    p = subprocess.run([sys.executable, "-c", _CHILD, a.preset, a.dtype, str(a.batch), str(a.steps)],
                       cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if p.returncode != 0:
        raise RuntimeError(f"{setting}: child failed\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="seed")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None, help="also write the rounds and the summary here")
    a = ap.parse_args(argv)
    from benchmarks.machine import blas_info, machine_info

    mach, blas = machine_info(), blas_info()
    print(f"CPU {mach.get('cpu_model')} ({mach.get('microarchitecture')}); BLAS core {blas.get('core_type')}; "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}")
    rounds = []
    with tempfile.TemporaryDirectory(prefix="minicnn-blas-buffers-cache-") as cache:
        run_one("on", a, cache)  # compiles into the shared cache; not counted
        for r in range(a.rounds):
            order = ("on", "off") if r % 2 == 0 else ("off", "on")
            got = {s: run_one(s, a, cache) for s in order}
            rounds.append(got)
            print(f"round {r + 1}: " + "; ".join(
                f"{m} on {got['on'][m] * 1e3:.2f} / off {got['off'][m] * 1e3:.2f} ms = {got['off'][m] / got['on'][m]:.2f}x"
                for m in MEASURES), flush=True)
    first = rounds[0]["on"]
    print(f"THP mode {first['thp']}; advice: {first['huge_pages']}; off: {rounds[0]['off']['huge_pages']}")
    summary = {}
    for m in MEASURES:
        rs = [g["off"][m] / g["on"][m] for g in rounds]
        summary[m] = {"median_ratio_off_over_on": statistics.median(rs), "min": min(rs), "max": max(rs),
                      "on_ms": statistics.median(g["on"][m] * 1e3 for g in rounds),
                      "off_ms": statistics.median(g["off"][m] * 1e3 for g in rounds)}
        print(f"{a.preset} {a.dtype} batch {a.batch} {m} (dense {first['dense shape']}): off/on median "
              f"{summary[m]['median_ratio_off_over_on']:.2f}x (range {min(rs):.2f}-{max(rs):.2f}, {len(rs)} rounds)")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"args": vars(a) | {"json": str(a.json)}, "machine": mach, "blas": blas,
                                      "rounds": rounds, "summary": summary}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
