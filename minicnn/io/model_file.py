"""Model files.

minicnn's own format is one uncompressed ``.npz``: the weights as arrays named
``weights/<layer>/<kernel|bias>`` plus ``config.json`` (architecture, dtype, compile settings and
a SHA-256 over the weights and the JSON; see :mod:`minicnn.fileio`). It is read without pickle:
opening a model file never runs code, and a config can only name minicnn's own layer, optimizer
and loss classes. Any problem with the file is a :class:`~minicnn.errors.ModelFileError`.
Keras files (``.h5``, ``.keras``, ``.weights.h5``) are handled by :mod:`minicnn.io.keras`,
which needs h5py but not TensorFlow.

Readers build models of the class they are given (``model_class``, default
:class:`~minicnn.model.Network`); :func:`minicnn.load_model` asks for a Sequential.
"""

from __future__ import annotations

import os

from .. import losses, optimizers
from ..errors import ModelFileError
from ..fileio import read_npz, write_npz
from ..layers import LAYER_CLASSES, planned_params
from ..model import Network
from . import keras

FORMAT = "minicnn-model-1"
KERAS_SUFFIXES = (".weights.h5", ".h5", ".keras")
#: what interpreting a (checksummed but possibly hand-edited) config can raise
CONFIG_ERRORS = (KeyError, IndexError, TypeError, ValueError, AttributeError, ArithmeticError,
                 MemoryError, RecursionError)
#: weights an architecture may need beyond what the file holds before it is refused unbuilt
_ALLOCATION_SLACK = 1 << 20


def is_keras_path(path) -> bool:
    return os.fspath(path).lower().endswith(KERAS_SUFFIXES)


def save_model(model, path) -> None:
    """Write ``model`` to ``path`` atomically (``.npz``, or Keras ``.weights.h5``)."""
    path = os.fspath(path)
    if not model.built:
        raise ValueError("build the model (or fit it) before saving")
    if is_keras_path(path):
        keras.save(model, path)
        return
    arrays = {f"weights/{k}": p for k, p in model.named_weights()}
    meta = {"format": FORMAT, "model": model.get_config(),
            "compile": None if model.loss is None else {
                "optimizer": model.optimizer.get_config(), "loss": model.loss.get_config(),
                "metrics": list(model.metrics)}}
    write_npz(path, arrays, meta)


def load_model(path, architecture=None, model_class=Network):
    """Load a model file. ``architecture`` (a built model) is needed only for weights-only
    Keras files, which carry no architecture."""
    path = os.fspath(path)
    if is_keras_path(path):
        return keras.load(path, architecture=architecture, model_class=model_class)
    arrays, meta = read_npz(path, what="model file", budget=model_budget)
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"model file {path!r} has format {meta.get('format')!r}, expected {FORMAT!r}")
    unexpected = sorted(k for k in arrays if not k.startswith("weights/"))
    if unexpected:
        raise ModelFileError(f"model file {path!r} has unexpected entries {unexpected}")
    model = model_from_config(meta.get("model"), path, max_params=sum(a.size for a in arrays.values()),
                              model_class=model_class)
    assign_named_weights(model, {k[len("weights/"):]: v for k, v in arrays.items()}, path)
    comp = meta.get("compile")
    if comp is not None:
        compile_from_config(model, comp, path)
    return model


def compile_from_config(model, comp, path, what="model file") -> None:
    try:
        if not isinstance(comp, dict):
            raise TypeError(f"expected a JSON object, got {type(comp).__name__}")
        metrics = comp.get("metrics") or []
        if not isinstance(metrics, list):
            raise TypeError(f"metrics must be a list, got {type(metrics).__name__}")
        model.compile(optimizer=optimizer_from_config(comp["optimizer"]), loss=losses.get(comp["loss"]), metrics=metrics)
    except CONFIG_ERRORS as e:
        raise ModelFileError(f"{what} {path!r} has invalid compile settings: {type(e).__name__}: {e}") from None


def optimizer_from_config(cfg):
    """An optimizer from a saved ``get_config()`` dict (only minicnn's own optimizer classes)."""
    if not isinstance(cfg, dict) or not isinstance(cfg.get("name"), str):
        raise ValueError(f"an optimizer config must be a JSON object with a 'name', got {cfg!r:.80}")
    return optimizers.get(dict(cfg))


def model_budget(meta) -> int | None:
    """The most bytes a model file's arrays may declare: its architecture's weights in the widest
    dtype, plus slack (None if the record names no architecture that can be sized)."""
    planned = planned_parameter_count(meta.get("model")) if isinstance(meta, dict) else None
    return None if planned is None else (planned + _ALLOCATION_SLACK) * 8


def planned_parameter_count(config):
    """How many weights ``config`` would allocate, from its shapes alone (nothing is allocated),
    or None if that cannot be told (then building it reports what is wrong)."""
    try:
        layers = [LAYER_CLASSES[spec["class_name"]].from_config(dict(spec["config"]))
                  for spec in config["layers"]]
        return planned_params(layers, tuple(int(d) for d in config["input_shape"]))
    except CONFIG_ERRORS:
        return None


def model_from_config(config, path, what="model file", max_params=None, model_class=Network):
    """A built model (of ``model_class``) from a saved architecture; ModelFileError if it is not a valid one.

    With ``max_params`` (the number of weights the file holds), an architecture that would need
    far more is refused before anything is allocated: a doctored config cannot make loading
    allocate gigabytes. (Smaller mismatches are reported weight by weight after building.)"""
    try:
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError("expected a JSON object with a 'layers' list")
        if max_params is not None:
            planned = planned_parameter_count(config)
            if planned is not None and planned > max_params + _ALLOCATION_SLACK:
                raise ValueError(f"it needs {planned} weights but the file holds only {max_params}")
        model = model_class.from_config(config)
        if not model.built:
            raise ValueError("the saved architecture has no input shape")
    except CONFIG_ERRORS as e:
        raise ModelFileError(f"{what} {path!r} has an invalid architecture: {type(e).__name__}: {e}") from None
    return model


def assign_named_weights(model, weights: dict, path, what="model file") -> None:
    """Copy ``{'layer/kernel': array}`` into ``model``, checking names, shapes and dtypes first."""
    expected = dict(model.named_weights())
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing or extra:
        raise ModelFileError(f"{what} {path!r}: weights do not match the architecture "
                             f"(missing: {missing or 'none'}; unexpected: {extra or 'none'})")
    for k, p in expected.items():
        w = weights[k]
        if w.shape != p.shape or w.dtype != p.dtype:
            raise ModelFileError(f"{what} {path!r}: weight {k!r} is {w.shape} {w.dtype}, "
                                 f"expected {p.shape} {p.dtype}")
    for k, p in expected.items():
        p[...] = weights[k]
