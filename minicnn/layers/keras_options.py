"""Reading and writing the options of Keras layer configs, shared by every layer's
``from_keras_config`` / ``keras_config`` (the layer itself says which options it has).

A Keras option minicnn cannot honour is refused with :class:`~minicnn.errors.KerasConfigError`
naming the layer and the option; options that never change what a layer computes (its name,
``trainable``, initialisers of weights that come from the file) are accepted and ignored.
"""

from __future__ import annotations

from .. import activations, regularizers
from ..errors import KerasConfigError
from ..kernels.shapes import normalize_padding, normalize_pair

#: options that never change what a layer computes at inference or how it trains in minicnn
IGNORED = frozenset({"name", "trainable", "dtype", "seed", "kernel_initializer", "bias_initializer",
                     "batch_input_shape", "batch_size", "input_shape"})
#: options most weighted Keras layers have, with the only values minicnn supports
WEIGHT_OPTIONS = {"kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
                  "kernel_constraint": None, "bias_constraint": None, "lora_rank": None,
                  "quantization_config": None}
CHANNELS_LAST = {"data_format": ("channels_last", None)}

#: Keras initializer class -> minicnn initializer name (others fall back to the default: the
#: weights come from the file anyway)
_INITIALIZERS = {"GlorotUniform": "glorot_uniform", "glorot_uniform": "glorot_uniform",
                 "HeUniform": "he_uniform", "he_uniform": "he_uniform", "Zeros": "zeros", "zeros": "zeros",
                 "Ones": "ones", "ones": "ones"}
_KERAS_INITIALIZERS = {"glorot_uniform": "GlorotUniform", "he_uniform": "HeUniform", "zeros": "Zeros", "ones": "Ones"}
#: Keras initializers without a config of their own (no seed)
_CONSTANT_INITIALIZERS = frozenset({"zeros", "ones"})


def _is_default(value) -> bool:
    return value is None or value is False or value == [] or value == {} or value == ()


def check_options(cfg: dict, handled, defaults: dict, where: str) -> None:
    """Refuse every option minicnn cannot honour: a known one (in ``defaults``) with another
    value than its default (or one of the defaults, when a tuple), or an unknown one that is set
    to anything but null/false/empty. ``handled`` options are read by the layer itself."""
    for key, value in cfg.items():
        if key in handled or key in IGNORED:
            continue
        if key in defaults:
            ok = defaults[key]
            if value == ok or (isinstance(ok, tuple) and value in ok):
                continue
            raise KerasConfigError(f"{where}: option {key}={value!r} is not supported by minicnn")
        if not _is_default(value):
            raise KerasConfigError(f"{where}: option {key}={value!r} is not supported by minicnn")


def pair(value, where: str, option: str) -> tuple[int, int]:
    """(a, b) from a Keras int-or-pair option (the rules of :func:`~minicnn.kernels.shapes.normalize_pair`)."""
    try:
        return normalize_pair(value, option)
    except ValueError as e:
        raise KerasConfigError(f"{where}: option {e}") from None


def padding(value, where: str) -> str:
    try:
        return normalize_padding(value)
    except ValueError:
        raise KerasConfigError(f"{where}: option padding={value!r} is not supported ('valid' or 'same')") from None


def activation(value, where: str):
    """A minicnn activation name (None for linear) from a Keras ``activation`` option."""
    if isinstance(value, dict):  # Keras 3 may serialise a built-in activation as a dict
        if value.get("module") not in (None, "keras.activations") or value.get("registered_name"):
            raise KerasConfigError(f"{where}: custom activation {value!r} is not supported")
        value = value.get("config", value.get("class_name"))
    try:
        return activations.normalize(value)
    except ValueError:
        raise KerasConfigError(f"{where}: option activation={value!r} is not supported "
                               f"(minicnn has {activations.supported_text()})") from None


def regularizer(value, where: str, option: str):
    """A minicnn Regularizer (or None) from a Keras regularizer option (its serialisation)."""
    try:
        return regularizers.get(value)
    except ValueError as e:
        raise KerasConfigError(f"{where}: option {option}={value!r} is not supported ({e})") from None


def initializer(value, default: str) -> str:
    """A minicnn initializer name from a Keras initializer option (the default if unknown)."""
    if isinstance(value, dict):
        value = value.get("class_name")
    return _INITIALIZERS.get(value, default) if isinstance(value, str) else default


def initializer_spec(name: str) -> dict:
    """The Keras 3 serialisation of a minicnn initializer."""
    return {"module": "keras.initializers", "class_name": _KERAS_INITIALIZERS.get(name, "GlorotUniform"),
            "config": {} if name in _CONSTANT_INITIALIZERS else {"seed": None}, "registered_name": None}


def dtype_policy(dtype: str) -> dict:
    """Keras 3's ``DTypePolicy`` serialisation for ``dtype``."""
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": dtype},
            "registered_name": None}


def rate(value, where: str) -> float:
    """A probability in [0, 1) (Dropout's rate)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1:
        raise KerasConfigError(f"{where}: option rate={value!r} must be a number in [0, 1)")
    return float(value)
