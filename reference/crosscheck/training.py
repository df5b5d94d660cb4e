"""The training check: K optimizer steps on identical batches in both frameworks.

Both sides train a copy with Dropout disabled (rate 0: masks cannot be shared between
frameworks), with the same optimizer (Keras's defaults; the learning rate as its float32 value,
:data:`LEARNING_RATES`) and categorical cross-entropy. minicnn runs its own
``Sequential.train_on_batch``; Keras runs ``compile(..., jit_compile=False)`` +
``train_on_batch`` (a graph-mode ``tf.function``) under ``keras.config.floatx`` = the check's
dtype. For a model ending in softmax both take the loss from the logits (:mod:`.loss_path`
verifies Keras's choice).

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

#: learning rates of the training check, as float32 values. Keras keeps the learning rate in a
#: ``floatx`` variable, and minicnn (like Keras under the default floatx) rounds it through
#: float32; the check sets floatx to its dtype, so it hands Keras the already-rounded value.
LEARNING_RATES = {"adam": float(np.float32(0.001)), "sgd": float(np.float32(0.01))}


def optimizer_pair(name):
    """(minicnn optimizer, Keras optimizer, description) with the same hyperparameters."""
    if name == "adam":
        lr = LEARNING_RATES["adam"]
        return (optimizers.Adam(learning_rate=lr), keras.optimizers.Adam(learning_rate=lr),
                f"Adam(learning_rate={lr!r}, beta_1=0.9, beta_2=0.999, epsilon=1e-07)")
    if name == "sgd":
        lr = LEARNING_RATES["sgd"]
        return (optimizers.SGD(learning_rate=lr), keras.optimizers.SGD(learning_rate=lr),
                f"SGD(learning_rate={lr!r}, momentum=0.0)")
    raise ValueError(f"optimizer must be 'adam' or 'sgd', got {name!r}")


def batches(x, y, steps, batch):
    """Step k's batch: the k-th block of ``batch`` samples, cycling when there are fewer."""
    n = max(1, x.shape[0] // batch)
    for k in range(steps):
        j = k % n
        yield x[j * batch:(j + 1) * batch], y[j * batch:(j + 1) * batch]


def _compiled_keras(model, kopt, dtype):
    """A compiled Keras twin of minicnn ``model`` (weights copied), built under ``floatx``."""
    with floatx(dtype):
        k = convert.to_keras(model)
        k.compile(optimizer=kopt, loss=keras.losses.CategoricalCrossentropy(), run_eagerly=False,
                  jit_compile=False)
    return k


def keras_trajectory(model, x, y, dtype, steps, optimizer, batch):
    """(losses, weights, seconds) of ``steps`` Keras ``train_on_batch`` calls on a copy of
    ``model`` in ``dtype`` (dropout off), with ``keras.config.floatx`` set to ``dtype``."""
    _, kopt, _ = optimizer_pair(optimizer)
    kt = _compiled_keras(convert.clone(model, dtype, dropout_rate=0.0), kopt, dtype)
    xd, yd = x.astype(dtype), y.astype(dtype)
    with floatx(dtype):
        t0 = time.perf_counter()
        losses = [float(np.asarray(kt.train_on_batch(xb, yb))) for xb, yb in batches(xd, yd, steps, batch)]
        return losses, kt.get_weights(), time.perf_counter() - t0


def sync_keras(mt, mopt, kt, kopt, keys):
    """Copy minicnn's weights and optimizer state (step count, Adam moments) into Keras."""
    kt.set_weights(mt.get_weights())
    kopt.iterations.assign(mopt.iterations)
    if isinstance(kopt, keras.optimizers.Adam):
        for i, (key, p) in enumerate(zip(keys, mt.get_weights())):
            kopt._momentums[i].assign(mopt.slots["m"].get(key, np.zeros_like(p)))
            kopt._velocities[i].assign(mopt.slots["v"].get(key, np.zeros_like(p)))


def _minicnn_run(model, x, y, dtype, steps, optimizer, batch, stepwise):
    """minicnn's free-running trajectory; with ``stepwise`` a Keras twin takes every step from
    minicnn's state. Returns (minicnn model, losses, seconds, Keras stepwise losses, max weight
    rel diff after each stepwise step per weight)."""
    mopt, kopt, _ = optimizer_pair(optimizer)
    mt = convert.clone(model, dtype, dropout_rate=0.0)
    mt.compile(mopt, "categorical_crossentropy")
    keys = [k for k, _, _ in mt.named_parameters()]
    if stepwise:
        ks = _compiled_keras(mt, kopt, dtype)
        with floatx(dtype):
            kopt.build(ks.trainable_variables)
    loss_m, loss_s, step_w, t_m = [], [], [0.0] * len(keys), 0.0
    for xb, yb in batches(x, y, steps, batch):
        if stepwise:
            sync_keras(mt, mopt, ks, kopt, keys)
        t0 = time.perf_counter()
        loss_m.append(float(mt.train_on_batch(xb, yb)[0]))
        t_m += time.perf_counter() - t0
        if stepwise:
            with floatx(dtype):
                loss_s.append(float(np.asarray(ks.train_on_batch(xb, yb))))
            for i, (wm, wk) in enumerate(zip(mt.get_weights(), ks.get_weights())):
                step_w[i] = max(step_w[i], rel_error(wm, wk))
    return mt, loss_m, t_m, loss_s, dict(zip(keys, step_w))


def training_check(model, x, y, dtype, steps, optimizer, batch) -> dict:
    """K optimizer steps in both frameworks; see the module docstring for what is judged.

    ``checks`` lists the training lines of the verdict, each with ``judged`` and ``rtol``;
    ``weights`` holds one row per weight after K free-running steps, judged in float64 only (in
    float32 they are summarised by a ``checks`` line that is not judged)."""
    stepwise = dtype == "float32"
    _, _, described = optimizer_pair(optimizer)
    mt, loss_m, t_m, loss_s, step_w = _minicnn_run(model, x, y, dtype, steps, optimizer, batch, stepwise)
    loss_k, w_k, t_k = keras_trajectory(model, x, y, dtype, steps, optimizer, batch)
    rt, at = tolerance(dtype, f"loss/{optimizer}")
    rw, aw = tolerance(dtype, f"weights/{optimizer}")
    diffs = rel_diffs(loss_m, loss_k)
    wrows = [{"layer": key.split("/")[0], "tensor": key.split("/")[1], **compare(p, kw, rw, aw)}
             for (key, p, _), kw in zip(mt.named_parameters(), w_k)]
    result = {"optimizer": optimizer, "optimizer_config": described, "steps": steps, "batch": batch,
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
                 reason=NOT_JUDGED_REASON[(dtype, f"weights/{optimizer}")])]
    else:
        judged_loss = series_check("free-running loss", loss_m, loss_k, rt, at)
        result["checks"] = [judged_loss]  # the weights are judged row by row (result["weights"])
    result["loss_passed"] = judged_loss["passed"]
    result["weights_passed"] = all(r["passed"] for r in wrows) if rw is not None else None
    result["loss_path"] = keras_loss_path(model, x[:batch], y[:batch], dtype) if steps else None
    return result
