"""numba compile time: a fresh process with an empty ``NUMBA_CACHE_DIR`` (the first-ever run:
every kernel compiles), then a second process on the now-warm cache (kernels load from it).

Two entry points:

* :func:`worker` (``benchmarks.run``'s "compile" section): per benchmark model, the first train
  step and the first ``predict`` minus their steady-state times. The parent sets
  ``NUMBA_CACHE_DIR`` to a temporary directory for both processes.
* ``python -m benchmarks.compile_time [--presets seed,pooled] [--dtype float32] [--batch 32]
  [--repeats 1] [--trees A,B] [--json out.json]``: per *preset* (``minicnn.presets``), a cold-cache process and
  then a warm-cache one, each timing ``import minicnn.kernels.numba_backend``, the first
  ``train_on_batch`` and the first ``predict`` (and their steady-state times). Every preset gets
  its own empty cache directory, so its cold figure is what a newcomer training only that preset
  pays. numba caches next to the source (``__pycache__``) unless ``NUMBA_CACHE_DIR`` is set: this
  script always sets it, so the repository's own cache is neither used nor touched.

Timings on a shared machine are noisy: ``--repeats N`` runs each cold/warm pair N times (a new
empty cache each time) and reports medians; the load average is printed with them. The first
step's and the import's process CPU time (``(cpu)``, every thread's; numba compiles on one) are
printed beside their wall times: on a machine whose other processes take the cores, wall time grows, CPU time much less.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def worker(args: dict) -> dict:
    from . import models
    from . import ops as ops_mod
    from .timing import measure

    t0 = time.perf_counter()
    import minicnn

    minicnn.use_backend("numba")
    from minicnn.kernels import numba_backend  # noqa: F401 - imported by use_backend; timed here

    out = {"import_s": time.perf_counter() - t0, "cache_dir": os.environ.get("NUMBA_CACHE_DIR"),
           "dtype": args["dtype"], "batch": args["batch"], "models": {}}
    for spec in args["specs"]:
        model = models.compiled(spec, args["dtype"], args["input_shape"], args["num_classes"], seed=0)
        x, y = ops_mod.batch_data(model, args["batch"])
        t = time.perf_counter()
        model.train_on_batch(x, y)
        first = time.perf_counter() - t
        t = time.perf_counter()
        model.predict(x, batch_size=args["batch"])
        first_pred = time.perf_counter() - t
        steady = measure(lambda: model.train_on_batch(x, y), repeats=5, warmup=1)["median_ms"] / 1e3
        pred = measure(lambda: model.predict(x, batch_size=args["batch"]), repeats=3, warmup=1)["median_ms"] / 1e3
        out["models"][spec["label"]] = {"first_step_s": first, "steady_step_s": steady,
                                        "first_step_overhead_s": first - steady, "first_predict_s": first_pred,
                                        "first_predict_overhead_s": first_pred - pred}
    cache = os.environ.get("NUMBA_CACHE_DIR")
    out["cached_functions"] = len(list(Path(cache).rglob("*.nbi"))) if cache else None
    return out


# ----------------------------------------------------------------------------- per preset
def _child(preset: str, dtype: str, batch: int) -> dict:
    """One process's figures for ``preset`` (run in a fresh interpreter by :func:`run_preset`)."""
    t0 = time.perf_counter()
    import numpy as np

    t_np, c_np = time.perf_counter(), time.process_time()
    import minicnn.kernels.numba_backend  # noqa: F401 - the figure: the facade's import

    t_import, c_import = time.perf_counter() - t_np, time.process_time() - c_np
    import minicnn
    from minicnn.presets import build_preset

    minicnn.use_backend("numba")
    # benchmarks.models.preset_step_case, inline: this runs inside the checkout under test,
    # whose benchmarks package may predate it
    shape = (32, 32, 3) if preset.startswith("cifar") else (28, 28, 1)
    model = build_preset(preset, input_shape=shape, num_classes=10, dtype=dtype, seed=0)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(1)
    x = rng.random((batch, *shape)).astype(dtype)
    y = np.eye(10, dtype=dtype)[rng.integers(0, 10, batch)]

    def timed(fn):
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    step = lambda: model.train_on_batch(x, y)  # noqa: E731
    pred = lambda: model.predict(x, batch_size=batch)  # noqa: E731
    cpu0 = time.process_time()
    first_step = timed(step)
    first_step_cpu = time.process_time() - cpu0
    first_pred = timed(pred)
    steady_step = statistics.median(timed(step) for _ in range(3))
    steady_pred = statistics.median(timed(pred) for _ in range(3))
    cache = os.environ.get("NUMBA_CACHE_DIR")
    return {"preset": preset, "dtype": dtype, "batch": batch, "import_s": t_import, "import_cpu_s": c_import,
            "first_step_s": first_step, "first_step_cpu_s": first_step_cpu, "steady_step_s": steady_step,
            "first_predict_s": first_pred, "steady_predict_s": steady_pred, "process_s": time.perf_counter() - t0,
            "cached_functions": len(list(Path(cache).rglob("*.nbi"))) if cache else None}


def _run_child(preset: str, dtype: str, batch: int, cache_dir: str, tree: Path = ROOT) -> dict:
    """:func:`_child` (this file's) in a fresh interpreter that imports ``tree``'s minicnn."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    env["PYTHONPATH"] = str(tree) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    code = ("import runpy, sys; sys.argv = [sys.argv[0]] + sys.argv[1:]; "
            f"runpy.run_path({str(Path(__file__).resolve())!r}, run_name='__main__')")
    cmd = [sys.executable, "-c", code, "--child", preset, "--dtype", dtype, "--batch", str(batch)]
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=False)
    if p.returncode != 0:
        raise RuntimeError(f"{preset}: child failed\n{p.stderr[-3000:]}")
    res = json.loads(p.stdout.strip().splitlines()[-1])
    res["wall_s"] = time.perf_counter() - t
    return res


def run_preset(preset: str, dtype: str = "float32", batch: int = 32, repeats: int = 1, trees=(ROOT,)) -> list:
    """Cold then warm process for ``preset``, ``repeats`` times (a new empty cache each time), for
    each checkout in ``trees`` in turn within a repeat (A/B interleaved); one result per tree."""
    runs = [{"cold": [], "warm": []} for _ in trees]
    for _ in range(repeats):
        for tree, tr in zip(trees, runs):
            with tempfile.TemporaryDirectory(prefix="minicnn-numba-cache-") as cache:
                tr["cold"].append(_run_child(preset, dtype, batch, cache, tree))
                tr["warm"].append(_run_child(preset, dtype, batch, cache, tree))
    keys = ("import_s", "import_cpu_s", "first_step_s", "first_step_cpu_s", "steady_step_s", "first_predict_s",
            "steady_predict_s", "process_s", "wall_s")
    results = []
    for tree, tr in zip(trees, runs):
        out = {"preset": preset, "tree": str(tree), "dtype": dtype, "batch": batch, "repeats": repeats}
        for kind, rs in tr.items():
            out[kind] = {k: statistics.median(r[k] for r in rs) for k in keys}
            out[kind]["spread"] = {k: [min(r[k] for r in rs), max(r[k] for r in rs)] for k in keys}
            out[kind]["cached_functions"] = rs[-1]["cached_functions"]
        results.append(out)
    return results


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", default="seed", help="comma-separated presets, or 'all'")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--trees", default=str(ROOT),
                    help="comma-separated checkouts whose minicnn to time, interleaved (A/B); default this one")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(_child(a.child, a.dtype, a.batch)))
        return 0
    from minicnn.presets import PRESETS

    presets = PRESETS if a.presets == "all" else tuple(a.presets.split(","))
    print(f"load average before: {loadavg()}  (dtype {a.dtype}, batch {a.batch}, repeats {a.repeats}, medians)")
    trees = [Path(t).resolve() for t in a.trees.split(",")]
    label = {t: (t.name if len(trees) > 1 else "") for t in trees}
    print(f"{'preset':10} {'cache':5} {'import':>7} {'(cpu)':>6} {'1st step':>9} {'(cpu)':>7} {'steady':>7} {'1st pred':>9} "
          f"{'steady':>7} {'process':>8} {'kernels':>7}")
    results = []
    for name in presets:
        for r in run_preset(name, a.dtype, a.batch, a.repeats, trees):
            results.append(r)
            for kind in ("cold", "warm"):
                f = r[kind]
                print(f"{name:10} {kind:5} {f['import_s']:6.2f}s {f['import_cpu_s']:5.2f}s {f['first_step_s']:8.2f}s "
                      f"{f['first_step_cpu_s']:6.2f}s {f['steady_step_s']:6.3f}s "
                      f"{f['first_predict_s']:8.2f}s {f['steady_predict_s']:6.3f}s {f['wall_s']:7.2f}s "
                      f"{f['cached_functions']:>7} {label[Path(r['tree'])]}", flush=True)
    print(f"load average after: {loadavg()}")
    if a.json:
        Path(a.json).write_text(json.dumps({"loadavg": loadavg(), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
