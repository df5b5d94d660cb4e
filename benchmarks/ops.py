"""The per-op cases of a model at one batch size: every layer's real input, a gradient for its
output, and the loss. Every framework's worker builds them the same way (same seeds), so all of
them time each layer on the same shapes and the same values.

* A layer's input is what the previous layers produced from a random batch in a training forward
  pass (minicnn's numpy backend, the reference), so a ReLU layer sees realistic zeros.
* Its output gradient is random normal x 0.01.
* Backward is what a train step computes: the layer's input gradient and weight gradients, but
  no input gradient for the first layer (minicnn and Keras both skip it); its FLOPs are
  ``layer.flops(backward=True)`` with the first layer's ``need_dx`` off (``models.describe``).
  The last layer, when it ends in softmax and the loss is cross-entropy, is differentiated from
  its logits, as a train step does (the softmax and the loss fuse).
* ``loss``: forward = the batch loss from the logits; backward = loss and its gradient.
"""

from __future__ import annotations

import numpy as np

LOSS_OP = "loss"


class Case:
    """One op: the layer, its input, an output gradient, and whether backward starts at logits."""

    def __init__(self, index, layer, x, dy, from_logits):
        self.index, self.layer, self.x, self.dy, self.from_logits = index, layer, x, dy, from_logits
        self.name = layer.name
        # Sequential.backward: the first layer's need_dx is off (layers without one compute dx)
        self.need_dx = index > 0 or not hasattr(layer, "need_dx")


def fused_softmax(model) -> bool:
    """The model's loss takes the last layer's logits (softmax + cross-entropy fused)?"""
    last = model.layers[-1]
    return (model.loss is not None and not getattr(model.loss, "from_logits", False)
            and bool(getattr(last, "ends_in_softmax", False)))


def batch_data(model, batch, seed=1):
    """A random input batch and one-hot labels for ``model`` (its dtype and shapes)."""
    rng = np.random.default_rng(seed)
    x = rng.random((batch, *model.input_shape)).astype(model.dtype)
    classes = int(model.layers[-1].output_shape[-1])
    y = np.eye(classes, dtype=model.dtype)[rng.integers(0, classes, batch)]
    return x, y


def cases(model, batch, seed=1):
    """[Case for every layer], (labels, logits-or-output, fused) for the loss op.

    Runs one training forward pass with the numpy backend (the reference) and restores the
    backend that was active."""
    import minicnn.kernels as kernels

    x, y = batch_data(model, batch, seed)
    rng = np.random.default_rng(seed + 1)
    previous = kernels.get_backend().NAME
    kernels.use_backend("numpy")
    try:
        out = []
        fused = fused_softmax(model)
        h = x
        last = len(model.layers) - 1
        for i, layer in enumerate(model.layers):
            y_i = layer.forward(h, training=True)
            dy = (rng.standard_normal((batch, *layer.output_shape)) * 0.01).astype(model.dtype)
            out.append(Case(i, layer, h, dy, fused and i == last))
            h = y_i
        z = model.layers[-1].logits if fused else h
    finally:
        kernels.use_backend(previous)
    return out, (y, np.ascontiguousarray(z), fused)
