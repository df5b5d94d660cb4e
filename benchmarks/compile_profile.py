"""Where numba's first-ever compile time goes: per kernel, per compiler pass, LLVM vs the rest.

``python -m benchmarks.compile_profile [--preset seed] [--dtype float32] [--batch 32]
[--predict 0] [--warm] [--json out.json]`` runs, in a fresh interpreter with an empty ``NUMBA_CACHE_DIR``,
what ``minicnn train`` compiles before its first epoch (one ``train_on_batch`` and, with
``--predict N``, one ``predict`` of N samples) while recording numba's compiler events
(:mod:`numba.core.event`):

* ``numba:compile`` (one START/END per dispatcher and signature compiled): the table's rows. A
  kernel's *inclusive* time contains the callees it compiled (numba compiles a callee on first
  use, inside its caller's typing); *exclusive* subtracts them, so the exclusive column adds up
  to the total.
* ``numba:run_pass``: the passes of each compile; ``NativeLowering`` holds the LLVM IR generation
  and optimisation of the function, ``NopythonTypeInference`` the typing (and the callees it
  compiles), ``ParforPass`` & co. the ``parallel=True`` transformations.
* ``numba:llvm_lock``: time holding LLVM's lock (IR optimisation, code generation, linking).

The parent prints the table sorted by exclusive CPU time (``time.thread_time``: numba compiles
on the calling thread, so this is what the compile costs when the machine is not shared; wall
times on a shared machine grow with the load). Compare kernels within one run, as shares.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _child(preset: str, dtype: str, batch: int, predict: int) -> dict:
    """Compile ``preset``'s first step (and predict) under the event recorders; the raw figures."""
    import numpy as np
    from numba.core import event

    stack = []  # open numba:compile events: [name, start, child seconds, start cpu, child cpu seconds]
    rows = defaultdict(lambda: {"n": 0, "inclusive_s": 0.0, "exclusive_s": 0.0, "inclusive_cpu_s": 0.0,
                                "exclusive_cpu_s": 0.0})
    passes = defaultdict(float)
    llvm = [0.0]
    open_pass = {}
    open_llvm = []

    class Compile(event.Listener):
        def on_start(self, ev):
            d = ev.data["dispatcher"]
            name = f"{d.py_func.__module__.rsplit('.', 1)[-1]}.{d.py_func.__name__}"
            stack.append([name, time.perf_counter(), 0.0, time.thread_time(), 0.0])

        def on_end(self, ev):
            name, t0, inner, c0, inner_cpu = stack.pop()
            dt, dc = time.perf_counter() - t0, time.thread_time() - c0
            r = rows[name]
            r["n"] += 1
            r["inclusive_s"] += dt
            r["exclusive_s"] += dt - inner
            r["inclusive_cpu_s"] += dc
            r["exclusive_cpu_s"] += dc - inner_cpu
            if stack:
                stack[-1][2] += dt
                stack[-1][4] += dc

    class Pass(event.Listener):
        def on_start(self, ev):
            open_pass[(ev.data["name"], ev.data["qualname"], len(open_pass))] = time.perf_counter()

        def on_end(self, ev):
            key = next(k for k in reversed(list(open_pass)) if k[0] == ev.data["name"] and k[1] == ev.data["qualname"])
            passes[ev.data["name"]] += time.perf_counter() - open_pass.pop(key)

    class Llvm(event.Listener):
        def on_start(self, ev):
            open_llvm.append(time.perf_counter())

        def on_end(self, ev):
            t0 = open_llvm.pop()
            if not open_llvm:
                llvm[0] += time.perf_counter() - t0

    t_imp = time.perf_counter()
    import minicnn
    import minicnn.kernels.numba_backend  # noqa: F401

    import minicnn.presets  # noqa: F401 - the build's import, counted here as before

    import_s = time.perf_counter() - t_imp
    from benchmarks.models import preset_step_case

    minicnn.use_backend("numba")
    model, x, y = preset_step_case(preset, dtype, batch)
    event.register("numba:compile", Compile())
    event.register("numba:run_pass", Pass())
    event.register("numba:llvm_lock", Llvm())
    t, c = time.perf_counter(), time.thread_time()
    model.train_on_batch(x, y)
    step_s, step_cpu_s = time.perf_counter() - t, time.thread_time() - c
    t = time.perf_counter()
    if predict:
        model.predict(np.zeros((predict, *x.shape[1:]), dtype=dtype), batch_size=predict)
    predict_s = time.perf_counter() - t
    return {"preset": preset, "dtype": dtype, "batch": batch, "import_s": import_s, "step_s": step_s, "step_cpu_s": step_cpu_s,
            "predict_s": predict_s, "llvm_lock_s": llvm[0], "kernels": dict(rows), "passes": dict(passes)}


def run(preset: str, dtype: str, batch: int, predict: int, warm: bool = False) -> list:
    """:func:`_child` in a fresh interpreter on an empty cache (``warm``: then in a second one on
    the cache the first filled, whose compiles should be none); the list of their results."""
    out = []
    with tempfile.TemporaryDirectory(prefix="minicnn-numba-profile-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        cmd = [sys.executable, "-m", "benchmarks.compile_profile", "--child", preset, "--dtype", dtype,
               "--batch", str(batch), "--predict", str(predict)]
        for _ in range(2 if warm else 1):
            p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
            if p.returncode != 0:
                raise RuntimeError(f"{preset}: child failed\n{p.stderr[-3000:]}")
            out.append(json.loads(p.stdout.strip().splitlines()[-1]))
    return out


def report(r: dict) -> str:
    total = sum(k["exclusive_s"] for k in r["kernels"].values()) or float("nan")
    cpu = sum(k["exclusive_cpu_s"] for k in r["kernels"].values()) or float("nan")
    lines = [f"{r['preset']} {r['dtype']} batch {r['batch']}: import {r['import_s']:.2f} s, first step "
             f"{r['step_s']:.2f} s (thread CPU {r['step_cpu_s']:.2f} s), first predict {r['predict_s']:.2f} s; "
             f"compiling {total:.2f} s (CPU {cpu:.2f} s, LLVM lock {r['llvm_lock_s']:.2f} s), "
             f"{sum(k['n'] for k in r['kernels'].values())} compiles",
             f"{'kernel':36} {'sigs':>4} {'exclusive':>9} {'share':>6} {'inclusive':>9} {'excl CPU':>9} {'incl CPU':>9}"]
    for name, k in sorted(r["kernels"].items(), key=lambda kv: -kv[1]["exclusive_cpu_s"]):
        lines.append(f"{name:36} {k['n']:4d} {k['exclusive_s']:8.2f}s {k['exclusive_s'] / total:6.1%} "
                     f"{k['inclusive_s']:8.2f}s {k['exclusive_cpu_s']:8.2f}s {k['inclusive_cpu_s']:8.2f}s")
    lines.append("passes (summed over every compile; nested ones overlap):")
    for name, s in sorted(r["passes"].items(), key=lambda kv: -kv[1])[:10]:
        lines.append(f"  {name:34} {s:7.2f}s")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="seed")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--predict", type=int, default=0, help="also predict this many samples (0: no)")
    ap.add_argument("--warm", action="store_true",
                    help="then a second process on the filled cache (it should compile nothing)")
    ap.add_argument("--json", help="write the raw figures here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(_child(a.child, a.dtype, a.batch, a.predict)))
        return 0
    rs = run(a.preset, a.dtype, a.batch, a.predict, a.warm)
    for kind, r in zip(("cold cache", "warm cache"), rs):
        print(f"--- {kind}\n{report(r)}")
    if a.json:
        Path(a.json).write_text(json.dumps(rs, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
