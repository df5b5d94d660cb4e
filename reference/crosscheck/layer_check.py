"""The per-layer check: one judged row per (layer, tensor), and two lines of information (the
unpinned gradients and the max-pool ties)."""

from __future__ import annotations

import numpy as np

from minicnn.layers import MaxPool2D

from .compare import compare, rel_error
from .sides import keras_layer_pass, keras_tape_pass, layer_inputs, minicnn_pass
from .tolerances import reduction_rtol, tolerance

TENSORS = ("out", "dX", "dW", "db")
#: the report's name of each weight's gradient
GRAD_NAMES = {"kernel": "dW", "bias": "db"}


def _weight_names(layer):
    """The layer's trainable weights (those with gradients), in Keras order."""
    return layer.trainable_names


def layer_rows(model, mine, ref, dtype, inputs, tolerances=None) -> list[dict]:
    """One judged comparison row per (layer, tensor), from the two sides' :class:`LayerPass`.

    A layer's output tolerance is the table's, or the layer's own floor for two correct
    implementations on this input when larger (``Layer.output_rtol_floor``: 0 for most layers;
    BatchNormalization's batch statistics, kappa u N*H*W / 16), stated in the row's
    ``rtol_floor``. A weight gradient's tolerance grows with the length of its reduction
    (:data:`.tolerances.REDUCTION_RULE`; the row's ``reduction_terms`` and ``rtol_table``).
    ``tolerances`` ({'out': (rtol, atol), 'grad': ...}) replaces the table (tests)."""
    rt_out, at_out = tolerances["out"] if tolerances else tolerance(dtype, "out")
    rt_g, at_g = tolerances["grad"] if tolerances else tolerance(dtype, "grad")
    rows = []
    for i, layer in enumerate(model.layers):
        floor = layer.output_rtol_floor(inputs[i], np.dtype(dtype))
        rows.append({"layer": layer.name, "tensor": "out", "rtol_floor": floor,
                     **compare(mine.outputs[i], ref.outputs[i], max(rt_out, floor), at_out)})
        rows.append({"layer": layer.name, "tensor": "dX",
                     **compare(mine.input_grads[i], ref.input_grads[i], rt_g, at_g)})
        out = np.asarray(mine.outputs[i])
        terms = out.size // out.shape[-1] if out.ndim else 1  # batch x output positions
        rt_w = rt_g if tolerances else reduction_rtol(rt_g, dtype, terms)
        for k in _weight_names(layer):
            rows.append({"layer": layer.name, "tensor": GRAD_NAMES.get(k, f"d{k}"), "reduction_terms": terms,
                         "rtol_table": rt_g,
                         **compare(mine.weight_grads[layer.name][k], ref.weight_grads[layer.name][k],
                                   rt_w, at_g)})
    return rows


def end_to_end(model, kmodel, x, g, mine) -> dict:
    """Information: minicnn's input and weight gradients against one unpinned TensorFlow tape
    (each framework differentiating at its own activations; see :mod:`.sides`)."""
    k_dx, k_ws, k_out = keras_tape_pass(kmodel, x, g)
    ours = [mine.weight_grads[l.name][k] for l in model.layers for k in _weight_names(l)]
    return {"output_rel": rel_error(mine.outputs[-1], k_out),
            "input_grad_rel": rel_error(mine.input_grads[0], k_dx),
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
    return {"layers": layer_rows(model, mine, ref, dtype, pinned),
            "end_to_end": end_to_end(model, kmodel, x, g, mine),
            "maxpool_ties": maxpool_ties(model, pinned, tolerance(dtype, "out")[0])}
