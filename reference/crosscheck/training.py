"""The training check: K optimizer steps on identical batches in both frameworks.

Both sides train a copy with Dropout disabled (rate 0: masks cannot be shared between
frameworks), with the same optimizer (:data:`OPTIMIZERS`: Keras's defaults but the learning rate
and momentum) and categorical cross-entropy in the model's dtype. minicnn runs its own
``Sequential.train_on_batch``; Keras runs ``compile(..., jit_compile=False)`` +
``train_on_batch`` (a graph-mode ``tf.function``) under ``keras.config.floatx`` = ``keras_floatx``
(default the check's dtype), and minicnn's optimizer holds its learning rate in the same dtype
(``learning_rate_dtype``; docs/parity.md, "Optimizer hyperparameters and floatx"). For a model
ending in softmax both take the loss from the logits (:mod:`.loss_path` verifies Keras's choice).

What is judged (docs/parity.md, "Training in float32"):

* float64: free-running. Each framework trains its own copy for K steps; the loss at every step
  and every weight at the end are judged.
* float32: step by step. Before every step Keras gets minicnn's weights and optimizer state
  (step count, Adam moments); the step's loss is judged. A free-running float32 comparison is
  ill-conditioned (one rounding difference flips a ReLU or max-pool decision near its kink and
  the trajectories drift apart; Keras's own float32 run drifts from its float64 run by as much),
  so the free-running losses and weights, and the weights after each synced step, are reported
  as information, with Keras float32 vs Keras float64 for scale.
"""

from __future__ import annotations

import time

import keras
import numpy as np

from minicnn import optimizers

from .. import convert
from .compare import compare, info, rel_diffs, rel_error, series_check
from .environment import floatx
from .loss_path import keras_loss_path
from .tolerances import FREE_RUNNING_FLOAT32, NOT_JUDGED_REASON, tolerance

#: the training check's optimizers: (class name, hyperparameters); Keras's defaults otherwise.
#: The same class and arguments exist in minicnn.optimizers and keras.optimizers.
OPTIMIZERS = {
    "adam": ("Adam", {"learning_rate": 0.001}),
    "sgd": ("SGD", {"learning_rate": 0.01}),
    "sgd-momentum": ("SGD", {"learning_rate": 0.01, "momentum": 0.9}),
    "sgd-nesterov": ("SGD", {"learning_rate": 0.01, "momentum": 0.9, "nesterov": True}),
    "rmsprop": ("RMSprop", {"learning_rate": 0.001}),
}
#: the learning rates, exact: Keras holds them in a variable of dtype ``keras_floatx`` and minicnn
#: in ``learning_rate_dtype`` = the same (docs/parity.md, "Optimizer hyperparameters and floatx")
LEARNING_RATES = {name: kw["learning_rate"] for name, (_, kw) in OPTIMIZERS.items()}


def hyper_rule(dtype, keras_floatx) -> str:
    """The optimizer-hyperparameter rule a check uses, as the report states it."""
    held = "exact" if np.dtype(dtype).itemsize <= np.dtype(keras_floatx).itemsize else "rounded through float32"
    return (f"Keras floatx {keras_floatx}: its learning-rate variable is {keras_floatx} ({held} for {dtype} weights); "
            f"minicnn learning_rate_dtype='{keras_floatx}'. Betas and SGD momentum go through tf.cast "
            "(float32) in both floatx; epsilon, rho and RMSprop momentum are exact")


def optimizer_pair(name, keras_floatx="float32"):
    """(minicnn optimizer, Keras optimizer, description) with the same hyperparameters; the Keras
    one is created under ``keras.config.floatx`` = ``keras_floatx`` (its learning-rate variable
    takes that dtype) and minicnn's holds the learning rate in the same dtype."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
    cls, kw = OPTIMIZERS[name]
    keras_floatx = np.dtype(keras_floatx).name
    mine = getattr(optimizers, cls)(**kw, learning_rate_dtype=keras_floatx)
    with floatx(keras_floatx):
        theirs = getattr(keras.optimizers, cls)(**kw)
    args = ", ".join(f"{k}={v!r}" for k, v in mine.get_config().items() if k != "name")
    return mine, theirs, f"{cls}({args})"


def batches(x, y, steps, batch):
    """Step k's batch: the k-th block of ``batch`` samples, cycling when there are fewer."""
    n = max(1, x.shape[0] // batch)
    for k in range(steps):
        j = k % n
        yield x[j * batch:(j + 1) * batch], y[j * batch:(j + 1) * batch]


def _compiled_keras(model, kopt, dtype, keras_floatx):
    """A compiled Keras twin of minicnn ``model`` (weights copied), built under ``keras_floatx``.
    The loss is given the model's dtype: a loss of another dtype would cast the predictions and
    lose the logits (docs/parity.md, "Loss on softmax outputs")."""
    with floatx(keras_floatx):
        k = convert.to_keras(model)
        k.compile(optimizer=kopt, loss=keras.losses.CategoricalCrossentropy(dtype=dtype), run_eagerly=False,
                  jit_compile=False)
    return k


def keras_trajectory(model, x, y, dtype, steps, optimizer, batch, keras_floatx=None):
    """(losses, weights, seconds) of ``steps`` Keras ``train_on_batch`` calls on a copy of
    ``model`` in ``dtype`` (dropout off), with ``keras.config.floatx`` set to ``keras_floatx``
    (default ``dtype``)."""
    keras_floatx = keras_floatx or dtype
    _, kopt, _ = optimizer_pair(optimizer, keras_floatx)
    kt = _compiled_keras(convert.clone(model, dtype, dropout_rate=0.0), kopt, dtype, keras_floatx)
    xd, yd = x.astype(dtype), y.astype(dtype)
    with floatx(keras_floatx):
        t0 = time.perf_counter()
        losses = [float(np.asarray(kt.train_on_batch(xb, yb))) for xb, yb in batches(xd, yd, steps, batch)]
        return losses, kt.get_weights(), time.perf_counter() - t0


#: minicnn's optimizer slot -> the Keras optimizer's list of variables holding it
KERAS_SLOTS = {"Adam": {"m": "_momentums", "v": "_velocities"}, "SGD": {"momentum": "momentums"},
               "RMSprop": {"velocity": "_velocities", "momentum": "_momentums",
                           "average_gradient": "_average_gradients"}}


def sync_keras(mt, mopt, kt, kopt):
    """Copy minicnn's weights (non-trainable ones included) and optimizer state (step count,
    moments and momenta of the trainable weights, in Keras's trainable-variable order) into Keras."""
    kt.set_weights(mt.get_weights())
    kopt.iterations.assign(mopt.iterations)
    for slot, attr in KERAS_SLOTS[type(kopt).__name__].items():
        if slot not in mopt.slots:
            continue
        for i, (key, p, _) in enumerate(mt.named_parameters()):
            getattr(kopt, attr)[i].assign(mopt.slots[slot].get(key, np.zeros_like(p)))


def minicnn_trajectory(model, x, y, dtype, steps, optimizer, batch, stepwise, keras_floatx):
    """minicnn's free-running trajectory; with ``stepwise`` a Keras twin takes every step from
    minicnn's state. Returns (minicnn model, losses, seconds, Keras stepwise losses, max weight
    rel diff after each stepwise step per weight)."""
    mopt, kopt, _ = optimizer_pair(optimizer, keras_floatx)
    mt = convert.clone(model, dtype, dropout_rate=0.0)
    mt.compile(mopt, "categorical_crossentropy")
    keys = [k for k, _ in mt.named_weights()]  # get_weights order, moving statistics included
    if stepwise:
        ks = _compiled_keras(mt, kopt, dtype, keras_floatx)
        with floatx(keras_floatx):
            kopt.build(ks.trainable_variables)
    loss_m, loss_s, step_w, t_m = [], [], [0.0] * len(keys), 0.0
    for xb, yb in batches(x, y, steps, batch):
        if stepwise:
            sync_keras(mt, mopt, ks, kopt)
        t0 = time.perf_counter()
        loss_m.append(float(mt.train_on_batch(xb, yb)[0]))
        t_m += time.perf_counter() - t0
        if stepwise:
            with floatx(keras_floatx):
                loss_s.append(float(np.asarray(ks.train_on_batch(xb, yb))))
            for i, (wm, wk) in enumerate(zip(mt.get_weights(), ks.get_weights())):
                step_w[i] = max(step_w[i], rel_error(wm, wk))
    return mt, loss_m, t_m, loss_s, dict(zip(keys, step_w))


def training_check(model, x, y, dtype, steps, optimizer, batch, keras_floatx=None) -> dict:
    """K optimizer steps in both frameworks; see the module docstring for what is judged.
    ``keras_floatx`` (default ``dtype``) is Keras's floatx, and minicnn's learning_rate_dtype.

    ``checks`` lists the training lines of the verdict, each with ``judged`` and ``rtol``;
    ``weights`` holds one row per weight after K free-running steps, judged in float64 only (in
    float32 they are summarised by a ``checks`` line that is not judged)."""
    stepwise = dtype == "float32"
    keras_floatx = np.dtype(keras_floatx or dtype).name
    _, _, described = optimizer_pair(optimizer, keras_floatx)
    mt, loss_m, t_m, loss_s, step_w = minicnn_trajectory(model, x, y, dtype, steps, optimizer, batch, stepwise,
                                                   keras_floatx)
    loss_k, w_k, t_k = keras_trajectory(model, x, y, dtype, steps, optimizer, batch, keras_floatx)
    rt, at = tolerance(dtype, "loss", keras_floatx)
    rw, aw = tolerance(dtype, "weights")
    diffs = rel_diffs(loss_m, loss_k)
    wrows = [{"layer": key.split("/")[0], "tensor": key.split("/")[1], **compare(p, kw, rw, aw)}
             for (key, p), kw in zip(mt.named_weights(), w_k)]
    result = {"optimizer": optimizer, "optimizer_config": described, "keras_floatx": keras_floatx,
              "hyperparameter_rule": hyper_rule(dtype, keras_floatx), "steps": steps, "batch": batch,
              "distinct_batches": min(max(1, x.shape[0] // batch), steps),
              "judged": "stepwise" if stepwise else "free-running",
              "loss_minicnn": loss_m, "loss_keras": loss_k, "loss_rel_diff": diffs,
              "max_loss_rel_diff": max(diffs, default=0.0), "loss_rtol": rt,
              "weights": wrows, "weights_judged": rw is not None,
              "seconds": {"minicnn": t_m, "keras": t_k}}
    if stepwise:
        judged_loss = series_check("step-by-step loss", loss_m, loss_s, rt, at)
        free_loss = series_check("free-running loss", loss_m, loss_k, None, reason=FREE_RUNNING_FLOAT32)
        result["stepwise"] = {
            "loss_keras": loss_s, "loss_rel_diff": judged_loss["rel_diff"],
            "max_loss_rel_diff": judged_loss["value"],
            "weights": [{"layer": k.split("/")[0], "tensor": k.split("/")[1], "rel": r} for k, r in step_w.items()]}
        loss_64, w_64, _ = keras_trajectory(model, x, y, "float64", steps, optimizer, batch)
        result["float64_context"] = {
            "keras32_vs_keras64_loss": max(rel_diffs(loss_k, loss_64), default=0.0),
            "minicnn32_vs_keras64_loss": max(rel_diffs(loss_m, loss_64), default=0.0),
            "keras32_vs_keras64_weights": max((rel_error(a, b) for a, b in zip(w_k, w_64)), default=0.0)}
        result["checks"] = [
            judged_loss,
            info("step-by-step weights", max(step_w.values(), default=0.0),
                 reason="float32 weights are not judged: 1e-7 gradient differences can move an update "
                        'by far more (Adam where |g| is near epsilon); docs/parity.md, "Tolerances"'),
            free_loss,
            info("free-running weights", max((r["rel"] for r in wrows), default=0.0),
                 reason=NOT_JUDGED_REASON[(dtype, "weights")])]
    else:
        judged_loss = series_check("free-running loss", loss_m, loss_k, rt, at)
        result["checks"] = [judged_loss]  # the weights are judged row by row (result["weights"])
    result["loss_passed"] = judged_loss["passed"]
    result["weights_passed"] = all(r["passed"] for r in wrows) if rw is not None else None
    result["loss_path"] = keras_loss_path(model, x[:batch], y[:batch], dtype) if steps else None
    return result
