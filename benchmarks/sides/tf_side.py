"""TensorFlow/Keras: the model converted by ``reference.convert.to_keras`` (same architecture, same
weights, same dtype); each Keras layer timed on the minicnn layer's input; a ``tf.function`` train
step (GradientTape + Adam) and forward; Keras's own ``train_on_batch``/``predict_on_batch``.

Per op: forward = ``tf.function(layer(x, training=True))``. Keras has no separate backward, so
backward = (a ``tf.function`` that runs the forward under a GradientTape and takes the gradient
w.r.t. the input, except for the first layer, and the layer's weights) - forward, both medians; the difference also cancels
``tf.function``'s ~0.1-0.3 ms call overhead. A last layer whose minicnn backward starts at the
logits is differentiated through a copy of it with a linear activation. ``loss``: forward = the
loss from the logits, backward = loss and its gradient (measured, no difference).
"""

from __future__ import annotations

import os

from .. import ops as ops_mod
from ..timing import measure, measure_latency


def setup(threads=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    n = threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    tf.config.threading.set_intra_op_parallelism_threads(n)
    return tf


class TFSide:
    def __init__(self):
        import minicnn

        minicnn.use_backend("numpy")  # only to compute the layers' inputs (the reference maths)
        self.tf = setup()

    def info(self) -> dict:
        tf = self.tf
        info = {"version": tf.__version__,
                "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
                "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
                "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS"), "onednn_enabled": None}
        try:  # private, but the only direct answer
            from tensorflow.python.util import _pywrap_util_port

            info["onednn_enabled"] = bool(_pywrap_util_port.IsMklEnabled())
        except Exception as exc:  # noqa: BLE001 - informational only
            info["onednn_enabled"] = f"unknown ({type(exc).__name__})"
        import keras

        info["keras"] = keras.__version__
        return info

    def prepare(self, model):
        from reference.convert import to_keras

        return to_keras(model)

    def _loss(self, model, from_logits):
        import keras

        return getattr(keras.losses, type(model.loss).__name__)(from_logits=from_logits)

    def ops(self, kmodel, model, batch, repeats):
        tf = self.tf
        cases, (y, z, fused) = ops_mod.cases(model, batch)
        res = {}
        for c in cases:
            kl = kmodel.get_layer(c.name)
            kb = _linear_copy(kl) if c.from_logits else kl
            x, dy = tf.constant(c.x), tf.constant(c.dy)
            fwd_fn = tf.function(lambda t, kl=kl: kl(t, training=True))

            def fb(t, g, kb=kb, need_dx=c.need_dx):
                with tf.GradientTape() as tape:
                    tape.watch(t)
                    out = kb(t, training=True)
                wrt = [t, *kb.trainable_variables] if need_dx else list(kb.trainable_variables)
                return tape.gradient(out, wrt, output_gradients=g)

            fb_fn = tf.function(fb)
            fwd = measure(lambda: fwd_fn(x), repeats["op"])
            both = measure(lambda: fb_fn(x, dy), repeats["op"])
            res[c.name] = {"fwd": fwd, "fwd_bwd": both, "bwd": _difference(both, fwd),
                           "bwd_from_logits": c.from_logits}
        loss_fn = self._loss(model, fused)
        yt, zt = tf.constant(y), tf.constant(z)
        lf = tf.function(lambda a, b: loss_fn(a, b))

        def lb(a, b):
            with tf.GradientTape() as tape:
                tape.watch(b)
                v = loss_fn(a, b)
            return v, tape.gradient(v, b)

        lb_fn = tf.function(lb)
        res[ops_mod.LOSS_OP] = {"fwd": measure(lambda: lf(yt, zt), repeats["op"]),
                                "bwd": measure(lambda: lb_fn(yt, zt), repeats["op"]), "from_logits": fused}
        return res

    def train_step(self, kmodel, model, batch, repeats):
        import keras

        tf = self.tf
        x, y = ops_mod.batch_data(model, batch)
        x, y = tf.constant(x), tf.constant(y)
        opt = keras.optimizers.Adam()
        loss_fn = self._loss(model, False)

        @tf.function
        def step(xb, yb):
            with tf.GradientTape() as tape:
                loss = loss_fn(yb, kmodel(xb, training=True))
            grads = tape.gradient(loss, kmodel.trainable_variables)
            opt.apply_gradients(zip(grads, kmodel.trainable_variables))
            return loss

        out = measure(lambda: step(x, y), repeats["step"], warmup=3)
        kmodel.compile(optimizer="adam", loss=type(model.loss).__name__, metrics=["accuracy"])
        out["keras_train_on_batch"] = measure(lambda: kmodel.train_on_batch(x, y),
                                              max(3, repeats["step"] // 2), warmup=3)
        return out

    def infer(self, kmodel, model, batch, repeats):
        tf = self.tf
        x = tf.constant(ops_mod.batch_data(model, batch, seed=2)[0])
        fn = tf.function(lambda t: kmodel(t, training=False))
        out = measure(lambda: fn(x), repeats["infer"])
        out["keras_predict_on_batch"] = measure(lambda: kmodel.predict_on_batch(x),
                                                max(2, repeats["infer"] // 2))
        return out

    def latency(self, kmodel, model, repeats):
        """One image: Keras ``model(x)`` (eager call), ``predict_on_batch``, and a ``tf.function``
        forward (the fastest TensorFlow way; what the inference section times)."""
        tf = self.tf
        x = tf.constant(ops_mod.batch_data(model, 1, seed=3)[0])
        fn = tf.function(lambda t: kmodel(t, training=False))
        n = repeats["latency"]
        return {"model_call": measure_latency(lambda: kmodel(x, training=False), n),
                "predict_on_batch": measure_latency(lambda: kmodel.predict_on_batch(x), n),
                "tf_function": measure_latency(lambda: fn(x), n)}


def _linear_copy(kl):
    """The same Keras layer with a linear activation (same weights): its gradient from logits."""
    cfg = dict(kl.get_config())
    cfg["activation"] = "linear"
    cfg["name"] = kl.name + "_logits"
    copy = type(kl).from_config(cfg)
    copy.build(tuple(kl.input.shape))
    copy.set_weights(kl.get_weights())
    return copy


def _difference(both: dict, fwd: dict) -> dict:
    """(forward + backward) - forward, as a timing dict with the medians' difference (the spread
    is the combined one's, shifted). A difference under 5% of the combined time (or 0.01 ms) is
    below what two medians resolve: then no median, ``unresolved``."""
    d = both["median_ms"] - fwd["median_ms"]
    shift = fwd["median_ms"]
    if d < max(0.01, 0.05 * both["median_ms"]):
        return {"unresolved": True, "difference_ms": d, "derived": "fwd_bwd - fwd"}
    return {"median_ms": d, "min_ms": max(both["min_ms"] - shift, 0.0),
            "max_ms": max(both["max_ms"] - shift, 0.0), "q1_ms": max(both["q1_ms"] - shift, 0.0),
            "q3_ms": max(both["q3_ms"] - shift, 0.0), "n": both["n"],
            "discarded": both["discarded"] + fwd["discarded"], "noisy": both["noisy"] or fwd["noisy"],
            "derived": "fwd_bwd - fwd"}

