"""Sequential: a Keras-like model made of minicnn layers.

Forward runs the layers in order, backward in reverse; the optimizer then updates every weight in
place. ``fit`` adds batching, shuffling, validation, callbacks, a progress bar, checkpoints (see
:mod:`minicnn.checkpoint`) and a guard that stops at the first non-finite loss or gradient.
"""

from __future__ import annotations

import math
import numbers
import os
import signal
import sys
import threading

import numpy as np

from . import losses as losses_mod
from . import optimizers as optimizers_mod
from .callbacks import Callback, History, ProgressBar
from .errors import NonFiniteError
from .kernels import numpy_backend
from .layers import LAYER_CLASSES, Layer

DTYPES = ("float32", "float64")
#: predict runs the network on at most this many samples at a time, whatever its batch_size: a
#: chunk's activations stay in cache. Measured (seed model, numba, 1000 images, 2 cores): 104 ms
#: in chunks of 100-200, 125 ms as one batch of 1000 (its 147 MB conv2 output goes to DRAM)
PREDICT_CHUNK = 128


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM arrived during ``fit``; a checkpoint was written if a directory was given."""


def _dtype(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt.name not in DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dt.name}")
    return dt


class Sequential:
    """A linear stack of layers.

    Parameters
    ----------
    layers : list of layers, or None (then use :meth:`add`).
    input_shape : per-sample input shape, e.g. (28, 28, 1); may also be given to the first layer,
        to :meth:`build`, or inferred on the first ``fit``/``predict``.
    dtype : 'float32' (default) or 'float64'; weights, activations and gradients all use it.
    seed : seeds weight initialisation and the training RNG (shuffling, dropout).
    """

    def __init__(self, layers=None, name="sequential", input_shape=None, dtype="float32", seed=None):
        self.name = name
        self.layers: list[Layer] = []
        self.dtype = _dtype(dtype)
        self.seed = seed
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.optimizer = None
        self.loss = None
        self.metrics: list[str] = []
        self.stop_training = False
        self.built = False
        self.history = None
        self._init_rng, self.train_rng = self._rngs(seed)
        for layer in layers or []:
            self.add(layer)

    @staticmethod
    def _rngs(seed):
        init_seq, train_seq = np.random.SeedSequence(seed).spawn(2)
        return np.random.default_rng(init_seq), np.random.default_rng(train_seq)

    # ------------------------------------------------------------------------------ structure
    def add(self, layer: Layer) -> None:
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a minicnn layer, got {type(layer).__name__}")
        if self.built:
            raise ValueError("cannot add layers to a model that is already built")
        taken = {l.name for l in self.layers}
        if layer.name is None:
            i, name = 0, layer.kind
            while name in taken:
                i += 1
                name = f"{layer.kind}_{i}"
            layer.name = name
        elif layer.name in taken:
            raise ValueError(f"layer name '{layer.name}' is used twice in model '{self.name}'")
        if not self.layers and layer.input_shape is not None and self.input_shape is None:
            self.input_shape = layer.input_shape
        self.layers.append(layer)

    def build(self, input_shape=None) -> None:
        """Create every layer's weights for per-sample ``input_shape`` (no batch axis)."""
        if input_shape is not None:
            self.input_shape = tuple(int(d) for d in input_shape)
        if self.input_shape is None:
            raise ValueError(f"model '{self.name}' needs an input shape: pass input_shape= to the "
                             "model or its first layer, or call build((H, W, C))")
        if not self.layers:
            raise ValueError(f"model '{self.name}' has no layers")
        shape = self.input_shape
        for layer in self.layers:
            layer.build(shape, self.dtype, self._init_rng)
            if hasattr(layer, "rng"):
                layer.rng = self.train_rng
            shape = layer.output_shape
        self.output_shape = shape
        self.built = True

    def _ensure_built(self, x):
        if not self.built:
            self.build(self.input_shape or np.shape(x)[1:])

    @property
    def trainable_layers(self):
        return [l for l in self.layers if l.params]

    def named_parameters(self):
        """(key, param, grad) for every weight, in Keras get_weights order; key is 'layer/weight'."""
        for layer in self.layers:
            for k in layer.weight_names:
                if k in layer.params:
                    yield f"{layer.name}/{k}", layer.params[k], layer.grads[k]

    def get_weights(self) -> list[np.ndarray]:
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights) -> None:
        weights = list(weights)
        expected = sum(len(l.get_weights()) for l in self.layers)
        if len(weights) != expected:
            raise ValueError(f"model '{self.name}' has {expected} weight arrays, received {len(weights)}")
        i = 0
        for layer in self.layers:
            n = len(layer.get_weights())
            layer.set_weights(weights[i:i + n])
            i += n

    def count_params(self) -> int:
        return sum(l.count_params() for l in self.layers)

    def get_layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"no layer named {name!r}; layers are {', '.join(l.name for l in self.layers)}")

    # ------------------------------------------------------------------------------ config
    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype.name,
                "input_shape": list(self.input_shape) if self.input_shape else None,
                "layers": [{"class_name": type(l).__name__, "config": l.get_config()} for l in self.layers]}

    @classmethod
    def from_config(cls, config: dict, seed=None) -> "Sequential":
        """Rebuild a model from :meth:`get_config` output. Only minicnn's own layer classes are
        looked up; nothing in a config can name code to run."""
        layers = []
        for i, spec in enumerate(config["layers"]):
            cls_name = spec.get("class_name")
            if cls_name not in LAYER_CLASSES:
                raise ValueError(f"layer {i}: unknown layer class {cls_name!r}; "
                                 f"supported: {', '.join(LAYER_CLASSES)}")
            layers.append(LAYER_CLASSES[cls_name].from_config(dict(spec["config"])))
        model = cls(layers, name=config.get("name", "sequential"), dtype=config.get("dtype", "float32"),
                    input_shape=config.get("input_shape"), seed=seed)
        if model.input_shape is not None:
            model.build()
        return model

    # ------------------------------------------------------------------------------ summary
    def summary(self, print_fn=print) -> str:
        """Keras 3's summary table; returns the text and passes it to ``print_fn`` (None: don't print)."""
        if not self.built:
            self.build()
        rows = [(f"{l.name} ({type(l).__name__})", "(None, " + ", ".join(map(str, l.output_shape)) + ")",
                 f"{l.count_params():,}") for l in self.layers]
        w = [max(31, *(len(r[0]) for r in rows)), max(22, *(len(r[1]) for r in rows)),
             max(13, *(len(r[2]) for r in rows))]
        head = ("Layer (type)", "Output Shape", "Param #")

        def line(left, mid, right, fill):
            return left + mid.join(fill * (n + 2) for n in w) + right

        out = [f'Model: "{self.name}"', line("┏", "┳", "┓", "━"),
               f"┃ {head[0]:<{w[0]}} ┃ {head[1]:<{w[1]}} ┃ {head[2]:>{w[2]}} ┃",
               line("┡", "╇", "┩", "━")]
        out += [f"│ {a:<{w[0]}} │ {b:<{w[1]}} │ {c:>{w[2]}} │" for a, b, c in rows]
        out.append(line("└", "┴", "┘", "─"))
        total = self.count_params()
        size = _readable_bytes(total * self.dtype.itemsize)
        out += [f" Total params: {total:,} ({size})", f" Trainable params: {total:,} ({size})",
                " Non-trainable params: 0 (0.00 B)"]
        text = "\n".join(out)
        if print_fn is not None:
            print_fn(text)
        return text

    # ------------------------------------------------------------------------------ compile
    def compile(self, optimizer="adam", loss="categorical_crossentropy", metrics=None) -> None:
        self.optimizer = optimizers_mod.get(optimizer)
        self.loss = losses_mod.get(loss)
        metrics = list(metrics or [])
        for m in metrics:
            if m not in ("accuracy", "acc"):
                raise ValueError(f"unknown metric {m!r}; minicnn supports 'accuracy'")
        self.metrics = ["accuracy"] if metrics else []

    def _require_compiled(self, what):
        if self.loss is None:
            raise RuntimeError(f"call model.compile(...) before model.{what}()")

    @property
    def _fused_softmax_loss(self) -> bool:
        """Keras's TF backend takes the loss from the logits when the model ends in softmax."""
        return (self.loss is not None and not self.loss.from_logits
                and getattr(self.layers[-1], "ends_in_softmax", False))

    # ------------------------------------------------------------------------------ passes
    def forward(self, x, training=False, record=False):
        """Run every layer. With ``record=True`` returns (output, [each layer's output])."""
        self._ensure_built(x)
        outputs = []
        for layer in self.layers:
            x = layer.forward(x, training=training)
            if record:
                outputs.append(x)
        return (x, outputs) if record else x

    def backward(self, dy, need_input_grad=False, from_logits=False):
        """Backpropagate ``dy`` (w.r.t. the output, or the last softmax's logits if
        ``from_logits``) through every layer; fills each layer's ``grads``; returns dx or None."""
        first = self.layers[0]
        if hasattr(first, "need_dx"):
            first.need_dx = need_input_grad
        for i, layer in enumerate(reversed(self.layers)):
            if i == 0 and from_logits:
                dy = layer.logits_backward(dy)
            else:
                dy = layer.backward(dy)
            if dy is None:
                break
        return dy

    def loss_and_output_grad(self, y, out):
        """Mean loss and the gradient to feed :meth:`backward` (fused when the model ends in softmax)."""
        if self._fused_softmax_loss:
            loss, g = self.loss.logits_loss_and_grad(y, self.layers[-1].logits)
            return float(loss), g, True
        loss, g = self.loss.loss_and_grad(y, out)
        return float(loss), g, False

    def _batch_loss(self, y, out):
        if self._fused_softmax_loss:
            return float(self.loss.logits_loss_and_grad(y, self.layers[-1].logits, need_grad=False)[0])
        return float(self.loss.loss_and_grad(y, out, need_grad=False)[0])

    def train_on_batch(self, x, y, *, _where=""):
        """One step: forward, loss, backward, non-finite check, update. Returns [loss, accuracy]."""
        self._require_compiled("train_on_batch")
        self._ensure_built(x)
        x = self._check_x(x, "x")
        y = self._check_y(y, x.shape[0], "y")
        out = self.forward(x, training=True)
        loss, g, fused = self.loss_and_output_grad(y, out)
        self.backward(g, from_logits=fused)
        self._guard_finite(loss, x, _where)
        self.optimizer.step(self.named_parameters())
        return [loss, losses_mod.accuracy(y, out)] if self.metrics else [loss]

    def _guard_finite(self, loss, x, where):
        """Stop before the update if the loss or any gradient is NaN/inf, naming the first layer
        where a non-finite value appears (weights, then outputs in forward order, then gradients
        in backward order)."""
        bad = None
        if not math.isfinite(loss):
            bad = "loss"
        for layer in self.layers:
            # the verdict of a backward that checked its own gradients (True/False) holds for this
            # step only; None: check them here
            verdict, layer.grads_finite = layer.grads_finite, None
            if verdict is None:
                verdict = bad is not None or all(_all_finite(layer.grads[k]) for k in layer.params)
            if bad is None and not verdict:
                bad = "gradient"
        if bad is None:
            return
        raise NonFiniteError(f"non-finite {bad}{where}; {self._locate_nonfinite(x)}. The weights were "
                             "not updated in this step; the last checkpoint (if any) is intact. "
                             "Try a lower learning rate.")

    def _locate_nonfinite(self, x) -> str:
        """Where a non-finite value first shows up (only called once something went wrong)."""
        with np.errstate(all="ignore"):
            key = _nonfinite_param(self)
            if key is not None:
                return f"it first appears in the weights of layer '{key.split('/')[0]}' ({key})"
            _, outs = self.forward(x, training=False, record=True)
            for layer, out in zip(self.layers, outs):
                if not np.isfinite(out).all():
                    return f"it first appears in the output of layer '{layer.name}' ({type(layer).__name__})"
            for layer in reversed(self.layers):
                for k, g in layer.grads.items():
                    if not np.isfinite(g).all():
                        return (f"it first appears in the gradient of layer '{layer.name}' "
                                f"({layer.name}/{k}; layers counted in backward order)")
        return "every layer's output is finite: it first appears in the loss"

    # ------------------------------------------------------------------------------ validation
    def _describe_input(self) -> str:
        first = self.layers[0]
        return f"model '{self.name}' (first layer '{first.name}', {type(first).__name__})"

    def _check_x_layout(self, x, what="x") -> np.ndarray:
        """Validate rank, shape, dtype and size (no pass over the data)."""
        x = _as_array(x, what)
        if x.dtype.kind in "biu":
            raise ValueError(f"{what} must be floating point (scaled to [0, 1]), received dtype {x.dtype}, "
                             f"for {self._describe_input()}: use x.astype('float32') / 255, or "
                             "minicnn.datasets.to_float_nhwc(x)")
        if x.dtype.kind != "f":
            raise ValueError(f"{what} must be a real floating-point array, received dtype {x.dtype}")
        expected = tuple(self.input_shape)
        if x.shape[1:] != expected:
            hint = ""
            if x.shape[1:] + (1,) == expected:
                hint = "; add the channel axis: x[..., None]"
            elif x.shape == expected:
                hint = "; add the batch axis: x[None]"
            raise ValueError(f"{what} has shape {x.shape} ({x.ndim}-D); {self._describe_input()} expects "
                             f"(batch, {', '.join(map(str, expected))}){hint}")
        if x.shape[0] == 0:
            raise ValueError(f"{what} has no samples (shape {x.shape})")
        return x

    def _check_x(self, x, what="x"):
        """Validate rank, shape, dtype, size and finiteness; cast floats to the model dtype."""
        x = self._check_x_layout(x, what)
        with np.errstate(over="ignore"):
            cast = x.astype(self.dtype) if x.dtype != self.dtype else x
        if not _all_finite(cast):
            rows = ~np.isfinite(cast.reshape(cast.shape[0], -1)).all(axis=1)
            idx = int(np.flatnonzero(rows)[0])
            if cast is not x and np.isfinite(x[idx]).all():
                raise ValueError(f"{what} has values beyond the {self.dtype} range (first at sample {idx})")
            raise ValueError(f"{what} contains NaN or inf (first at sample {idx})")
        return cast

    def _check_y(self, y, n, what="y"):
        """Validate labels against ``n`` samples and the model's output and loss."""
        y = _as_array(y, what)
        last = self.layers[-1]
        out_shape = tuple(self.output_shape)
        if len(out_shape) != 1:
            raise ValueError(f"the last layer '{last.name}' ({type(last).__name__}) outputs (batch, "
                             f"{', '.join(map(str, out_shape))}); cross-entropy needs (batch, classes): "
                             "end the model with Flatten and Dense")
        k = out_shape[0]
        if y.ndim == 0:
            raise ValueError(f"{what} must hold one label per sample, received a scalar")
        if y.dtype.kind not in "biuf":
            raise ValueError(f"{what} must hold numbers, received dtype {y.dtype}")
        if y.shape[0] != n:
            raise ValueError(f"{what} has {y.shape[0]} samples but x has {n}")
        loss_name = self.loss.name if self.loss is not None else "categorical_crossentropy"
        if self.loss is not None and self.loss.sparse:
            if y.ndim not in (1, 2) or (y.ndim == 2 and y.shape[1] != 1) or y.dtype.kind not in "iu":
                raise ValueError(f"{what} must hold integer class labels of shape ({n},) for "
                                 f"{loss_name}, received shape {y.shape} dtype {y.dtype}")
            bad = (y < 0) | (y >= k)
            if bad.any():
                i = int(np.flatnonzero(bad.reshape(-1))[0])
                raise ValueError(f"{what}: label {y.reshape(-1)[i]} at index {i} is out of range [0, {k}) "
                                 f"(the last layer '{last.name}' has {k} outputs)")
            return y
        if y.ndim == 1 and y.dtype.kind in "iu":
            raise ValueError(f"{what} holds integer labels {y.shape} but the loss is {loss_name}: "
                             "one-hot them (minicnn.datasets.one_hot) or use loss='sparse_categorical_crossentropy'")
        if y.ndim != 2 or y.shape[1] != k:
            raise ValueError(f"{what} must have shape ({n}, {k}) (one-hot; the last layer '{last.name}' "
                             f"has {k} outputs), received {y.shape}")
        if y.dtype.kind == "f" and not _all_finite(y):
            i = int(np.flatnonzero(~np.isfinite(y).all(axis=1))[0])
            raise ValueError(f"{what} contains NaN or inf (first at sample {i})")
        return y

    # ------------------------------------------------------------------------------ fit & co
    def fit(self, x, y, batch_size=32, epochs=1, verbose=1, callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, seed=None, initial_epoch=0, checkpoint_dir=None,
            checkpoint_every=None, keep_checkpoints=3, resume=False, stream=None):
        """Train for ``epochs`` epochs; returns a :class:`History` (also at ``model.history``).

        Everything is validated before any computation. Batches are gathered one at a time
        (``x[indices]``): the training set is never copied as a whole.

        ``validation_split`` takes the *last* fraction of the samples, before shuffling (Keras).
        With ``checkpoint_dir`` a checkpoint is written atomically after every epoch (and every
        ``checkpoint_every`` steps within an epoch), keeping the last ``keep_checkpoints``; a
        directory holding checkpoints of another run is refused unless ``resume=True``, which
        continues from the newest valid one, bitwise as if never interrupted (same backend and
        thread count). With a checkpoint directory, SIGINT/SIGTERM finish the current step, write
        a checkpoint and raise :class:`TrainingInterrupted` (a second signal stops at once).
        A NaN/inf loss or gradient raises :class:`~minicnn.errors.NonFiniteError` before the
        update; no checkpoint with non-finite weights is ever written.
        """
        from . import checkpoint as ckpt

        self._require_compiled("fit")
        batch_size = _int_arg(batch_size, "batch_size", 1)
        epochs = _int_arg(epochs, "epochs", 0)
        initial_epoch = _int_arg(initial_epoch, "initial_epoch", 0)
        if checkpoint_dir is None and (resume or checkpoint_every is not None):
            raise ValueError("resume and checkpoint_every need checkpoint_dir")
        if checkpoint_every is not None:
            checkpoint_every = _int_arg(checkpoint_every, "checkpoint_every", 1)
        if checkpoint_dir is not None:
            keep_checkpoints = _int_arg(keep_checkpoints, "keep_checkpoints", 1)

        x = _as_array(x, "x")
        self._ensure_built(x)
        self._check_x_layout(x, "x")
        y = self._check_y(y, x.shape[0], "y")
        if validation_data is None and validation_split:
            if not (isinstance(validation_split, float) and 0.0 < validation_split < 1.0):
                raise ValueError(f"validation_split must be a float in (0, 1), got {validation_split!r}")
            split = int(x.shape[0] * (1.0 - validation_split))
            if not 0 < split < x.shape[0]:
                raise ValueError(f"validation_split={validation_split} leaves {split} training and "
                                 f"{x.shape[0] - split} validation samples; both need at least one")
            validation_data = (x[split:], y[split:])
            x, y = x[:split], y[:split]
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a pair (x_val, y_val)")
            vx = _as_array(validation_data[0], "validation x")
            self._check_x_layout(vx, "validation x")
            _check_finite_chunks(vx, "validation x", self.dtype)
            vy = self._check_y(validation_data[1], vx.shape[0], "validation y")
        _check_finite_chunks(x, "x", self.dtype)
        if seed is not None:
            self.train_rng.bit_generator.state = self._rngs(seed)[1].bit_generator.state

        n = int(x.shape[0])
        steps = math.ceil(n / batch_size)
        fit_info = {"batch_size": batch_size, "num_samples": n, "shuffle": bool(shuffle)}
        state = ckpt.TrainState(epoch=initial_epoch, step=0, perm=None, sums={}, history=History())
        out = stream if stream is not None else sys.stdout
        if resume:
            found = ckpt.restore_latest(checkpoint_dir, self, state, fit_info, stream=stream)
            if verbose:
                out.write(f"Resuming from {found}: epoch {min(state.epoch + 1, epochs)}/{epochs}, "
                          f"step {state.step}/{steps}.\n" if found else
                          f"No checkpoint in {checkpoint_dir}; starting from scratch.\n")
        elif checkpoint_dir is not None:
            later = [p for p in ckpt.list_checkpoints(checkpoint_dir)
                     if _checkpoint_iterations(p) > self.optimizer.iterations]
            if later:
                raise ValueError(f"checkpoint directory {os.fspath(checkpoint_dir)!r} already holds checkpoints "
                                 f"of another run (newest: {os.path.basename(later[-1])}): pass "
                                 "resume=True (CLI: --resume) to continue it, or use another directory")
        history = state.history
        history.params = {"epochs": epochs, "steps": steps, "batch_size": batch_size}
        self.history = history
        cbs = ([ProgressBar(steps, epochs, verbose, stream=stream)] if verbose else []) + list(callbacks or [])
        for cb in cbs:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be minicnn Callback instances, got {type(cb).__name__}")
            cb.set_model(self)
        self.stop_training = False
        saver = ckpt.CheckpointWriter(checkpoint_dir, keep_checkpoints) if checkpoint_dir is not None else None

        def save(where):
            key = _nonfinite_param(self)
            if key is not None:  # never checkpoint a diverged model
                raise NonFiniteError(f"non-finite weights in layer '{key.split('/')[0]}' ({key}) after the "
                                     f"update{where}; the update overflowed. No checkpoint was written; "
                                     "the last checkpoint (if any) is intact. Try a lower learning rate.")
            saver.save(self, state, fit_info)

        for cb in cbs:
            cb.on_train_begin()
        interrupted = _SignalFlag(checkpoint_dir) if saver is not None else None
        try:
            # non-finite values are reported by the guard (NonFiniteError), not as numpy warnings
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                while state.epoch < epochs and not self.stop_training:
                    if state.perm is None:
                        state.perm = self.train_rng.permutation(n) if shuffle else np.arange(n)
                        state.sums = {"loss": 0.0, "accuracy": 0.0, "count": 0}
                    for cb in cbs:
                        cb.on_epoch_begin(state.epoch)
                    while state.step < steps:
                        idx = state.perm[state.step * batch_size:(state.step + 1) * batch_size]
                        where = f" at epoch {state.epoch + 1}, step {state.step + 1} (of {steps})"
                        res = self.train_on_batch(x[idx], y[idx], _where=where)
                        nb = len(idx)
                        state.sums["loss"] += res[0] * nb
                        if self.metrics:
                            state.sums["accuracy"] += res[1] * nb
                        state.sums["count"] += nb
                        state.step += 1
                        logs = state.running_logs(self.metrics)
                        for cb in cbs:
                            cb.on_batch_end(state.step, logs)
                        if saver is None or state.step == steps:
                            continue  # the end of the epoch checkpoints (and handles a signal)
                        if interrupted.raised or (checkpoint_every and state.step % checkpoint_every == 0):
                            save(where)
                        if interrupted.raised:
                            raise TrainingInterrupted(_interrupt_message(interrupted.raised, state, epochs,
                                                                         steps, saver.last_path))
                    logs = state.running_logs(self.metrics)
                    if validation_data is not None:
                        val = self.evaluate(vx, vy, batch_size=max(batch_size, 256), verbose=0)
                        logs["val_loss"] = val[0]
                        if self.metrics:
                            logs["val_accuracy"] = val[1]
                    for cb in [history, *cbs]:
                        cb.on_epoch_end(state.epoch, logs)
                    state.epoch += 1
                    state.step = 0
                    state.perm = None
                    if saver is not None:
                        save(f" at the end of epoch {state.epoch}")
                    if interrupted is not None and interrupted.raised:
                        raise TrainingInterrupted(_interrupt_message(interrupted.raised, state, epochs,
                                                                     steps, saver.last_path))
                key = _nonfinite_param(self)
                if key is not None:
                    raise NonFiniteError(f"non-finite weights in layer '{key.split('/')[0]}' ({key}) at the "
                                         "end of training; the last update overflowed. Try a lower learning rate.")
        except NonFiniteError as e:
            newest = ckpt.list_checkpoints(checkpoint_dir)[-1:] if checkpoint_dir is not None else []
            if newest:
                raise NonFiniteError(f"{e} Newest checkpoint: {newest[0]}.") from None
            raise
        finally:
            if interrupted is not None:
                interrupted.restore()
        for cb in cbs:
            cb.on_train_end()
        return history

    def evaluate(self, x, y, batch_size=32, verbose=0):
        """Mean loss (and accuracy) over ``x``; returns [loss, accuracy] (or [loss])."""
        self._require_compiled("evaluate")
        self._ensure_built(x)
        x = np.asarray(x)
        y = self._check_y(y, x.shape[0], "y")
        total = {"loss": 0.0, "correct": 0.0}
        for start in range(0, x.shape[0], batch_size):
            xb = self._check_x(x[start:start + batch_size])
            yb = y[start:start + batch_size]
            out = self.forward(xb, training=False)
            total["loss"] += self._batch_loss(yb, out) * len(xb)
            total["correct"] += losses_mod.accuracy(yb, out) * len(xb)
        n = max(x.shape[0], 1)
        res = [total["loss"] / n] + ([total["correct"] / n] if self.metrics else [])
        if verbose:
            print(" - ".join(f"{k}: {v:.4f}" for k, v in zip(["loss", "accuracy"], res)))
        return res

    def predict(self, x, batch_size=32, verbose=0):
        """Outputs for ``x`` computed in batches (of at most :data:`PREDICT_CHUNK` samples);
        returns an (N, ...) array of the model dtype."""
        self._ensure_built(x)
        x = np.asarray(x)
        if x.ndim != len(self.input_shape) + 1:
            raise ValueError(f"x must have shape (batch, {', '.join(map(str, self.input_shape))}), received {x.shape}")
        # chunks never change a result: each sample's output is computed independently
        step = min(_int_arg(batch_size, "batch_size", 1), PREDICT_CHUNK)
        out = np.empty((x.shape[0], *self.output_shape), dtype=self.dtype)
        for start in range(0, x.shape[0], step):
            out[start:start + step] = self.forward(self._check_x(x[start:start + step]))
        return out

    def __call__(self, x):
        return self.predict(x, batch_size=max(len(x), 1))

    # ------------------------------------------------------------------------------ files
    def save(self, path) -> None:
        """Save architecture (JSON) and weights in one ``.npz`` (no pickle), or, for a path ending
        in ``.weights.h5``, Keras 3 weights that ``keras.Model.load_weights`` accepts."""
        from . import saving
        saving.save_model(self, path)


def _readable_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.2f} {unit}"
        n /= 1024



def _as_array(x, what) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    try:
        return np.asarray(x)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{what} cannot be turned into an array: {e}") from None


def _int_arg(value, name, minimum) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


_all_finite = numpy_backend.all_finite  # (one definition, shared with the kernels)


def _nonfinite_param(model):
    """Key ('layer/weight') of the first weight holding NaN/inf, or None."""
    for key, p, _ in model.named_parameters():
        if not _all_finite(p):
            return key
    return None


def _checkpoint_iterations(path) -> int:
    return int(os.path.basename(path)[len("ckpt-"):-len(".npz")])


def _check_finite_chunks(x, what, dtype=None, chunk_elements=1 << 18):
    """NaN/inf check over the whole array, a bounded chunk at a time (no full-size temporary).
    With ``dtype``, values that would overflow when cast to it count as non-finite."""
    if x.dtype.kind != "f" or x.size == 0:
        return
    narrowing = dtype is not None and np.dtype(dtype).itemsize < x.dtype.itemsize
    rows = max(1, chunk_elements // max(1, math.prod(x.shape[1:])))
    for start in range(0, x.shape[0], rows):
        part = x[start:start + rows]
        if narrowing:
            with np.errstate(over="ignore"):
                part = part.astype(dtype)
        if not _all_finite(part):
            bad = int(np.flatnonzero(~np.isfinite(part.reshape(part.shape[0], -1)).all(axis=1))[0])
            if narrowing and np.isfinite(x[start + bad]).all():
                raise ValueError(f"{what} has values beyond the {np.dtype(dtype)} range (first at sample {start + bad})")
            raise ValueError(f"{what} contains NaN or inf (first at sample {start + bad})")


class _SignalFlag:
    """Turn SIGINT/SIGTERM into a flag checked between steps (main thread only). A second
    signal stops at once, without writing a checkpoint."""

    def __init__(self, directory=None):
        self.raised = None
        self.directory = directory
        self._old = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)

    def _handler(self, signum, frame):
        name = signal.Signals(signum).name
        if self.raised is None:
            self.raised = name
            return
        self.restore()
        raise TrainingInterrupted(f"second {name} received: stopped at once, without a new checkpoint; "
                                  f"the newest checkpoint in {os.fspath(self.directory)!r} is intact. "
                                  "Resume with the same command plus --resume.")

    def restore(self):
        for sig, old in self._old.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        self._old = {}


def _interrupt_message(signame, state, epochs, steps, path):
    where = (f"in epoch {state.epoch + 1}/{epochs} after step {state.step}/{steps}" if state.step
             else f"after epoch {state.epoch}/{epochs}")
    directory = os.path.dirname(path)
    return (f"{signame} received: training stopped {where}; checkpoint written to {path}. "
            f"To resume, run the same command with --resume (Python: fit(..., "
            f"checkpoint_dir={directory!r}, resume=True)).")


def load_model(path) -> Sequential:
    """Load a model saved by :meth:`Sequential.save` (or a Keras file; see :mod:`minicnn.saving`)."""
    from . import saving
    return saving.load_model(path)
