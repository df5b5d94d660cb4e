"""Layer-by-layer and training-trajectory comparison of a minicnn model with Keras/TensorFlow.

:func:`crosscheck` puts the same weights and the same real images into both frameworks and
reports, per layer, the output, the gradient w.r.t. the layer input (dX) and the kernel (dW) and
bias (db) gradients; then it runs K optimizer steps in both on identical batches and compares
the loss at every step and every weight at the end. :func:`format_report` renders the report;
``minicnn crosscheck`` (:mod:`minicnn.cli.crosscheck`) is the command-line front end.

How the two sides are driven (see docs/parity.md):

* Per-layer check. An upstream gradient ``G ~ U(-1, 1)`` (seeded) is applied at the model
  output, i.e. the scalar is ``sum(output * G)``. TensorFlow calls the Keras layers one by one,
  each inside a ``GradientTape``, chaining its own gradients back from ``G``; every layer's VJP
  is taken at minicnn's input to that layer (so a float32 max-pool near-tie cannot route the
  gradient differently; see :func:`keras_layer_pass`). minicnn runs ``forward(training=True)``
  layer by layer, then ``backward`` from ``G``.
  Dropout runs in inference mode on both sides: Keras layers are called with
  ``training=False``; minicnn's check runs on a copy whose Dropout rates are 0 (a training
  forward with rate 0 is the identity and keeps what backward needs).
* Training check. Both sides get a copy with Dropout disabled (rate 0: masks cannot be shared
  between frameworks), the same optimizer (Keras's defaults; the learning rate given as its
  float32 value, see :func:`optimizer_pair`) and categorical cross-entropy. float64 is judged free-running, float32
  step by step (see :func:`training_check`).
  Keras runs ``compile(..., jit_compile=False)`` + ``train_on_batch`` (a graph-mode
  ``tf.function``), where a model ending in softmax gets its loss from the logits; minicnn's
  ``train_on_batch`` does the same. ``keras.config.floatx`` is set to the check's dtype for
  the duration, so Keras's learning-rate variable, loss and metrics use it too.

Every tolerance lives in :data:`TOLERANCES`; a row passes when
``max|d| <= atol + rtol * max|ref|`` (atol is 0: an all-zero reference must be matched exactly).
"""

from __future__ import annotations

import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from minicnn.layers import MaxPool2D  # noqa: E402

#: (dtype, check) -> (rtol, atol). rtol is relative to the largest |reference| in the tensor.
#: Reasons are in docs/parity.md ("Tolerances"); keep both in sync.
TOLERANCES = {
    ("float64", "out"): (1e-10, 0.0),
    ("float64", "grad"): (1e-10, 0.0),
    ("float64", "loss/adam"): (1e-9, 0.0),
    ("float64", "loss/sgd"): (1e-9, 0.0),
    ("float64", "weights/adam"): (1e-9, 0.0),
    ("float64", "weights/sgd"): (1e-9, 0.0),
    ("float32", "out"): (1e-5, 0.0),
    ("float32", "grad"): (1e-4, 0.0),
    ("float32", "loss/adam"): (1e-4, 0.0),
    ("float32", "loss/sgd"): (1e-4, 0.0),
    ("float32", "weights/adam"): (None, None),  # reported, not judged: see training_check
    ("float32", "weights/sgd"): (None, None),
}

#: learning rates of the training check, as float32 values. Keras keeps the learning rate in a
#: ``floatx`` variable, and minicnn (like Keras under the default floatx) rounds it through
#: float32; the check sets floatx to its dtype, so it hands Keras the already-rounded value.
LEARNING_RATES = {"adam": float(np.float32(0.001)), "sgd": float(np.float32(0.01))}

TENSORS = ("out", "dX", "dW", "db")


def tolerance(dtype, check):
    return TOLERANCES[(np.dtype(dtype).name, check)]


# ----------------------------------------------------------------------------- TensorFlow setup
_TF_STATE: dict = {}


def setup_tensorflow(threads: int | None = None):
    """Import TensorFlow once, cap its thread pools (default: cores, inter-op 1) and turn TF32
    off. Thread settings only take effect before TensorFlow's runtime starts; the header reports
    the pools actually in force. Returns the ``tensorflow`` module."""
    import tensorflow as tf

    if not _TF_STATE:
        intra = threads or os.cpu_count() or 1
        try:
            tf.config.threading.set_intra_op_parallelism_threads(intra)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # runtime already initialised by someone else: report what it has
            pass
        try:
            tf.config.experimental.enable_tensor_float_32_execution(False)
        except (RuntimeError, AttributeError):
            pass
        _TF_STATE["ok"] = True
    return tf


def _header(model, dtype, seed, data_source, batch):
    import keras
    import numba
    import tensorflow as tf

    import minicnn
    from minicnn.kernels import backend_name

    onednn_env = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    if onednn_env is None:
        onednn = "on (TF_ENABLE_ONEDNN_OPTS unset; TensorFlow's default on Linux x86)"
    elif onednn_env.strip() in ("0", "false", "False"):
        onednn = f"off (TF_ENABLE_ONEDNN_OPTS={onednn_env})"
    else:
        onednn = f"on (TF_ENABLE_ONEDNN_OPTS={onednn_env})"
    try:
        tf32 = bool(tf.config.experimental.tensor_float_32_execution_enabled())
    except AttributeError:
        tf32 = None
    backend = backend_name()
    numba_threads = None
    if backend == "numba":
        numba_threads = numba.get_num_threads()
    devices = [d.name for d in tf.config.list_logical_devices()]
    return {
        "versions": {"minicnn": minicnn.__version__, "numpy": np.__version__, "numba": numba.__version__,
                     "tensorflow": tf.__version__, "keras": keras.__version__,
                     "python": platform.python_version()},
        "backend": backend,
        "dtype": np.dtype(dtype).name,
        "onednn": onednn,
        "tf32": tf32,
        "threads": {"numba": numba_threads,
                    "tf_intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                    "tf_inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
                    "cpu_count": os.cpu_count()},
        "tf_devices": devices,
        "seed": seed,
        "model": model.name,
        "params": model.count_params(),
        "layers": [l.name for l in model.layers],
        "batch": batch,
        "data": data_source,
    }


# ----------------------------------------------------------------------------- comparison rows
def compare(mine, ref, rtol, atol=0.0) -> dict:
    """max|d|, mean|d|, max|d|/max|ref|, argmax index and pass/fail of one tensor pair."""
    mine = np.asarray(mine)
    ref = np.asarray(ref)
    if mine.shape != ref.shape:
        return {"shape": list(ref.shape), "mine_shape": list(mine.shape), "max_abs": float("inf"),
                "mean_abs": float("inf"), "ref_max": float(np.max(np.abs(ref))) if ref.size else 0.0,
                "rel": float("inf"), "argmax": None, "rtol": rtol, "atol": atol, "passed": False,
                "note": "shape mismatch"}
    d = np.abs(mine.astype(np.float64) - ref.astype(np.float64))
    ref_max = float(np.max(np.abs(ref))) if ref.size else 0.0
    max_abs = float(d.max()) if d.size else 0.0
    idx = [int(i) for i in np.unravel_index(int(np.argmax(d)), d.shape)] if d.size else []
    rel = max_abs / ref_max if ref_max > 0 else (0.0 if max_abs == 0 else float("inf"))
    finite = bool(np.isfinite(mine).all() and np.isfinite(ref).all())
    return {"shape": list(ref.shape), "max_abs": max_abs, "mean_abs": float(d.mean()) if d.size else 0.0,
            "ref_max": ref_max, "rel": rel, "argmax": idx, "rtol": rtol, "atol": atol,
            "passed": finite and max_abs <= atol + rtol * ref_max}


# ----------------------------------------------------------------------------- the two sides
def minicnn_layer_pass(model, x, g):
    """(outputs, input grads, {layer: {'kernel','bias'} grads}) from minicnn, layer by layer.

    ``model`` must have no active dropout (see :func:`crosscheck`)."""
    outs, h = [], x
    for layer in model.layers:
        h = layer.forward(h, training=True)
        outs.append(h)
    first = model.layers[0]
    if hasattr(first, "need_dx"):
        first.need_dx = True
    dxs = [None] * len(model.layers)
    dy = g
    for i in reversed(range(len(model.layers))):
        dy = model.layers[i].backward(dy)
        dxs[i] = dy
    grads = {l.name: {k: np.array(v) for k, v in l.grads.items()} for l in model.layers if l.params}
    return outs, dxs, grads


def keras_layer_pass(kmodel, x, g, pinned=None):
    """The same quantities from TensorFlow, calling the Keras layers one by one
    (``training=False``: dropout is the identity).

    Outputs are chained through TensorFlow alone. Gradients are chained through TensorFlow
    alone too (layer i's input gradient is layer i-1's upstream gradient), each layer's
    vector-Jacobian product taken in its own ``GradientTape``; with ``pinned`` (minicnn's input
    to every layer) each VJP is evaluated at minicnn's activations, so both frameworks
    differentiate at the same point. That matters only where the gradient is discontinuous:
    a max-pool window whose two largest inputs differ by less than float32 rounding routes its
    gradient to whichever the framework's own forward pass happened to make larger.
    """
    import tensorflow as tf

    h = tf.constant(x)
    outs = []
    for layer in kmodel.layers:
        h = layer(h, training=False)
        outs.append(h.numpy())
    n = len(kmodel.layers)
    inputs = pinned if pinned is not None else [x] + outs[:-1]
    dy = tf.constant(g)
    dxs = [None] * n
    grads: dict = {}
    for i in reversed(range(n)):
        layer = kmodel.layers[i]
        xi = tf.constant(inputs[i])
        with tf.GradientTape() as tape:
            tape.watch(xi)
            yi = layer(xi, training=False)
        ws = list(layer.trainable_weights)
        res = tape.gradient(yi, [xi] + ws, output_gradients=dy)
        dy = res[0]
        dxs[i] = dy.numpy()
        for w, gr in zip(ws, res[1:]):
            grads.setdefault(layer.name, {})[w.name.rsplit("/", 1)[-1].split(":")[0]] = gr.numpy()
    return outs, dxs, grads


def keras_tape_pass(kmodel, x, g):
    """Pure-TensorFlow gradients of ``sum(output * G)`` w.r.t. the input and every weight, the
    layers called one by one inside a single GradientTape (no pinning)."""
    import tensorflow as tf

    xs = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xs)
        h = xs
        for layer in kmodel.layers:
            h = layer(h, training=False)
        scalar = tf.reduce_sum(h * tf.constant(g))
    ws = [w for l in kmodel.layers for w in l.trainable_weights]
    res = tape.gradient(scalar, [xs] + ws)
    return res[0].numpy(), [r.numpy() for r in res[1:]]


def layer_rows(model, kmodel, x, g, dtype):
    """One comparison row per (layer, tensor)."""
    m_out, m_dx, m_gr = minicnn_layer_pass(model, x, g)
    k_out, k_dx, k_gr = keras_layer_pass(kmodel, x, g, pinned=[x] + m_out[:-1])
    rt_out, at_out = tolerance(dtype, "out")
    rt_g, at_g = tolerance(dtype, "grad")
    rows = []
    for i, layer in enumerate(model.layers):
        rows.append({"layer": layer.name, "tensor": "out", **compare(m_out[i], k_out[i], rt_out, at_out)})
        rows.append({"layer": layer.name, "tensor": "dX", **compare(m_dx[i], k_dx[i], rt_g, at_g)})
        if layer.params:
            rows.append({"layer": layer.name, "tensor": "dW",
                         **compare(m_gr[layer.name]["kernel"], k_gr[layer.name]["kernel"], rt_g, at_g)})
            if "bias" in layer.params:
                rows.append({"layer": layer.name, "tensor": "db",
                             **compare(m_gr[layer.name]["bias"], k_gr[layer.name]["bias"], rt_g, at_g)})
    return rows


def optimizer_pair(name):
    """(minicnn optimizer, Keras optimizer, description) with the same hyperparameters."""
    import keras

    from minicnn import optimizers

    if name == "adam":
        lr = LEARNING_RATES["adam"]
        return (optimizers.Adam(learning_rate=lr), keras.optimizers.Adam(learning_rate=lr),
                f"Adam(learning_rate={lr!r}, beta_1=0.9, beta_2=0.999, epsilon=1e-07)")
    if name == "sgd":
        lr = LEARNING_RATES["sgd"]
        return (optimizers.SGD(learning_rate=lr), keras.optimizers.SGD(learning_rate=lr),
                f"SGD(learning_rate={lr!r}, momentum=0.0)")
    raise ValueError(f"optimizer must be 'adam' or 'sgd', got {name!r}")


def _batches(x, y, steps, batch):
    n = max(1, x.shape[0] // batch)
    for k in range(steps):
        j = k % n
        yield x[j * batch:(j + 1) * batch], y[j * batch:(j + 1) * batch]


def keras_trajectory(model, x, y, dtype, steps, optimizer, batch):
    """(losses, weights, seconds) of ``steps`` Keras ``train_on_batch`` calls on a copy of
    ``model`` in ``dtype`` (dropout off), with ``keras.config.floatx`` set to ``dtype``."""
    import keras

    from reference.convert import clone, to_keras

    previous = keras.config.floatx()
    keras.config.set_floatx(dtype)
    try:
        _, kopt, _ = optimizer_pair(optimizer)
        kt = to_keras(clone(model, dtype, dropout_rate=0.0))
        kt.compile(optimizer=kopt, loss=keras.losses.CategoricalCrossentropy(), run_eagerly=False,
                   jit_compile=False)
        xd, yd = x.astype(dtype), y.astype(dtype)
        t0 = time.perf_counter()
        losses = [float(np.asarray(kt.train_on_batch(xb, yb))) for xb, yb in _batches(xd, yd, steps, batch)]
        return losses, kt.get_weights(), time.perf_counter() - t0
    finally:
        keras.config.set_floatx(previous)


def _rel_diffs(a, b):
    return [abs(p - q) / abs(q) if q else abs(p - q) for p, q in zip(a, b)]


def _sync_keras(mt, mopt, kt, kopt, keys):
    """Copy minicnn's weights and optimizer state (step count, Adam moments) into Keras."""
    import keras

    kt.set_weights(mt.get_weights())
    kopt.iterations.assign(mopt.iterations)
    if isinstance(kopt, keras.optimizers.Adam):
        for i, (key, p) in enumerate(zip(keys, mt.get_weights())):
            kopt._momentums[i].assign(mopt.slots["m"].get(key, np.zeros_like(p)))
            kopt._velocities[i].assign(mopt.slots["v"].get(key, np.zeros_like(p)))


def training_check(model, x, y, dtype, steps, optimizer, batch):
    """K optimizer steps on identical batches in both frameworks.

    Free-running: each framework trains its own copy for K steps; the loss at every step and
    every weight at the end are compared (judged in float64). In float32 a free-running
    comparison is ill-conditioned (a rounding difference flips a ReLU or max-pool decision near
    its kink, and the trajectories drift apart; Keras's own float32 run drifts from its float64
    run by as much), so float32 is judged step by step instead: before every step Keras gets
    minicnn's weights and optimizer state, and the step's loss and new weights are compared.
    The free-running float32 numbers are reported, with Keras float32 vs float64 as context.
    """
    import keras

    from reference.convert import clone, to_keras

    mopt, kopt_synced, described = optimizer_pair(optimizer)
    mt = clone(model, dtype, dropout_rate=0.0)
    mt.compile(mopt, "categorical_crossentropy")
    keys = [k for k, _, _ in mt.named_parameters()]
    stepwise = dtype == "float32"
    if stepwise:
        previous = keras.config.floatx()
        keras.config.set_floatx(dtype)
        try:
            ks = to_keras(mt)
            ks.compile(optimizer=kopt_synced, loss=keras.losses.CategoricalCrossentropy(), run_eagerly=False,
                       jit_compile=False)
            kopt_synced.build(ks.trainable_variables)
        finally:
            keras.config.set_floatx(previous)
    loss_m, loss_s = [], []
    step_w = [0.0] * len(keys)
    t_m = 0.0
    for xb, yb in _batches(x, y, steps, batch):
        if stepwise:
            _sync_keras(mt, mopt, ks, kopt_synced, keys)
        t0 = time.perf_counter()
        loss_m.append(float(mt.train_on_batch(xb, yb)[0]))
        t_m += time.perf_counter() - t0
        if stepwise:
            loss_s.append(float(np.asarray(ks.train_on_batch(xb.astype(dtype), yb.astype(dtype)))))
            for i, (wm, wk) in enumerate(zip(mt.get_weights(), ks.get_weights())):
                step_w[i] = max(step_w[i], compare(wm, wk, 1.0)["rel"])
    loss_k, w_k, t_k = keras_trajectory(model, x, y, dtype, steps, optimizer, batch)
    diffs = _rel_diffs(loss_m, loss_k)
    rt, at = tolerance(dtype, f"loss/{optimizer}")
    rw, aw = tolerance(dtype, f"weights/{optimizer}")
    if rw is None:
        rw, aw = float("inf"), 0.0
    finite = bool(np.all(np.isfinite(loss_m)))
    result = {"optimizer": optimizer, "optimizer_config": described, "steps": steps, "batch": batch,
              "distinct_batches": min(max(1, x.shape[0] // batch), steps),
              "judged": "stepwise" if stepwise else "free-running",
              "loss_minicnn": loss_m, "loss_keras": loss_k, "loss_rel_diff": diffs,
              "max_loss_rel_diff": max(diffs, default=0.0), "loss_rtol": rt,
              "seconds": {"minicnn": t_m, "keras": t_k}}
    wrows = []
    for (key, p, _), kw in zip(mt.named_parameters(), w_k):
        layer, wname = key.split("/")
        wrows.append({"layer": layer, "tensor": wname, **compare(p, kw, rw, aw)})
    result["weights"] = wrows
    if stepwise:
        sdiffs = _rel_diffs(loss_m, loss_s)
        result["stepwise"] = {
            "loss_keras": loss_s, "loss_rel_diff": sdiffs, "max_loss_rel_diff": max(sdiffs, default=0.0),
            "weights": [{"layer": k.split("/")[0], "tensor": k.split("/")[1], "rel": r} for k, r in zip(keys, step_w)]}
        loss_64, w_64, _ = keras_trajectory(model, x, y, "float64", steps, optimizer, batch)
        result["float64_context"] = {
            "keras32_vs_keras64_loss": max(_rel_diffs(loss_k, loss_64), default=0.0),
            "minicnn32_vs_keras64_loss": max(_rel_diffs(loss_m, loss_64), default=0.0),
            "keras32_vs_keras64_weights": max((compare(a, b, 1.0)["rel"] for a, b in zip(w_k, w_64)), default=0.0)}
        for r in wrows:  # free-running float32 weights: information only
            r["passed"], r["rtol"], r["atol"] = None, None, None
        result["loss_passed"] = finite and result["stepwise"]["max_loss_rel_diff"] <= rt + at
        result["weights_passed"] = True  # float32 weights are information (see the docstring)
    else:
        result["loss_passed"] = finite and result["max_loss_rel_diff"] <= rt + at
        result["weights_passed"] = all(r["passed"] for r in wrows)
    result["loss_passed"] = bool(result["loss_passed"])
    result["loss_path"] = keras_loss_path(model, x[:batch], y[:batch], dtype) if steps else None
    return result


def keras_loss_path(model, x, y, dtype):
    """Which cross-entropy Keras's compiled loss computes for this model ending in softmax: the
    fused softmax + cross-entropy from the logits, or -log of probabilities clipped to
    [1e-7, 1 - 1e-7]. Probed on a copy whose last layer's weights are scaled up (x100, x1000,
    ...) until the two values differ clearly; uses ``evaluate`` (the same graph-mode
    ``compute_loss`` as ``train_on_batch``)."""
    import keras

    from reference.convert import clone, to_keras

    if not getattr(model.layers[-1], "ends_in_softmax", False):
        return None
    yy = y.astype(np.float64)
    for scale in (1e2, 1e3, 1e4, 1e5):
        m = clone(model, dtype, dropout_rate=0.0)
        weighted = [l for l in m.layers if l.params]
        if not weighted:
            return None
        for p in weighted[-1].params.values():
            p *= m.dtype.type(scale)
        k = to_keras(m)
        z = _logits(k, x)
        zs = z - z.max(-1, keepdims=True)
        logp = zs - np.log(np.exp(zs).sum(-1, keepdims=True))
        fused = float(np.mean(-np.sum(yy * logp, -1)))
        clipped = float(np.mean(-np.sum(yy * np.log(np.clip(np.exp(logp), 1e-7, 1 - 1e-7)), -1)))
        if abs(fused - clipped) > 1e-3 * abs(fused):
            break
    k.compile(loss=keras.losses.CategoricalCrossentropy(), run_eagerly=False, jit_compile=False)
    m.compile("adam", "categorical_crossentropy")
    keras_loss = float(k.evaluate(x, y, batch_size=len(x), verbose=0))
    used = "fused (from logits)" if abs(keras_loss - fused) <= abs(keras_loss - clipped) else "clipped probabilities"
    return {"scale": scale, "keras_loss": keras_loss, "fused_from_logits": fused, "clipped_probabilities": clipped,
            "keras_used": used,
            "minicnn_uses": "fused (from logits)" if m.fused_softmax_loss else "clipped probabilities"}


def _logits(kmodel, x):
    """Pre-softmax values of a Keras model ending in softmax (activation or Softmax layer)."""
    import keras

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


# ----------------------------------------------------------------------------- driver
def crosscheck(model, x, y, dtype="float32", steps=50, optimizer="adam", seed=0, batch=None,
               data_source="user data", threads=None) -> dict:
    """Compare ``model`` with its Keras twin; returns the report dict (see :func:`format_report`).

    Parameters
    ----------
    model : a built minicnn Sequential (it is not modified: both sides work on copies).
    x, y : images (N, H, W, C) and one-hot labels (N, K) or integer labels (N,). The per-layer
        check uses the first ``batch`` images; training step k uses the k-th block of ``batch``
        images (cycling when N < steps * batch).
    dtype : 'float32' or 'float64' for both frameworks.
    steps : optimizer steps (0 skips the training check).
    optimizer : 'adam' or 'sgd' with Keras defaults.
    seed : seeds the upstream gradient G.
    """
    import keras

    from reference.convert import clone, to_keras

    setup_tensorflow(threads)  # thread pools and TF32 before anything runs
    dtype = np.dtype(dtype).name
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    if not model.built:
        model.build()
    x = np.asarray(x)
    y = np.asarray(y)
    k = model.output_shape[-1]
    if y.ndim == 1:
        from minicnn.datasets import one_hot
        y = one_hot(y, k, dtype)
    x, y = x.astype(dtype), y.astype(dtype)
    batch = int(batch or x.shape[0])
    if not 1 <= batch <= x.shape[0]:
        raise ValueError(f"batch must be in [1, {x.shape[0]}], got {batch}")

    previous_floatx = keras.config.floatx()
    keras.config.set_floatx(dtype)
    try:
        t0 = time.perf_counter()
        report = {"header": _header(model, dtype, seed, data_source, batch)}
        report["header"]["upstream_gradient"] = f"G ~ U(-1, 1), seed {seed}; scalar = sum(output * G)"
        report["tolerances"] = {f"{d}/{c}": {"rtol": v[0], "atol": v[1]} for (d, c), v in TOLERANCES.items()
                                if d == dtype}
        m = clone(model, dtype, dropout_rate=0.0)  # dropout as identity; see module docstring
        km = to_keras(clone(model, dtype))         # real rates; layers are called with training=False
        g = np.random.default_rng(seed).uniform(-1, 1, size=(batch, *m.output_shape)).astype(dtype)
        xb = x[:batch]
        report["layers"] = layer_rows(m, km, xb, g, dtype)
        pools = [l for l in m.layers if type(l).__name__ == "MaxPool2D"]
        if pools:  # how often ties occurred (TensorFlow routes to the first max; so does minicnn)
            report["header"]["maxpool_ties"] = _tie_share(m, xb, tolerance(dtype, "out")[0])
        report["end_to_end"] = _end_to_end(m, km, xb, g)
        report["training"] = (training_check(model, x, y, dtype, steps, optimizer, batch)
                              if steps > 0 else None)
        report["seconds"] = time.perf_counter() - t0
    finally:
        keras.config.set_floatx(previous_floatx)
    layers_ok = all(r["passed"] for r in report["layers"])
    tr = report["training"]
    train_ok = tr is None or (tr["loss_passed"] and tr["weights_passed"])
    worst = max(report["layers"], key=lambda r: r["rel"] / r["rtol"])
    report["summary"] = {
        "passed": bool(layers_ok and train_ok),
        "layer_rows": len(report["layers"]),
        "layer_rows_passed": sum(r["passed"] for r in report["layers"]),
        "worst_layer_row": {"layer": worst["layer"], "tensor": worst["tensor"], "rel": worst["rel"],
                            "rtol": worst["rtol"]},
        "max_rel_by_tensor": {t: max((r["rel"] for r in report["layers"] if r["tensor"] == t), default=None)
                              for t in TENSORS},
        "max_loss_rel_diff": None if tr is None else tr["max_loss_rel_diff"],
        "max_weight_rel_diff": None if tr is None else max((r["rel"] for r in tr["weights"]), default=0.0),
        "training_judged": None if tr is None else tr["judged"],
        "stepwise_max_loss_rel_diff": None if tr is None or "stepwise" not in tr else tr["stepwise"]["max_loss_rel_diff"],
    }
    return report


def _end_to_end(model, kmodel, x, g):
    """Informational: minicnn's input and weight gradients against one unpinned TensorFlow tape
    (each framework differentiating at its own activations)."""
    _, m_dx, m_gr = minicnn_layer_pass(model, x, g)
    k_dx, k_ws = keras_tape_pass(kmodel, x, g)
    mine = [m_gr[l.name][k] for l in model.layers if l.params for k in l.weight_names if k in l.params]
    rels = [compare(a, b, 1.0)["rel"] for a, b in zip(mine, k_ws)]
    return {"input_grad_rel": compare(m_dx[0], k_dx, 1.0)["rel"], "max_weight_grad_rel": max(rels, default=0.0)}


def _tie_share(model, x, rtol):
    """Max-pool windows (over all MaxPool2D layers, on minicnn's activations) whose maximum is
    tied exactly, or nearly: the two largest values differ by no more than ``rtol`` times the
    largest |value| of the layer input (the forward tolerance), so rounding may order them."""
    h, exact, near, total = x, 0, 0, 0
    for layer in model.layers:
        if isinstance(layer, MaxPool2D):
            gap = layer.window_gaps(h)
            exact += int((gap == 0).sum())
            near += int(((gap > 0) & (gap <= rtol * np.abs(h).max())).sum())
            total += int(gap.size)
        h = layer.forward(h, training=False)
    return {"windows": total, "exact_ties": exact, "near_ties": near,
            "share": exact / total if total else 0.0}


# ----------------------------------------------------------------------------- rendering
def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        if v == 0:
            return "0"
        return f"{v:.2e}"
    return str(v)


def format_report(report: dict) -> str:
    """The human-readable report: header, one row per (layer, tensor), training, summary."""
    h = report["header"]
    v = h["versions"]
    lines = [
        f"minicnn crosscheck: model '{h['model']}' ({h['params']:,} params), {h['dtype']}, batch {h['batch']} ({h['data']})",
        "versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"minicnn backend: {h['backend']}" + (f" ({h['threads']['numba']} numba threads)" if h['threads']['numba'] else "")
        + f" | TensorFlow: {', '.join(h['tf_devices'])}, intra-op {h['threads']['tf_intra_op']} / inter-op "
        f"{h['threads']['tf_inter_op']} threads, oneDNN {h['onednn']}, TF32 {'on' if h['tf32'] else 'off'}",
        f"seed {h['seed']}; {h['upstream_gradient']}; dropout in inference mode; gradients compared at "
        "minicnn's activations",
    ]
    if "maxpool_ties" in h:
        t = h["maxpool_ties"]
        lines.append(f"max-pool windows with tied maxima: {t['exact_ties']:,} of {t['windows']:,} ({t['share']:.1%}) "
                     f"exact, {t['near_ties']:,} within rounding (gap <= out rtol x max|input|)")
    lines.append("")
    head = ("layer", "tensor", "shape", "max|d|", "mean|d|", "max|d|/max|ref|", "argmax", "rtol", "status")
    rows = []
    for r in report["layers"]:
        rows.append((r["layer"], r["tensor"], "(" + ",".join(map(str, r["shape"])) + ")", _fmt(r["max_abs"]),
                     _fmt(r["mean_abs"]), _fmt(r["rel"]), "(" + ",".join(map(str, r["argmax"] or [])) + ")",
                     _fmt(r["rtol"]), "ok" if r["passed"] else "FAIL"))
    lines += _table(head, rows)
    s = report["summary"]
    if report.get("end_to_end"):
        e = report["end_to_end"]
        lines.append(f"gradients without pinning (one TF tape, each side at its own activations): input "
                     f"{_fmt(e['input_grad_rel'])}, weights {_fmt(e['max_weight_grad_rel'])} of max|ref| (information)")
    lines.append("")
    lines.append(f"layers: {s['layer_rows_passed']}/{s['layer_rows']} tensors within tolerance; worst "
                 f"{s['worst_layer_row']['layer']}/{s['worst_layer_row']['tensor']} at "
                 f"{_fmt(s['worst_layer_row']['rel'])} of max|ref| (rtol {_fmt(s['worst_layer_row']['rtol'])}); "
                 "max by kind: " + ", ".join(f"{t} {_fmt(val)}" for t, val in s["max_rel_by_tensor"].items()))
    tr = report.get("training")
    if tr:
        lines.append("")
        lines.append(f"training: {tr['steps']} steps of {tr['optimizer_config']}, batch {tr['batch']}, "
                     f"{tr['distinct_batches']} distinct batches, dropout off in both; Keras: compile + "
                     "train_on_batch (graph mode, no XLA)")
        for k in sorted({0, 1, tr["steps"] // 2, tr["steps"] - 1}):
            if 0 <= k < tr["steps"]:
                lines.append(f"  step {k + 1:>3}: loss minicnn {tr['loss_minicnn'][k]:.12g}  keras "
                             f"{tr['loss_keras'][k]:.12g}  rel diff {_fmt(tr['loss_rel_diff'][k])}")
        ok = lambda b: "ok" if b else "FAIL"  # noqa: E731
        if tr["judged"] == "free-running":
            lines.append(f"  max relative loss difference over {tr['steps']} steps: {_fmt(tr['max_loss_rel_diff'])} "
                         f"(rtol {_fmt(tr['loss_rtol'])}) {ok(tr['loss_passed'])}")
        else:
            sw = tr["stepwise"]
            c = tr["float64_context"]
            lines.append(f"  step by step (Keras given minicnn's weights and optimizer state before every step): "
                         f"max relative loss difference {_fmt(sw['max_loss_rel_diff'])} (rtol {_fmt(tr['loss_rtol'])}) "
                         f"{ok(tr['loss_passed'])}; weights after each step: max "
                         f"{_fmt(max((r['rel'] for r in sw['weights']), default=0.0))} of max|ref| (information)")
            lines.append(f"  free-running (information): max relative loss difference {_fmt(tr['max_loss_rel_diff'])}; "
                         f"for scale, Keras float32 vs Keras float64 from the same start: loss "
                         f"{_fmt(c['keras32_vs_keras64_loss'])}, weights {_fmt(c['keras32_vs_keras64_weights'])}")
        if tr.get("loss_path"):
            lp = tr["loss_path"]
            lines.append(f"  Keras loss on a softmax output: {lp['keras_used']} (probe with last layer x{lp['scale']:g}: "
                         f"Keras {lp['keras_loss']:.6g}, fused {lp['fused_from_logits']:.6g}, clipped "
                         f"{lp['clipped_probabilities']:.6g}); minicnn: {lp['minicnn_uses']}")
        head = ("layer", "weight", "shape", "max|d|", "mean|d|", "max|d|/max|ref|", "rtol", "status")
        wr = [(r["layer"], r["tensor"], "(" + ",".join(map(str, r["shape"])) + ")", _fmt(r["max_abs"]),
               _fmt(r["mean_abs"]), _fmt(r["rel"]), _fmt(r["rtol"]) if r["passed"] is not None else "-",
               "info" if r["passed"] is None else ok(r["passed"])) for r in tr["weights"]]
        lines.append(f"  weights after {tr['steps']} free-running steps:")
        lines += ["  " + ln for ln in _table(head, wr)]
        lines.append(f"  time: minicnn {tr['seconds']['minicnn']:.1f} s, keras {tr['seconds']['keras']:.1f} s")
    lines.append("")
    lines.append(f"RESULT: {'PASS' if s['passed'] else 'FAIL'} ({report['seconds']:.1f} s)")
    return "\n".join(lines)


def _table(head, rows):
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows)]
    fmt = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return [fmt(head), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows]


# ----------------------------------------------------------------------------- command line
def load_mnist_batch(n, sample="first", seed=0, data_dir=None, dtype="float32"):
    """``n`` real MNIST test images (NHWC in [0, 1]) and one-hot labels, plus a description."""
    from minicnn import datasets

    (_, _), (xte, yte) = datasets.load_mnist(data_dir)
    if n > len(xte):
        raise ValueError(f"only {len(xte)} MNIST test images; asked for {n}")
    if sample == "first":
        idx = np.arange(n)
        where = f"MNIST test images [0:{n}]"
    else:
        idx = np.sort(np.random.default_rng(seed).choice(len(xte), n, replace=False))
        where = f"{n} MNIST test images sampled with seed {seed}"
    x = datasets.to_float_nhwc(xte[idx], dtype)
    y = datasets.one_hot(yte[idx], 10, dtype)
    return x, y, where


def run(args) -> int:
    """``minicnn crosscheck``: see :mod:`minicnn.cli.crosscheck` for the options."""
    import json

    from minicnn import load_model
    from minicnn.presets import build_preset

    if args.batch < 1 or args.steps < 0:
        raise ValueError("--batch must be >= 1 and --steps >= 0")
    if args.model:
        if not os.path.exists(args.model):
            raise FileNotFoundError(f"model file {args.model!r} does not exist")
        arch = build_preset(args.preset) if args.preset else None
        model = load_model(args.model, architecture=arch)
    else:
        model = build_preset(args.preset or "seed", seed=args.seed)
    if tuple(model.input_shape) != (28, 28, 1) or model.output_shape[-1] != 10:
        raise ValueError(f"crosscheck feeds MNIST (28, 28, 1) -> 10 classes; model '{model.name}' "
                         f"is {model.input_shape} -> {model.output_shape}")
    n = args.batch * max(1, args.steps)
    x, y, where = load_mnist_batch(n, args.sample, args.seed, args.data_dir, args.dtype)
    where = f"{where}; layer check on the first {args.batch}"
    report = crosscheck(model, x, y, dtype=args.dtype, steps=args.steps, optimizer=args.optimizer,
                        seed=args.seed, batch=args.batch, data_source=where, threads=args.threads)
    print(format_report(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        print(f"report written to {args.json}")
    return 0 if report["summary"]["passed"] else 1
