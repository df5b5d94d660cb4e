"""``keras.layers``: every minicnn layer under its Keras name, ``Input``/``InputLayer``, and
Keras's constructor conventions (``input_shape=`` / ``input_dim=`` on the first layer, ``dtype``,
``trainable``). A Keras option minicnn lacks is a :class:`~minicnn.errors.KerasUnsupportedError`
naming it; so is any Keras layer minicnn does not have, and calling a layer on a symbolic
``keras.Input`` (the functional API: use Sequential)."""

from __future__ import annotations

import inspect

import numpy as np

from .. import layers as _layers
from ..errors import KerasUnsupportedError
from .unsupported import missing_names

#: Keras constructor options minicnn honours by doing nothing, with the values that mean so
_NEUTRAL = {"trainable": True, "dtype": (None, "float32"), "data_format": (None, "channels_last"),
            "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None,
            "lora_rank": None, "groups": 1, "autocast": True, "batch_size": None,
            "quantization_config": None}


class InputLayer:
    """The input of a Sequential: gives the model its per-sample shape (no weights, no output)."""

    def __init__(self, shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None,
                 name=None, input_shape=None, **kwargs):
        if kwargs:
            raise KerasUnsupportedError(f"keras.layers.InputLayer({', '.join(kwargs)}) is not supported by minicnn")
        if sparse:
            raise KerasUnsupportedError("keras.Input(sparse=True) is not supported by minicnn")
        if dtype not in (None, "float32", "float64"):
            raise KerasUnsupportedError(f"keras.Input(dtype={dtype!r}) is not supported by minicnn "
                                        "(set the model's dtype: float32 or float64)")
        if shape is None:
            shape = input_shape if input_shape is not None else (batch_shape[1:] if batch_shape else None)
        if shape is None:
            raise ValueError("keras.Input needs shape=, e.g. keras.Input(shape=(28, 28, 1))")
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if any(d is None for d in shape):
            raise KerasUnsupportedError(f"keras.Input(shape={shape}): minicnn needs every dimension "
                                        "of the per-sample shape (no None)")
        self.per_sample = tuple(int(d) for d in shape)
        self.shape = (batch_size, *self.per_sample)
        self.name, self.dtype = name, dtype

    def __repr__(self):
        return f"<InputLayer shape={self.shape}>"


def Input(shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None, name=None, tensor=None,
          optional=False):
    """``keras.Input``: the input spec of a Sequential (``keras.Sequential([keras.Input(shape=...), ...])``)."""
    if tensor is not None or optional:
        raise KerasUnsupportedError("keras.Input(tensor=..., optional=...) is not supported by minicnn")
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, sparse=sparse,
                      batch_shape=batch_shape, name=name)


def _keras_kwargs(cls_name, accepted, kwargs):
    out = {}
    for key, value in kwargs.items():
        if key in accepted:
            out[key] = value
        elif key == "input_dim" and value is not None:
            out["input_shape"] = (int(value),)
        elif key == "batch_input_shape" and value is not None:
            out["input_shape"] = tuple(value[1:])
        elif key in _NEUTRAL:
            ok = _NEUTRAL[key]
            if not (value == ok or (isinstance(ok, tuple) and value in ok)):
                raise KerasUnsupportedError(f"keras.layers.{cls_name}({key}={value!r}) is not supported by "
                                            f"minicnn" + (" (set the model's dtype instead)" if key == "dtype" else ""))
        else:
            raise KerasUnsupportedError(f"keras.layers.{cls_name}({key}=...): Keras's option {key!r} is "
                                        f"not supported by minicnn")
    return out


def _call(self, x, *args, **kwargs):
    if isinstance(x, InputLayer) or not isinstance(x, np.ndarray):
        raise KerasUnsupportedError(f"calling layer {type(self).__name__} on {type(x).__name__} (Keras's "
                                    "functional API) is not supported by minicnn: build a keras.Sequential")
    if not self.built:
        self.build(x.shape[1:], x.dtype if x.dtype in (np.float32, np.float64) else np.float32)
    return self.forward(x, training=bool(kwargs.get("training", False)))


def _adapt(cls, keras_name):
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}

    def __init__(self, *args, **kwargs):
        cls.__init__(self, *args, **_keras_kwargs(keras_name, accepted, kwargs))

    return type(cls.__name__, (cls,), {"__init__": __init__, "__call__": _call, "__module__": __name__,
                                       "__doc__": cls.__doc__})


_ADAPTED = {cls: _adapt(cls, cls.keras_class_name()) for cls in _layers.LAYERS}
#: Keras name (class name and aliases) -> adapted class
_BY_NAME = {name: _ADAPTED[cls] for cls in _layers.LAYERS
            for name in (cls.__name__, cls.keras_class_name(), *cls.keras_aliases)}
globals().update(_BY_NAME)

__all__ = sorted([*_BY_NAME, "Input", "InputLayer"])

__getattr__ = missing_names(__name__, __all__, {
    "Lambda": "minicnn runs no user code inside a model",
    "Conv1D": "minicnn is 2-D only", "Conv3D": "minicnn is 2-D only",
    "LSTM": "no recurrent layers", "GRU": "no recurrent layers", "SimpleRNN": "no recurrent layers",
    "Embedding": "minicnn is a CNN library",
})
