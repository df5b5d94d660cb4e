"""The per-layer check: one judged row per (layer, tensor), and two lines of information (the
unpinned gradients and the max-pool ties)."""

from __future__ import annotations

import numpy as np

from minicnn.layers import MaxPool2D

from .compare import compare, rel_error
from .sides import keras_layer_pass, keras_tape_pass, layer_inputs, minicnn_pass
from .tolerances import tolerance

TENSORS = ("out", "dX", "dW", "db")
#: the report's name of each weight's gradient
GRAD_NAMES = {"kernel": "dW", "bias": "db"}


def _weight_names(layer):
    """The layer's weights in Keras ``get_weights`` order."""
    return [k for k in layer.weight_names if k in layer.params]


def layer_rows(model, mine, ref, dtype) -> list[dict]:
    """One judged comparison row per (layer, tensor), from the two sides' :class:`LayerPass`."""
    rt_out, at_out = tolerance(dtype, "out")
    rt_g, at_g = tolerance(dtype, "grad")
    rows = []
    for i, layer in enumerate(model.layers):
        rows.append({"layer": layer.name, "tensor": "out",
                     **compare(mine.outputs[i], ref.outputs[i], rt_out, at_out)})
        rows.append({"layer": layer.name, "tensor": "dX",
                     **compare(mine.input_grads[i], ref.input_grads[i], rt_g, at_g)})
        for k in _weight_names(layer):
            rows.append({"layer": layer.name, "tensor": GRAD_NAMES.get(k, f"d{k}"),
                         **compare(mine.weight_grads[layer.name][k], ref.weight_grads[layer.name][k],
                                   rt_g, at_g)})
    return rows


def end_to_end(model, kmodel, x, g, mine) -> dict:
    """Information: minicnn's input and weight gradients against one unpinned TensorFlow tape
    (each framework differentiating at its own activations; see :mod:`.sides`)."""
    k_dx, k_ws = keras_tape_pass(kmodel, x, g)
    ours = [mine.weight_grads[l.name][k] for l in model.layers for k in _weight_names(l)]
    return {"input_grad_rel": rel_error(mine.input_grads[0], k_dx),
            "max_weight_grad_rel": max((rel_error(a, b) for a, b in zip(ours, k_ws)), default=0.0),
            "judged": False}


def maxpool_ties(model, inputs, rtol) -> dict | None:
    """Information: max-pool windows (every MaxPool2D, at minicnn's inputs to it) whose maximum is
    tied exactly, or nearly: the two largest values differ by no more than ``rtol`` times the
    largest |value| of the layer input (the forward tolerance), so rounding may order them.
    The gaps are the layer's own (:meth:`MaxPool2D.window_gaps`). None without max-pooling."""
    exact = near = total = 0
    per_layer = {}
    for layer, h in zip(model.layers, inputs):
        if not isinstance(layer, MaxPool2D):
            continue
        gap = layer.window_gaps(h)
        e = int((gap == 0).sum())
        nr = int(((gap > 0) & (gap <= rtol * np.abs(h).max())).sum())
        per_layer[layer.name] = {"windows": int(gap.size), "exact_ties": e, "near_ties": nr}
        exact, near, total = exact + e, near + nr, total + int(gap.size)
    if not per_layer:
        return None
    return {"windows": total, "exact_ties": exact, "near_ties": near,
            "share": exact / total if total else 0.0, "per_layer": per_layer, "judged": False}


def layer_check(model, kmodel, x, g, dtype) -> dict:
    """Both sides on images ``x`` under upstream gradient ``g``: {'layers': rows, 'end_to_end':
    information, 'maxpool_ties': information or None}."""
    mine = minicnn_pass(model, x, g)
    pinned = layer_inputs(x, mine)
    ref = keras_layer_pass(kmodel, x, g, pinned=pinned)
    return {"layers": layer_rows(model, mine, ref, dtype),
            "end_to_end": end_to_end(model, kmodel, x, g, mine),
            "maxpool_ties": maxpool_ties(model, pinned, tolerance(dtype, "out")[0])}
