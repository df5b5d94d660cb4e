"""One training step, and the guard that stops it before a non-finite update."""

from __future__ import annotations

import math

import numpy as np

from .. import losses
from ..arrays import all_finite
from ..errors import NonFiniteError


def train_on_batch(model, x, y, where: str = ""):
    """Forward, loss, backward, non-finite check, update. Returns [loss, accuracy] (or [loss]).

    ``where`` ("at epoch 2, step 7 (of 600)") goes into the message of a NonFiniteError."""
    model.require_compiled("train_on_batch")
    model._ensure_built(x)
    x = model.check_x(x, "x")
    y = model.check_y(y, x.shape[0], "y")
    # weights a training forward pass updates itself (BatchNormalization's moving statistics):
    # a step the guard stops must leave them as they were, like every other weight
    state = [(p, p.copy()) for p in model.non_trainable_weights()]
    # the whole step on one thread or the pool, whichever measured faster at this batch size
    # (minicnn.kernels.threads: the same bits either way)
    loss, out = model.thread_picker.run(("train", x.shape[0]),
                                        lambda: _step(model, x, y, where, state))
    return [loss, losses.accuracy(y, out)] if model.metrics else [loss]


def _step(model, x, y, where, state):
    """The step after the checks: returns (loss, the model's output)."""
    out = model.forward(x, training=True)
    loss, g, fused = model.loss_and_output_grad(y, out)
    model.backward(g, from_logits=fused)
    guard_finite(model, loss, x, where, restore=state)
    model.optimizer.step(model.named_parameters())
    return loss, out


def guard_finite(model, loss: float, x, where: str, restore=()) -> None:
    """Raise NonFiniteError before the update if the loss or any gradient is NaN/inf, naming the
    first layer where a non-finite value appears (weights, then outputs in forward order, then
    gradients in backward order). ``restore``: (array, saved copy) pairs put back first."""
    bad = None
    if not math.isfinite(loss):
        bad = "loss"
    for layer in model.layers:
        # the verdict of a backward that checked its own gradients (True/False) holds for this
        # step only; None: check them here
        verdict, layer.grads_finite = layer.grads_finite, None
        if verdict is None:
            verdict = bad is not None or all(all_finite(g) for g in layer.grads.values())
        if bad is None and not verdict:
            bad = "gradient"
    if bad is None:
        return
    for p, saved in restore:
        p[...] = saved
    raise NonFiniteError(f"non-finite {bad}{where}; {locate_nonfinite(model, x)}. The weights were "
                         "not updated in this step; the last checkpoint (if any) is intact. "
                         "Try a lower learning rate.")


def locate_nonfinite(model, x) -> str:
    """Where a non-finite value first shows up (only called once something went wrong)."""
    with np.errstate(all="ignore"):
        key = model.first_nonfinite_weight()
        if key is not None:
            return f"it first appears in the weights of layer '{key.split('/')[0]}' ({key})"
        _, outs = model.forward(x, training=False, record=True)
        for layer, out in zip(model.layers, outs):
            if not np.isfinite(out).all():
                return f"it first appears in the output of layer '{layer.name}' ({type(layer).__name__})"
        for layer in reversed(model.layers):
            for k, g in layer.grads.items():
                if not np.isfinite(g).all():
                    return (f"it first appears in the gradient of layer '{layer.name}' "
                            f"({layer.name}/{k}; layers counted in backward order)")
    return "every layer's output is finite: it first appears in the loss"
