"""One Keras 3 backend's side of the three-framework crosscheck, run in its own process.

``python -m reference.framework_worker JOB.json`` with ``KERAS_BACKEND`` set to ``tensorflow``,
``jax`` or ``torch`` (and ``JAX_ENABLE_X64=1`` for a float64 JAX job): Keras picks its backend
once, at import, so each backend needs a process of its own. The job (written by
:mod:`reference.crosscheck.frameworks`) names

* ``config``: the Keras 3 model config (the ``config.json`` of a ``.keras`` file, written by
  minicnn), ``weights``: the model's Keras 3 ``.weights.h5`` (written by minicnn);
* ``arrays``: an ``.npz`` (read with ``allow_pickle=False``) holding, for every layer ``i``,
  ``x/i`` (minicnn's input to that layer, N x ...) and ``dy/i`` (minicnn's gradient w.r.t. that
  layer's output), plus ``train_x`` (K*B x H x W x C) and ``train_y`` (K*B x classes) in step order;
* ``dtype``, ``steps``, ``batch``, ``optimizer`` ([class name, keyword arguments]) and ``out``.

It writes ``out`` (an ``.npz``, atomically) with, per layer ``i``, ``out/i`` (the layer's
output at ``x/i``), ``dX/i`` and ``d/i/<weight>`` (the vector-Jacobian product of ``dy/i``,
taken with the backend's own autodiff: ``tf.GradientTape``, ``jax.vjp``, ``torch.autograd``), and
``loss`` (K losses of ``train_on_batch`` with the backend's Keras optimizer), ``final/j`` (the
weights after K steps, ``get_weights`` order); and ``out``'s ``.json`` twin with the device,
versions and seconds. Both inputs and upstream gradients are pinned to minicnn's, so every row
measures one layer's own arithmetic.

Nothing of minicnn is imported here: the worker sees only Keras, NumPy and its backend.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402

#: the pip extra that brings each backend (pyproject.toml)
EXTRAS = {"tensorflow": "tf", "jax": "jax", "torch": "torch"}


# ----------------------------------------------------------------------------- devices and TF32
def setup_backend(threads: int) -> tuple[str, dict]:
    """Threads capped, TF32 off (it only exists on GPUs), and (device, versions) of the backend."""
    if BACKEND == "tensorflow":
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        tf.config.experimental.enable_tensor_float_32_execution(False)
        gpus = tf.config.list_physical_devices("GPU")
        device = gpus[0].name if gpus else "CPU:0"
        return device, {"tensorflow": tf.__version__}
    if BACKEND == "jax":
        import jax
        # 'highest': no bfloat16/TF32 passes in matmuls and convolutions on a GPU or TPU
        jax.config.update("jax_default_matmul_precision", "highest")
        d = jax.devices()[0]
        return f"{d.platform}:{d.id}", {"jax": jax.__version__, "x64": bool(jax.config.jax_enable_x64)}
    if BACKEND == "torch":
        import torch
        torch.set_num_threads(threads)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        device = f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu"
        return device, {"torch": torch.__version__, "cuda_build": torch.version.cuda}
    raise ValueError(f"KERAS_BACKEND={BACKEND!r}: the worker runs tensorflow, jax or torch")


# ----------------------------------------------------------------------------- one layer's VJP
def _weight_name(variable) -> str:
    return variable.path.rsplit("/", 1)[-1]


def layer_vjp(layer, x, dy):
    """(output, dX, {weight name: d weight}) of one Keras layer at input ``x`` in training mode,
    the VJP of upstream gradient ``dy`` taken by the backend's own autodiff."""
    tv = list(layer.trainable_variables)
    names = [_weight_name(v) for v in tv]
    if BACKEND == "tensorflow":
        import tensorflow as tf
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = layer(xt, training=True)
        res = tape.gradient(y, [xt] + tv, output_gradients=tf.constant(dy))
        return np.asarray(y), np.asarray(res[0]), {k: np.asarray(g) for k, g in zip(names, res[1:])}
    if BACKEND == "jax":
        import jax
        ntv = [v.value for v in layer.non_trainable_variables]
        # stateless_call hands its keywords to call(), which takes `training` only where it matters
        kw = {"training": True} if layer._call_has_training_arg else {}

        def f(xj, tvj):  # stateless: the batch-norm moving statistics it returns are dropped
            return layer.stateless_call(tvj, ntv, xj, **kw)[0]

        y, vjp = jax.vjp(f, jax.numpy.asarray(x), [v.value for v in tv])
        dx, dws = vjp(jax.numpy.asarray(dy))
        return np.asarray(y), np.asarray(dx), {k: np.asarray(g) for k, g in zip(names, dws)}
    import torch
    xt = torch.tensor(x, requires_grad=True)
    y = layer(xt, training=True)
    res = torch.autograd.grad(y, [xt] + [v.value for v in tv], grad_outputs=torch.tensor(dy))
    return (y.detach().cpu().numpy(), res[0].cpu().numpy(),
            {k: g.cpu().numpy() for k, g in zip(names, res[1:])})


# ----------------------------------------------------------------------------- the job
def load_model(job):
    with open(job["config"]) as f:
        config = json.load(f)
    model = keras.saving.deserialize_keras_object(config)
    model.load_weights(job["weights"])
    return model


def run(job) -> dict:
    """The job's per-layer quantities, training trajectory and metadata (see the module docstring)."""
    dtype = job["dtype"]
    keras.config.set_floatx(dtype)
    device, versions = setup_backend(int(job.get("threads", 1)))
    t0 = time.perf_counter()
    model = load_model(job)
    results = {}
    with np.load(job["arrays"], allow_pickle=False) as a:
        arrays = {k: a[k] for k in a.files}
    for i, layer in enumerate(model.layers):
        out, dx, dws = layer_vjp(layer, arrays[f"x/{i}"], arrays[f"dy/{i}"])
        results[f"out/{i}"], results[f"dX/{i}"] = out, dx
        for k, g in dws.items():
            results[f"d/{i}/{k}"] = g
    layer_seconds = time.perf_counter() - t0
    steps, batch = int(job["steps"]), int(job["batch"])
    if steps:
        model = load_model(job)  # the layer pass moved nothing, but start training from the file
        cls, kw = job["optimizer"]
        model.compile(optimizer=getattr(keras.optimizers, cls)(**kw),
                      loss=keras.losses.CategoricalCrossentropy(dtype=dtype), jit_compile=False)
        xs, ys = arrays["train_x"], arrays["train_y"]
        losses = [float(np.asarray(model.train_on_batch(xs[k * batch:(k + 1) * batch], ys[k * batch:(k + 1) * batch])))
                  for k in range(steps)]
        results["loss"] = np.asarray(losses, dtype=np.float64)
        for j, w in enumerate(model.get_weights()):
            results[f"final/{j}"] = np.asarray(w)
    meta = {"backend": BACKEND, "device": device, "dtype": dtype, "keras": keras.__version__,
            "numpy": np.__version__, "python": platform.python_version(), **versions,
            "layers": [l.name for l in model.layers], "layer_seconds": layer_seconds,
            "seconds": time.perf_counter() - t0, "jit_compile": False}
    return results, meta


def _atomic_savez(path, arrays):
    tmp = f"{path}.part.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: KERAS_BACKEND=tensorflow|jax|torch python -m reference.framework_worker JOB.json", file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        job = json.load(f)
    results, meta = run(job)
    _atomic_savez(job["out"], results)
    tmp = job["out"] + ".json.part"
    with open(tmp, "w") as f:
        json.dump(meta, f)
    os.replace(tmp, job["out"] + ".json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
