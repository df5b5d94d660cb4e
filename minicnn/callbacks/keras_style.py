"""Keras's callbacks beyond History and EarlyStopping, with Keras 3's defaults and messages.

``ModelCheckpoint`` saves through the model's own ``save`` / ``save_weights`` (every format
those take); ``BackupAndRestore`` is fit's checkpoint directory (``checkpoint_dir`` +
``resume=True``: bitwise resumption), read by :func:`minicnn.training.fit`; ``TerminateOnNaN``
ends training quietly where minicnn would raise :class:`~minicnn.errors.NonFiniteError` (the
step that went non-finite is never applied, so the weights stay finite).
"""

from __future__ import annotations

import csv
import math
import os
import sys

from .base import Callback


def _monitor_mode(monitor: str, mode: str, who: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who} mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if ("acc" in monitor or monitor.endswith("auc")) else "min"
    return mode


def _write(stream, text):
    out = stream if stream is not None else sys.stdout
    out.write(text + "\n")
    out.flush()


class ModelCheckpoint(Callback):
    """Save the model (or its weights) after each epoch; ``filepath`` may hold ``{epoch}`` and
    any logged metric (``'w-{epoch:02d}-{val_loss:.2f}.weights.h5'``)."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch", initial_value_threshold=None,
                 stream=None):
        if save_freq != "epoch":
            raise ValueError(f"ModelCheckpoint save_freq={save_freq!r}: minicnn saves once per epoch "
                             "(save_freq='epoch'); for step checkpoints use fit(checkpoint_every=...)")
        self.filepath, self.monitor, self.verbose = os.fspath(filepath), monitor, verbose
        self.save_best_only, self.save_weights_only = bool(save_best_only), bool(save_weights_only)
        self.mode = _monitor_mode(monitor, mode, "ModelCheckpoint")
        self.initial = initial_value_threshold
        self.stream = stream
        self.best = initial_value_threshold

    def on_train_begin(self, logs=None):
        if self.best is None:
            self.best = math.inf if self.mode == "min" else -math.inf

    def _save(self, path):
        (self.model.save_weights if self.save_weights_only else self.model.save)(path)

    def on_epoch_end(self, epoch, logs):
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if not self.save_best_only:
            if self.verbose > 0:
                _write(self.stream, f"\nEpoch {epoch + 1}: saving model to {path}")
            self._save(path)
            return
        current = logs.get(self.monitor)
        if current is None:
            raise ValueError(f"ModelCheckpoint monitors '{self.monitor}', which is not among the logged "
                             f"metrics: {', '.join(sorted(logs))}")
        better = current < self.best if self.mode == "min" else current > self.best
        if better:
            if self.verbose > 0:
                _write(self.stream, f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                                    f"{current:.5f}, saving model to {path}")
            self.best = current
            self._save(path)
        elif self.verbose > 0:
            _write(self.stream, f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")


class CSVLogger(Callback):
    """One CSV row per epoch: ``epoch`` (0-based, as Keras writes it) then the logs, sorted by name."""

    def __init__(self, filename, separator=",", append=False):
        self.filename, self.sep, self.append = os.fspath(filename), separator, bool(append)
        self.keys = None
        self._file = None

    def on_train_begin(self, logs=None):
        exists = self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        self._header = not exists
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self.keys = None

    def on_epoch_end(self, epoch, logs):
        if self.keys is None:
            self.keys = sorted(logs)
            self._writer = csv.DictWriter(self._file, fieldnames=["epoch", *self.keys], delimiter=self.sep)
            if self._header:
                self._writer.writeheader()
        self._writer.writerow({"epoch": epoch, **{k: logs.get(k, "NA") for k in self.keys}})
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None


def _settable_lr(model, who):
    if getattr(model.optimizer, "schedule", None) is not None:
        raise ValueError(f"{who} cannot set the learning rate of an optimizer that follows a "
                         "learning-rate schedule")


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` once ``monitor`` has not improved for ``patience``
    epochs (Keras 3: ``learning_rate`` is added to the logs every epoch)."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0, stream=None, **kwargs):
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0, got {factor}")
        if kwargs:
            raise TypeError(f"ReduceLROnPlateau got unexpected arguments: {', '.join(kwargs)}")
        self.monitor, self.factor, self.patience, self.verbose = monitor, float(factor), int(patience), verbose
        self.mode = _monitor_mode(monitor, mode, "ReduceLROnPlateau")
        self.min_delta, self.cooldown, self.min_lr = float(min_delta), int(cooldown), float(min_lr)
        self.stream = stream

    def on_train_begin(self, logs=None):
        self.wait, self.cooldown_counter = 0, 0
        self.best = math.inf if self.mode == "min" else -math.inf

    def _improved(self, current):
        if self.mode == "min":
            return current < self.best - self.min_delta
        return current > self.best + self.min_delta

    def on_epoch_end(self, epoch, logs):
        opt = self.model.optimizer
        logs["learning_rate"] = float(opt.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            raise ValueError(f"ReduceLROnPlateau monitors '{self.monitor}', which is not among the "
                             f"logged metrics: {', '.join(sorted(logs))}")
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(current):
            self.best, self.wait = current, 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience and opt.learning_rate > self.min_lr:
                _settable_lr(self.model, "ReduceLROnPlateau")
                opt.learning_rate = max(opt.learning_rate * self.factor, self.min_lr)
                if self.verbose > 0:
                    _write(self.stream, f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate "
                                        f"to {opt.learning_rate}.")
                self.cooldown_counter, self.wait = self.cooldown, 0


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of every epoch to ``schedule(epoch, lr)`` (or
    ``schedule(epoch)``); ``learning_rate`` is added to the logs."""

    def __init__(self, schedule, verbose=0, stream=None):
        self.schedule, self.verbose, self.stream = schedule, verbose, stream

    def on_epoch_begin(self, epoch):
        _settable_lr(self.model, "LearningRateScheduler")
        opt = self.model.optimizer
        try:
            lr = self.schedule(epoch, float(opt.learning_rate))
        except TypeError:
            lr = self.schedule(epoch)
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"the learning-rate schedule returned {lr!r} for epoch {epoch}; it must "
                             "return a positive float")
        opt.learning_rate = float(lr)
        if self.verbose > 0:
            _write(self.stream, f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs):
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class TerminateOnNaN(Callback):
    """Stop training at the first non-finite loss or gradient instead of raising (the step that
    produced it is not applied). ``fit`` prints ``Batch N: Invalid loss, terminating training``."""

    stops_on_nonfinite = True


class BackupAndRestore(Callback):
    """Back up training in ``backup_dir`` after every epoch (or every ``save_freq`` steps) and,
    when ``fit`` runs again after an interruption, continue from the newest backup. The backups
    are deleted when training completes, unless ``delete_checkpoint=False``."""

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False, delete_checkpoint=True):
        if save_freq != "epoch" and not (isinstance(save_freq, int) and save_freq > 0):
            raise ValueError(f"BackupAndRestore save_freq must be 'epoch' or a positive int, got {save_freq!r}")
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = None if save_freq == "epoch" else save_freq
        self.delete_checkpoint = bool(delete_checkpoint)


class LambdaCallback(Callback):
    """A callback from plain functions with Keras's signatures: ``on_epoch_begin(epoch, logs)``,
    ``on_epoch_end(epoch, logs)``, ``on_train_batch_begin(batch, logs)``,
    ``on_train_batch_end(batch, logs)`` (``batch`` 0-based), ``on_train_begin(logs)``,
    ``on_train_end(logs)``; ``on_batch_begin`` / ``on_batch_end`` are accepted as the Keras 2 names."""

    HOOKS = ("on_epoch_begin", "on_epoch_end", "on_train_begin", "on_train_end",
             "on_train_batch_begin", "on_train_batch_end")

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, on_batch_begin=None, on_batch_end=None):
        self.fns = {"on_epoch_begin": on_epoch_begin, "on_epoch_end": on_epoch_end,
                    "on_train_begin": on_train_begin, "on_train_end": on_train_end,
                    "on_train_batch_begin": on_train_batch_begin or on_batch_begin,
                    "on_train_batch_end": on_train_batch_end or on_batch_end}

    def _call(self, hook, *args):
        fn = self.fns[hook]
        if fn is not None:
            fn(*args)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs if logs is not None else {})

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs if logs is not None else {})

    def on_epoch_begin(self, epoch):
        self._call("on_epoch_begin", epoch, {})

    def on_epoch_end(self, epoch, logs):
        self._call("on_epoch_end", epoch, logs)

    def on_batch_begin(self, step):
        self._call("on_train_batch_begin", step - 1, {})

    def on_batch_end(self, step, logs):
        self._call("on_train_batch_end", step - 1, logs)
