"""minicnn (numba and numpy backends) against TensorFlow (and PyTorch when importable), side by
side, on any model, in one run.

    python -m benchmarks.run [--quick] [--out DIR] [--preset NAME[,NAME]|all] [--model CONFIG.json]
                             [--batch N[,N]] [--infer-batch N[,N]] [--dtype float32[,float64]]
                             [--dataset mnist] [--data-dir DIR] [--skip SECTION[,SECTION]]

Writes ``results.json`` (every raw and derived number), ``results.md`` and ``results.png`` into
the output directory. Every framework runs in its own subprocess, one at a time (see
``benchmarks/README.md`` for what each section measures and how).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from . import analyse, goals, machine, models, report
from .sides.minicnn_side import MALLOC_ENV
from minicnn.kernels.threads import ENV as PICK_ENV
from .workers import ROOT, children_cpu_s, json_default, run_worker

SECTIONS = ("peak", "ops", "steps", "latency", "traffic", "alternatives", "memory", "compile", "first_epoch",
            "numba", "numpy", "tensorflow", "pytorch")
ALIASES = {"fit": "memory", "tf": "tensorflow", "torch": "pytorch", "first-epoch": "first_epoch"}


def _csv(s):
    return [t.strip() for t in str(s or "").split(",") if t.strip()]


def _ints(s, what):
    try:
        out = [int(t) for t in _csv(s)]
    except ValueError:
        raise SystemExit(f"{what} takes comma-separated positive integers, got {s!r}") from None
    if not out or min(out) < 1:
        raise SystemExit(f"{what} takes comma-separated positive integers, got {s!r}")
    return out


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run",
                                 description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--quick", action="store_true", help="few repeats, small inference batch, a 2,000-sample "
                    "fit, short probes: a smoke test of a few minutes")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="output directory")
    ap.add_argument("--preset", default=None, help="comma-separated minicnn presets, or 'all' (default: all, "
                    "unless --model is given)")
    ap.add_argument("--model", default=None, help="comma-separated JSON files holding a "
                    "Sequential.get_config() dict: any architecture minicnn can build")
    ap.add_argument("--batch", default="100", help="train-step and per-op batch sizes, e.g. 32,100,256")
    ap.add_argument("--infer-batch", default=None, help="inference batch sizes (default 1000; --quick: 200)")
    ap.add_argument("--dtype", default="float32", help="float32, float64 or float32,float64")
    ap.add_argument("--dataset", default="mnist", help="minicnn.datasets name: the models' input shape and "
                    "classes, and the data of the fit section (default mnist)")
    ap.add_argument("--data-dir", "--mnist", dest="data_dir", default=None,
                    help="where the dataset is (default: minicnn.datasets' search, incl. $MINICNN_DATA_DIR)")
    ap.add_argument("--input-shape", default=None, help="H,W,C per sample, instead of the dataset's")
    ap.add_argument("--classes", type=int, default=None, help="number of classes, instead of the dataset's")
    ap.add_argument("--fit-samples", type=int, default=None, help="samples of the fit section's epoch "
                    "(default: the whole training set; --quick: 2000)")
    ap.add_argument("--ops-batch", default=None, help="batch sizes of the per-op section (default: 100 if "
                    "among --batch, else the first; 'all': every --batch)")
    ap.add_argument("--ops-dtype", default=None, help="dtypes of the per-op section (default: the first "
                    "--dtype; 'all')")
    ap.add_argument("--reference-grid", choices=("reduced", "all"), default="reduced",
                    help="minicnn-numpy and the alternatives (numba-gemm, numba-malloc; numba-pool, the thread "
                    "picker off, always runs the first dtype's steps and latency): 'reduced' (default) "
                    "= the first per-op batch and dtype only, and minicnn-numpy on the first model only; "
                    "'all' = every model, batch and dtype")
    ap.add_argument("--skip", default="", help="comma-separated sections to skip: " + ",".join(SECTIONS)
                    + " (fit = memory)")
    a = ap.parse_args(argv)
    a.skip_set = {ALIASES.get(s, s) for s in _csv(a.skip)}
    bad = a.skip_set - set(SECTIONS)
    if bad:
        ap.error(f"unknown --skip section(s) {', '.join(sorted(bad))}; choose from {', '.join(SECTIONS)}")
    a.dtypes = _csv(a.dtype)
    if not a.dtypes or set(a.dtypes) - {"float32", "float64"}:
        ap.error(f"--dtype takes float32 and/or float64, got {a.dtype!r}")
    a.batches = _ints(a.batch, "--batch")
    a.infer_batches = _ints(a.infer_batch or ("200" if a.quick else "1000"), "--infer-batch")
    a.ops_batches = a.batches if a.ops_batch == "all" else (
        _ints(a.ops_batch, "--ops-batch") if a.ops_batch else [100 if 100 in a.batches else a.batches[0]])
    a.ops_dtypes = a.dtypes if a.ops_dtype == "all" else _csv(a.ops_dtype) or a.dtypes[:1]
    if set(a.ops_batches) - set(a.batches) or set(a.ops_dtypes) - set(a.dtypes):
        ap.error("--ops-batch/--ops-dtype must be among --batch/--dtype")
    presets = a.preset if a.preset is not None else (None if a.model else "all")
    a.specs = models.specs_from_args(presets, a.model)
    if not a.specs:
        ap.error("nothing to benchmark: give --preset and/or --model")
    return a


def shapes(a) -> dict:
    """Input shape, classes and training-set size: from the flags, else from the dataset."""
    out = {"input_shape": [int(t) for t in _csv(a.input_shape)] or None, "num_classes": a.classes,
           "train_samples": None, "source": "flags"}
    if out["input_shape"] is None or out["num_classes"] is None:
        from .fit import dataset_shapes

        try:
            d = dataset_shapes(a.dataset, a.data_dir)
            out = {k: out[k] if out.get(k) is not None else d[k] for k in d}
            out["source"] = f"dataset {a.dataset}"
        except Exception as exc:  # noqa: BLE001 - reported, and the defaults are said to be defaults
            print(f"warning: dataset {a.dataset!r} not loadable ({type(exc).__name__}: {str(exc)[:200]}); "
                  "using --input-shape/--classes, else 28,28,1 and 10 classes", file=sys.stderr)
            out["source"] = f"flags/defaults (dataset {a.dataset} not loadable)"
    out["input_shape"] = out["input_shape"] or [28, 28, 1]
    out["num_classes"] = out["num_classes"] or 10
    out["train_samples"] = out.get("train_samples") or 60000
    return out


def main(argv=None):
    a = parse_args(argv)
    skip, quick = a.skip_set, a.quick
    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    shp = shapes(a)
    repeats = ({"op": 3, "step": 5, "infer": 2, "latency": 100} if quick
               else {"op": 15, "step": 30, "infer": 10, "latency": 500})
    sections = [s for s in ("ops", "steps", "latency") if s not in skip]
    base = {"specs": a.specs, "dtypes": a.dtypes, "batches": a.batches, "infer_batches": a.infer_batches,
            "ops_batches": a.ops_batches, "ops_dtypes": a.ops_dtypes,
            "input_shape": shp["input_shape"], "num_classes": shp["num_classes"], "repeats": repeats,
            "sections": sections, "quick": quick}
    R = {"meta": {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "quick": quick,
                  "command": "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:]),
                  "models": [s["label"] for s in a.specs], "dtypes": a.dtypes, "batches": a.batches,
                  "infer_batches": a.infer_batches, "ops_batches": a.ops_batches, "ops_dtypes": a.ops_dtypes,
                  "reference_grid": a.reference_grid, "repeats": repeats, "shapes_from": shp["source"],
                  "input_shape": shp["input_shape"], "num_classes": shp["num_classes"],
                  "train_samples": shp["train_samples"], "dataset": a.dataset},
         "machine": machine.machine_info(), "models": {}, "frameworks": {}}
    for spec in a.specs:
        for dt in a.dtypes:
            m = models.build(spec, dt, shp["input_shape"], shp["num_classes"], seed=0)
            R["models"].setdefault(spec["label"], {})[dt] = models.describe(m)

    def step(label, fn):
        print(f"[{time.time() - t_start:6.1f}s] {label} ...", flush=True)
        return fn()

    # both dtypes always: the machine section shows the float32 and float64 peaks
    peak_args = {"dtypes": ["float32", "float64"], "flags": R["machine"].get("flags"), "quick": quick}
    if "peak" not in skip:
        R["peak"] = step("FMA peak probe, clock, numpy matmul", lambda: run_worker("peak", peak_args))
    fws = []
    # the reference backend and the alternatives are context, not goals: a reduced grid by default
    ref = {} if a.reference_grid == "all" else {
        "dtypes": a.ops_dtypes[:1], "batches": a.ops_batches[:1], "infer_batches": a.infer_batches[:1]}
    # the numpy backend is by far the slowest worker (17 of 25 minutes of a loaded --quick run of
    # the zoo): the first model only, unless --reference-grid all
    ref_numpy = ref if a.reference_grid == "all" else {**ref, "specs": a.specs[:1]}
    if "numba" not in skip:
        fws.append(("minicnn-numba", "minicnn", {"backend": "numba"}, None))
        if "alternatives" not in skip:
            if "ops" in sections:
                fws.append(("minicnn-numba-gemm", "minicnn", {"backend": "numba", "tiles": False,
                                                              "sections": ["ops"], **ref}, None))
            if "steps" in sections:
                fws.append(("minicnn-numba-malloc", "minicnn", {"backend": "numba", "sections": ["steps"], **ref},
                            MALLOC_ENV))
            # the thread picker off (every pass on the pool, as before it existed): its effect in
            # the same run, where it matters (small batches, batch 1), for the first dtype
            pool_sections = [s for s in ("steps", "latency") if s in sections]
            if pool_sections:
                fws.append(("minicnn-numba-pool", "minicnn", {"backend": "numba", "sections": pool_sections,
                                                             "dtypes": a.dtypes[:1]}, {PICK_ENV: "0"}))
    if "numpy" not in skip:
        fws.append(("minicnn-numpy", "minicnn", {"backend": "numpy", **ref_numpy}, None))
    if "tensorflow" not in skip:
        fws.append(("tensorflow", "tf", {}, None))
    if "pytorch" not in skip:
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            R["frameworks"]["pytorch"] = {"skipped": "torch is not importable"}
        else:
            fws.append(("pytorch", "torch", {}, None))
    if sections:
        for fw, worker, extra, env in fws:
            R["frameworks"][fw] = step(f"{fw}: {', '.join(extra.get('sections', sections))}",
                                       lambda w=worker, e=extra, v=env: run_worker(w, {**base, **e}, v))
    if "memory" not in skip:
        # {model label: {framework: result}}: the goal asks for every preset; the numpy backend
        # (a readable reference, minutes an epoch) fits the first model only
        R["fit"] = {}
        for i, spec in enumerate(a.specs):
            runs = R["fit"][spec["label"]] = {}
            for fw in ("minicnn-numba", "minicnn-numpy", "tensorflow"):
                if fw.split("-")[-1] in skip or (fw == "minicnn-numpy" and i > 0):
                    continue
                fargs = {"framework": fw, "spec": spec, "dtype": a.dtypes[0], "batch": a.batches[0],
                         "dataset": a.dataset, "data_dir": a.data_dir, "input_shape": shp["input_shape"],
                         "num_classes": shp["num_classes"],
                         "samples": a.fit_samples if a.fit_samples is not None else (2000 if quick else 0),
                         "fallback_samples": 2000 if quick else 60000}
                runs[fw] = step(f"fit one epoch: {spec['label']}, {fw}", lambda f=fargs: run_worker("fit", f))
    if "traffic" not in skip:
        R["traffic"] = step("bytes per step: perf counters?", lambda: _measured_traffic(a, shp, skip))
    if "compile" not in skip and "numba" not in skip:
        with tempfile.TemporaryDirectory(prefix="minicnn-numba-cache-") as cache:
            env = {"NUMBA_CACHE_DIR": cache}
            # the seed model first: its overhead is then the first-ever compile the goal table
            # reads (every later model reuses the kernels it shares with the earlier ones)
            order = sorted(a.specs, key=lambda s: s["label"] != "seed")
            cargs = {**base, "specs": order, "dtype": a.dtypes[0], "batch": a.batches[0]}
            R["compile"] = {"cold": step("numba compile: cold cache", lambda: run_worker("compile", cargs, env)),
                            "warm": step("numba compile: warm cache", lambda: run_worker("compile", cargs, env))}
    if "first_epoch" not in skip and "numba" not in skip:
        R["first_epoch"] = step("make train's first epoch: minicnn train --epochs 2, cold cache",
                                lambda: _first_epoch(a))
    if "peak" not in skip:
        R["peak_recheck"] = step("FMA peak probe again (end of run)",
                                 lambda: run_worker("peak", {**peak_args, "fma_only": True, "quick": True}))
    R["meta"]["duration_s"] = time.time() - t_start
    A = analyse.analyse(R)
    A["goals"] = goals.goal_table(R, A)
    R["derived"] = A
    with open(out_dir / "results.json", "w") as f:
        json.dump(R, f, indent=1, default=json_default)
    (out_dir / "results.md").write_text(report.markdown(R, A))
    try:
        from .chart import plot

        plot(R, A, out_dir / "results.png")
    except Exception as exc:  # noqa: BLE001 - the tables matter more than the chart
        print(f"plot failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    print(f"[{time.time() - t_start:6.1f}s] wrote {out_dir}/results.json, results.md, results.png")
    _summary(A)
    for g in A["goals"]:
        print(f"  goal {g['verdict']:>13s}: {g['goal']} {g['target']}"
              + (f" (worst {g['worst']:.2f}{g['unit']}, {g['worst_case']})" if g["worst"] is not None else ""))
    for v in A["peak_violations"]:
        print(f"WARNING: above the measured FMA peak: {v}", file=sys.stderr)
    return 0


def _first_epoch(a) -> dict:
    """``make train``'s job (the seed model on MNIST, batch 100, whatever --preset and --dataset
    say) for two epochs in a fresh ``minicnn train`` process on an empty numba cache: epoch 1
    against epoch 2 (``benchmarks.first_epoch``). The whole training set also under --quick: on a
    short epoch the wait for the kernels would decide the ratio (6,000 images on a 2-core Zen 3:
    3.05x, where the full set gives 1.29x)."""
    from . import first_epoch

    t0, c0 = time.time(), children_cpu_s()
    try:
        with tempfile.TemporaryDirectory(prefix="minicnn-numba-cache-") as cache, \
                tempfile.TemporaryDirectory(prefix="minicnn-first-epoch-") as out:
            r = first_epoch.run_once("seed", 2, 100, 0, cache, out,
                                     data_dir=a.data_dir if a.dataset == "mnist" else None)
    except Exception as exc:  # noqa: BLE001 - e.g. no MNIST here: reported, the run goes on
        r = {"error": f"{type(exc).__name__}: {exc}"}
    return {**r, "wall_s": time.time() - t0, "cpu_s": children_cpu_s() - c0}


def _measured_traffic(a, shp, skip) -> dict:
    """The perf probe and, when the counters are readable, minicnn-numba's measured last-level
    cache traffic per train step of the first model, dtype and batch."""
    from . import traffic

    out = {"perf": traffic.perf_probe(), "measured": {}}
    if not out["perf"]["available"] or "numba" in skip:
        return out
    wargs = {"spec": a.specs[0], "dtype": a.dtypes[0], "batch": a.batches[0], "input_shape": shp["input_shape"],
             "num_classes": shp["num_classes"]}
    with tempfile.TemporaryDirectory() as tmp:
        def cmd(k):
            return [sys.executable, "-m", "benchmarks.workers", "steps", json.dumps({**wargs, "steps": k}),
                    os.path.join(tmp, f"steps{k}.json")]

        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        out["measured"]["minicnn-numba"] = {**traffic.measured_step_bytes(cmd, cwd=ROOT, env=env), "model": a.specs[0]["label"],
                                            "dtype": a.dtypes[0], "batch": a.batches[0]}
    return out


def _summary(A):
    for key, what in (("steps", "train"), ("infer", "infer")):
        for label, by_dt in A[key].items():
            for dtype, by_b in by_dt.items():
                for b, by_fw in by_b.items():
                    for fw, e in by_fw.items():
                        vs = e.get("vs_tf")
                        print(f"  {what:5s} {label} {dtype} B={b:<5s} {fw:22s} {e['img_s']:8.0f} img/s"
                              + (f"  ({vs:.2f}x TF)" if vs == vs and vs is not None else ""))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
