"""``minicnn crosscheck --frameworks tensorflow,jax,torch``: minicnn and Keras 3 on each backend,
each measured against a float64 reference.

Who is closer to exact arithmetic? For every (layer, tensor) the report gives the relative
distance (:func:`.compare.rel_error`, max|d| / max|ref|) of minicnn and of each framework from a
float64 reference, and each framework's distance from minicnn.

* The point: minicnn's own passes in the check's dtype (``forward(record=True)`` then
  ``backward(record=True)``, :func:`.sides.minicnn_pass`) fix every layer's input ``x_i`` and the
  gradient ``dy_i`` w.r.t. its output. Every framework, and the reference, evaluates layer i at
  ``(x_i, dy_i)``: each row is then that layer's own arithmetic, with no earlier layer's rounding
  in it (the same pinning as the TF crosscheck, :mod:`.sides`, here for the upstream gradient too).
* The reference: minicnn's NumPy backend in float64 on the same ``x_i`` and ``dy_i`` (exact in
  float64, so it rounds nothing they carry), layer by layer.
* The frameworks: one subprocess per Keras backend (:mod:`reference.framework_worker`; Keras
  chooses its backend at import), given the model's Keras 3 config and the ``.weights.h5``
  minicnn writes, and the pinned arrays as ``.npz``. Each takes its VJPs with its own autodiff.
* Training: K ``train_on_batch`` steps with each backend's Keras optimizer from the same weights
  on the same batches, against minicnn in the check's dtype and a float64 minicnn trajectory.
  Step 1's loss is the loss arithmetic alone (same weights, same batch); the later steps and the
  final weights show how each trajectory drifts from the float64 one.

Verdict: a side passes a row when its distance from the reference is within the tolerance the TF
crosscheck applies to that row (:func:`.tolerances.tolerance`, with the reduction rule for dW/db
and BatchNormalization's floor; docs/parity.md, "Tolerances"): the float32 numbers of that table
are what two correct float32 implementations may differ by, hence a bound on each one's distance
from exact. The three-framework report is information first: its exit status is 1 when a side
is outside that bound, and the rows name the side.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from minicnn.io.keras import keras_config, save_weights
from minicnn.kernels import backend_name, use_backend

from .. import convert
from .compare import rel_error
from .sides import layer_inputs, minicnn_pass
from .tolerances import reduction_rtol, tolerance
from .training import OPTIMIZERS, batches, optimizer_pair

FRAMEWORKS = ("tensorflow", "jax", "torch")
#: the module each backend needs and the pip extra that installs it (pyproject.toml)
BACKEND_MODULES = {"tensorflow": ("tensorflow", "tf"), "jax": ("jax", "jax"), "torch": ("torch", "torch")}
#: seconds one backend's worker may take before it is stopped
DEFAULT_TIMEOUT = 900
GRAD_NAMES = {"kernel": "dW", "bias": "db"}

#: the layer kinds of docs/parity.md's "Three frameworks" table, by minicnn class name
KINDS = {"Conv2D": "conv", "DepthwiseConv2D": "depthwise conv", "SeparableConv2D": "separable conv",
         "Dense": "dense", "MaxPool2D": "pooling", "AveragePooling2D": "pooling",
         "GlobalAveragePooling2D": "global pooling", "BatchNormalization": "batch norm",
         "ReLU": "activation", "Activation": "activation", "Softmax": "activation",
         "Flatten": "reshape", "Dropout": "reshape"}


def parse_frameworks(text) -> list[str]:
    """'tensorflow,jax,torch' -> the list, checked; each must be installed (else a ValueError
    naming the extra to install)."""
    names = [n.strip().lower() for n in str(text).split(",") if n.strip()]
    bad = [n for n in names if n not in FRAMEWORKS]
    if not names or bad:
        raise ValueError(f"--frameworks takes a comma-separated subset of {','.join(FRAMEWORKS)}; got {text!r}")
    for n in names:
        check_installed(n)
    return list(dict.fromkeys(names))


def check_installed(name) -> None:
    module, extra = BACKEND_MODULES[name]
    if importlib.util.find_spec(module) is None:
        raise ValueError(f"framework {name!r} is not installed: its Keras backend needs the '{module}' "
                         f"package (pip install -e '.[{extra}]')")


def kind_of(layer) -> str:
    kind = KINDS.get(type(layer).__name__, type(layer).__name__)
    if getattr(layer, "ends_in_softmax", False) and kind == "dense":
        return "dense+softmax"
    return kind


# ----------------------------------------------------------------------------- the reference
def reference_pass(model, pinned, upstream):
    """Float64 outputs, dX and weight gradients of every layer at the pinned (x_i, dy_i), on
    minicnn's NumPy backend (restored afterwards)."""
    m64 = convert.clone(model, "float64")
    previous = backend_name()
    use_backend("numpy")
    try:
        first = m64.layers[0]
        if hasattr(first, "need_dx"):
            first.need_dx = True
        outs, dxs, grads = [], [], {}
        for layer, x, dy in zip(m64.layers, pinned, upstream):
            outs.append(np.array(layer.forward(np.asarray(x, np.float64), training=True)))
            dxs.append(np.array(layer.backward(np.asarray(dy, np.float64))))
            if layer.grads:
                grads[layer.name] = {k: np.array(v) for k, v in layer.grads.items()}
    finally:
        use_backend(previous)
    return outs, dxs, grads


# ----------------------------------------------------------------------------- the workers
def run_worker(backend, job, timeout, dtype):
    """One backend's worker on ``job`` (a dict); returns (arrays, meta). A failure raises a
    RuntimeError with the backend's name and the end of its stderr."""
    path = job["out"] + ".job.json"
    with open(path, "w") as f:
        json.dump(job, f)
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"))
    env["JAX_ENABLE_X64"] = "1" if dtype == "float64" else "0"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "") if env.get("PYTHONPATH") else root
    try:
        r = subprocess.run([sys.executable, "-m", "reference.framework_worker", path], env=env, capture_output=True,
                           text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"framework {backend!r}: the worker took more than {timeout} s and was stopped") from None
    if r.returncode != 0:
        tail = "\n".join(r.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"framework {backend!r}: the worker failed (exit {r.returncode}):\n{tail}")
    with np.load(job["out"], allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    with open(job["out"] + ".json") as f:
        meta = json.load(f)
    return arrays, meta


def _framework_pass(arrays, model):
    outs = [arrays[f"out/{i}"] for i in range(len(model.layers))]
    dxs = [arrays[f"dX/{i}"] for i in range(len(model.layers))]
    grads = {l.name: {k: arrays[f"d/{i}/{k}"] for k in l.trainable_names}
             for i, l in enumerate(model.layers) if l.trainable_names}
    return outs, dxs, grads


# ----------------------------------------------------------------------------- rows
def _rows(model, dtype, pinned, sides, ref):
    """One row per (layer, tensor): each side's distance from the float64 reference and each
    framework's from minicnn, with the TF crosscheck's tolerance for the row."""
    rt_out, _ = tolerance(dtype, "out")
    rt_g, _ = tolerance(dtype, "grad")
    rows = []
    for i, layer in enumerate(model.layers):
        out = np.asarray(sides["minicnn"][0][i])
        terms = out.size // out.shape[-1] if out.ndim else 1
        items = [("out", lambda s: s[0][i], max(rt_out, layer.output_rtol_floor(pinned[i], np.dtype(dtype)))),
                 ("dX", lambda s: s[1][i], rt_g)]
        items += [(GRAD_NAMES.get(k, f"d{k}"), (lambda s, k=k: s[2][layer.name][k]), reduction_rtol(rt_g, dtype, terms))
                  for k in layer.trainable_names]
        for tensor, get, rtol in items:
            r64 = get(ref)
            row = {"layer": layer.name, "kind": kind_of(layer), "tensor": tensor, "rtol": rtol,
                   "vs_float64": {}, "vs_minicnn": {}}
            for name, side in sides.items():
                row["vs_float64"][name] = rel_error(np.asarray(get(side), np.float64), r64)
                if name != "minicnn":
                    row["vs_minicnn"][name] = rel_error(np.asarray(get(side), np.float64),
                                                        np.asarray(get(sides["minicnn"]), np.float64))
            d = row["vs_float64"]
            best = min(d.values())
            row["closest"] = (min(d, key=d.get) if sum(v == best for v in d.values()) == 1 else "tie")
            row["outliers"] = [n for n, v in d.items() if v > rtol]
            rows.append(row)
    return rows


# ----------------------------------------------------------------------------- training
def minicnn_losses(model, x, y, dtype, steps, optimizer, batch, backend=None):
    """(losses, final weights) of K minicnn steps in ``dtype`` (dropout off), on ``backend``."""
    mopt, _, _ = optimizer_pair(optimizer, dtype)
    mt = convert.clone(model, dtype, dropout_rate=0.0)
    mt.compile(mopt, "categorical_crossentropy")
    previous = backend_name()
    if backend:
        use_backend(backend)
    try:
        losses = [float(mt.train_on_batch(xb.astype(dtype), yb.astype(dtype))[0])
                  for xb, yb in batches(x, y, steps, batch)]
    finally:
        use_backend(previous)
    return losses, [np.asarray(w) for w in mt.get_weights()]


def _training(model, x, y, dtype, steps, optimizer, batch, framework_results):
    loss64, w64 = minicnn_losses(model, x, y, "float64", steps, optimizer, batch, backend="numpy")
    lm, wm = minicnn_losses(model, x, y, dtype, steps, optimizer, batch)
    losses = {"minicnn": lm, **{n: [float(v) for v in a["loss"]] for n, (a, _) in framework_results.items()}}
    finals = {"minicnn": wm, **{n: [a[f"final/{j}"] for j in range(len(w64))] for n, (a, _) in framework_results.items()}}
    def rel(a, b):
        return abs(a - b) / abs(b) if b else abs(a - b)
    return {"steps": steps, "batch": batch, "optimizer": optimizer, "loss_float64": loss64, "losses": losses,
            "step1_loss_vs_float64": {n: rel(v[0], loss64[0]) for n, v in losses.items()},
            "max_loss_vs_float64": {n: max(rel(a, b) for a, b in zip(v, loss64)) for n, v in losses.items()},
            "final_weights_vs_float64": {n: max(rel_error(np.asarray(a, np.float64), b) for a, b in zip(ws, w64))
                                         for n, ws in finals.items()},
            "final_weights_vs_minicnn": {n: max(rel_error(np.asarray(a, np.float64), np.asarray(b, np.float64))
                                                for a, b in zip(ws, wm)) for n, ws in finals.items() if n != "minicnn"}}


# ----------------------------------------------------------------------------- the check
def frameworks_check(model, x, y, frameworks=FRAMEWORKS, dtype="float32", steps=20, optimizer="adam", seed=0,
                     batch=None, data_source="user data", threads=1, timeout=DEFAULT_TIMEOUT,
                     weights_override=None) -> dict:
    """The report dict (see the module docstring). ``x``, ``y``: images and one-hot labels; the
    layer check uses the first ``batch``, training step k the k-th block of ``batch``.
    ``weights_override`` ({framework: path}) gives one framework another ``.weights.h5`` (the
    tests' perturbed file: that framework must come out as the outlier)."""
    dtype = np.dtype(dtype).name
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    frameworks = parse_frameworks(",".join(frameworks))
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    batch = int(batch or x.shape[0])
    t0 = time.perf_counter()
    m = convert.clone(model, dtype, dropout_rate=0.0)
    x, y = np.asarray(x, dtype), np.asarray(y, dtype)
    g = np.random.default_rng(seed).uniform(-1, 1, size=(batch, *m.output_shape)).astype(dtype)
    mine = minicnn_pass(m, x[:batch], g)
    pinned = layer_inputs(x[:batch], mine)
    upstream = list(mine.input_grads[1:]) + [g]
    sides = {"minicnn": (mine.outputs, mine.input_grads, mine.weight_grads)}
    ref = reference_pass(m, pinned, upstream)
    tx = np.concatenate([xb for xb, _ in batches(x, y, steps, batch)]) if steps else x[:0]
    ty = np.concatenate([yb for _, yb in batches(x, y, steps, batch)]) if steps else y[:0]
    results, metas = {}, {}
    with tempfile.TemporaryDirectory(prefix="minicnn-frameworks-") as d:
        cfg, wpath, apath = (os.path.join(d, n) for n in ("model.json", "model.weights.h5", "arrays.npz"))
        with open(cfg, "w") as f:
            json.dump(keras_config(m), f)
        save_weights(m, wpath)
        arrays = {**{f"x/{i}": p for i, p in enumerate(pinned)}, **{f"dy/{i}": u for i, u in enumerate(upstream)},
                  "train_x": tx, "train_y": ty}
        np.savez(apath, **arrays)
        cls, kw = OPTIMIZERS[optimizer]
        for name in frameworks:
            job = {"config": cfg, "weights": (weights_override or {}).get(name, wpath), "arrays": apath,
                   "dtype": dtype, "steps": steps, "batch": batch, "optimizer": [cls, kw], "threads": threads,
                   "out": os.path.join(d, f"{name}.npz")}
            results[name] = run_worker(name, job, timeout, dtype)
            metas[name] = results[name][1]
            sides[name] = _framework_pass(results[name][0], m)
    report = {"header": {"model": m.name, "params": m.count_params(), "dtype": dtype, "batch": batch, "seed": seed,
                         "data": data_source, "minicnn_backend": backend_name(),
                         "reference": "minicnn NumPy backend in float64 at the same pinned inputs and upstream gradients",
                         "upstream_gradient": f"G ~ U(-1, 1), seed {seed}; scalar = sum(output * G)",
                         "frameworks": {n: {k: v for k, v in meta.items() if k != "layers"} for n, meta in metas.items()},
                         "rule": "a side passes a row when its distance from float64 is within the TF crosscheck's "
                                 "tolerance for the row (docs/parity.md, 'Tolerances')"},
              "layers": _rows(m, dtype, pinned, sides, ref)}
    report["training"] = _training(model, x, y, dtype, steps, optimizer, batch, results) if steps else None
    report["seconds"] = time.perf_counter() - t0
    report["summary"] = summarise(report)
    return report


def summarise(report) -> dict:
    """Per side: the largest distance from float64 per layer kind (and per tensor), the rows
    where it is outside the tolerance, and how often it is the closest to float64."""
    rows = report["layers"]
    sides = list(rows[0]["vs_float64"]) if rows else []
    by_kind: dict = {}
    for r in rows:
        k = by_kind.setdefault(r["kind"], {s: 0.0 for s in sides})
        for s in sides:
            k[s] = max(k[s], r["vs_float64"][s])
    tr = report.get("training")
    if tr:
        by_kind["loss (step 1)"] = dict(tr["step1_loss_vs_float64"])
    outliers = {s: [f"{r['layer']}/{r['tensor']}" for r in rows if s in r["outliers"]] for s in sides}
    return {"max_vs_float64_by_kind": by_kind,
            "max_vs_float64_by_tensor": {t: {s: max(r["vs_float64"][s] for r in rows if r["tensor"] == t) for s in sides}
                                         for t in dict.fromkeys(r["tensor"] for r in rows)},
            "closest_count": {s: sum(r["closest"] == s for r in rows) for s in [*sides, "tie"]},
            "outliers": outliers, "passed": not any(outliers.values())}
