"""TensorFlow's thread pools and TF32, and the report header (versions, backends, threads)."""

from __future__ import annotations

import contextlib
import os
import platform

import keras
import numba
import numpy as np
import tensorflow as tf

import minicnn
from minicnn.kernels import backend_name

_TF_STATE: dict = {}


def setup_tensorflow(threads: int | None = None):
    """Cap TensorFlow's thread pools (default: cores, inter-op 1) and turn TF32 off, once.

    Thread settings only take effect before TensorFlow's runtime starts (importing TensorFlow
    does not start it; the first op does); the header reports the pools actually in force.
    Returns the ``tensorflow`` module."""
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
