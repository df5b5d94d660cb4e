"""Model files.

minicnn's own format is one uncompressed ``.npz``: the weights as arrays named
``weights/<layer>/<kernel|bias>`` plus ``config.json`` (architecture, dtype, compile settings and
a SHA-256 of the weights). It is read with ``allow_pickle=False``: opening a model file never
runs code. Keras files (``.h5``, ``.keras``, ``.weights.h5``) are handled by
:mod:`minicnn.keras_files`, which needs h5py but not TensorFlow.
"""

from __future__ import annotations

import os

from . import losses, optimizers
from .errors import ModelFileError
from .fileio import arrays_digest, atomic_write, npz_bytes, read_npz

FORMAT = "minicnn-model-1"
KERAS_SUFFIXES = (".weights.h5", ".h5", ".keras")


def is_keras_path(path) -> bool:
    return os.fspath(path).lower().endswith(KERAS_SUFFIXES)


def save_model(model, path) -> None:
    """Write ``model`` to ``path`` atomically (``.npz``, or Keras ``.weights.h5``)."""
    path = os.fspath(path)
    if not model.built:
        raise ValueError("build the model (or fit it) before saving")
    if is_keras_path(path):
        from . import keras_files
        keras_files.save(model, path)
        return
    arrays = {f"weights/{k}": p for k, p, _ in model.named_parameters()}
    meta = {"format": FORMAT, "model": model.get_config(), "sha256": arrays_digest(arrays),
            "compile": None if model.loss is None else {
                "optimizer": model.optimizer.get_config(), "loss": model.loss.get_config(),
                "metrics": list(model.metrics)}}
    atomic_write(path, npz_bytes(arrays, meta))


def load_model(path, architecture=None):
    """Load a model file. ``architecture`` (a built Sequential) is needed only for weights-only
    Keras files, which carry no architecture."""
    path = os.fspath(path)
    if is_keras_path(path):
        from . import keras_files
        return keras_files.load(path, architecture=architecture)
    arrays, meta = read_npz(path, what="model file")
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"model file {path!r} has format {meta.get('format')!r}, expected {FORMAT!r}")
    if arrays_digest(arrays) != meta.get("sha256"):
        raise ModelFileError(f"model file {path!r} fails its checksum (damaged or tampered with)")
    model = model_from_config(meta.get("model"), path)
    weights = {k[len("weights/"):]: v for k, v in arrays.items() if k.startswith("weights/")}
    assign_named_weights(model, weights, path)
    comp = meta.get("compile")
    if comp:
        try:
            model.compile(optimizers.get(comp["optimizer"]), losses.get(comp["loss"]), comp.get("metrics"))
        except (KeyError, TypeError, ValueError) as e:
            raise ModelFileError(f"model file {path!r} has invalid compile settings: {e}") from None
    return model


def model_from_config(config, path):
    from .model import Sequential
    try:
        model = Sequential.from_config(config)
        if not model.built:
            raise ValueError("the saved architecture has no input shape")
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ModelFileError(f"model file {path!r} has an invalid architecture: {e}") from None
    return model


def assign_named_weights(model, weights: dict, path) -> None:
    """Copy ``{'layer/kernel': array}`` into ``model``, checking names, shapes and dtypes first."""
    expected = {k: p for k, p, _ in model.named_parameters()}
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing or extra:
        raise ModelFileError(f"model file {path!r}: weights do not match the architecture "
                             f"(missing: {missing or 'none'}; unexpected: {extra or 'none'})")
    for k, p in expected.items():
        w = weights[k]
        if w.shape != p.shape or w.dtype != p.dtype:
            raise ModelFileError(f"model file {path!r}: weight {k!r} is {w.shape} {w.dtype}, "
                                 f"expected {p.shape} {p.dtype}")
    for k, p in expected.items():
        p[...] = weights[k]
