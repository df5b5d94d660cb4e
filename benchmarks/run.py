"""minicnn (numba and numpy backends) against TensorFlow, side by side, in one run.

    python -m benchmarks.run [--quick] [--out benchmarks/results] [--mnist DIR]

Writes ``results.json``, ``results.md`` and ``results.png`` into the output directory.

Every framework runs in its own subprocess (one at a time), so thread pools never share the cores
and peak-memory figures do not mix. Inside a worker every measurement is: warm-up calls, then
repeated timed calls; the tables give the median and the min/max and quartiles. The machine may be
shared: a sample during which *other* processes used the CPU (from ``/proc/stat``, at jiffy
resolution) is discarded and retried, and the number of discarded samples is reported.

Sections: machine; numpy float32 matmul peak (the model's own GEMM shapes and 4096^3); per-op
forward/backward times (conv1, conv2, pool, dense1, dense2, loss) for minicnn-numba,
minicnn-numpy, TensorFlow and PyTorch (skipped when not importable); full train step (forward,
backward, Adam) at batch 100 and inference at batch 1000; peak RSS of a training run on the full
MNIST training set held as float32; numba's first-ever compile time and the cached first-step
overhead of a second process.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MNIST = "/work/shared/datasets/mnist"
FRAMEWORKS = ("minicnn-numba", "minicnn-numba-gemm", "minicnn-numpy", "tensorflow", "pytorch")
F32 = np.float32
STEP_FRAMEWORKS = ("minicnn-numba", "minicnn-numba-malloc", "minicnn-numpy", "tensorflow", "pytorch")
# glibc keeps freed blocks up to these sizes instead of unmapping them (and faulting them back in
# on the next step); read at process start, so set for a subprocess only
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(256 << 20)}

# ----------------------------------------------------------------------------- model arithmetic
# seed model on 28x28x1, batch N: conv1 (3x3x1x32, valid, relu) -> conv2 (3x3x32x64, valid, relu)
# -> flatten 24*24*64 = 36864 -> dense1 (128, relu) -> dense2 (10) -> softmax cross-entropy.
# The pooled preset adds MaxPool2D(2): (N, 24, 24, 64) -> (N, 12, 12, 64), dense1 input 9216.


def conv_flops(n, oh, ow, f, kh, kw, c):
    return 2.0 * n * oh * ow * f * kh * kw * c


def dense_flops(n, i, o):
    return 2.0 * n * i * o


def op_specs(n):
    """(name, forward FLOPs, backward FLOPs) per op at batch n; 2 FLOPs per multiply-add."""
    c1 = conv_flops(n, 26, 26, 32, 3, 3, 1)
    c2 = conv_flops(n, 24, 24, 64, 3, 3, 32)
    d1 = dense_flops(n, 36864, 128)
    d2 = dense_flops(n, 128, 10)
    return [("conv1", c1, c1),            # first layer: dkernel only (no dx)
            ("conv2", c2, 2 * c2),        # dkernel and dx
            ("pool", 0.0, 0.0),           # pooled preset's MaxPool2D(2) on (N, 24, 24, 64)
            ("dense1", d1, 2 * d1),
            ("dense2", d2, 2 * d2),
            ("loss", 0.0, 0.0)]           # softmax cross-entropy (backward: loss and gradient)


def train_flops(n, preset="seed"):
    """Forward + backward FLOPs of one train step (the optimizer is not counted)."""
    c1 = conv_flops(n, 26, 26, 32, 3, 3, 1)
    c2 = conv_flops(n, 24, 24, 64, 3, 3, 32)
    d1 = dense_flops(n, 36864 if preset == "seed" else 9216, 128)
    d2 = dense_flops(n, 128, 10)
    return (c1 + c2 + d1 + d2) + (c1 + 2 * c2 + 2 * d1 + 2 * d2)


def infer_flops(n, preset="seed"):
    return (conv_flops(n, 26, 26, 32, 3, 3, 1) + conv_flops(n, 24, 24, 64, 3, 3, 32)
            + dense_flops(n, 36864 if preset == "seed" else 9216, 128) + dense_flops(n, 128, 10))


# The GEMMs the seed model's layers amount to (im2col view), for the matmul-peak section.
GEMM_SHAPES = {
    "conv2 fwd (57600x288)@(288x64)": (57600, 288, 64),
    "conv2 dW (288x57600)@(57600x64)": (288, 57600, 64),
    "conv2 dx (57600x64)@(64x288)": (57600, 64, 288),
    "dense1 fwd (100x36864)@(36864x128)": (100, 36864, 128),
    "dense1 dW (36864x100)@(100x128)": (36864, 100, 128),
    "dense1 dx (100x128)@(128x36864)": (100, 128, 36864),
    "square 4096^3": (4096, 4096, 4096),
}


# ----------------------------------------------------------------------------- timing
def _sys_busy_jiffies():
    try:
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:]]
        return sum(v) - v[3] - v[4]  # everything but idle and iowait
    except OSError:
        return None


def _own_jiffies():
    t = os.times()
    return (t.user + t.system) * os.sysconf("SC_CLK_TCK")


def measure(fn, repeats, warmup=2, max_discard=None, slack=2):
    """Median and spread (ms) of ``fn()`` after ``warmup`` calls.

    A sample during which other processes used more than ``slack`` jiffies of CPU is discarded
    and retried (at most ``max_discard`` times, default 4 x repeats; after that noisy samples are
    kept and the result is flagged ``noisy``).
    """
    for _ in range(warmup):
        fn()
    max_discard = 4 * repeats if max_discard is None else max_discard
    samples, discarded = [], 0
    while len(samples) < repeats:
        s0, o0 = _sys_busy_jiffies(), _own_jiffies()
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        if s0 is not None and discarded < max_discard:
            others = (_sys_busy_jiffies() - s0) - (_own_jiffies() - o0)
            if others > slack:
                discarded += 1
                time.sleep(0.2)
                continue
        samples.append(dt * 1e3)
    a = np.asarray(samples)
    return {"median_ms": float(np.median(a)), "min_ms": float(a.min()), "max_ms": float(a.max()),
            "q1_ms": float(np.percentile(a, 25)), "q3_ms": float(np.percentile(a, 75)),
            "n": len(samples), "discarded": discarded, "noisy": discarded >= max_discard}


def _rss_mb():
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        return float("nan")


def _maxrss_mb():
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024 if sys.platform != "darwin" else r / 2**20  # KiB on Linux, bytes on macOS


# ----------------------------------------------------------------------------- shared inputs
def _inputs(n, seed=0):
    """The tensors every framework's per-op benchmark works on (NHWC, HWIO, float32)."""
    rng = np.random.default_rng(seed)
    d = {
        "x": rng.random((n, 28, 28, 1), dtype=F32),
        "k1": (rng.standard_normal((3, 3, 1, 32)) * 0.3).astype(F32),
        "b1": (rng.standard_normal(32) * 0.1).astype(F32),
        "k2": (rng.standard_normal((3, 3, 32, 64)) * 0.06).astype(F32),
        "b2": (rng.standard_normal(64) * 0.1).astype(F32),
        "w3": (rng.standard_normal((36864, 128)) * 0.005).astype(F32),
        "b3": (rng.standard_normal(128) * 0.1).astype(F32),
        "w4": (rng.standard_normal((128, 10)) * 0.1).astype(F32),
        "b4": np.zeros(10, F32),
        "y": np.eye(10, dtype=F32)[rng.integers(0, 10, n)],
    }
    for name, shape in (("dy1", (n, 26, 26, 32)), ("dy2", (n, 24, 24, 64)), ("dyp", (n, 12, 12, 64)),
                        ("dz3", (n, 128)), ("dz4", (n, 10))):
        d[name] = (rng.standard_normal(shape) * 0.01).astype(F32)
    return d


# ----------------------------------------------------------------------------- workers
def worker_peak(args):
    """numpy float32 matmul GFLOP/s on the model's GEMM shapes and on 4096^3 (numpy's BLAS threads)."""
    rng = np.random.default_rng(0)
    out = {}
    for name, (m, k, n) in GEMM_SHAPES.items():
        if args["quick"] and name.startswith("square"):
            m = k = n = 2048
            name = "square 2048^3 (quick)"
        a = rng.standard_normal((m, k), dtype=F32)
        b = rng.standard_normal((k, n), dtype=F32)
        c = np.empty((m, n), F32)
        t = measure(lambda: np.matmul(a, b, out=c), repeats=3 if args["quick"] else 7)
        t["gflops"] = 2.0 * m * k * n / t["median_ms"] / 1e6
        t["gflops_best"] = 2.0 * m * k * n / t["min_ms"] / 1e6
        out[name] = t
    return out


def _minicnn_ops(backend_name, n, repeats):
    from minicnn.kernels import use_backend
    from minicnn.losses import CategoricalCrossentropy

    B = use_backend(backend_name)
    d = _inputs(n)
    S, P = (1, 1), (0, 0, 0, 0)
    c1, c2 = {}, {}
    y1 = B.conv2d_forward(d["x"], d["k1"], d["b1"], S, P, relu=True, cache=c1)
    y2 = B.conv2d_forward(y1, d["k2"], d["b2"], S, P, relu=True, cache=c2)
    yp, arg = B.maxpool2d_forward(y2, (2, 2), (2, 2), P)
    h = y2.reshape(n, -1)
    z3 = B.dense_forward(h, d["w3"], d["b3"], relu=True)
    z4 = B.dense_forward(z3, d["w4"], d["b4"])
    ce = CategoricalCrossentropy()

    def conv1_b():
        B.conv2d_backward(d["dy1"], d["x"], d["k1"], S, P, need_dx=False, cache=c1, relu_y=y1)

    def conv2_b():
        B.conv2d_backward(d["dy2"], y1, d["k2"], S, P, need_dx=True, cache=c2, relu_y=y2)

    def dense1_b():
        B.dense_backward(B.relu_backward(d["dz3"], z3), h, d["w3"], need_dx=True)

    ops = {
        "conv1": (lambda: B.conv2d_forward(d["x"], d["k1"], d["b1"], S, P, relu=True, cache={}), conv1_b),
        "conv2": (lambda: B.conv2d_forward(y1, d["k2"], d["b2"], S, P, relu=True, cache={}), conv2_b),
        "pool": (lambda: B.maxpool2d_forward(y2, (2, 2), (2, 2), P),
                 lambda: B.maxpool2d_backward(d["dyp"], arg, y2.shape, (2, 2), (2, 2), P)),
        "dense1": (lambda: B.dense_forward(h, d["w3"], d["b3"], relu=True), dense1_b),
        "dense2": (lambda: B.dense_forward(z3, d["w4"], d["b4"]),
                   lambda: B.dense_backward(d["dz4"], z3, d["w4"], need_dx=True)),
        "loss": (lambda: ce.logits_loss_and_grad(d["y"], z4, need_grad=False),
                 lambda: ce.logits_loss_and_grad(d["y"], z4)),
    }
    return {name: {"fwd": measure(f, repeats), "bwd": measure(b, repeats)} for name, (f, b) in ops.items()}


def _minicnn_steps(backend_name, args):
    import minicnn
    from minicnn.presets import build_preset

    minicnn.use_backend(backend_name)
    rng = np.random.default_rng(1)
    res = {}
    nb_train, nb_inf = 100, (200 if args["quick"] else 1000)
    x = rng.random((nb_train, 28, 28, 1), dtype=F32)
    y = np.eye(10, dtype=F32)[rng.integers(0, 10, nb_train)]
    xi = rng.random((nb_inf, 28, 28, 1), dtype=F32)
    for preset in ("seed", "pooled"):
        model = build_preset(preset, dtype="float32", seed=0)
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        step = measure(lambda: model.train_on_batch(x, y), repeats=args["step_repeats"], warmup=3)
        infer = measure(lambda: model.predict(xi, batch_size=nb_inf), repeats=args["infer_repeats"])
        res[preset] = {"train_step": step, "train_batch": nb_train, "infer": infer, "infer_batch": nb_inf,
                       "params": int(model.count_params())}
    return res


def worker_minicnn(args):
    backend = args["backend"]
    if args.get("steps_only"):
        return {"steps": _minicnn_steps(backend, args), "env": {k: os.environ.get(k) for k in MALLOC_ENV}}
    if backend == "numba" and args.get("tiles") is False:  # the im2col + GEMM alternative, ops only
        from minicnn.kernels import numba_backend

        numba_backend._TILES = False
        return {"ops": _minicnn_ops(backend, 100, args["op_repeats"])}
    out = {"ops": _minicnn_ops(backend, 100, args["op_repeats"]), "steps": _minicnn_steps(backend, args)}
    if backend == "numba":
        from minicnn.kernels import numba_backend

        out["threading"] = numba_backend.threading_info()
    return out


def _tf_setup():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(2)
    return tf


def _tf_info(tf):
    info = {"version": tf.__version__,
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
            "onednn_enabled": None}
    try:  # private, but the only direct answer; TF prints "oneDNN custom operations are on" too
        from tensorflow.python.util import _pywrap_util_port

        info["onednn_enabled"] = bool(_pywrap_util_port.IsMklEnabled())
    except Exception as exc:  # noqa: BLE001 - informational only
        info["onednn_enabled"] = f"unknown ({type(exc).__name__})"
    try:
        import keras

        info["keras"] = keras.__version__
    except ImportError:
        pass
    return info


def _tf_ops(tf, n, repeats):
    d = {k: tf.constant(v) for k, v in _inputs(n).items()}
    strides = [1, 1, 1, 1]

    @tf.function
    def conv_fwd(x, k, b):
        return tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, k, strides, "VALID"), b))

    @tf.function
    def conv_bwd(dy, y, x, k, need_dx: bool):
        dz = tf.raw_ops.ReluGrad(gradients=dy, features=y)
        dk = tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=tf.shape(k), out_backprop=dz,
                                             strides=strides, padding="VALID")
        db = tf.raw_ops.BiasAddGrad(out_backprop=dz)
        if need_dx:
            dx = tf.raw_ops.Conv2DBackpropInput(input_sizes=tf.shape(x), filter=k, out_backprop=dz,
                                                strides=strides, padding="VALID")
            return dx, dk, db
        return dk, db

    @tf.function
    def pool_fwd(x):
        return tf.nn.max_pool2d(x, 2, 2, "VALID")

    @tf.function
    def pool_bwd(x, y, dy):
        return tf.raw_ops.MaxPoolGrad(orig_input=x, orig_output=y, grad=dy, ksize=[1, 2, 2, 1],
                                      strides=[1, 2, 2, 1], padding="VALID")

    @tf.function
    def dense_fwd(x, w, b, relu: bool):
        z = tf.nn.bias_add(tf.matmul(x, w), b)
        return tf.nn.relu(z) if relu else z

    @tf.function
    def dense_bwd(dy, y, x, w, relu: bool):
        dz = tf.raw_ops.ReluGrad(gradients=dy, features=y) if relu else dy
        return (tf.matmul(dz, w, transpose_b=True), tf.matmul(x, dz, transpose_a=True),
                tf.raw_ops.BiasAddGrad(out_backprop=dz))

    @tf.function
    def loss_fwd(y, z):
        return tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=z))

    @tf.function
    def loss_bwd(y, z):
        loss, grad = tf.raw_ops.SoftmaxCrossEntropyWithLogits(features=z, labels=y)
        return tf.reduce_mean(loss), grad / tf.cast(tf.shape(z)[0], z.dtype)

    y1 = conv_fwd(d["x"], d["k1"], d["b1"])
    y2 = conv_fwd(y1, d["k2"], d["b2"])
    yp = pool_fwd(y2)
    h = tf.reshape(y2, [n, -1])
    z3 = dense_fwd(h, d["w3"], d["b3"], True)
    z4 = dense_fwd(z3, d["w4"], d["b4"], False)
    ops = {
        "conv1": (lambda: conv_fwd(d["x"], d["k1"], d["b1"]), lambda: conv_bwd(d["dy1"], y1, d["x"], d["k1"], False)),
        "conv2": (lambda: conv_fwd(y1, d["k2"], d["b2"]), lambda: conv_bwd(d["dy2"], y2, y1, d["k2"], True)),
        "pool": (lambda: pool_fwd(y2), lambda: pool_bwd(y2, yp, d["dyp"])),
        "dense1": (lambda: dense_fwd(h, d["w3"], d["b3"], True), lambda: dense_bwd(d["dz3"], z3, h, d["w3"], True)),
        "dense2": (lambda: dense_fwd(z3, d["w4"], d["b4"], False), lambda: dense_bwd(d["dz4"], z4, z3, d["w4"], False)),
        "loss": (lambda: loss_fwd(d["y"], z4), lambda: loss_bwd(d["y"], z4)),
    }
    # CPU tf.function calls return once the result is computed; .numpy() of a scalar would add
    # nothing but a copy, so results are not converted
    return {name: {"fwd": measure(f, repeats), "bwd": measure(b, repeats)} for name, (f, b) in ops.items()}


def _keras_model(preset):
    import keras

    L = keras.layers
    layers = [keras.Input((28, 28, 1)), L.Conv2D(32, 3, activation="relu"), L.Conv2D(64, 3, activation="relu")]
    if preset == "pooled":
        layers += [L.MaxPooling2D(2), L.Dropout(0.25)]
    layers += [L.Flatten(), L.Dense(128, activation="relu")]
    if preset == "pooled":
        layers += [L.Dropout(0.5)]
    layers += [L.Dense(10, activation="softmax")]
    return keras.Sequential(layers)


def _tf_steps(tf, args):
    import keras

    rng = np.random.default_rng(1)
    nb_train, nb_inf = 100, (200 if args["quick"] else 1000)
    x = tf.constant(rng.random((nb_train, 28, 28, 1), dtype=F32))
    y = tf.constant(np.eye(10, dtype=F32)[rng.integers(0, 10, nb_train)])
    xi = tf.constant(rng.random((nb_inf, 28, 28, 1), dtype=F32))
    res = {}
    for preset in ("seed", "pooled"):
        model = _keras_model(preset)
        opt = keras.optimizers.Adam()
        loss_fn = keras.losses.CategoricalCrossentropy()

        @tf.function
        def train_step(xb, yb):
            with tf.GradientTape() as tape:
                loss = loss_fn(yb, model(xb, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        @tf.function
        def infer(xb):
            return model(xb, training=False)

        step = measure(lambda: train_step(x, y), repeats=args["step_repeats"], warmup=3)
        inf = measure(lambda: infer(xi), repeats=args["infer_repeats"])
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        tob = measure(lambda: model.train_on_batch(x, y), repeats=max(3, args["step_repeats"] // 2), warmup=3)
        pob = measure(lambda: model.predict_on_batch(xi), repeats=max(2, args["infer_repeats"] // 2))
        res[preset] = {"train_step": step, "train_batch": nb_train, "infer": inf, "infer_batch": nb_inf,
                       "keras_train_on_batch": tob, "keras_predict_on_batch": pob,
                       "params": int(model.count_params())}
    return res


def worker_tf(args):
    tf = _tf_setup()
    return {"info": _tf_info(tf), "ops": _tf_ops(tf, 100, args["op_repeats"]), "steps": _tf_steps(tf, args)}


def worker_torch(args):
    """PyTorch per-op (NCHW, autograd backward), train step and inference, when importable."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(2)
    n, reps = 100, args["op_repeats"]
    d = {k: torch.from_numpy(v) for k, v in _inputs(n).items()}
    nchw = lambda a: a.permute(0, 3, 1, 2).contiguous()  # noqa: E731
    oihw = lambda k: k.permute(3, 2, 0, 1).contiguous()  # noqa: E731
    x = nchw(d["x"]).requires_grad_(False)
    k1, k2 = oihw(d["k1"]).requires_grad_(), oihw(d["k2"]).requires_grad_()
    b1, b2 = d["b1"].clone().requires_grad_(), d["b2"].clone().requires_grad_()
    w3, b3 = d["w3"].t().contiguous().requires_grad_(), d["b3"].clone().requires_grad_()
    w4, b4 = d["w4"].t().contiguous().requires_grad_(), d["b4"].clone().requires_grad_()
    labels = d["y"].argmax(1)

    y1 = F.relu(F.conv2d(x, k1, b1))
    y1d = y1.detach().requires_grad_()
    y2 = F.relu(F.conv2d(y1d, k2, b2))
    y2d = y2.detach().requires_grad_()
    yp = F.max_pool2d(y2d, 2)
    h = y2d.reshape(n, -1)
    hd = h.detach().requires_grad_()
    z3 = F.relu(F.linear(hd, w3, b3))
    z3d = z3.detach().requires_grad_()
    z4 = F.linear(z3d, w4, b4)
    z4d = z4.detach().requires_grad_()
    loss = F.cross_entropy(z4d, labels)
    g = lambda out, ins, dy: (lambda: torch.autograd.grad(out, ins, dy, retain_graph=True))  # noqa: E731
    fwd = {
        "conv1": lambda: F.relu(F.conv2d(x, k1, b1)),
        "conv2": lambda: F.relu(F.conv2d(y1d, k2, b2)),
        "pool": lambda: F.max_pool2d(y2d, 2),
        "dense1": lambda: F.relu(F.linear(hd, w3, b3)),
        "dense2": lambda: F.linear(z3d, w4, b4),
        "loss": lambda: F.cross_entropy(z4d, labels),
    }
    bwd = {
        "conv1": g(y1, [k1, b1], nchw(d["dy1"])),
        "conv2": g(y2, [y1d, k2, b2], nchw(d["dy2"])),
        "pool": g(yp, [y2d], nchw(d["dyp"])),
        "dense1": g(z3, [hd, w3, b3], d["dz3"]),
        "dense2": g(z4, [z3d, w4, b4], d["dz4"]),
        "loss": g(loss, [z4d], None),
    }
    out = {}
    for name, f in fwd.items():
        with torch.no_grad():
            t_fwd = measure(f, reps)
        out[name] = {"fwd": t_fwd, "bwd": measure(bwd[name], reps)}
    return {"info": {"version": torch.__version__, "threads": torch.get_num_threads()}, "ops": out,
            "steps": _torch_steps(torch, args)}


def _torch_steps(torch, args):
    """PyTorch train step (eager autograd + Adam, Keras's epsilon) and inference (no_grad) of the
    presets' architectures, NCHW, on the same random batches as the other frameworks."""
    nn = torch.nn
    rng = np.random.default_rng(1)
    nb_train, nb_inf = 100, (200 if args["quick"] else 1000)
    x = torch.from_numpy(rng.random((nb_train, 28, 28, 1), dtype=F32)).permute(0, 3, 1, 2).contiguous()
    labels = torch.from_numpy(rng.integers(0, 10, nb_train))
    xi = torch.from_numpy(rng.random((nb_inf, 28, 28, 1), dtype=F32)).permute(0, 3, 1, 2).contiguous()
    res = {}
    for preset in ("seed", "pooled"):
        torch.manual_seed(0)
        pool = [nn.MaxPool2d(2)] if preset == "pooled" else []
        flat = 64 * (12 * 12 if pool else 24 * 24)
        model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), *pool,
                              nn.Flatten(), nn.Linear(flat, 128), nn.ReLU(), nn.Linear(128, 10))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
        loss_fn = nn.CrossEntropyLoss()

        def train_step():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), labels)
            loss.backward()
            opt.step()

        def infer():
            with torch.no_grad():
                return model(xi)

        res[preset] = {"train_step": measure(train_step, repeats=args["step_repeats"], warmup=3),
                       "train_batch": nb_train, "infer": measure(infer, repeats=args["infer_repeats"]),
                       "infer_batch": nb_inf, "params": int(sum(p.numel() for p in model.parameters()))}
    return res


def _load_mnist_f32(path):
    """The full MNIST training set as float32 NHWC + one-hot, through minicnn's loader; random
    data of the same shape (flagged) when the loader or the files are missing."""
    try:
        from minicnn import datasets

        (x, y), _ = datasets.load_mnist(path, download=False)
        return datasets.to_float_nhwc(x), datasets.one_hot(y), "mnist"
    except Exception as exc:  # noqa: BLE001 - any failure falls back to synthetic data, flagged
        rng = np.random.default_rng(0)
        return (rng.random((60000, 28, 28, 1), dtype=F32), np.eye(10, dtype=F32)[rng.integers(0, 10, 60000)],
                f"random data of MNIST's shape ({type(exc).__name__}: {exc})")


def worker_memory(args):
    """Peak RSS of a training run (one epoch, or ``quick_samples`` samples) on the full MNIST
    training set held in memory as float32."""
    fw = args["framework"]
    rss0 = _rss_mb()
    if fw == "tensorflow":
        tf = _tf_setup()
    else:
        import minicnn

        minicnn.use_backend(fw.split("-")[1])
    rss_imports = _rss_mb()
    x, y, source = _load_mnist_f32(args["mnist"])
    rss_data = _rss_mb()
    n = args["samples"] or x.shape[0]
    t0 = time.perf_counter()
    if fw == "tensorflow":
        model = _keras_model("seed")
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        hist = model.fit(x[:n], y[:n], batch_size=100, epochs=1, verbose=0, shuffle=True)
        final_loss = float(hist.history["loss"][-1])
        del tf
    else:
        from minicnn.presets import build_preset

        model = build_preset("seed", dtype="float32", seed=0)
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        hist = model.fit(x[:n], y[:n], batch_size=100, epochs=1, verbose=0, shuffle=True, seed=0)
        final_loss = float(hist.history["loss"][-1])
    fit_s = time.perf_counter() - t0
    return {"framework": fw, "data": source, "samples_trained": int(n), "data_mb": (x.nbytes + y.nbytes) / 2**20,
            "rss_start_mb": rss0, "rss_after_imports_mb": rss_imports, "rss_after_data_mb": rss_data,
            "rss_end_mb": _rss_mb(), "peak_rss_mb": _maxrss_mb(), "fit_seconds": fit_s,
            "epoch_loss": final_loss}


def worker_compile(args):
    """Times in a fresh process: import, first train step (compiles or loads numba kernels),
    steady step, first inference; ``NUMBA_CACHE_DIR`` is set by the parent."""
    t0 = time.perf_counter()
    import minicnn
    from minicnn.presets import build_preset

    minicnn.use_backend("numba")
    from minicnn.kernels import numba_backend  # noqa: F401 - imported by use_backend; timed here

    t_import = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    x = rng.random((100, 28, 28, 1), dtype=F32)
    y = np.eye(10, dtype=F32)[rng.integers(0, 10, 100)]
    out = {"import_s": t_import, "cache_dir": os.environ.get("NUMBA_CACHE_DIR")}
    for preset in ("seed", "pooled"):
        model = build_preset(preset, dtype="float32", seed=0)
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        t = time.perf_counter()
        model.train_on_batch(x, y)
        first = time.perf_counter() - t
        t = time.perf_counter()
        model.predict(x, batch_size=100)
        first_pred = time.perf_counter() - t
        steady = measure(lambda: model.train_on_batch(x, y), repeats=5, warmup=1)
        out[preset] = {"first_step_s": first, "first_predict_s": first_pred,
                       "steady_step_s": steady["median_ms"] / 1e3,
                       "first_step_overhead_s": first - steady["median_ms"] / 1e3}
    files = list(Path(os.environ["NUMBA_CACHE_DIR"]).rglob("*.nbi")) if os.environ.get("NUMBA_CACHE_DIR") else []
    out["cached_functions"] = len(files)
    return out


WORKERS = {"peak": worker_peak, "minicnn": worker_minicnn, "tf": worker_tf, "torch": worker_torch,
           "memory": worker_memory, "compile": worker_compile}


# ----------------------------------------------------------------------------- orchestration
def run_worker(name, wargs, env_extra=None, timeout=1800):
    """Run one worker in a fresh interpreter; returns its JSON result or {'error': ...}."""
    with tempfile.TemporaryDirectory() as tmp:
        res_path = os.path.join(tmp, "result.json")
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.update(env_extra or {})
        cmd = [sys.executable, "-m", "benchmarks.run", "--worker", name, "--worker-args", json.dumps(wargs),
               "--result", res_path]
        t0 = time.perf_counter()
        try:
            p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout} s"}
        wall = time.perf_counter() - t0
        if p.returncode != 0 or not os.path.exists(res_path):
            return {"error": f"exit {p.returncode}: {p.stderr.strip()[-3000:]}", "wall_s": wall}
        with open(res_path) as f:
            out = json.load(f)
        out["wall_s"] = wall
        return out


def _worker_main(name, wargs, result_path):
    out = WORKERS[name](wargs)
    with open(result_path, "w") as f:
        json.dump(out, f, default=_json_default)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    return str(o)


def machine_info():
    info = {"python": sys.version.split()[0], "platform": platform.platform(), "machine": platform.machine(),
            "logical_cpus": os.cpu_count(), "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
            "NUMBA_NUM_THREADS": os.environ.get("NUMBA_NUM_THREADS"),
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"), "numpy": np.__version__}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        info["cpu_model"] = platform.processor()
    try:
        import psutil

        info["physical_cores"] = psutil.cpu_count(logical=False)
        info["ram_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    try:
        import threadpoolctl

        info["blas"] = threadpoolctl.threadpool_info()
    except ImportError:
        try:
            deps = np.show_config(mode="dicts")["Build Dependencies"]
            info["blas"] = {k: deps[k] for k in ("blas", "lapack") if k in deps}
        except Exception as exc:  # noqa: BLE001 - informational only
            info["blas"] = f"unknown ({exc})"
    from importlib.metadata import PackageNotFoundError, version

    for mod, dists in (("numba", ["numba"]), ("llvmlite", ["llvmlite"]),
                       ("tensorflow", ["tensorflow", "tensorflow-cpu", "tensorflow-intel"]),
                       ("keras", ["keras"]), ("torch", ["torch"]), ("matplotlib", ["matplotlib"]),
                       ("psutil", ["psutil"]), ("threadpoolctl", ["threadpoolctl"])):
        info[mod] = None
        for dist in dists:
            try:
                info[mod] = f"{version(dist)} ({dist})" if dist != mod else version(dist)
                break
            except PackageNotFoundError:
                continue
    return info


# ----------------------------------------------------------------------------- report
def _fmt_ms(t):
    if not t or "median_ms" not in t:
        return "—"
    m = t["median_ms"]
    s = f"{m:.3f}" if m < 1 else f"{m:.2f}" if m < 100 else f"{m:.0f}"
    return f"{s} [{t['min_ms']:.3g}–{t['max_ms']:.3g}]" + (" *" if t.get("noisy") else "")


def _ratio(a, b):
    """How many times faster a is than b (b_time / a_time)."""
    try:
        return b["median_ms"] / a["median_ms"]
    except (TypeError, KeyError, ZeroDivisionError):
        return float("nan")


def analyse(R):
    """Derived numbers: GFLOP/s, % of peak, ratios to TensorFlow, img/s, epoch times."""
    A = {"ops": {}, "steps": {}}
    peaks = R.get("peak", {})
    peak = max((v.get("gflops_best", 0) for v in peaks.values() if isinstance(v, dict)), default=float("nan"))
    A["matmul_peak_gflops"] = peak
    tf_ops = R.get("tensorflow", {}).get("ops", {})
    for fw in FRAMEWORKS:
        ops = R.get(fw, {}).get("ops")
        if not ops:
            continue
        A["ops"][fw] = {}
        for name, fwd_fl, bwd_fl in op_specs(100):
            for direction, fl in (("fwd", fwd_fl), ("bwd", bwd_fl)):
                t = ops.get(name, {}).get(direction)
                if not t:
                    continue
                e = {"gflops": fl / t["median_ms"] / 1e6 if fl else None}
                e["pct_peak"] = 100 * e["gflops"] / peak if fl and peak == peak else None
                tft = tf_ops.get(name, {}).get(direction)
                e["speed_vs_tf"] = _ratio(t, tft) if tft else None
                A["ops"][fw][f"{name} {direction}"] = e
    for fw in STEP_FRAMEWORKS:
        steps = R.get(fw, {}).get("steps")
        if not steps:
            continue
        A["steps"][fw] = {}
        for preset, s in steps.items():
            st, inf = s["train_step"], s["infer"]
            e = {"train_img_s": s["train_batch"] / st["median_ms"] * 1e3,
                 "train_gflops": train_flops(s["train_batch"], preset) / st["median_ms"] / 1e6,
                 "epoch_s_extrapolated": st["median_ms"] * 600 / 1e3,
                 "infer_img_s": s["infer_batch"] / inf["median_ms"] * 1e3,
                 "infer_gflops": infer_flops(s["infer_batch"], preset) / inf["median_ms"] / 1e6}
            e["train_pct_peak"] = 100 * e["train_gflops"] / peak if peak == peak else None
            A["steps"][fw][preset] = e
    tf_steps = A["steps"].get("tensorflow", {})
    for fw, by_preset in A["steps"].items():
        for preset, e in by_preset.items():
            ref = tf_steps.get(preset)
            if ref:
                e["train_vs_tf"] = e["train_img_s"] / ref["train_img_s"]
                e["infer_vs_tf"] = e["infer_img_s"] / ref["infer_img_s"]
    return A


def markdown(R, A):
    L = []
    w = L.append
    meta = R["meta"]
    w("# minicnn benchmark results\n")
    w(f"Run: {meta['started']} ({'quick' if meta['quick'] else 'full'} mode, {meta['duration_s']:.0f} s). "
      f"Command: `{meta['command']}`.\n")
    w("Times are milliseconds: median [min–max] over the repeats after warm-up; `*` marks a measurement "
      "that kept samples disturbed by other processes (the machine was busy). Speed ratios are "
      "TensorFlow time / minicnn time (> 1: minicnn is faster).\n")

    M = R["machine"]
    w("## Machine\n")
    w("| item | value |\n|---|---|")
    for k in ("cpu_model", "logical_cpus", "physical_cores", "ram_gb", "platform", "python", "numpy", "numba",
              "llvmlite", "tensorflow", "keras", "torch", "OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS",
              "NUMBA_NUM_THREADS"):
        w(f"| {k} | {M.get(k)} |")
    th = R.get("minicnn-numba", {}).get("threading", {})
    if th:
        w(f"| numba threading layer | {th.get('layer')} ({th.get('num_threads')} threads, OMP_WAIT_POLICY="
          f"{th.get('omp_wait_policy')}{' set by minicnn' if th.get('omp_wait_policy_set_by_minicnn') else ''}) |")
        w(f"| numba FMA tiles | {th.get('fma_tiles')} |")
        w(f"| numba kernels flush denormals (FTZ/DAZ) | {th.get('denormals_flushed_in_kernels')} |")
        w(f"| BLAS | {th.get('blas_library')} (core {th.get('blas_corename')}, "
          f"{th.get('blas_threads_outside_calls')} threads; called from numba threads: {th.get('blas_in_numba')}) |")
    tfi = R.get("tensorflow", {}).get("info", {})
    if tfi:
        w(f"| TensorFlow threads | intra-op {tfi.get('intra_op_threads')}, inter-op {tfi.get('inter_op_threads')} |")
        w(f"| oneDNN | enabled: {tfi.get('onednn_enabled')} "
          f"(TF_ENABLE_ONEDNN_OPTS={tfi.get('TF_ENABLE_ONEDNN_OPTS')}) |")
    w("")

    w("## Train step and inference\n")
    w("Train step: forward + backward + Adam update on one batch of 100 (minicnn: `model.train_on_batch`; "
      "TensorFlow: a `tf.function` train step of the same Keras architecture with Adam). Inference: "
      "minicnn `model.predict(x, batch_size=B)`; TensorFlow a `tf.function` forward. **Epoch time is "
      "extrapolated**: steady-state step time x 600 steps (60,000 images / 100); the memory section "
      "below has a measured `fit` epoch. `minicnn-numba-malloc`: the same measurement in a process started "
      "with `MALLOC_MMAP_THRESHOLD_=32 MiB`, `MALLOC_TRIM_THRESHOLD_=256 MiB` (glibc keeps freed 15-19 MB "
      "blocks instead of unmapping them and faulting them back in on the next step); minicnn itself does "
      "not change allocator settings.\n")
    w("| preset | framework | train step ms | train img/s | vs TF | epoch s (extrap.) | train GFLOP/s "
      "(% peak) | inference ms | infer img/s | vs TF |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for preset in ("seed", "pooled"):
        for fw in STEP_FRAMEWORKS:
            s = R.get(fw, {}).get("steps", {}).get(preset)
            e = A["steps"].get(fw, {}).get(preset)
            if not s or not e:
                continue
            pct = f" ({e['train_pct_peak']:.0f}%)" if e.get("train_pct_peak") else ""
            w(f"| {preset} | {fw} | {_fmt_ms(s['train_step'])} | {e['train_img_s']:.0f} | "
              f"{e.get('train_vs_tf', float('nan')):.2f}x | {e['epoch_s_extrapolated']:.1f} | "
              f"{e['train_gflops']:.0f}{pct} | {_fmt_ms(s['infer'])} (B={s['infer_batch']}) | "
              f"{e['infer_img_s']:.0f} | {e.get('infer_vs_tf', float('nan')):.2f}x |")
    for preset in ("seed", "pooled"):
        s = R.get("tensorflow", {}).get("steps", {}).get(preset)
        if s:
            w(f"\nKeras `train_on_batch` ({preset}): {_fmt_ms(s['keras_train_on_batch'])} ms; "
              f"`predict_on_batch`: {_fmt_ms(s['keras_predict_on_batch'])} ms.")
    w("")

    w("## Per op (batch 100, float32)\n")
    w("`minicnn-numba-gemm` is the numba backend with its FMA micro-kernels switched off (im2col + "
      "OpenBLAS GEMM for every conv), the alternative the tiles were measured against. "
      "Forward of a conv/dense layer includes bias and relu; backward includes relu's gradient and "
      "dkernel, dbias and dx (conv1, the first layer: no dx). pool is the pooled preset's "
      "MaxPool2D(2) on (100, 24, 24, 64). loss: softmax cross-entropy from logits (backward = loss + "
      "gradient). GFLOP/s count 2 FLOPs per multiply-add; % peak is against the best numpy float32 "
      "matmul rate measured below.\n")
    fws = [fw for fw in FRAMEWORKS if R.get(fw, {}).get("ops")]
    w("| op | " + " | ".join(f"{fw} ms" for fw in fws) + " | numba GFLOP/s (% peak) | numba vs TF | numpy vs TF |")
    w("|---|" + "---|" * (len(fws) + 3))
    for name, fwd_fl, bwd_fl in op_specs(100):
        for direction in ("fwd", "bwd"):
            cells = [_fmt_ms(R[fw]["ops"].get(name, {}).get(direction)) for fw in fws]
            e = A["ops"].get("minicnn-numba", {}).get(f"{name} {direction}", {})
            gf = f"{e['gflops']:.0f} ({e['pct_peak']:.0f}%)" if e.get("gflops") and e.get("pct_peak") else "—"
            r1 = e.get("speed_vs_tf")
            r2 = A["ops"].get("minicnn-numpy", {}).get(f"{name} {direction}", {}).get("speed_vs_tf")
            w(f"| {name} {direction} | " + " | ".join(cells) + f" | {gf} | "
              f"{'—' if r1 is None else f'{r1:.2f}x'} | {'—' if r2 is None else f'{r2:.2f}x'} |")
    if R.get("pytorch", {}).get("skipped"):
        w(f"\nPyTorch: skipped ({R['pytorch']['skipped']}).")
    w("")

    w("## numpy float32 matmul peak\n")
    w("numpy `matmul(a, b, out=c)` with numpy's own BLAS threads, on the GEMMs the model's layers "
      "amount to (im2col view) and on a large square product.\n")
    w("| GEMM (M x K) @ (K x N) | ms | GFLOP/s (median) | best |")
    w("|---|---|---|---|")
    for name, t in R.get("peak", {}).items():
        if isinstance(t, dict) and "median_ms" in t:
            w(f"| {name} | {_fmt_ms(t)} | {t['gflops']:.0f} | {t['gflops_best']:.0f} |")
    w(f"\nPeak used for % columns: {A['matmul_peak_gflops']:.0f} GFLOP/s.\n")

    w("## Peak memory of a training run (full MNIST training set held as float32)\n")
    w("One subprocess per framework: load the 60,000 training images through "
      "`minicnn.datasets.load_mnist`, convert to float32 NHWC + one-hot, then `fit` one epoch "
      "(`--quick`: a subset) at batch 100. Peak RSS is `ru_maxrss` of that process.\n")
    w("| framework | data | samples trained | data MB | RSS after imports MB | RSS after data MB | "
      "peak RSS MB | fit s |")
    w("|---|---|---|---|---|---|---|---|")
    for fw in ("minicnn-numba", "minicnn-numpy", "tensorflow"):
        m = R.get("memory", {}).get(fw)
        if not m:
            continue
        if "error" in m:
            w(f"| {fw} | error: {m['error'][:200]} |||||||")
            continue
        w(f"| {fw} | {m['data']} | {m['samples_trained']} | {m['data_mb']:.0f} | {m['rss_after_imports_mb']:.0f} | "
          f"{m['rss_after_data_mb']:.0f} | {m['peak_rss_mb']:.0f} | {m['fit_seconds']:.1f} |")
    w("")

    C = R.get("compile", {})
    if C:
        w("## numba compile time\n")
        w("A fresh process with an empty `NUMBA_CACHE_DIR` (first-ever run: every kernel compiles), "
          "then a second process on the now-warm cache. Overhead = first train step - steady-state step.\n")
        w("| process | import s | seed: first step s | seed: overhead s | pooled: first step s | "
          "pooled: overhead s | first predict s (seed) |")
        w("|---|---|---|---|---|---|---|")
        for label in ("cold", "warm"):
            c = C.get(label)
            if not c or "error" in c:
                w(f"| {label} | {c.get('error', '—')[:200] if c else '—'} ||||||")
                continue
            w(f"| {label} cache | {c['import_s']:.2f} | {c['seed']['first_step_s']:.2f} | "
              f"{c['seed']['first_step_overhead_s']:.2f} | {c['pooled']['first_step_s']:.2f} | "
              f"{c['pooled']['first_step_overhead_s']:.2f} | {c['seed']['first_predict_s']:.3f} |")
        w("")
    errs = {k: v["error"] for k, v in R.items() if isinstance(v, dict) and "error" in v}
    if errs:
        w("## Errors\n")
        for k, v in errs.items():
            w(f"- {k}: `{v[:500]}`")
    return "\n".join(L) + "\n"


def plot(R, A, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fws = [fw for fw in FRAMEWORKS if R.get(fw, {}).get("ops")]
    colors = {"minicnn-numba": "#1f77b4", "minicnn-numba-gemm": "#6baed6", "minicnn-numba-malloc": "#08519c",
              "minicnn-numpy": "#c6dbef",
              "tensorflow": "#ff7f0e", "pytorch": "#d62728"}
    labels = [f"{n} {d}" for n, _, _ in op_specs(100) for d in ("fwd", "bwd")]
    fig, axes = plt.subplots(1, 2, figsize=(15, 5.5), gridspec_kw={"width_ratios": [2.2, 1]})
    ax = axes[0]
    width = 0.8 / max(1, len(fws))
    xs = np.arange(len(labels))
    for i, fw in enumerate(fws):
        vals = []
        for lab in labels:
            name, d = lab.split()
            t = R[fw]["ops"].get(name, {}).get(d)
            vals.append(t["median_ms"] if t else np.nan)
        ax.bar(xs + (i - (len(fws) - 1) / 2) * width, vals, width, label=fw, color=colors.get(fw))
    ax.set_yscale("log")
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, rotation=45, ha="right")
    ax.set_ylabel("ms (median, log scale)")
    ax.set_title("Per op, batch 100, float32")
    ax.legend()
    ax = axes[1]
    groups = [("seed train", "train_img_s", "seed"), ("seed infer", "infer_img_s", "seed"),
              ("pooled train", "train_img_s", "pooled"), ("pooled infer", "infer_img_s", "pooled")]
    sfws = [fw for fw in STEP_FRAMEWORKS if fw in A["steps"]]
    width = 0.8 / max(1, len(sfws))
    xs = np.arange(len(groups))
    for i, fw in enumerate(sfws):
        vals = [A["steps"][fw].get(p, {}).get(key, np.nan) for _, key, p in groups]
        ax.bar(xs + (i - (len(sfws) - 1) / 2) * width, vals, width, label=fw, color=colors.get(fw))
    ax.set_yscale("log")
    ax.set_xticks(xs)
    ax.set_xticklabels([g[0] for g in groups], rotation=20)
    ax.set_ylabel("images / s (log scale)")
    ax.set_title("Throughput (train: batch 100; infer: batch %d)" % R["meta"]["infer_batch"])
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats, smaller batches (< 2 min)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="output directory")
    ap.add_argument("--mnist", default=os.environ.get("MINICNN_DATA_DIR", DEFAULT_MNIST),
                    help="MNIST directory for the memory section")
    ap.add_argument("--skip", default="", help="comma-separated sections to skip: "
                    "peak,alternatives,memory,compile,tensorflow,pytorch,numpy")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--worker-args", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        _worker_main(a.worker, json.loads(a.worker_args), a.result)
        return 0

    skip = {s.strip() for s in a.skip.split(",") if s.strip()}
    quick = a.quick
    base = {"quick": quick, "op_repeats": 3 if quick else 15, "step_repeats": 5 if quick else 30,
            "infer_repeats": 2 if quick else 10}
    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    R = {"meta": {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "quick": quick,
                  "command": "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:]),
                  "infer_batch": 200 if quick else 1000, "repeats": base},
         "machine": machine_info()}

    def step(label, fn):
        print(f"[{time.time() - t_start:6.1f}s] {label} ...", flush=True)
        return fn()

    if "peak" not in skip:
        R["peak"] = step("matmul peak", lambda: run_worker("peak", base))
    R["minicnn-numba"] = step("minicnn-numba: ops, train step, inference",
                              lambda: run_worker("minicnn", {**base, "backend": "numba"}))
    if "alternatives" not in skip:
        R["minicnn-numba-gemm"] = step("minicnn-numba with the FMA tiles off (im2col + GEMM): ops",
                                       lambda: run_worker("minicnn", {**base, "backend": "numba", "tiles": False}))
    if "alternatives" not in skip:
        R["minicnn-numba-malloc"] = step("minicnn-numba with glibc malloc tuned: train step, inference",
                                         lambda: run_worker("minicnn", {**base, "backend": "numba", "steps_only": True},
                                                            MALLOC_ENV))
    if "numpy" not in skip:
        R["minicnn-numpy"] = step("minicnn-numpy: ops, train step, inference",
                                  lambda: run_worker("minicnn", {**base, "backend": "numpy"}))
    if "tensorflow" not in skip:
        R["tensorflow"] = step("tensorflow: ops, train step, inference", lambda: run_worker("tf", base))
    if "pytorch" not in skip:
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            R["pytorch"] = {"skipped": "torch is not importable"}
        else:
            R["pytorch"] = step("pytorch: ops, train step, inference", lambda: run_worker("torch", base))
    if "memory" not in skip:
        R["memory"] = {}
        for fw in ("minicnn-numba", "minicnn-numpy", "tensorflow"):
            if (fw == "tensorflow" and "tensorflow" in skip) or (fw == "minicnn-numpy" and "numpy" in skip):
                continue
            R["memory"][fw] = step(f"memory: {fw}", lambda fw=fw: run_worker(
                "memory", {**base, "framework": fw, "mnist": a.mnist, "samples": 2000 if quick else 0}))
    if "compile" not in skip:
        with tempfile.TemporaryDirectory(prefix="minicnn-numba-cache-") as cache:
            env = {"NUMBA_CACHE_DIR": cache}
            R["compile"] = {"cold": step("numba compile: cold cache", lambda: run_worker("compile", base, env)),
                            "warm": step("numba compile: warm cache", lambda: run_worker("compile", base, env))}
    R["meta"]["duration_s"] = time.time() - t_start
    A = analyse(R)
    R["derived"] = A
    with open(out_dir / "results.json", "w") as f:
        json.dump(R, f, indent=1, default=_json_default)
    (out_dir / "results.md").write_text(markdown(R, A))
    try:
        plot(R, A, out_dir / "results.png")
    except Exception as exc:  # noqa: BLE001 - the tables matter more than the chart
        print(f"plot failed: {exc}", file=sys.stderr)
    print(f"[{time.time() - t_start:6.1f}s] wrote {out_dir}/results.json, results.md, results.png")
    for fw, by in A["steps"].items():
        for preset, e in by.items():
            print(f"  {preset:6s} {fw:20s} train {e['train_img_s']:7.0f} img/s"
                  f" ({e.get('train_vs_tf', math.nan):.2f}x TF)  infer {e['infer_img_s']:7.0f} img/s"
                  f" ({e.get('infer_vs_tf', math.nan):.2f}x TF)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
