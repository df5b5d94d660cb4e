"""Steady-state train step of two (or more) checkouts, A/B interleaved, as ratios.

``python -m benchmarks.ab_step --trees A,B [--preset seed] [--dtype float32] [--batch 100]
[--steps 20] [--rounds 3]`` runs, ``rounds`` times, one process per checkout in turn (each
importing that checkout's minicnn, on a numba cache directory of its own kept over the rounds,
so only the first round compiles), each timing ``steps`` calls of ``train_on_batch`` after two warm-up
steps; a process prints its median. Per round the ratio of each checkout's median to the first
checkout's is printed, then the median and range of the ratios over the rounds: on a shared
machine only ratios of interleaved runs mean anything.
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

_CHILD = """
import json, statistics, sys, time
import numpy as np
import minicnn
from minicnn.presets import build_preset
preset, dtype, batch, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
minicnn.use_backend("numba")
# benchmarks.models.preset_step_case, inline: this runs inside the checkout under test,
# whose benchmarks package may predate it
shape = (32, 32, 3) if preset.startswith("cifar") else (28, 28, 1)
model = build_preset(preset, input_shape=shape, num_classes=10, dtype=dtype, seed=0)
model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
rng = np.random.default_rng(1)
x = rng.random((batch, *shape)).astype(dtype)
y = np.eye(10, dtype=dtype)[rng.integers(0, 10, batch)]
for _ in range(2):
    model.train_on_batch(x, y)
times = []
for _ in range(steps):
    t = time.perf_counter()
    model.train_on_batch(x, y)
    times.append(time.perf_counter() - t)
print(json.dumps({"file": minicnn.__file__, "median_s": statistics.median(times)}))
"""


def run_one(tree: Path, preset: str, dtype: str, batch: int, steps: int, cache: str) -> float:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    env["PYTHONPATH"] = str(tree) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    p = subprocess.run([sys.executable, "-c", _CHILD, preset, dtype, str(batch), str(steps)], cwd=tree, env=env,
                       capture_output=True, text=True, check=False)
    if p.returncode != 0:
        raise RuntimeError(f"{tree}: child failed\n{p.stderr[-3000:]}")
    res = json.loads(p.stdout.strip().splitlines()[-1])
    if not res["file"].startswith(str(tree)):
        raise RuntimeError(f"{tree}: the child imported {res['file']}, not this checkout's minicnn")
    return res["median_s"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trees", required=True, help="comma-separated checkouts; ratios are to the first")
    ap.add_argument("--preset", default="seed")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args(argv)
    trees = [Path(t).resolve() for t in a.trees.split(",")]
    ratios = {t: [] for t in trees[1:]}
    caches = {t: tempfile.TemporaryDirectory(prefix="minicnn-ab-cache-") for t in trees}
    for r in range(a.rounds):
        med = {t: run_one(t, a.preset, a.dtype, a.batch, a.steps, caches[t].name) for t in trees}
        print(f"round {r + 1}: " + ", ".join(f"{t.name} {med[t] * 1e3:.1f} ms" for t in trees)
              + "".join(f"; {t.name}/{trees[0].name} {med[t] / med[trees[0]]:.3f}" for t in trees[1:]), flush=True)
        for t in trees[1:]:
            ratios[t].append(med[t] / med[trees[0]])
    for t, rs in ratios.items():
        print(f"{a.preset} {a.dtype} batch {a.batch}: {t.name}/{trees[0].name} median {statistics.median(rs):.3f} "
              f"(range {min(rs):.3f}-{max(rs):.3f}, {len(rs)} rounds of {a.steps} steps)")
    for c in caches.values():
        c.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
