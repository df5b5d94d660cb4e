"""``--bisect``: the first training step at which a float32 run leaves the float64 run.

Two free-running minicnn trajectories start from the same weights (the model's, rounded to
float32 for the float32 run) and take the same K batches with the same optimizer: one in float32,
one in float64 (learning rate held in each run's own dtype). Their distance after step k is

    d(k) = max over weights w of max|w32 - w64| / max|w64|      (normwise, as the report's rows)

and the run *leaves* float64 at the first step s with d(s) > rtol (default: the float32 loss
tolerance, 1e-4, :data:`DEFAULT_RTOL`). The weight with the largest distance at s is named.

How (and why not a linear scan with a comparison at every step): the runs are deterministic (same
backend and thread count give bit-identical steps; :func:`bisect_steps` checks it on every replay),
so any step's state can be rebuilt by replaying from an earlier saved state. The forward pass
runs all K steps once, measures d at every C-th step (C = ceil(sqrt K), the checkpoints) and keeps
the state of both runs at the last checkpoint that was still within rtol: memory for two states,
not K. The first checkpoint interval (lo, hi] with d(lo) <= rtol < d(hi) is then bisected: each
probe restores the saved state, replays up to its step and measures d there; a probe within rtol
becomes the new saved state. Cost: K steps + at most C log2 C replayed steps (O(K) for C = sqrt
K); re-running from the start for every probe would cost O(K log K). The step found is a
crossing (d(s-1) <= rtol < d(s)) inside that interval, and the first one when d does not rise
above rtol and fall back between measurements: d is measured at the checkpoints and the probes
only (the loss difference at every step). Real float32-vs-float64 curves are not monotone (a
small conv net under Adam: 1.8e-7, 1.7e-6, 1.0e-6, 1.2e-6, ... over its first steps), so an
excursion between checkpoints can be missed; ``checkpoint_every=1`` (``--bisect-every 1``)
measures every step, a linear scan that finds the first crossing exactly for the same K steps
and K measurements (a measurement costs one pass over the weights, far less than a step).

Optionally (``keras=True``) Keras's float32 run (compile + train_on_batch, the training check's)
takes the same batches and is compared with the minicnn float64 run at every step (a linear
scan: Keras's optimizer state is not saved and restored here, and the comparison is cheap next
to a step).

``after_step(k, model)`` is called after the float32 run's step k (1-based), on the forward pass
and on every replay: tests inject a fault through it and check that it is found at its step.
Shapes: ``x`` (N, H, W, C) and one-hot ``y`` (N, classes); step k uses the k-th block of
``batch`` samples (:func:`.training.batches`).
"""

from __future__ import annotations

import math
import time

import numpy as np

from .. import convert
from .environment import floatx
from .training import _compiled_keras, batches, optimizer_pair

#: the default threshold: the float32 loss tolerance of the training check (TOLERANCES)
DEFAULT_RTOL = 1e-4

RULE = ("d(k) = max over weights of max|w32 - w64| / max|w64| after step k; the float32 run leaves float64 at "
        "the first k with d(k) > rtol; found by bisection over saved states (checkpoints every C steps, "
        "default ceil(sqrt K); replays checked bit-exact)")


class Run:
    """One free-running minicnn trajectory in ``dtype``: a copy of ``model`` and its optimizer."""

    def __init__(self, model, dtype, optimizer, data, after_step=None):
        self.dtype = dtype
        self.model = convert.clone(model, dtype, dropout_rate=0.0)
        self.opt = optimizer_pair(optimizer, dtype)[0]
        self.model.compile(self.opt, "categorical_crossentropy")
        self.data = [(xb.astype(dtype), yb.astype(dtype)) for xb, yb in data]
        self.after_step = after_step
        self.k = 0  # steps taken

    def step(self) -> float:
        xb, yb = self.data[self.k]
        loss = float(self.model.train_on_batch(xb, yb)[0])
        self.k += 1
        if self.after_step is not None:
            self.after_step(self.k, self.model)
        return loss

    def state(self):
        return (self.k, [w.copy() for w in self.model.get_weights()],
                {n: np.array(v) for n, v in self.opt.get_state().items()})

    def restore(self, state) -> None:
        self.k, weights, opt = state
        self.model.set_weights([w.copy() for w in weights])
        self.opt.set_state(opt)


def distance(mine, ref) -> dict:
    """d = the largest normwise relative difference over the weights of two models with the same
    layers, the weight it is at, and every weight's."""
    per = {}
    for (key, a), (_, b) in zip(mine.named_weights(), ref.named_weights()):
        b64 = np.asarray(b, np.float64)
        top = float(np.max(np.abs(b64))) if b64.size else 0.0
        d = float(np.max(np.abs(np.asarray(a, np.float64) - b64))) if b64.size else 0.0
        per[key] = d / top if top > 0 else (0.0 if d == 0 else float("inf"))
    worst = max(per, key=per.get) if per else None
    return {"d": per[worst] if worst else 0.0, "worst": worst, "per_weight": per}


def _measure(r32, r64, curve, how):
    d = distance(r32.model, r64.model)
    curve[r32.k] = {"step": r32.k, "d": d["d"], "worst": d["worst"], "how": how, "per_weight": d["per_weight"]}
    return d


def bisect_steps(model, x, y, steps, optimizer="adam", batch=32, rtol=DEFAULT_RTOL, checkpoint_every=None,
                 after_step=None, keras=False) -> dict:
    """Where the float32 run leaves the float64 run (module docstring); a JSON-ready dict:
    ``step`` (None when it never does within ``steps``), ``weight``, ``d`` there, ``curve`` (d at
    every measured step, sorted), ``loss_rel_diff`` (every step), ``cost`` (steps run and
    replayed), ``replays_exact`` and, with ``keras``, ``keras`` (the same against Keras float32)."""
    if steps < 1:
        raise ValueError(f"--bisect needs --steps >= 1, got {steps}")
    if not rtol > 0:
        raise ValueError(f"the bisection's rtol must be > 0, got {rtol}")
    if checkpoint_every is not None and checkpoint_every < 1:
        raise ValueError(f"the bisection's checkpoint spacing must be >= 1, got {checkpoint_every}")
    t0 = time.perf_counter()
    if not model.built:
        model.build()
    data = list(batches(np.asarray(x), np.asarray(y), steps, batch))
    r32 = Run(model, "float32", optimizer, data, after_step)
    r64 = Run(model, "float64", optimizer, data)
    c = int(checkpoint_every or math.ceil(math.sqrt(steps)))
    curve, loss32, loss64 = {}, [], []
    saved = (r32.state(), r64.state())  # the last checkpoint still within rtol (step 0 is)
    interval = None
    kr = _KerasRun(model, optimizer, data) if keras else None
    for k in range(1, steps + 1):
        loss32.append(r32.step())
        loss64.append(r64.step())
        if kr is not None:
            kr.step(r64.model)
        if k % c == 0 or k == steps:
            d = _measure(r32, r64, curve, "checkpoint")
            if interval is None:
                if d["d"] > rtol:
                    interval = [saved[0][0], k]
                else:
                    saved = (r32.state(), r64.state())
    replayed, exact = 0, True
    found = None
    if interval is not None:
        lo, hi = interval
        while hi - lo > 1:
            mid = (lo + hi) // 2
            r32.restore(saved[0])
            r64.restore(saved[1])
            while r32.k < mid:
                a, b = r32.step(), r64.step()
                exact = exact and a == loss32[r32.k - 1] and b == loss64[r64.k - 1]
                replayed += 1
            if _measure(r32, r64, curve, "bisection")["d"] > rtol:
                hi = mid
            else:
                lo, saved = mid, (r32.state(), r64.state())
        found = hi
    rows = sorted(curve.values(), key=lambda p: p["step"])
    out = {"rule": RULE, "rtol": rtol, "steps": steps, "optimizer": optimizer, "batch": batch,
           "checkpoint_every": c, "interval": interval, "step": found,
           "weight": curve[found]["worst"] if found else None, "d": curve[found]["d"] if found else None,
           "curve": [{k: p[k] for k in ("step", "d", "worst", "how")} for p in rows],
           "loss_float32": loss32, "loss_float64": loss64,
           "loss_rel_diff": [abs(a - b) / abs(b) if b else abs(a - b) for a, b in zip(loss32, loss64)],
           "cost": {"steps": steps, "replayed_steps": replayed, "measurements": len(rows)},
           "replays_exact": exact, "judged": False}
    if found:
        out["per_weight_at_step"] = curve[found]["per_weight"]
    if kr is not None:
        out["keras"] = kr.result(rtol)
    out["seconds"] = time.perf_counter() - t0
    return out


class _KerasRun:
    """Keras's float32 trajectory (the training check's compile + train_on_batch), compared with
    minicnn's float64 run after every step."""

    def __init__(self, model, optimizer, data):
        _, kopt, _ = optimizer_pair(optimizer, "float32")
        self.km = _compiled_keras(convert.clone(model, "float32", dropout_rate=0.0), kopt, "float32", "float32")
        self.data = [(xb.astype("float32"), yb.astype("float32")) for xb, yb in data]
        self.curve = []

    def step(self, ref_model) -> None:
        xb, yb = self.data[len(self.curve)]
        with floatx("float32"):
            self.km.train_on_batch(xb, yb)
        per = {}
        for (key, b), a in zip(ref_model.named_weights(), self.km.get_weights()):
            b64 = np.asarray(b, np.float64)
            top = float(np.max(np.abs(b64)))
            d = float(np.max(np.abs(np.asarray(a, np.float64) - b64)))
            per[key] = d / top if top > 0 else (0.0 if d == 0 else float("inf"))
        worst = max(per, key=per.get)
        self.curve.append({"step": len(self.curve) + 1, "d": per[worst], "worst": worst})

    def result(self, rtol) -> dict:
        first = next((p for p in self.curve if p["d"] > rtol), None)
        return {"what": "Keras float32 vs minicnn float64, every step (linear scan)", "curve": self.curve,
                "step": first["step"] if first else None, "weight": first["worst"] if first else None,
                "d": first["d"] if first else None}


def _fmt(v):
    return "-" if v is None else "0" if v == 0 else f"{v:.2e}"


def bisect_lines(b: dict) -> list[str]:
    """The report's lines: the step found (or not), the cost, and the growth curve."""
    lines = ["", f"bisect: float32 vs float64 minicnn runs, free-running from the same start, {b['steps']} steps of "
             f"{b['optimizer']}, batch {b['batch']}; rtol {_fmt(b['rtol'])} (information, not judged)",
             f"  rule: {b['rule']}"]
    if b["step"]:
        lines.append(f"  leaves float64 at step {b['step']}: {b['weight']} at {_fmt(b['d'])} of max|w64| "
                     f"(checkpoint interval ({b['interval'][0]}, {b['interval'][1]}])")
    else:
        lines.append(f"  stays within rtol {_fmt(b['rtol'])} for all {b['steps']} steps")
    cost = b["cost"]
    lines.append(f"  cost: {cost['steps']} steps + {cost['replayed_steps']} replayed, {cost['measurements']} "
                 f"measurements; replays bit-exact: {'yes' if b['replays_exact'] else 'NO'}")
    lines.append("  d(k): " + ", ".join(f"{p['step']}: {_fmt(p['d'])}" for p in b["curve"]))
    worst = max(range(len(b["loss_rel_diff"])), key=b["loss_rel_diff"].__getitem__)
    lines.append(f"  loss |l32 - l64| / |l64| at every step: max {_fmt(b['loss_rel_diff'][worst])} at step {worst + 1}, "
                 f"last {_fmt(b['loss_rel_diff'][-1])}")
    k = b.get("keras")
    if k:
        where = (f"leaves at step {k['step']} ({k['weight']}, {_fmt(k['d'])})" if k["step"]
                 else f"stays within rtol for all {b['steps']} steps")
        lines.append(f"  {k['what']}: {where}; d(k) at the checkpoints: "
                     + ", ".join(f"{p['step']}: {_fmt(p['d'])}" for p in k["curve"]
                                 if p["step"] % b["checkpoint_every"] == 0 or p["step"] == b["steps"]))
    return lines
