"""Bytes moved per train step: an analytic model per layer, and hardware counters when ``perf``
can read them.

**The model** (:func:`layer_traffic`): every op reads each tensor of its maths once and writes each
result once, nothing is reused from cache between ops, and no scratch (im2col, packing, partial
sums) is counted. So it is the *compulsory* traffic of a train step, a lower bound on what any
implementation moves between the cores and memory; the measured time over it is a lower bound on
the bandwidth the step needed. Per sample (``*_per_sample``, times the batch) and per step
(``*_fixed``: the weights), in elements; bytes = elements x the dtype's size. With I, O the
layer's input and output elements per sample, P its weights, T the trainable ones:

=========================== ===================================== ======================================
layer                       forward (training)                    backward
=========================== ===================================== ======================================
Flatten, Reshape            0 (a view)                            0
weighted (Conv2D, Dense,    read x (I) + weights (P), write y (O) read dy (O) + x (I) for dW, write dW
DepthwiseConv2D, BN)                                              (T); dx: read the weights (P), write
                                                                  dx (I), unless it is the first layer
a fused activation          (in the same pass: nothing more)      + read y (O) for its gradient
SeparableConv2D             + write and read the depthwise        + read it for the pointwise dW, write
                            output D                              and read its gradient (3 D)
ReLU, Activation, Dropout   read x (I), write y (O)               read dy (O) + y or the mask (O), write
                                                                  dx (I)
MaxPool, GlobalMaxPool      read x (I), write y (O)               read dy (O) + where the max was (O),
                                                                  write dx (I)
AveragePooling, global      read x (I), write y (O)               read dy (O), write dx (I)
average, ZeroPadding2D
loss (softmax fused)        read logits + labels (2 O_last)       write the gradient (O_last)
Adam (per step)             read w, g, m, v, write w, m, v: 7 T
=========================== ===================================== ======================================

A first layer computes no dx (neither minicnn nor Keras does). **Measured** traffic: last-level
cache misses x 64 bytes from ``perf stat`` (:func:`perf_probe` says whether the counters are
readable here; a VM usually hides them), from the difference of two runs of k and 3k steps so
that start-up cancels.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess

#: layers that only reshape (a view): no traffic
VIEWS = ("Flatten", "Reshape")
#: layers whose backward reads a mask or the output besides dy
MASKED = ("ReLU", "Activation", "Dropout", "MaxPool2D", "MaxPooling2D", "GlobalMaxPooling2D",
          "GlobalMaxPool2D", "LeakyReLU", "PReLU", "ELU", "Softmax")
#: layers with weights whose gradient needs the input
WEIGHTED = ("Conv2D", "Dense", "DepthwiseConv2D", "SeparableConv2D", "BatchNormalization")
#: bytes per cache line (a miss moves one)
LINE = 64


def _n(shape) -> int:
    return int(math.prod(shape)) if shape else 1


def layer_traffic(layer, first: bool = False) -> dict:
    """Elements the layer's training forward and its backward read + write (the module's table):
    {"fwd_per_sample", "fwd_fixed", "bwd_per_sample", "bwd_fixed", "opt_fixed"}."""
    kind = type(layer).__name__
    if layer.input_shape is None or layer.output_shape is None:
        raise ValueError(f"traffic: layer {layer.name!r} ({kind}) has no shapes: build the model first")
    i, o = _n(layer.input_shape), _n(layer.output_shape)
    p = int(sum(w.size for w in layer.params.values()))
    t = int(sum(layer.params[k].size for k in layer.trainable_names))
    if kind in VIEWS:
        return {"fwd_per_sample": 0, "fwd_fixed": 0, "bwd_per_sample": 0, "bwd_fixed": 0, "opt_fixed": 0}
    fwd, fwd_fixed = i + o, p
    bwd, bwd_fixed = o + (0 if first else i), 0
    if kind in WEIGHTED or t:
        bwd += i                      # x, for the weights' gradient
        bwd_fixed += t + (0 if first else p)   # write dW; read the weights for dx
        act = getattr(layer, "activation", None)
        if act not in (None, "linear"):
            bwd += o                  # y (or z) for the fused activation's gradient
        if kind == "SeparableConv2D":
            d = _n(layer.output_shape[:-1]) * int(layer.input_shape[-1]) * int(getattr(layer, "depth_multiplier", 1))
            fwd += 2 * d
            bwd += 3 * d
    elif kind in MASKED:
        bwd += o
    return {"fwd_per_sample": fwd, "fwd_fixed": fwd_fixed, "bwd_per_sample": bwd, "bwd_fixed": bwd_fixed,
            "opt_fixed": 7 * t}


def model_traffic(model) -> dict:
    """Per layer (:func:`layer_traffic`) and the loss, plus totals, in elements:
    {"layers": {name: {...}}, "loss_per_sample", "step_per_sample", "step_fixed",
    "infer_per_sample", "infer_fixed"}. Inference = the forwards (no loss, no backward)."""
    layers = {l.name: layer_traffic(l, first=k == 0) for k, l in enumerate(model.layers)}
    loss = 3 * _n(model.layers[-1].output_shape)
    per = sum(v["fwd_per_sample"] + v["bwd_per_sample"] for v in layers.values()) + loss
    fixed = sum(v["fwd_fixed"] + v["bwd_fixed"] + v["opt_fixed"] for v in layers.values())
    return {"layers": layers, "loss_per_sample": loss, "step_per_sample": per, "step_fixed": fixed,
            "infer_per_sample": sum(v["fwd_per_sample"] for v in layers.values()),
            "infer_fixed": sum(v["fwd_fixed"] for v in layers.values())}


def step_bytes(traffic: dict, batch: int, itemsize: int, what: str = "step") -> int:
    """Bytes of one train step (``what="step"``) or one inference batch (``"infer"``)."""
    return int((batch * traffic[f"{what}_per_sample"] + traffic[f"{what}_fixed"]) * itemsize)


# ----------------------------------------------------------------------------- perf counters
EVENTS = ("LLC-load-misses", "LLC-store-misses")


def parse_perf_csv(text: str) -> dict:
    """{event: count or None} from ``perf stat -x,`` output (None: '<not supported>' or
    '<not counted>')."""
    out = {}
    for line in text.splitlines():
        parts = line.split(",")
        if len(parts) < 3:
            continue
        event = parts[2].strip()
        if event in EVENTS or re.match(r"^[A-Za-z-]+$", event or "-"):
            v = parts[0].strip()
            out[event] = int(float(v)) if re.match(r"^[0-9.]+$", v) else None
    return out


def perf_probe() -> dict:
    """Whether ``perf stat`` can count last-level cache misses here:
    {"available": bool, "reason": str, "events": {...}}."""
    perf = shutil.which("perf")
    if perf is None:
        return {"available": False, "reason": "no perf binary (Debian: linux-perf)", "events": {}}
    try:
        p = subprocess.run([perf, "stat", "-x,", "-e", ",".join(EVENTS), "true"], capture_output=True,
                           text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return {"available": False, "reason": f"perf failed: {type(exc).__name__}: {exc}", "events": {}}
    ev = parse_perf_csv(p.stderr)
    if p.returncode != 0 or not ev or any(ev.get(e) is None for e in EVENTS):
        why = "counters not supported (a VM without PMU passthrough, or perf_event_paranoid)"
        return {"available": False, "reason": f"{why}: {p.stderr.strip()[-300:]}", "events": ev}
    return {"available": True, "reason": "", "events": ev}


def measured_step_bytes(command_for_steps, steps=(5, 15), cwd=None, env=None) -> dict:
    """Last-level-cache misses x 64 per step: ``perf stat`` around ``command_for_steps(k)`` (a
    command line that runs k train steps) for both k, the difference over the extra steps."""
    perf = shutil.which("perf")
    counts = []
    for k in steps:
        p = subprocess.run([perf, "stat", "-x,", "-e", ",".join(EVENTS), *command_for_steps(k)],
                           capture_output=True, text=True, timeout=1800, cwd=cwd, env=env)
        ev = parse_perf_csv(p.stderr)
        if p.returncode != 0 or any(ev.get(e) is None for e in EVENTS):
            return {"error": f"perf stat exit {p.returncode}: {p.stderr.strip()[-500:]}"}
        counts.append(ev)
    extra = steps[1] - steps[0]
    per = {e: (counts[1][e] - counts[0][e]) / extra for e in EVENTS}
    return {"misses_per_step": per, "bytes_per_step": LINE * sum(per.values()), "steps": list(steps)}


def section(R) -> list[str]:
    """The markdown of the traffic section: the model's totals per preset and dtype, and what
    the perf counters measured, or why they could not be read."""
    L = ["## Bytes moved per step\n",
         "Analytic compulsory traffic (`benchmarks/traffic.py`: every op reads its operands and writes its "
         "results once, weights and Adam's state included; no cache reuse between ops, no scratch): a lower "
         "bound on the bytes any implementation moves. The train-step tables show it beside each time as "
         "MB and the GB/s it implies.\n",
         "| model | dtype | train step per sample (kB) | + per step: weights, gradients, Adam (MB) | "
         "inference per sample (kB) |", "|---|---|---|---|---|"]
    for label, by_dt in (R.get("models") or {}).items():
        for dt, d in by_dt.items():
            tr, e = d.get("traffic"), d.get("itemsize", 4)
            if tr:
                L.append(f"| {label} | {dt} | {tr['step_per_sample'] * e / 1e3:.1f} | {tr['step_fixed'] * e / 1e6:.2f} | "
                         f"{tr['infer_per_sample'] * e / 1e3:.1f} |")
    T = R.get("traffic") or {}
    perf = T.get("perf") or {}
    if not T:
        L.append("\nMeasured traffic: not attempted (`--skip traffic`).")
    elif not perf.get("available"):
        L.append(f"\nMeasured traffic: **not measurable here**: `perf stat -e {','.join(EVENTS)}`: "
                 f"{perf.get('reason', '').splitlines()[0] if perf.get('reason') else 'unavailable'}.")
    for fw, m in (T.get("measured") or {}).items():
        if "error" in m:
            L.append(f"\nMeasured traffic of {fw}: error: {m['error'][-300:]}")
        else:
            L.append(f"\nMeasured ({fw}, {m['model']} {m['dtype']} B={m['batch']}, `perf stat` LLC load + store "
                     f"misses x {LINE} bytes, steps {m['steps'][1]} - {m['steps'][0]}): "
                     f"**{m['bytes_per_step'] / 1e6:.1f} MB per step**.")
    return L + [""]
