"""The two sides of the per-layer check: each layer's output, input gradient (dX) and weight
gradients (dW, db) under the upstream gradient ``G`` at the model output (the scalar
``sum(output * G)``).

* minicnn: the model's own passes, unchanged — ``Network.forward(x, training=True,
  record=True)`` then ``Network.backward(G, need_input_grad=True, record=True)``. Nothing of the
  model's loop is repeated here: minicnn needs no per-layer drive, because the pinning that
  makes the comparison well posed happens on the Keras side (below).
* Keras: the layers called one by one in training mode, as minicnn's (both copies have
  Dropout rate 0, so training mode is deterministic; BatchNormalization normalises with the
  batch's statistics on both sides), each
  vector-Jacobian product in its own ``GradientTape`` at *minicnn's* input to that layer, the
  gradients chained through TensorFlow alone. A one-tape pass (each framework at its own
  activations) is kept for the information line "without pinning".

Why pin: the gradient is discontinuous at ReLU kinks and max-pool ties. A float32 max-pool
window whose two largest inputs differ by less than rounding routes its whole gradient to
whichever cell the framework's own forward pass made larger; evaluated at the same point, both
frameworks differentiate the same function (docs/parity.md, "Max-pool near-ties").
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import tensorflow as tf


class LayerPass(NamedTuple):
    """One side's per-layer quantities, in forward order."""

    outputs: list        # each layer's output (Keras: at minicnn's input to it, when pinned)
    input_grads: list    # each layer's dX (the first layer's w.r.t. the images)
    weight_grads: dict   # {layer name: {'kernel': dW, 'bias': db, ...}} for trainable weights


def minicnn_pass(model, x, g) -> LayerPass:
    """minicnn's forward (training mode, recording every layer's output) and backward from ``g``
    (recording every layer's input gradient, the first layer's included).

    ``model`` must have no active dropout: the crosscheck uses a copy whose Dropout rates are 0
    (a training forward with rate 0 is the identity and keeps what backward needs)."""
    _, outputs = model.forward(x, training=True, record=True)
    # the scalar is sum(output * G): no weight penalties (the training check covers those)
    _, input_grads = model.backward(g, need_input_grad=True, record=True, penalties=False)
    weight_grads = {l.name: {k: np.array(v) for k, v in l.grads.items()} for l in model.layers if l.grads}
    return LayerPass(outputs, input_grads, weight_grads)


def layer_inputs(x, side: LayerPass) -> list:
    """Each layer's input on one side: the images, then every layer's output but the last."""
    return [x] + side.outputs[:-1]


def _weight_key(variable) -> str:
    """'kernel' or 'bias' from a Keras variable's name ('dense/kernel:0' or 'kernel')."""
    return variable.name.rsplit("/", 1)[-1].split(":")[0]


def keras_layer_pass(kmodel, x, g, pinned=None) -> LayerPass:
    """The same quantities from TensorFlow, layer by layer.

    Layer i's input gradient is layer i-1's upstream gradient, each VJP taken in its own tape.
    With ``pinned`` (minicnn's input to every layer, :func:`layer_inputs`) each layer's output
    and VJP are evaluated at minicnn's input to it, so that every row measures that layer's own
    arithmetic (an error model per layer), not what earlier layers' rounding did to its input:
    in float32 a BatchNormalization amplifies its input's relative rounding by max|x|/max|x -
    mean|, which can be 1e2 on real activations. Without ``pinned`` the outputs are chained
    through TensorFlow alone (the end-to-end difference is then :func:`keras_tape_pass`'s)."""
    h = tf.constant(x)
    outputs = []
    for layer in kmodel.layers:
        h = layer(h, training=True)
        outputs.append(h.numpy())
    n = len(kmodel.layers)
    inputs = pinned if pinned is not None else [x] + outputs[:-1]
    dy = tf.constant(g)
    dxs = [None] * n
    at_pinned = [None] * n
    grads: dict = {}
    for i in reversed(range(n)):
        layer = kmodel.layers[i]
        xi = tf.constant(inputs[i])
        with tf.GradientTape() as tape:
            tape.watch(xi)
            yi = layer(xi, training=True)
        at_pinned[i] = yi.numpy()
        ws = list(layer.trainable_weights)
        res = tape.gradient(yi, [xi] + ws, output_gradients=dy)
        dy = res[0]
        dxs[i] = dy.numpy()
        for w, gr in zip(ws, res[1:]):
            grads.setdefault(layer.name, {})[_weight_key(w)] = gr.numpy()
    return LayerPass(at_pinned if pinned is not None else outputs, dxs, grads)


def keras_tape_pass(kmodel, x, g):
    """Pure-TensorFlow gradients of ``sum(output * G)`` w.r.t. the images and every weight
    (Keras ``get_weights`` order), the layers called one by one inside a single tape (no
    pinning). Returns (dX, [dW or db, ...], output)."""
    xs = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xs)
        h = xs
        for layer in kmodel.layers:
            h = layer(h, training=True)
        scalar = tf.reduce_sum(h * tf.constant(g))
    ws = [w for l in kmodel.layers for w in l.trainable_weights]
    res = tape.gradient(scalar, [xs] + ws)
    return res[0].numpy(), [r.numpy() for r in res[1:]], h.numpy()
