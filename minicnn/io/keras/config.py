"""Keras Sequential configs (the JSON in ``.keras`` and legacy ``.h5`` files) both ways.

Each layer reads and writes its own options (``from_keras_config`` / ``keras_config`` in
:mod:`minicnn.layers`); this module handles what is around them: the Sequential wrapper, the
input layer and shape, dtype policies, names, and the Keras 3 weight keys.
"""

from __future__ import annotations

import re

from ...errors import KerasConfigError
from ...layers import KERAS_CLASSES, keras_options, planned_params
from ...model import Network
from .common import ALLOCATION_ALLOWANCE

#: Keras's input layer, read for its shape and dtype (it has no minicnn counterpart)
INPUT_LAYER = "InputLayer"


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


def layer_from_keras(class_name: str, cfg: dict, where: str):
    """One minicnn layer from a Keras layer's class name and config (no input layers)."""
    cls = KERAS_CLASSES.get(class_name)
    if cls is None:
        raise KerasConfigError(f"{where}: layer class {class_name!r} is not supported by minicnn "
                               f"(supported: {', '.join((INPUT_LAYER, *KERAS_CLASSES))})")
    return cls.from_keras_config(cfg, where)


def model_from_keras_config(config, source: str = "Keras model", max_params=None, model_class=Network):
    """A built minicnn model (of ``model_class``) (freshly initialised weights) from a Keras Sequential config.

    ``config`` is the JSON object Keras writes (``{"class_name": "Sequential", "config": {...}}``)
    or its inner ``config``. Raises :class:`KerasConfigError` (a ValueError) naming the first
    unsupported layer or option. With ``max_params`` (the number of weight values a file holds)
    an architecture needing more than that, and more than :data:`ALLOCATION_ALLOWANCE`, is refused
    before anything is allocated (smaller mismatches get the precise per-weight message later).
    """
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
            keras_options.check_options(cfg, {"batch_shape", "batch_input_shape", "shape"},
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
            layers.append(layer_from_keras(cls, cfg, where))
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
            needed = planned_params(layers, input_shape)
            if needed > max_params and needed > ALLOCATION_ALLOWANCE:
                raise KerasConfigError(f"{source}: the architecture needs {needed:,} weight values but the "
                                       f"file holds {max_params:,}")
        model = model_class(layers, name=model_name, input_shape=input_shape, dtype=dtype)
        model.build()
    except KerasConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise KerasConfigError(f"{source}: invalid architecture: {e}") from None
    return model


def keras_layer_spec(layer, dtype: str, input_shape) -> dict:
    """The Keras 3 ``{"module", "class_name", "config", ...}`` entry for one minicnn layer."""
    cfg = {"name": layer.name, "trainable": True, "dtype": keras_options.dtype_policy(dtype),
           **layer.keras_config()}
    return {"module": "keras.layers", "class_name": layer.keras_class_name(), "config": cfg,
            "registered_name": None, "build_config": {"input_shape": [None, *input_shape]}}


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
            "config": {"name": model.name, "trainable": True, "dtype": keras_options.dtype_policy(dtype), "layers": layers},
            "registered_name": None, "build_config": {"input_shape": [None, *shape]}}


# =============================================================================== weights
_CAMEL = (re.compile(r"(.)([A-Z][a-z]+)"), re.compile(r"([a-z])([A-Z])"))


def _snake(name: str) -> str:
    """Keras's ``naming.to_snake_case`` (Conv2D -> conv2d, MaxPooling2D -> max_pooling2d)."""
    name = re.sub(r"\W+", "", name)
    name = _CAMEL[0].sub(r"\1_\2", name)
    return _CAMEL[1].sub(r"\1_\2", name).lower()


def keras3_keys_of(model) -> list[str]:
    """Keras 3's weight keys for every layer of ``model``, in order."""
    return keras3_keys(layer.keras_class_name() for layer in model.layers)


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
