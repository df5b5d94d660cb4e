"""Keras model and weights files, read and written with h5py, zipfile and json (no TensorFlow).

Reads
  * Keras 3 ``.keras`` archives: ``config.json`` (architecture) + ``model.weights.h5``;
  * Keras 3 ``.weights.h5``: datasets ``layers/<key>/vars/<i>`` (0 = kernel, 1 = bias), where
    ``<key>`` is the snake-cased *class* name made unique by a counter in model order
    (``conv2d``, ``conv2d_1``, ``dense``, ...), not the layer name;
  * legacy full-model ``.h5`` (``model.save('m.h5')``): attribute ``model_config`` (JSON) and
    ``model_weights/<layer>/...`` datasets listed by each layer group's ``weight_names``
    attribute (``<layer>/kernel:0`` from Keras 2, ``<model>/<layer>/kernel`` from Keras 3);
  * legacy weights-only ``.h5`` (Keras 2 ``save_weights('w.h5')``): the same layer groups at the
    root of the file.

The file's *content* decides the layout (zip or HDF5, which groups exist); the suffix only says
whether the caller expects a full model. Weights-only files carry no architecture: pass
``architecture=`` (a built :class:`~minicnn.model.Sequential`), and its weighted layers are
matched to the file's in order (Keras 3 keys are derived from that order exactly as Keras does;
legacy files list their layers in order). Layer names are never used for matching.

Writes ``.weights.h5`` (what ``keras.Model.load_weights`` reads), ``.keras`` and legacy ``.h5``
(what ``keras.saving.load_model`` reads); all three are round-trip tested against Keras.

Only the layers and options minicnn implements are accepted (Conv2D, Dense, MaxPooling2D,
Flatten, ReLU, Softmax, Activation('relu'|'softmax'), Dropout, InputLayer). Anything else,
including Lambda layers and custom objects, is refused with a :class:`ModelFileError` naming the
layer and the option. Nothing from a file is ever executed or imported: class names are looked
up in a fixed table. Every failure on a damaged file is a :class:`ModelFileError` naming it.
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile

import numpy as np

from .errors import ModelFileError

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
CONFIG_NAME = "config.json"
METADATA_NAME = "metadata.json"
WEIGHTS_NAME = "model.weights.h5"
#: the Keras version written into files' metadata (the format those files follow)
WRITTEN_KERAS_VERSION = "3.15.1"


#: weight values a file's architecture may ask for beyond what the file holds before it is refused
#: unallocated (a damaged config must not make minicnn allocate gigabytes); below it, mismatches
#: are reported weight by weight
ALLOCATION_ALLOWANCE = 1 << 25


class KerasConfigError(ValueError):
    """A Keras architecture (config dict) uses something minicnn does not implement."""


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ModelFileError("reading or writing Keras files needs h5py: install the 'tf' or 'h5' "
                             "extra (pip install 'minicnn[h5]')") from None
    return h5py


# =============================================================================== config parsing
#: Keras class name -> minicnn builder (see _layer_from_keras)
SUPPORTED_CLASSES = ("InputLayer", "Conv2D", "Dense", "MaxPooling2D", "MaxPool2D", "Flatten", "ReLU",
                     "Softmax", "Activation", "Dropout")
#: options that never change what a layer computes at inference or how it trains in minicnn
_IGNORED = {"name", "trainable", "dtype", "seed", "kernel_initializer", "bias_initializer",
            "batch_input_shape", "batch_size", "input_shape"}
#: Keras initializer class -> minicnn initializer name (others fall back to the default: the
#: weights come from the file anyway)
_INITIALIZERS = {"GlorotUniform": "glorot_uniform", "glorot_uniform": "glorot_uniform",
                 "HeUniform": "he_uniform", "he_uniform": "he_uniform", "Zeros": "zeros", "zeros": "zeros"}
_KERAS_INITIALIZERS = {"glorot_uniform": "GlorotUniform", "he_uniform": "HeUniform", "zeros": "Zeros"}


def _is_default(value) -> bool:
    return value is None or value is False or value == [] or value == {} or value == ()


def _dtype_name(value, where):
    """'float32' from "float32" or a DTypePolicy/Policy dict; None when absent."""
    if value is None:
        return None
    if isinstance(value, dict):
        cfg = value.get("config")
        value = cfg.get("name") if isinstance(cfg, dict) else None
    if not isinstance(value, str):
        raise KerasConfigError(f"{where}: unreadable dtype {value!r}")
    if value not in ("float32", "float64"):
        raise KerasConfigError(f"{where}: dtype policy {value!r} is not supported (minicnn computes "
                               "in float32 or float64 throughout)")
    return value


def _pair(value, where, option):
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        return (int(value[0]), int(value[1]))
    raise KerasConfigError(f"{where}: option {option}={value!r} is not an int or a pair of ints")


def _activation(value, where):
    if isinstance(value, dict):  # Keras 3 may serialise a built-in activation as a dict
        if value.get("module") not in (None, "keras.activations") or value.get("registered_name"):
            raise KerasConfigError(f"{where}: custom activation {value!r} is not supported")
        value = value.get("config", value.get("class_name"))
    if value in (None, "linear"):
        return None
    if value in ("relu", "softmax"):
        return value
    raise KerasConfigError(f"{where}: option activation={value!r} is not supported "
                           "(minicnn has linear, relu and softmax)")


def _check_options(cfg: dict, handled: set, defaults: dict, where: str) -> None:
    """Refuse every option minicnn cannot honour: a known one with a non-default value, or an
    unknown one that is set to anything but null/false/empty."""
    for key, value in cfg.items():
        if key in handled or key in _IGNORED:
            continue
        if key in defaults:
            ok = defaults[key]
            if value == ok or (isinstance(ok, tuple) and value in ok):
                continue
            raise KerasConfigError(f"{where}: option {key}={value!r} is not supported by minicnn")
        if not _is_default(value):
            raise KerasConfigError(f"{where}: option {key}={value!r} is not supported by minicnn")


_CHANNELS_LAST = {"data_format": ("channels_last", None)}
_COMMON = {"kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
           "kernel_constraint": None, "bias_constraint": None, "lora_rank": None,
           "quantization_config": None}


def _layer_from_keras(class_name: str, cfg: dict, where: str):
    """One minicnn layer from a Keras layer's class name and config (no input layers)."""
    from . import layers as L

    name = cfg.get("name")
    if class_name == "Conv2D":
        _check_options(cfg, {"filters", "kernel_size", "strides", "padding", "activation", "use_bias"},
                       {**_COMMON, **_CHANNELS_LAST, "dilation_rate": ([1, 1], 1, (1, 1)), "groups": 1},
                       where)
        return L.Conv2D(cfg["filters"], _pair(cfg["kernel_size"], where, "kernel_size"),
                        strides=_pair(cfg.get("strides", 1), where, "strides"),
                        padding=_padding(cfg.get("padding", "valid"), where),
                        activation=_activation(cfg.get("activation"), where),
                        use_bias=bool(cfg.get("use_bias", True)),
                        kernel_initializer=_init(cfg.get("kernel_initializer"), "glorot_uniform"),
                        bias_initializer=_init(cfg.get("bias_initializer"), "zeros"), name=name)
    if class_name == "Dense":
        _check_options(cfg, {"units", "activation", "use_bias"}, dict(_COMMON), where)
        return L.Dense(cfg["units"], activation=_activation(cfg.get("activation"), where),
                       use_bias=bool(cfg.get("use_bias", True)),
                       kernel_initializer=_init(cfg.get("kernel_initializer"), "glorot_uniform"),
                       bias_initializer=_init(cfg.get("bias_initializer"), "zeros"), name=name)
    if class_name in ("MaxPooling2D", "MaxPool2D"):
        _check_options(cfg, {"pool_size", "strides", "padding"}, dict(_CHANNELS_LAST), where)
        pool = _pair(cfg.get("pool_size", 2), where, "pool_size")
        strides = cfg.get("strides")
        return L.MaxPool2D(pool, strides=None if strides is None else _pair(strides, where, "strides"),
                           padding=_padding(cfg.get("padding", "valid"), where), name=name)
    if class_name == "Flatten":
        _check_options(cfg, set(), dict(_CHANNELS_LAST), where)
        return L.Flatten(name=name)
    if class_name == "ReLU":
        _check_options(cfg, set(), {"max_value": None, "negative_slope": (0, 0.0),
                                    "threshold": (0, 0.0)}, where)
        return L.ReLU(name=name)
    if class_name == "Softmax":
        _check_options(cfg, set(), {"axis": (-1, [-1])}, where)
        return L.Softmax(name=name)
    if class_name == "Activation":
        _check_options(cfg, {"activation"}, {}, where)
        act = _activation(cfg.get("activation"), where)
        if act is None:
            raise KerasConfigError(f"{where}: option activation='linear' (an identity layer) has no "
                                   "minicnn equivalent")
        return L.ReLU(name=name) if act == "relu" else L.Softmax(name=name)
    if class_name == "Dropout":
        _check_options(cfg, {"rate"}, {"noise_shape": None}, where)
        rate = cfg.get("rate")
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 <= rate < 1:
            raise KerasConfigError(f"{where}: option rate={rate!r} must be a number in [0, 1)")
        return L.Dropout(float(rate), name=name)
    raise KerasConfigError(f"{where}: layer class {class_name!r} is not supported by minicnn "
                           f"(supported: {', '.join(SUPPORTED_CLASSES)})")


def _padding(value, where):
    if value not in ("valid", "same"):
        raise KerasConfigError(f"{where}: option padding={value!r} is not supported ('valid' or 'same')")
    return value


def _init(value, default):
    if isinstance(value, dict):
        value = value.get("class_name")
    return _INITIALIZERS.get(value, default) if isinstance(value, str) else default


def _shape_from(value):
    """(H, W, C) from a batch shape [null, H, W, C]; None if it is not one."""
    if isinstance(value, dict):  # Keras 3 may write {"class_name": "__tuple__", "items": [...]}
        value = value.get("items")
    if not isinstance(value, (list, tuple)) or len(value) < 2:
        return None
    dims = value[1:]
    if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
        return None
    return tuple(dims)


def count_params(layers, input_shape) -> int:
    """Weights an architecture would allocate, from shapes alone (nothing is allocated)."""
    shape, total = tuple(input_shape), 0
    for layer in layers:
        out = layer.compute_output_shape(shape)
        kind = type(layer).__name__
        if kind == "Conv2D":
            total += layer.kernel_size[0] * layer.kernel_size[1] * shape[-1] * layer.filters
            total += layer.filters if layer.use_bias else 0
        elif kind == "Dense":
            total += shape[0] * layer.units + (layer.units if layer.use_bias else 0)
        shape = out
    return total


def model_from_keras_config(config, source: str = "Keras model", max_params=None):
    """A built minicnn Sequential (freshly initialised weights) from a Keras Sequential config.

    ``config`` is the JSON object Keras writes (``{"class_name": "Sequential", "config": {...}}``)
    or its inner ``config``. Raises :class:`KerasConfigError` (a ValueError) naming the first
    unsupported layer or option. With ``max_params`` (the number of weight values a file holds)
    an architecture needing more than that, and more than :data:`ALLOCATION_ALLOWANCE`, is refused
    before anything is allocated (smaller mismatches get the precise per-weight message later).
    """
    from .model import Sequential

    if not isinstance(config, dict):
        raise KerasConfigError(f"{source}: the architecture is not a JSON object")
    outer_build = None
    if "class_name" in config:
        outer_build = config.get("build_config")
        cls = config.get("class_name")
        if cls != "Sequential":
            raise KerasConfigError(f"{source}: model class {cls!r} is not supported; minicnn reads "
                                   "Keras Sequential models only")
        if config.get("registered_name") not in (None, "Sequential"):
            raise KerasConfigError(f"{source}: custom model class {config.get('registered_name')!r} "
                                   "is not supported")
        config = config.get("config")
    if isinstance(config, list):  # Keras 1/2.0 wrote the layer list directly
        config = {"layers": config}
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise KerasConfigError(f"{source}: the Sequential config has no list of layers")
    specs = config["layers"]
    model_name = config.get("name") if isinstance(config.get("name"), str) else "sequential"

    input_shape = _shape_from(config.get("build_input_shape"))
    if input_shape is None and isinstance(outer_build, dict):
        input_shape = _shape_from(outer_build.get("input_shape"))
    input_dtype = None
    layers, dtypes = [], []
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
            raise KerasConfigError(f"{source}: layer {i} is not a {{class_name, config}} object")
        cls = spec.get("class_name")
        cfg = spec["config"]
        lname = cfg.get("name", f"#{i}")
        where = f"{source}: layer {lname!r} ({cls})"
        if not isinstance(cls, str):
            raise KerasConfigError(f"{source}: layer {i} has no class name")
        if spec.get("registered_name") not in (None, cls):
            raise KerasConfigError(f"{where}: custom layer {spec['registered_name']!r} is not supported")
        module = spec.get("module")
        if module is not None and not (isinstance(module, str) and module.startswith("keras.layers")):
            raise KerasConfigError(f"{where}: layer from module {module!r} is not supported")
        shape = (_shape_from(cfg.get("batch_shape")) or _shape_from(cfg.get("batch_input_shape"))
                 or (tuple(cfg["input_shape"]) if isinstance(cfg.get("input_shape"), list) else None))
        if cls == "InputLayer":
            _check_options(cfg, {"batch_shape", "batch_input_shape", "shape"},
                           {"sparse": False, "ragged": False, "optional": False}, where)
            if shape is None:
                shape = _shape_from([None, *cfg["shape"]]) if isinstance(cfg.get("shape"), list) else None
            if shape is not None:
                input_shape = shape
            input_dtype = _dtype_name(cfg.get("dtype"), where)
            continue
        if not layers and shape is not None and input_shape is None:
            input_shape = shape
        if not layers and input_shape is None and isinstance(spec.get("build_config"), dict):
            input_shape = _shape_from(spec["build_config"].get("input_shape"))
        dt = _dtype_name(cfg.get("dtype"), where)
        if dt is not None:
            dtypes.append((lname, dt))
        try:
            layers.append(_layer_from_keras(cls, cfg, where))
        except KerasConfigError:
            raise
        except KeyError as e:
            raise KerasConfigError(f"{where}: required option {e} is missing") from None
        except (TypeError, ValueError) as e:
            raise KerasConfigError(f"{where}: {e}") from None
    if not layers:
        raise KerasConfigError(f"{source}: the model has no layers")
    if input_shape is None:
        raise KerasConfigError(f"{source}: the model has no input shape (no InputLayer and no "
                               "build input shape)")
    kinds = {dt for _, dt in dtypes}
    if len(kinds) > 1:
        a = next(n for n, dt in dtypes if dt == "float32")
        b = next(n for n, dt in dtypes if dt == "float64")
        raise KerasConfigError(f"{source}: layers mix dtypes (layer {a!r} is float32, layer {b!r} is "
                               "float64); minicnn models have one dtype")
    dtype = kinds.pop() if kinds else (input_dtype or "float32")
    names = [l.name for l in layers if l.name is not None]
    if len(set(names)) != len(names):
        raise KerasConfigError(f"{source}: layer names are not unique")
    try:
        if max_params is not None:
            needed = count_params(layers, input_shape)
            if needed > max_params and needed > ALLOCATION_ALLOWANCE:
                raise KerasConfigError(f"{source}: the architecture needs {needed:,} weight values but the "
                                       f"file holds {max_params:,}")
        model = Sequential(layers, name=model_name, input_shape=input_shape, dtype=dtype)
        model.build()
    except KerasConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise KerasConfigError(f"{source}: invalid architecture: {e}") from None
    return model


# =============================================================================== config writing
def _policy(dtype):
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": dtype},
            "registered_name": None}


def _initializer(name):
    return {"module": "keras.initializers", "class_name": _KERAS_INITIALIZERS.get(name, "GlorotUniform"),
            "config": {"seed": None} if name != "zeros" else {}, "registered_name": None}


def keras_layer_spec(layer, dtype: str, input_shape) -> dict:
    """The Keras 3 ``{"module", "class_name", "config", ...}`` entry for one minicnn layer."""
    kind = type(layer).__name__
    base = {"name": layer.name, "trainable": True, "dtype": _policy(dtype)}
    build = {"input_shape": [None, *input_shape]}
    if kind == "Conv2D":
        cfg = {**base, "filters": layer.filters, "kernel_size": list(layer.kernel_size),
               "strides": list(layer.strides), "padding": layer.padding,
               "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1,
               "activation": layer.activation or "linear", "use_bias": layer.use_bias,
               "kernel_initializer": _initializer(layer.kernel_initializer),
               "bias_initializer": _initializer(layer.bias_initializer), "kernel_regularizer": None,
               "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
               "bias_constraint": None}
        cls = "Conv2D"
    elif kind == "Dense":
        cfg = {**base, "units": layer.units, "activation": layer.activation or "linear",
               "use_bias": layer.use_bias, "kernel_initializer": _initializer(layer.kernel_initializer),
               "bias_initializer": _initializer(layer.bias_initializer), "kernel_regularizer": None,
               "bias_regularizer": None, "kernel_constraint": None, "bias_constraint": None}
        cls = "Dense"
    elif kind == "MaxPool2D":
        cfg = {**base, "pool_size": list(layer.pool_size), "padding": layer.padding,
               "strides": list(layer.strides), "data_format": "channels_last"}
        cls = "MaxPooling2D"
    elif kind == "Flatten":
        cfg = {**base, "data_format": "channels_last"}
        cls = "Flatten"
    elif kind == "ReLU":
        cfg = {**base, "max_value": None, "negative_slope": 0.0, "threshold": 0.0}
        cls = "ReLU"
    elif kind == "Softmax":
        cfg = {**base, "axis": -1}
        cls = "Softmax"
    elif kind == "Dropout":
        cfg = {**base, "rate": layer.rate, "seed": None, "noise_shape": None}
        cls = "Dropout"
    else:
        raise ValueError(f"layer '{layer.name}' ({kind}) has no Keras equivalent")
    return {"module": "keras.layers", "class_name": cls, "config": cfg, "registered_name": None,
            "build_config": build}


def keras_config(model) -> dict:
    """The Keras 3 serialisation of ``model`` (what ``config.json`` in a ``.keras`` file holds)."""
    dtype = model.dtype.name
    shape = list(model.input_shape)
    layers = [{"module": "keras.layers", "class_name": "InputLayer",
               "config": {"batch_shape": [None, *shape], "dtype": dtype, "sparse": False,
                          "ragged": False, "name": "input_layer", "optional": False},
               "registered_name": None}]
    in_shape = tuple(model.input_shape)
    for layer in model.layers:
        layers.append(keras_layer_spec(layer, dtype, in_shape))
        in_shape = layer.output_shape
    return {"module": "keras", "class_name": "Sequential",
            "config": {"name": model.name, "trainable": True, "dtype": _policy(dtype), "layers": layers},
            "registered_name": None, "build_config": {"input_shape": [None, *shape]}}


# =============================================================================== weights
_CAMEL = (re.compile(r"(.)([A-Z][a-z]+)"), re.compile(r"([a-z])([A-Z])"))
#: minicnn class -> Keras class (for the Keras 3 weights keys)
_KERAS_CLASS = {"Conv2D": "Conv2D", "Dense": "Dense", "MaxPool2D": "MaxPooling2D", "Flatten": "Flatten",
                "ReLU": "ReLU", "Softmax": "Softmax", "Dropout": "Dropout"}


def _snake(name: str) -> str:
    """Keras's ``naming.to_snake_case`` (Conv2D -> conv2d, MaxPooling2D -> max_pooling2d)."""
    name = re.sub(r"\W+", "", name)
    name = _CAMEL[0].sub(r"\1_\2", name)
    return _CAMEL[1].sub(r"\1_\2", name).lower()


def keras3_keys(class_names) -> list[str]:
    """Keras 3's per-layer weight keys for a model whose layers have these Keras class names."""
    used: dict[str, int] = {}
    keys = []
    for cls in class_names:
        stem = _snake(cls)
        if stem in used:
            used[stem] += 1
            keys.append(f"{stem}_{used[stem]}")
        else:
            used[stem] = 0
            keys.append(stem)
    return keys


def _fail(path, message):
    raise ModelFileError(f"Keras file {os.fspath(path)!r}: {message}")


def _attr_list(group, name):
    """A string-list attribute, also when Keras split it into name0, name1, ... chunks."""
    if name in group.attrs:
        raw = list(np.asarray(group.attrs[name]).reshape(-1))
    else:
        raw, k = [], 0
        while f"{name}{k}" in group.attrs:
            raw.extend(np.asarray(group.attrs[f"{name}{k}"]).reshape(-1))
            k += 1
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in raw]


def _str_attr(obj, name):
    v = obj.attrs[name]
    if isinstance(v, np.ndarray) and v.shape == ():
        v = v[()]
    if isinstance(v, bytes):
        v = v.decode("utf-8")
    if not isinstance(v, str):
        raise ValueError(f"attribute {name!r} is not a string")
    return v


def _read_array(ds, path, what):
    h5py = _h5py()
    if not isinstance(ds, h5py.Dataset):
        _fail(path, f"{what} is not a dataset")
    if ds.dtype.kind != "f":
        _fail(path, f"{what} has dtype {ds.dtype}, expected floating point")
    arr = np.asarray(ds[()])
    if not np.isfinite(arr).all():
        _fail(path, f"{what} contains NaN or inf")
    return arr


def _legacy_weight_kind(weight_name):
    base = weight_name.rsplit("/", 1)[-1].split(":")[0]
    if base in ("kernel", "bias"):
        return base
    return None


def _read_legacy_layers(group, path):
    """[(layer group name, {'kernel': arr, 'bias': arr})] for every layer with weights, in order."""
    h5py = _h5py()
    names = _attr_list(group, "layer_names")
    if not names:
        _fail(path, f"group {group.name!r} has no 'layer_names' attribute (not a Keras weights group)")
    out = []
    for lname in names:
        if lname not in group or not isinstance(group[lname], h5py.Group):
            _fail(path, f"layer group {lname!r} listed in {group.name!r} is missing")
        lg = group[lname]
        weights = {}
        for wname in _attr_list(lg, "weight_names"):
            kind = _legacy_weight_kind(wname)
            if kind is None:
                _fail(path, f"layer {lname!r} has a weight {wname!r} that minicnn does not know "
                            "(only kernel and bias)")
            if wname not in lg:
                _fail(path, f"weight {wname!r} of layer {lname!r} is missing")
            weights[kind] = _read_array(lg[wname], path, f"weight {lname}/{wname}")
        if weights:
            out.append((lname, weights))
    return out


def _read_keras3_layers(h5, path):
    """{key: {'kernel': arr, 'bias': arr}} for every layer group under ``layers/`` with weights."""
    h5py = _h5py()
    root = None
    for cand in ("layers", "_layer_checkpoint_dependencies"):
        if cand in h5 and isinstance(h5[cand], h5py.Group):
            root = h5[cand]
            break
    if root is None:
        _fail(path, "no 'layers' group (not a Keras 3 weights file)")
    out = {}
    for key in root:
        g = root[key]
        if not isinstance(g, h5py.Group):
            _fail(path, f"'{root.name}/{key}' is not a group")
        if "vars" not in g:
            continue
        v = g["vars"]
        if not isinstance(v, h5py.Group):
            _fail(path, f"'{v.name}' is not a group")
        idx = sorted(v.keys(), key=lambda s: int(s) if s.isdigit() else -1)
        if not idx:
            continue
        if any(not s.isdigit() for s in idx) or [int(s) for s in idx] != list(range(len(idx))):
            _fail(path, f"'{v.name}' holds {list(v.keys())}, expected datasets 0, 1, ...")
        if len(idx) > 2:
            _fail(path, f"layer '{key}' has {len(idx)} weights; minicnn layers have a kernel and a bias")
        arrays = [_read_array(v[s], path, f"weight {v.name}/{s}") for s in idx]
        out[key] = dict(zip(("kernel", "bias"), arrays))
    return out


def _assign(model, per_layer, path, dtype_cast=False):
    """Copy [(label, {'kernel','bias'})] into the model's weighted layers, in order."""
    targets = model.trainable_layers
    if len(per_layer) != len(targets):
        _fail(path, f"the file has weights for {len(per_layer)} layers "
                    f"({', '.join(l for l, _ in per_layer) or 'none'}) but the architecture has "
                    f"{len(targets)} layers with weights ({', '.join(l.name for l in targets)})")
    staged = []
    for (label, weights), layer in zip(per_layer, targets):
        want = set(layer.params)
        if set(weights) != want:
            _fail(path, f"file layer {label!r} has weights {sorted(weights)}, but layer "
                        f"'{layer.name}' has {sorted(want)}")
        for k, arr in weights.items():
            p = layer.params[k]
            if arr.shape != p.shape:
                _fail(path, f"weight {k!r} of file layer {label!r} has shape {arr.shape}, but layer "
                            f"'{layer.name}' expects {p.shape}")
            if arr.dtype != p.dtype and not dtype_cast:
                _fail(path, f"weight {k!r} of file layer {label!r} is {arr.dtype}, expected {p.dtype}")
            staged.append((p, arr))
    for p, arr in staged:  # only after everything checked out
        p[...] = arr


def _open_h5(source, path):
    h5py = _h5py()
    try:
        return h5py.File(source, "r")
    except Exception as e:  # OSError for damaged files; anything else h5py raises on garbage
        _fail(path, f"is not a readable HDF5 file ({type(e).__name__}: {e})")


def _sniff(path):
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except FileNotFoundError:
        raise ModelFileError(f"Keras file {os.fspath(path)!r} does not exist") from None
    except IsADirectoryError:
        raise ModelFileError(f"Keras file {os.fspath(path)!r} is a directory (SavedModel "
                             "directories are not supported)") from None
    except OSError as e:
        raise ModelFileError(f"Keras file {os.fspath(path)!r} cannot be read: {e}") from None
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if head == HDF5_MAGIC:
        return "h5"
    return None


def _parse_json(text, path, what):
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError) as e:
        _fail(path, f"{what} is not valid JSON: {e}")


def _stored_values(group) -> int:
    """Total number of values in every dataset under an HDF5 group (metadata only)."""
    h5py = _h5py()
    total = 0

    def visit(_, obj):
        nonlocal total
        if isinstance(obj, h5py.Dataset) and obj.shape is not None:
            total += int(np.prod(obj.shape, dtype=np.int64))

    group.visititems(visit)
    return total


def _build(config, path, max_params=None):
    try:
        return model_from_keras_config(config, source=f"Keras file {os.fspath(path)!r}", max_params=max_params)
    except KerasConfigError as e:
        raise ModelFileError(str(e)) from None


def load(path, architecture=None):
    """Load a Keras file into a minicnn :class:`~minicnn.model.Sequential`.

    Full-model files (``.keras``, legacy ``.h5`` with a ``model_config``) build their own
    architecture (``architecture`` is then not used). Weights-only files (``.weights.h5``, legacy
    weights ``.h5``) need ``architecture``: a built Sequential whose weights are overwritten
    (cast to its dtype) and which is returned.
    """
    path = os.fspath(path)
    kind = _sniff(path)
    if kind is None:
        _fail(path, "is neither an HDF5 file nor a zip archive (not a Keras file, or damaged)")
    try:
        if kind == "zip":
            return _load_keras_zip(path, architecture)
        return _load_h5(path, architecture)
    except ModelFileError:
        raise
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile, EOFError, RuntimeError) as e:
        _fail(path, f"is damaged or not what it claims to be ({type(e).__name__}: {e})")


def _need_architecture(path, architecture):
    from .model import Sequential
    if architecture is None:
        _fail(path, "holds weights only; pass architecture= (a built minicnn model; on the command "
                    "line: --preset) to load it")
    if not isinstance(architecture, Sequential) or not architecture.built:
        raise TypeError("architecture must be a built minicnn Sequential")
    return architecture


def _load_h5(path, architecture):
    h5py = _h5py()
    with _open_h5(path, path) as h5:
        if "model_config" in h5.attrs:
            config = _parse_json(_str_attr(h5, "model_config"), path, "attribute 'model_config'")
            if "model_weights" not in h5 or not isinstance(h5["model_weights"], h5py.Group):
                _fail(path, "has a model_config but no 'model_weights' group")
            model = _build(config, path, max_params=_stored_values(h5["model_weights"]))
            _assign(model, _read_legacy_layers(h5["model_weights"], path), path)
            return model
        if "layers" in h5 or "_layer_checkpoint_dependencies" in h5:
            model = _need_architecture(path, architecture)
            _assign_keras3(model, _read_keras3_layers(h5, path), path, dtype_cast=True)
            return model
        if "layer_names" in h5.attrs or "layer_names0" in h5.attrs:
            model = _need_architecture(path, architecture)
            _assign(model, _read_legacy_layers(h5, path), path, dtype_cast=True)
            return model
        if "model_weights" in h5:
            _fail(path, "has a 'model_weights' group but no 'model_config' attribute")
        _fail(path, "is an HDF5 file but not a Keras model or weights file (no 'layers' group, "
                    "'layer_names' attribute or 'model_config')")


def _assign_keras3(model, found, path, dtype_cast=False):
    """Match Keras 3 keys (class-name counters in model order) to the model's weighted layers."""
    keys = keras3_keys(_KERAS_CLASS.get(type(l).__name__, type(l).__name__) for l in model.layers)
    per_layer = []
    wanted = set()
    for key, layer in zip(keys, model.layers):
        if not layer.params:
            continue
        wanted.add(key)
        if key not in found:
            _fail(path, f"no weights for layer '{layer.name}' (expected group 'layers/{key}/vars'; "
                        f"the file has weights for {', '.join(sorted(found)) or 'no layer'})")
        per_layer.append((key, found[key]))
    extra = sorted(set(found) - wanted)
    if extra:
        _fail(path, f"has weights for layers the architecture lacks: {', '.join(extra)}")
    _assign(model, per_layer, path, dtype_cast=dtype_cast)


def _load_keras_zip(path, architecture):
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if CONFIG_NAME not in names or WEIGHTS_NAME not in names:
                _fail(path, f"is a zip archive without {CONFIG_NAME} and {WEIGHTS_NAME} "
                            "(not a Keras 3 .keras file)")
            config_bytes = z.read(CONFIG_NAME)
            weights_bytes = z.read(WEIGHTS_NAME)
    except zipfile.BadZipFile as e:
        _fail(path, f"is not a readable zip archive: {e}")
    config = _parse_json(config_bytes, path, CONFIG_NAME)
    with _open_h5(io.BytesIO(weights_bytes), path) as h5:
        model = _build(config, path, max_params=_stored_values(h5))
        _assign_keras3(model, _read_keras3_layers(h5, path), path)
    return model


# =============================================================================== writing
def save(model, path) -> None:
    """Write ``model`` as a Keras file chosen by suffix: ``.weights.h5`` (Keras 3 weights),
    ``.keras`` (Keras 3 archive) or ``.h5`` (legacy full model). Written atomically."""
    from .fileio import atomic_write

    path = os.fspath(path)
    low = path.lower()
    if not model.built:
        raise ValueError("build the model (or fit it) before saving")
    if low.endswith(".weights.h5"):
        data = _keras3_weights_bytes(model)
    elif low.endswith(".keras"):
        data = _keras_zip_bytes(model)
    elif low.endswith(".h5"):
        data = _legacy_h5_bytes(model)
    else:
        raise ValueError(f"{path!r}: Keras files end in .weights.h5, .keras or .h5")
    atomic_write(path, data)


def _keras3_weights_bytes(model) -> bytes:
    h5py = _h5py()
    buf = io.BytesIO()
    keys = keras3_keys(_KERAS_CLASS[type(l).__name__] for l in model.layers)
    with h5py.File(buf, "w") as h5:
        layers = h5.create_group("layers")
        for key, layer in zip(keys, model.layers):
            v = layers.create_group(key).create_group("vars")
            v.attrs["name"] = layer.name
            for i, w in enumerate(layer.get_weights()):
                v.create_dataset(str(i), data=np.ascontiguousarray(w))
        h5.create_group("vars").attrs["name"] = model.name
    return buf.getvalue()


def _keras_zip_bytes(model) -> bytes:
    import datetime
    buf = io.BytesIO()
    meta = {"keras_version": WRITTEN_KERAS_VERSION,
            "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr(METADATA_NAME, json.dumps(meta))
        z.writestr(CONFIG_NAME, json.dumps(keras_config(model)))
        z.writestr(WEIGHTS_NAME, _keras3_weights_bytes(model))
    return buf.getvalue()


def _legacy_h5_bytes(model) -> bytes:
    h5py = _h5py()
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
        for layer in sorted(model.layers, key=lambda l: l.name):
            lg = g.create_group(layer.name)
            names = [f"{model.name}/{layer.name}/{k}" for k in layer.weight_names if k in layer.params]
            lg.attrs["weight_names"] = _bytes_list(names)
            for n, w in zip(names, layer.get_weights()):
                lg.create_dataset(n, data=np.ascontiguousarray(w))
        top = g.create_group("top_level_model_weights")
        top.attrs["weight_names"] = _bytes_list([])
    return buf.getvalue()


def _bytes_list(names):
    """A string-list attribute as Keras writes it (fixed-length bytes; empty float array if none)."""
    return np.asarray([n.encode("utf-8") for n in names]) if names else np.asarray([])
