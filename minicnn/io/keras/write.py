"""Writing Keras files: Keras 3 ``.weights.h5``, ``.keras`` archives and legacy ``.h5``."""

from __future__ import annotations

import datetime
import io
import json
import zipfile

import numpy as np

from .common import CONFIG_NAME, METADATA_NAME, WEIGHTS_NAME, WRITTEN_KERAS_VERSION, h5py_module

#: the Keras version written into legacy Keras 2 weights files (their layout is Keras 2's)
LEGACY_KERAS_VERSION = "2.15.0"
from .compile import compile_config
from .config import keras3_keys_of, keras_config


def keras3_weights_bytes(model) -> bytes:
    h5py = h5py_module()
    buf = io.BytesIO()
    keys = keras3_keys_of(model)
    with h5py.File(buf, "w") as h5:
        layers = h5.create_group("layers")
        for key, layer in zip(keys, model.layers):
            v = layers.create_group(key).create_group("vars")
            v.attrs["name"] = layer.name
            for i, w in enumerate(layer.get_weights()):
                v.create_dataset(str(i), data=np.ascontiguousarray(w))
        h5.create_group("vars").attrs["name"] = model.name
    return buf.getvalue()


def keras_zip_bytes(model) -> bytes:
    buf = io.BytesIO()
    meta = {"keras_version": WRITTEN_KERAS_VERSION,
            "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr(METADATA_NAME, json.dumps(meta))
        config = keras_config(model)
        compiled = compile_config(model)
        if compiled is not None:
            config["compile_config"] = compiled
        z.writestr(CONFIG_NAME, json.dumps(config))
        z.writestr(WEIGHTS_NAME, keras3_weights_bytes(model))
    return buf.getvalue()


def legacy_h5_bytes(model) -> bytes:
    h5py = h5py_module()
    buf = io.BytesIO()
    cfg = keras_config(model)
    legacy = {"class_name": "Sequential", "config": cfg["config"]}
    with h5py.File(buf, "w") as h5:
        h5.attrs["backend"] = "tensorflow"
        h5.attrs["keras_version"] = WRITTEN_KERAS_VERSION
        h5.attrs["model_config"] = json.dumps(legacy)
        g = h5.create_group("model_weights")
        g.attrs["backend"] = "tensorflow"
        g.attrs["keras_version"] = WRITTEN_KERAS_VERSION
        g.attrs["layer_names"] = _bytes_list([l.name for l in model.layers])
        _layer_groups(g, model, lambda layer, k: f"{model.name}/{layer.name}/{k}")
        top = g.create_group("top_level_model_weights")
        top.attrs["weight_names"] = _bytes_list([])
    return buf.getvalue()


def legacy_weights_h5_bytes(model) -> bytes:
    """Keras 2's ``save_weights('w.h5')`` layout, which Keras 3's ``load_weights('w.h5')`` still
    reads: root attributes ``layer_names``, ``backend``, ``keras_version``; one group per layer
    (sorted by name) with attribute ``weight_names`` and datasets ``<layer>/<layer>/kernel:0``."""
    h5py = h5py_module()
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h5:
        h5.attrs["layer_names"] = _bytes_list([l.name for l in model.layers])
        h5.attrs["backend"] = b"tensorflow"
        h5.attrs["keras_version"] = LEGACY_KERAS_VERSION.encode()
        _layer_groups(h5, model, lambda layer, k: f"{layer.name}/{k}:0")
    return buf.getvalue()


def _layer_groups(parent, model, dataset_name) -> None:
    """One group per layer (sorted by name, as Keras 2 writes them) in ``parent``, with attribute
    ``weight_names`` and one dataset per weight, named ``dataset_name(layer, weight)``."""
    for layer in sorted(model.layers, key=lambda l: l.name):
        lg = parent.create_group(layer.name)
        names = [dataset_name(layer, k) for k in layer.weight_names if k in layer.params]
        lg.attrs["weight_names"] = _bytes_list(names)
        for n, w in zip(names, layer.get_weights()):
            lg.create_dataset(n, data=np.ascontiguousarray(w))


def _bytes_list(names):
    """A string-list attribute as Keras writes it (fixed-length bytes; empty float array if none)."""
    return np.asarray([n.encode("utf-8") for n in names]) if names else np.asarray([])
