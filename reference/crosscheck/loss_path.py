"""Which cross-entropy Keras's compiled loss computes for a model ending in softmax (information).

Keras's TF backend may take the loss from the logits (the fused softmax + cross-entropy) or as
-log of the probabilities clipped to [1e-7, 1 - 1e-7]; the two differ only where the softmax
saturates. The probe scales the last weighted layer of a copy up (x100, x1000, ...) until the two
values differ clearly, then asks Keras's graph-mode ``evaluate`` (the same ``compute_loss`` as
``train_on_batch``) which one it computes. Both candidate values are minicnn's own losses
(:class:`minicnn.losses.CategoricalCrossentropy`) evaluated on Keras's logits.

The probe runs under ``keras.config.floatx`` = the check's dtype, as the training check does: a
loss of another dtype than the output casts the predictions, and the cast tensor no longer
carries the logits (docs/parity.md, "Loss on softmax outputs").
"""

from __future__ import annotations

import keras
import numpy as np

from minicnn.activations import softmax
from minicnn.losses import CategoricalCrossentropy

from .. import convert
from .environment import floatx

FUSED, CLIPPED = "fused (from logits)", "clipped probabilities"


def keras_logits(kmodel, x) -> np.ndarray:
    """Pre-softmax values (float64) of a Keras model ending in softmax (an activation or a
    Softmax layer)."""
    h = x
    for layer in kmodel.layers[:-1]:
        h = layer(h, training=False)
    last = kmodel.layers[-1]
    if isinstance(last, keras.layers.Softmax):
        return np.asarray(h).astype(np.float64)
    saved = last.activation
    last.activation = keras.activations.linear
    try:
        z = last(h, training=False)
    finally:
        last.activation = saved
    return np.asarray(z).astype(np.float64)


def keras_loss_path(model, x, y, dtype) -> dict | None:
    """{'keras_used', 'minicnn_uses', the probe's values}; None unless the model ends in softmax
    and has a weighted layer to scale."""
    if not getattr(model.layers[-1], "ends_in_softmax", False):
        return None
    ce = CategoricalCrossentropy()
    yy = np.asarray(y, dtype=np.float64)
    for scale in (1e2, 1e3, 1e4, 1e5):
        m = convert.clone(model, dtype, dropout_rate=0.0)
        if not m.trainable_layers:
            return None
        for p in m.trainable_layers[-1].params.values():
            p *= m.dtype.type(scale)
        with floatx(dtype):
            k = convert.to_keras(m)
            z = keras_logits(k, x)
        fused = float(ce.logits_loss_and_grad(yy, z, need_grad=False)[0])
        clipped = float(ce.loss_and_grad(yy, softmax(z), need_grad=False)[0])
        if abs(fused - clipped) > 1e-3 * abs(fused):
            break
    with floatx(dtype):  # a loss of another dtype than the output would lose the logits
        k.compile(loss=keras.losses.CategoricalCrossentropy(), run_eagerly=False, jit_compile=False)
        keras_loss = float(k.evaluate(x, y, batch_size=len(x), verbose=0))
    m.compile("adam", "categorical_crossentropy")
    used = FUSED if abs(keras_loss - fused) <= abs(keras_loss - clipped) else CLIPPED
    return {"scale": scale, "keras_loss": keras_loss, "fused_from_logits": fused, "clipped_probabilities": clipped,
            "keras_used": used, "minicnn_uses": FUSED if m.fused_softmax_loss else CLIPPED, "judged": False}
