"""minicnn Sequential <-> Keras 3 Sequential, weights both ways.

Weight layouts are identical by design (minicnn adopted Keras's): conv kernels HWIO
``(KH, KW, C_in, C_out)``, dense kernels ``(in, out)``, biases ``(out,)``, activations NHWC and
Flatten in H, W, C order (so Dense rows need no permutation). Weights are therefore copied as
they are, checked for shape and cast to the target dtype.

Architectures go through the same config translation as Keras files: each minicnn layer writes
its own Keras config (:func:`minicnn.io.keras.keras_layer_spec`) and reads one back
(:func:`minicnn.io.keras.model_from_keras_config`), so every layer and option minicnn supports
maps one to one, with explicit layer names and a ``dtype=`` on every layer (a float32 layer in a
float64 Keras model would cast to float32).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from minicnn import Sequential  # noqa: E402
from minicnn.io import keras as keras_files  # noqa: E402


# ----------------------------------------------------------------------------- layers
def keras_layer(layer, dtype: str, input_shape=None):
    """A fresh Keras layer equivalent to one built minicnn layer (explicit name and dtype), made
    from the config the layer writes into Keras files."""
    spec = keras_files.keras_layer_spec(layer, dtype, input_shape or layer.input_shape or ())
    return keras.layers.deserialize({k: spec[k] for k in ("module", "class_name", "config", "registered_name")})


def to_keras(model: Sequential, dtype=None) -> "keras.Sequential":
    """The equivalent Keras 3 Sequential (``keras.Input`` first, same names), weights copied.

    ``dtype`` defaults to the model's (float32 or float64); every Keras layer gets it.
    """
    if not model.built:
        model.build()
    dtype = np.dtype(dtype or model.dtype).name
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    kmodel = keras.Sequential([keras.Input(shape=tuple(model.input_shape), dtype=dtype)]
                              + [keras_layer(l, dtype) for l in model.layers], name=model.name)
    copy_weights_to_keras(model, kmodel)
    return kmodel


def to_tf_keras(model: Sequential, dtype=None):
    """The equivalent ``tf_keras`` (Keras 2) Sequential, weights copied: the model
    :mod:`reference.train` trains under MultiWorkerMirroredStrategy, which Keras 3's ``fit()`` does
    not support with more than one worker (keras-team/keras#20585; TensorFlow's multi-worker
    tutorial uses tf_keras). Each layer is made from the same Keras config as :func:`to_keras`,
    with the dtype given as a string (Keras 2 has no DTypePolicy objects).
    """
    import tf_keras  # the tf extra; only multi-worker runs need it

    if not model.built:
        model.build()
    dtype = np.dtype(dtype or model.dtype).name
    layers = [tf_keras.Input(shape=tuple(model.input_shape), dtype=dtype)]
    for layer in model.layers:
        spec = keras_files.keras_layer_spec(layer, dtype, layer.input_shape or ())
        config = {**spec["config"], "dtype": dtype}
        layers.append(tf_keras.layers.deserialize({"class_name": spec["class_name"], "config": config}))
    kmodel = tf_keras.Sequential(layers, name=model.name)
    copy_weights_to_keras(model, kmodel)
    return kmodel


def from_keras(kmodel, dtype=None) -> Sequential:
    """A minicnn Sequential from a Keras Sequential of supported layers, weights copied.

    Raises ValueError naming the first unsupported layer or option. ``dtype`` defaults to the
    Keras model's.
    """
    if not isinstance(kmodel, keras.Sequential):
        raise ValueError(f"from_keras needs a keras.Sequential, got {type(kmodel).__name__}")
    config = {"class_name": "Sequential", "config": kmodel.get_config()}
    if kmodel.built and kmodel.inputs:
        shape = tuple(kmodel.inputs[0].shape[1:])
        config["config"].setdefault("build_input_shape", [None, *shape])
    model = keras_files.model_from_keras_config(config, source=f"Keras model '{kmodel.name}'",
                                                model_class=Sequential)
    if dtype is not None and np.dtype(dtype) != model.dtype:
        cfg = model.get_config()
        cfg["dtype"] = np.dtype(dtype).name
        model = Sequential.from_config(cfg)
    copy_weights_from_keras(kmodel, model)
    return model


# ----------------------------------------------------------------------------- weights
def _pairs(model, kmodel):
    """(minicnn layer, keras layer) for every minicnn layer with weights, matched by order."""
    mine = [l for l in model.layers if l.params]
    theirs = [l for l in kmodel.layers if l.weights]
    if len(mine) != len(theirs):
        raise ValueError(f"minicnn model '{model.name}' has {len(mine)} layers with weights, Keras model "
                         f"'{kmodel.name}' has {len(theirs)}")
    return list(zip(mine, theirs))


def copy_weights_to_keras(model: Sequential, kmodel) -> None:
    """Copy every weight of ``model`` into ``kmodel`` (weighted layers matched in order)."""
    for layer, klayer in _pairs(model, kmodel):
        kw = klayer.get_weights()
        mine = layer.get_weights()
        if len(kw) != len(mine):
            raise ValueError(f"layer '{layer.name}' has {len(mine)} weights, Keras layer "
                             f"'{klayer.name}' has {len(kw)}")
        new = []
        for name, w, ref in zip([k for k in layer.weight_names if k in layer.params], mine, kw):
            arr = np.asarray(w, dtype=ref.dtype)
            if arr.shape != ref.shape:
                raise ValueError(f"weight {layer.name}/{name} has shape {arr.shape}, Keras layer "
                                 f"'{klayer.name}' expects {ref.shape}")
            new.append(arr)
        klayer.set_weights(new)


def copy_weights_from_keras(kmodel, model: Sequential) -> None:
    """Copy every weight of ``kmodel`` into ``model`` (weighted layers matched in order)."""
    staged = []
    for layer, klayer in _pairs(model, kmodel):
        names = [k for k in layer.weight_names if k in layer.params]
        kw = klayer.get_weights()
        if len(kw) != len(names):
            raise ValueError(f"Keras layer '{klayer.name}' has {len(kw)} weights, layer "
                             f"'{layer.name}' has {len(names)}")
        for name, w in zip(names, kw):
            arr = np.asarray(w, dtype=model.dtype)
            if arr.shape != layer.params[name].shape:
                raise ValueError(f"Keras weight {klayer.name}/{name} has shape {arr.shape}, layer "
                                 f"'{layer.name}' expects {layer.params[name].shape}")
            staged.append((layer.params[name], arr))
    for p, arr in staged:
        p[...] = arr


def clone(model: Sequential, dtype=None, dropout_rate=None) -> Sequential:
    """A copy of ``model`` (same weights, cast to ``dtype``); ``dropout_rate`` overrides every
    Dropout's rate (0 disables dropout for trajectory comparisons)."""
    cfg = model.get_config()
    if dtype is not None:
        cfg["dtype"] = np.dtype(dtype).name
    if dropout_rate is not None:
        for spec in cfg["layers"]:
            if spec["class_name"] == "Dropout":
                spec["config"]["rate"] = float(dropout_rate)
    out = Sequential.from_config(cfg, seed=model.seed)
    out.set_weights([w.astype(out.dtype) for w in model.get_weights()])
    return out


__all__ = ["to_keras", "to_tf_keras", "from_keras", "copy_weights_to_keras", "copy_weights_from_keras", "keras_layer",
           "clone"]
