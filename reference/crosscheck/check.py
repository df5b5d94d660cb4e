""":func:`crosscheck`: the per-layer check, the training check and the verdict, as one report."""

from __future__ import annotations

import time

import numpy as np

from minicnn.datasets import one_hot

from .. import convert
from .bisect import DEFAULT_RTOL, bisect_steps
from .environment import floatx, header, setup_tensorflow
from .histogram import LABELS, RULE as HISTOGRAM_RULE
from .layer_check import TENSORS, layer_check
from .tolerances import REDUCTION_RULE, RULE, table_for
from .training import hyper_rule, training_check


def crosscheck(model, x, y, dtype="float32", steps=50, optimizer="adam", seed=0, batch=None,
               data_source="user data", threads=None, keras_floatx=None, bisect=False, bisect_rtol=None,
               bisect_keras=True, bisect_every=None) -> dict:
    """Compare ``model`` with its Keras twin; returns the report dict (see
    :func:`reference.crosscheck.format_report`).

    Parameters
    ----------
    model : a built minicnn Sequential (it is not modified: both sides work on copies).
    x, y : images (N, H, W, C) and one-hot labels (N, K) or integer labels (N,). The per-layer
        check uses the first ``batch`` images; training step k uses the k-th block of ``batch``
        images (cycling when N < steps * batch).
    dtype : 'float32' or 'float64' for both frameworks.
    steps : optimizer steps (0 skips the training check).
    optimizer : 'adam', 'sgd', 'sgd-momentum', 'sgd-nesterov' or 'rmsprop'
        (:data:`reference.crosscheck.training.OPTIMIZERS`).
    seed : seeds the upstream gradient G.
    keras_floatx : ``keras.config.floatx`` for Keras (default ``dtype``; 'float32' with a float64
        model reproduces Keras's default floatx). Keras's learning-rate variable has this dtype,
        and minicnn's optimizer is given ``learning_rate_dtype`` = the same (docs/parity.md,
        "Optimizer hyperparameters and floatx").
    bisect : also find the first of the ``steps`` at which a float32 minicnn run leaves the
        float64 one by more than ``bisect_rtol`` (default 1e-4), by bisection
        (:func:`reference.crosscheck.bisect.bisect_steps`; with ``bisect_keras`` Keras's float32
        run is compared with minicnn's float64 at every step too; ``bisect_every`` the checkpoint
        spacing, default ceil(sqrt(steps)), 1 for a linear scan). Information, not judged.
    """
    setup_tensorflow(threads, seed)  # thread pools and TF32 before anything runs
    dtype = np.dtype(dtype).name
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    if not model.built:
        model.build()
    x = np.asarray(x)
    y = np.asarray(y)
    if y.ndim == 1:
        y = one_hot(y, model.output_shape[-1], dtype)
    x, y = x.astype(dtype), y.astype(dtype)
    keras_floatx = np.dtype(keras_floatx or dtype).name
    if keras_floatx not in (dtype, "float32"):
        raise ValueError(f"keras_floatx must be the check's dtype or float32, got {keras_floatx}")
    batch = int(batch or x.shape[0])
    if not 1 <= batch <= x.shape[0]:
        raise ValueError(f"batch must be in [1, {x.shape[0]}], got {batch}")

    with floatx(keras_floatx):
        t0 = time.perf_counter()
        report = {"header": header(model, dtype, seed, data_source, batch)}
        report["header"]["keras_floatx"] = keras_floatx
        report["header"]["hyperparameter_rule"] = hyper_rule(dtype, keras_floatx)
        report["header"]["upstream_gradient"] = f"G ~ U(-1, 1), seed {seed}; scalar = sum(output * G)"
        report["header"]["rule"] = RULE
        report["header"]["reduction_rule"] = REDUCTION_RULE
        report["header"]["histogram_rule"] = HISTOGRAM_RULE
        report["header"]["histogram_bins"] = list(LABELS)
        report["tolerances"] = table_for(dtype)
        # Both sides in training mode with Dropout's rate 0 (the identity, and nothing random):
        # BatchNormalization then uses the batch's statistics on both sides, as in a training step
        m = convert.clone(model, dtype, dropout_rate=0.0)
        km = convert.to_keras(convert.clone(model, dtype, dropout_rate=0.0))
        g = np.random.default_rng(seed).uniform(-1, 1, size=(batch, *m.output_shape)).astype(dtype)
        per_layer = layer_check(m, km, x[:batch], g, dtype)
        report["layers"] = per_layer["layers"]
        if per_layer["maxpool_ties"] is not None:
            report["header"]["maxpool_ties"] = per_layer["maxpool_ties"]
        report["end_to_end"] = per_layer["end_to_end"]
        report["training"] = (training_check(model, x, y, dtype, steps, optimizer, batch, keras_floatx)
                              if steps > 0 else None)
        report["bisect"] = (bisect_steps(model, x, y, steps, optimizer, batch, bisect_rtol or DEFAULT_RTOL,
                                         checkpoint_every=bisect_every, keras=bisect_keras)
                            if bisect and steps > 0 else None)
        report["seconds"] = time.perf_counter() - t0
    report["summary"] = summarise(report)
    return report


def _judged_items(report):
    """(name, passed) of every judged quantity: layer tensors, training lines, final weights."""
    items = [(f"{r['layer']}/{r['tensor']}", r["passed"]) for r in report["layers"]]
    tr = report["training"]
    if tr is not None:
        items += [(c["check"], c["passed"]) for c in tr["checks"] if c["judged"]]
        items += [(f"weights {r['layer']}/{r['tensor']}", r["passed"]) for r in tr["weights"] if r["judged"]]
    return items


def _not_judged(report):
    """Names of the lines reported as information."""
    names = ["without pinning"]
    if "maxpool_ties" in report["header"]:
        names.append("max-pool ties")
    tr = report["training"]
    if tr is not None:
        names += [c["check"] for c in tr["checks"] if not c["judged"]]
        if tr.get("loss_path"):
            names.append("Keras loss path")
    if report.get("bisect"):
        names.append("bisect")
    return names


#: how the first failure is chosen, as stated in the summary
FIRST_FAILURE_RULE = ("outputs in forward order, then gradients in backward order (from the last layer to the "
                      "first): each row is evaluated at minicnn's input to its layer, but minicnn's backward "
                      "chains its own gradients, so a wrong backward also fails every layer before it")


def first_failure(report) -> dict | None:
    """The failed quantity to look at first (:data:`FIRST_FAILURE_RULE`): the first failed output
    in forward order, else the failed gradient nearest the model's output, else the first failed
    training check. None when everything judged passed."""
    rows = report["layers"]
    order = {name: i for i, name in enumerate(dict.fromkeys(r["layer"] for r in rows))}
    bad = [r for r in rows if r["passed"] is False]
    outs = [r for r in bad if r["tensor"] == "out"]
    grads = sorted((r for r in bad if r["tensor"] != "out"),
                   key=lambda r: (-order[r["layer"]], r["tensor"] != "dX"))
    for r in outs[:1] or grads[:1]:
        return {"layer": r["layer"], "tensor": r["tensor"], "failure": r.get("failure") or "value",
                "rel": r["rel"], "ulps": r.get("ulps"), "rtol": r["rtol"], "note": r.get("note"),
                "rule": FIRST_FAILURE_RULE}
    failed = [name for name, p in _judged_items(report) if not p]
    if failed:
        return {"layer": None, "tensor": None, "check": failed[0], "failure": "value", "rule": FIRST_FAILURE_RULE}
    return None


def summarise(report) -> dict:
    """The verdict: PASS when every judged quantity passed. Information never counts."""
    rows = report["layers"]
    tr = report["training"]
    items = _judged_items(report)
    worst = max(rows, key=lambda r: r["rel"] / r["rtol"] if r["rtol"] else float("inf") if r["rel"] else 0.0)
    return {
        "passed": bool(all(p for _, p in items)),
        "first_failure": first_failure(report),
        "judged": {"total": len(items), "passed": sum(bool(p) for _, p in items),
                   "failed": [name for name, p in items if not p]},
        "not_judged": _not_judged(report),
        "rule": RULE,
        "layer_rows": len(rows),
        "layer_rows_passed": sum(bool(r["passed"]) for r in rows),
        "worst_layer_row": {"layer": worst["layer"], "tensor": worst["tensor"], "rel": worst["rel"],
                            "rtol": worst["rtol"]},
        "max_rel_by_tensor": {t: max((r["rel"] for r in rows if r["tensor"] == t), default=None)
                              for t in TENSORS},
        "max_loss_rel_diff": None if tr is None else tr["max_loss_rel_diff"],
        "max_weight_rel_diff": None if tr is None else max((r["rel"] for r in tr["weights"]), default=0.0),
        "training_judged": None if tr is None else tr["judged"],
        "stepwise_max_loss_rel_diff": None if tr is None or "stepwise" not in tr
        else tr["stepwise"]["max_loss_rel_diff"],
    }
