"""The TensorFlow side of ``minicnn explore``'s comparison: the same model in Keras (same weights,
:func:`reference.convert.to_keras`), every layer's output and dL/d(output) for one input.

minicnn never imports TensorFlow; ``minicnn explore`` builds a :class:`KerasTwin` on the first
comparison request, when TensorFlow and this package are importable.
"""

from __future__ import annotations

import os
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from .convert import to_keras  # noqa: E402


class KerasTwin:
    """Keras's computation of what the explorer shows, for the same input and weights."""

    def __init__(self, model):
        self.kmodel = to_keras(model)
        self.lock = threading.Lock()
        self.version = tf.__version__

    def compute(self, x: np.ndarray, target: int) -> dict:
        """{"outputs": [each layer's output], "grads": [dL/d(output) of each layer but the last],
        "input_grad": dL/dx} for the cross-entropy loss -log p[target] (Keras's own loss)."""
        with self.lock:
            xt = tf.constant(np.asarray(x)[None])
            onehot = tf.one_hot([target], int(self.kmodel.layers[-1].output.shape[-1]), dtype=xt.dtype)
            with tf.GradientTape() as tape:
                tape.watch(xt)
                h, outs = xt, []
                for layer in self.kmodel.layers:
                    h = layer(h, training=False)
                    outs.append(h)
                loss = tf.reduce_mean(tf.keras.losses.categorical_crossentropy(onehot, outs[-1]))
            grads = tape.gradient(loss, [xt] + outs[:-1])
        return {"outputs": [o.numpy()[0] for o in outs], "input_grad": grads[0].numpy()[0],
                "grads": [None if g is None else g.numpy()[0] for g in grads[1:]], "loss": float(loss.numpy())}


def make_twin(model) -> KerasTwin:
    return KerasTwin(model)
