"""``keras.models``: Sequential and load_model with Keras 3's signatures and defaults, on top of
:class:`minicnn.Sequential` (which does all the work). Arguments Keras has and minicnn cannot
honour raise :class:`~minicnn.errors.KerasUnsupportedError` naming them."""

from __future__ import annotations

import math
import os
import sys
import time

from .. import io as _io
from .. import losses as _losses
from .. import optimizers as _optimizers
from ..callbacks import ProgressBar, format_duration, format_logs
from ..sequential import Sequential as _Sequential
from . import state
from .layers import InputLayer
from .unsupported import check_defaults, missing_names, refuse


def _verbose(verbose):
    return 1 if verbose == "auto" else int(verbose)


def _loss(loss):
    if loss is None:
        raise ValueError("compile(loss=...) is needed: minicnn trains with a loss "
                         "('categorical_crossentropy' or 'sparse_categorical_crossentropy')")
    name = getattr(loss, "keras_loss_name", None) or loss  # keras.losses.categorical_crossentropy
    if isinstance(name, str) and name not in _losses.LOSSES:
        refuse(f"loss {name!r}", None, f"minicnn has {', '.join(_losses.LOSSES)}")
    return _losses.get(name)


def _metrics(metrics):
    out = []
    for m in metrics or []:
        if m not in ("accuracy", "acc"):
            refuse(f"metric {m!r}", None, "minicnn computes 'accuracy'")
        out.append("accuracy")
    return out


class Sequential(_Sequential):
    """``keras.Sequential``: a list of layers, optionally starting with ``keras.Input(shape=...)``."""

    summary_uses_keras_names = True

    def __init__(self, layers=None, trainable=True, name=None, dtype="float32", seed=None, input_shape=None):
        if not trainable:
            refuse("Sequential(trainable=False)")
        super().__init__(None, name=name or "sequential", dtype=dtype, input_shape=input_shape,
                         seed=state.default_seed if seed is None else seed)
        for layer in layers or []:
            self.add(layer)

    def add(self, layer) -> None:
        if isinstance(layer, InputLayer):
            if self.layers:
                raise ValueError("keras.Input must come first in a Sequential")
            self.input_shape = layer.per_sample
            return
        if isinstance(layer, _Sequential):
            refuse("a model as a layer of a Sequential (nested models)")
        super().add(layer)

    # -- Keras's signatures ---------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None, weighted_metrics=None,
                run_eagerly=False, steps_per_execution=1, jit_compile="auto", auto_scale_loss=True):
        check_defaults("compile", {"loss_weights": loss_weights, "weighted_metrics": weighted_metrics},
                       {"loss_weights": None, "weighted_metrics": None})
        super().compile(_optimizers.get(optimizer), _loss(loss), _metrics(metrics))

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None, sample_weight=None,
            initial_epoch=0, steps_per_epoch=None, validation_steps=None, validation_batch_size=None,
            validation_freq=1, **minicnn_options):
        check_defaults("fit", {"class_weight": class_weight, "sample_weight": sample_weight,
                               "steps_per_epoch": steps_per_epoch, "validation_steps": validation_steps,
                               "validation_batch_size": validation_batch_size, "validation_freq": validation_freq},
                       {"class_weight": None, "sample_weight": None, "steps_per_epoch": None,
                        "validation_steps": None, "validation_batch_size": None, "validation_freq": 1})
        if y is None:
            refuse("fit without y (a dataset or generator as x)", None, "pass NumPy arrays x and y")
        if isinstance(validation_data, (tuple, list)) and len(validation_data) == 3:
            refuse("validation_data with sample weights (x, y, w)")
        return super().fit(x, y, batch_size=batch_size or 32, epochs=epochs, verbose=_verbose(verbose),
                           callbacks=callbacks, validation_split=validation_split,
                           validation_data=validation_data, shuffle=shuffle, initial_epoch=initial_epoch,
                           **minicnn_options)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False):
        check_defaults("evaluate", {"sample_weight": sample_weight, "steps": steps, "callbacks": callbacks},
                       {"sample_weight": None, "steps": None, "callbacks": None})
        batch_size = batch_size or 32
        t0 = time.perf_counter()
        res = super().evaluate(x, y, batch_size=batch_size, verbose=0)
        logs = dict(zip(["loss", *self.metrics], res))
        if _verbose(verbose):
            _progress_line(len(x), batch_size, time.perf_counter() - t0, logs)
        if return_dict:
            return logs
        return res if len(res) > 1 else res[0]

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        check_defaults("predict", {"steps": steps, "callbacks": callbacks}, {"steps": None, "callbacks": None})
        t0 = time.perf_counter()
        out = super().predict(x, batch_size=batch_size or 32)
        if _verbose(verbose):
            _progress_line(len(x), batch_size or 32, time.perf_counter() - t0, {})
        return out

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):
        """Print the summary table (Keras 3's); returns None, as Keras does."""
        super().summary(print_fn=print_fn or print)

    def save(self, filepath, overwrite=True, zipped=None, **kwargs) -> None:
        """``.keras`` or ``.h5`` (full models Keras 3 loads), or minicnn's own ``.npz``."""
        path = os.fspath(filepath)
        if path.lower().endswith(".weights.h5"):
            raise ValueError(f"{path!r}: use model.save_weights() for a .weights.h5 file")
        if not path.lower().endswith((".keras", ".h5", ".npz")):
            raise ValueError(f"Invalid filepath extension for saving: {path!r}. Use a .keras (Keras 3), "
                             ".h5 (legacy Keras) or .npz (minicnn) file")
        if not overwrite and os.path.exists(path):
            raise FileExistsError(f"{path!r} exists and overwrite=False")
        super().save(path)

    def save_weights(self, filepath, overwrite=True) -> None:
        path = os.fspath(filepath)
        if not overwrite and os.path.exists(path):
            raise FileExistsError(f"{path!r} exists and overwrite=False")
        super().save_weights(path)

    def load_weights(self, filepath, skip_mismatch=False, **kwargs) -> None:
        if skip_mismatch or kwargs.get("by_name"):
            refuse("load_weights(skip_mismatch=True / by_name=True)", None, "weights are matched in layer order")
        super().load_weights(filepath)


def _progress_line(n, batch_size, elapsed, logs, stream=None):
    steps = max(math.ceil(n / batch_size), 1)
    bar = ProgressBar(steps, 1).bar(steps)
    out = stream or sys.stdout
    out.write(f"{steps}/{steps} {bar} {format_duration(elapsed)} {elapsed / steps * 1000:.0f}ms/step"
              f"{format_logs(logs)}\n")


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """A :class:`Sequential` from a ``.keras``, legacy ``.h5`` or minicnn ``.npz`` file."""
    if custom_objects:
        refuse("load_model(custom_objects=...)", None, "minicnn reads its own layer classes only")
    path = os.fspath(filepath)
    if path.lower().endswith(".weights.h5"):
        raise ValueError(f"{path!r} holds weights only: build the model, then model.load_weights()")
    return _io.load_model(path, model_class=Sequential)


__all__ = ["Sequential", "load_model"]
__getattr__ = missing_names(__name__, __all__, {
    "Model": "the functional API and subclassed models; build a keras.Sequential",
    "clone_model": "rebuild the Sequential from its layers", "model_from_json": "use load_model",
})
