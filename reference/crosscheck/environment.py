"""TensorFlow's device, thread pools, TF32 and op determinism, and the report header (versions,
backends, threads, device).

Device (issue 15, item 5): when TensorFlow sees a GPU (``tf.config.list_physical_devices('GPU')``
non-empty), the Keras side runs there — TensorFlow's default placement puts every op on the first
GPU — with TF32 off (``enable_tensor_float_32_execution(False)``: float32 matmuls and convolutions
keep their 24-bit significand instead of TF32's 11) and op determinism on
(``enable_op_determinism()``: cuDNN's non-deterministic algorithms, e.g. atomics in backward
convolutions, are not chosen, so two runs of a check agree bit for bit). The header names the
device either way (:func:`select_device`); on CPU it says "device: CPU (no GPU visible)". TF32 is
turned off on CPU too (it is a no-op there)."""

from __future__ import annotations

import contextlib
import os
import platform

import keras
import numba
import numpy as np
import tensorflow as tf
from tensorflow.python.framework import config as tf_config_impl  # is_op_determinism_enabled: no public getter

import minicnn
from minicnn.kernels import backend_name

_TF_STATE: dict = {}


def select_device(gpus) -> dict:
    """Where the TensorFlow side runs, from the physical GPUs TensorFlow lists (each with a
    ``name``, like ``tf.config.list_physical_devices('GPU')``'s): {'kind': 'GPU' or 'CPU',
    'name', 'determinism': whether op determinism is to be turned on, 'text': the header's line}."""
    gpus = list(gpus)
    if not gpus:
        return {"kind": "CPU", "name": "CPU", "gpus": [], "determinism": False,
                "text": "device: CPU (no GPU visible)"}
    names = [g.name for g in gpus]
    more = f" ({len(names)} GPUs visible; the first is used)" if len(names) > 1 else ""
    return {"kind": "GPU", "name": names[0], "gpus": names, "determinism": True,
            "text": f"device: GPU {names[0]}{more}; TF32 off, op determinism on"}


def setup_tensorflow(threads: int | None = None, seed: int = 0):
    """Cap TensorFlow's thread pools (default: cores, inter-op 1), turn TF32 off and, on a GPU,
    op determinism on (with TensorFlow's global seed set to ``seed``: TensorFlow's documentation
    pairs the two, so that random ops are deterministic as well), once.

    Thread settings only take effect before TensorFlow's runtime starts (importing TensorFlow
    does not start it; the first op does); the header reports the pools actually in force.
    Returns the ``tensorflow`` module."""
    if not _TF_STATE:
        device = select_device(tf.config.list_physical_devices("GPU"))
        _TF_STATE["device"] = device
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
        if device["determinism"]:
            tf.random.set_seed(seed)
            tf.config.experimental.enable_op_determinism()
    return tf


def device_state() -> dict:
    """The device :func:`setup_tensorflow` chose, with TF32 and op determinism as TensorFlow
    reports them now."""
    device = dict(_TF_STATE.get("device") or select_device(tf.config.list_physical_devices("GPU")))
    try:
        device["tf32"] = bool(tf.config.experimental.tensor_float_32_execution_enabled())
    except AttributeError:
        device["tf32"] = None
    device["op_determinism"] = _op_determinism()
    return device


def _op_determinism():
    """Whether TensorFlow's op determinism is on (None when this TensorFlow cannot say)."""
    getter = getattr(tf_config_impl, "is_op_determinism_enabled", None)
    return bool(getter()) if getter else None


def onednn_state() -> str:
    """oneDNN as TensorFlow read it at import (``TF_ENABLE_ONEDNN_OPTS``)."""
    env = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    if env is None:
        return "on (TF_ENABLE_ONEDNN_OPTS unset; TensorFlow's default on Linux x86)"
    if env.strip() in ("0", "false", "False"):
        return f"off (TF_ENABLE_ONEDNN_OPTS={env})"
    return f"on (TF_ENABLE_ONEDNN_OPTS={env})"


def header(model, dtype, seed, data_source, batch) -> dict:
    """Everything that can change a float32 digit: versions, backend, threads, oneDNN, TF32."""
    try:
        tf32 = bool(tf.config.experimental.tensor_float_32_execution_enabled())
    except AttributeError:
        tf32 = None
    backend = backend_name()
    return {
        "versions": {"minicnn": minicnn.__version__, "numpy": np.__version__, "numba": numba.__version__,
                     "tensorflow": tf.__version__, "keras": keras.__version__,
                     "python": platform.python_version()},
        "backend": backend,
        "dtype": np.dtype(dtype).name,
        "onednn": onednn_state(),
        "tf32": tf32,
        "threads": {"numba": numba.get_num_threads() if backend == "numba" else None,
                    "tf_intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                    "tf_inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
                    "cpu_count": os.cpu_count()},
        "tf_devices": [d.name for d in tf.config.list_logical_devices()],
        "device": device_state(),
        "seed": seed,
        "model": model.name,
        "params": model.count_params(),
        "layers": [l.name for l in model.layers],
        "batch": batch,
        "data": data_source,
    }


@contextlib.contextmanager
def floatx(dtype):
    """``keras.config.floatx`` set to ``dtype`` for the duration (Keras's learning-rate
    variable, loss and metrics then use it; docs/parity.md, "Keras keeps the learning rate in
    floatx")."""
    previous = keras.config.floatx()
    keras.config.set_floatx(np.dtype(dtype).name)
    try:
        yield
    finally:
        keras.config.set_floatx(previous)
