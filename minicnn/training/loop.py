"""``fit``: epochs of shuffled batches, validation, callbacks, the progress bar, checkpoints.

Everything is validated before any computation; batches are gathered one at a time
(``x[indices]``), so the training set is never copied as a whole. A run is a :class:`FitRun`:
its state (:class:`~minicnn.io.checkpoint.TrainState`) is what checkpoints save and resume.
"""

from __future__ import annotations

import math
import os
import shutil
import sys

import numpy as np

from ..arrays import as_array, check_finite_chunks, int_arg
from ..callbacks import BackupAndRestore, Callback, History, ProgressBar
from ..errors import FileWriteError, NonFiniteError
from ..io import checkpoint as ckpt
from ..io.dirlock import LOCK_NAME
from .interrupts import SignalFlag, TrainingInterrupted, interrupt_message
from .step import train_on_batch


def split_validation(model, x, y, validation_split, validation_data):
    """Validate the training arrays and return (x, y, (vx, vy) or None).

    ``validation_split`` takes the *last* fraction of the samples, before shuffling (Keras)."""
    x = as_array(x, "x")
    model._ensure_built(x)
    model.check_x_layout(x, "x")
    y = model.check_y(y, x.shape[0], "y")
    if validation_data is None and validation_split:
        if not (isinstance(validation_split, float) and 0.0 < validation_split < 1.0):
            raise ValueError(f"validation_split must be a float in (0, 1), got {validation_split!r}")
        split = int(x.shape[0] * (1.0 - validation_split))
        if not 0 < split < x.shape[0]:
            raise ValueError(f"validation_split={validation_split} leaves {split} training and "
                             f"{x.shape[0] - split} validation samples; both need at least one")
        validation_data = (x[split:], y[split:])
        x, y = x[:split], y[:split]
    val = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("validation_data must be a pair (x_val, y_val)")
        vx = as_array(validation_data[0], "validation x")
        model.check_x_layout(vx, "validation x")
        check_finite_chunks(vx, "validation x", model.dtype)
        val = (vx, model.check_y(validation_data[1], vx.shape[0], "validation y"))
    check_finite_chunks(x, "x", model.dtype)
    return x, y, val


class FitRun:
    """One call of ``fit``: the data, the state, the callbacks and the checkpoint writer."""

    def __init__(self, model, x, y, val, batch_size, epochs, shuffle, callbacks, verbose, stream,
                 checkpoint_dir, checkpoint_every, keep_checkpoints):
        self.model, self.x, self.y, self.val = model, x, y, val
        self.batch_size, self.epochs, self.shuffle = batch_size, epochs, bool(shuffle)
        self.n = int(x.shape[0])
        self.steps = math.ceil(self.n / batch_size)
        self.fit_info = {"batch_size": batch_size, "num_samples": self.n, "shuffle": self.shuffle}
        self.checkpoint_dir, self.checkpoint_every = checkpoint_dir, checkpoint_every
        self.stream, self.verbose = stream, verbose
        self.state = ckpt.TrainState(epoch=0, step=0, perm=None, sums={}, history=History())
        self.saver = (ckpt.CheckpointWriter(checkpoint_dir, keep_checkpoints, stream=stream)
                      if checkpoint_dir is not None else None)
        # Keras's order: the user's callbacks, then History (at the end of an epoch), then the bar
        self.progress = [ProgressBar(self.steps, epochs, verbose, stream=stream)] if verbose else []
        self.callbacks = list(callbacks or []) + self.progress
        self.quiet_resume = False
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be minicnn Callback instances, got {type(cb).__name__}")

    # -- start ---------------------------------------------------------------------------------
    def start(self, initial_epoch: int, resume: bool) -> None:
        """Resume from the newest valid checkpoint, or refuse a directory of another run."""
        state, model = self.state, self.model
        state.epoch = initial_epoch
        if resume:
            found = ckpt.restore_latest(self.checkpoint_dir, model, state, self.fit_info, stream=self.stream)
            if self.verbose and (found or not self.quiet_resume):
                out = self.stream if self.stream is not None else sys.stdout
                out.write(f"Resuming from {found}: epoch {min(state.epoch + 1, self.epochs)}/{self.epochs}, "
                          f"step {state.step}/{self.steps}.\n" if found else
                          f"No checkpoint in {self.checkpoint_dir}; starting from scratch.\n")
        elif self.checkpoint_dir is not None:
            later = [p for p in ckpt.list_checkpoints(self.checkpoint_dir)
                     if ckpt.checkpoint_iterations(p) > model.optimizer.iterations]
            if later:
                raise ValueError(f"checkpoint directory {os.fspath(self.checkpoint_dir)!r} already holds "
                                 f"checkpoints of another run (newest: {os.path.basename(later[-1])}): pass "
                                 "resume=True (CLI: --resume) to continue it, or use another directory")
        state.history.params = {"verbose": self.verbose, "epochs": self.epochs, "steps": self.steps,
                                "batch_size": self.batch_size}
        model.history = state.history
        state.history.set_model(model)  # Keras: history.model
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_data(self.x, self.y)

    # -- checkpoints ---------------------------------------------------------------------------
    def save(self, where: str) -> None:
        key = self.model.first_nonfinite_weight()
        if key is not None:  # never checkpoint a diverged model
            raise NonFiniteError(f"non-finite weights in layer '{key.split('/')[0]}' ({key}) after the "
                                 f"update{where}; the update overflowed. No checkpoint was written; "
                                 "the last checkpoint (if any) is intact. Try a lower learning rate.")
        try:
            self.saver.save(self.model, self.state, self.fit_info)
        except FileWriteError as e:  # disk full, file too large, read-only, permission denied
            last = self.saver.last_path or (ckpt.list_checkpoints(self.checkpoint_dir) or [None])[-1]
            raise FileWriteError(e.filename, e.cause, context=(
                f"; training stopped{where} because it cannot checkpoint (newest intact checkpoint: "
                f"{last or 'none'})")) from None

    def _stop_if_interrupted(self, interrupted) -> None:
        if interrupted is not None and interrupted.raised:
            raise TrainingInterrupted(interrupt_message(interrupted.raised, self.state, self.epochs,
                                                        self.steps, self.saver.last_path))

    # -- the loop ------------------------------------------------------------------------------
    def run_epoch(self, interrupted) -> None:
        state, model = self.state, self.model
        if state.perm is None:
            state.perm = model.train_rng.permutation(self.n) if self.shuffle else np.arange(self.n)
            state.sums = {"loss": 0.0, "accuracy": 0.0, "count": 0}
        for cb in self.callbacks:
            cb.on_epoch_begin(state.epoch)
        while state.step < self.steps:
            self.run_step(interrupted)
        logs = state.running_logs(model.metrics)
        if self.val is not None:
            val = model.evaluate(*self.val, batch_size=max(self.batch_size, 256), verbose=0)
            logs["val_loss"] = val[0]
            if model.metrics:
                logs["val_accuracy"] = val[1]
        user = self.callbacks[:len(self.callbacks) - len(self.progress)]
        for cb in [*user, state.history, *self.progress]:
            cb.on_epoch_end(state.epoch, logs)
        state.epoch += 1
        state.step = 0
        state.perm = None
        if self.saver is not None:
            self.save(f" at the end of epoch {state.epoch}")
        self._stop_if_interrupted(interrupted)

    def run_step(self, interrupted) -> None:
        state, model = self.state, self.model
        idx = state.perm[state.step * self.batch_size:(state.step + 1) * self.batch_size]
        where = f" at epoch {state.epoch + 1}, step {state.step + 1} (of {self.steps})"
        for cb in self.callbacks:
            cb.on_batch_begin(state.step + 1)
        res = train_on_batch(model, self.x[idx], self.y[idx], where=where)
        nb = len(idx)
        state.sums["loss"] += res[0] * nb
        if model.metrics:
            state.sums["accuracy"] += res[1] * nb
        state.sums["count"] += nb
        state.step += 1
        logs = state.running_logs(model.metrics)
        for cb in self.callbacks:
            cb.on_batch_end(state.step, logs)
        if self.saver is None or state.step == self.steps:
            return  # the end of the epoch checkpoints (and handles a signal)
        if interrupted.raised or (self.checkpoint_every and state.step % self.checkpoint_every == 0):
            self.save(where)
        self._stop_if_interrupted(interrupted)

    def run(self) -> History:
        model = self.model
        model.stop_training = False
        for cb in self.callbacks:
            cb.on_train_begin()
        interrupted = SignalFlag(self.checkpoint_dir) if self.saver is not None else None
        try:
            # non-finite values are reported by the guard (NonFiniteError), not as numpy warnings
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                while self.state.epoch < self.epochs and not model.stop_training:
                    self.run_epoch(interrupted)
                key = model.first_nonfinite_weight()
                if key is not None:
                    raise NonFiniteError(f"non-finite weights in layer '{key.split('/')[0]}' ({key}) at the "
                                         "end of training; the last update overflowed. Try a lower learning rate.")
        except NonFiniteError as e:
            if any(getattr(cb, "stops_on_nonfinite", False) for cb in self.callbacks):
                out = self.stream if self.stream is not None else sys.stdout
                out.write(f"Batch {self.state.step}: Invalid loss, terminating training\n")
                model.stop_training = True
                for cb in self.callbacks:
                    cb.on_train_end()
                return self.state.history
            newest = ckpt.list_checkpoints(self.checkpoint_dir)[-1:] if self.checkpoint_dir is not None else []
            if newest:
                raise NonFiniteError(f"{e} Newest checkpoint: {newest[0]}.") from None
            raise
        finally:
            if interrupted is not None:
                interrupted.restore()
        for cb in self.callbacks:
            cb.on_train_end()
        return self.state.history


def fit(model, x, y, batch_size=32, epochs=1, verbose=1, callbacks=None, validation_split=0.0,
        validation_data=None, shuffle=True, seed=None, initial_epoch=0, checkpoint_dir=None,
        checkpoint_every=None, keep_checkpoints=3, resume=False, stream=None) -> History:
    """Train ``model`` for ``epochs`` epochs; returns a :class:`History` (also at ``model.history``).

    See :meth:`minicnn.Sequential.fit` for the arguments."""
    model.require_compiled("fit")
    batch_size = int_arg(batch_size, "batch_size", 1)
    epochs = int_arg(epochs, "epochs", 0)
    initial_epoch = int_arg(initial_epoch, "initial_epoch", 0)
    backups = [cb for cb in callbacks or [] if isinstance(cb, BackupAndRestore)]
    if backups:
        if len(backups) > 1 or checkpoint_dir is not None:
            raise ValueError("BackupAndRestore sets fit's checkpoint directory: pass one BackupAndRestore "
                             "or checkpoint_dir, not both")
        checkpoint_dir, resume = backups[0].backup_dir, True
        checkpoint_every = backups[0].save_freq
    if checkpoint_dir is None and (resume or checkpoint_every is not None):
        raise ValueError("resume and checkpoint_every need checkpoint_dir")
    if checkpoint_every is not None:
        checkpoint_every = int_arg(checkpoint_every, "checkpoint_every", 1)
    if checkpoint_dir is not None:
        keep_checkpoints = int_arg(keep_checkpoints, "keep_checkpoints", 1)
    x, y, val = split_validation(model, x, y, validation_split, validation_data)
    if seed is not None:
        model.reseed_training(seed)
    run = FitRun(model, x, y, val, batch_size, epochs, shuffle, callbacks, verbose, stream,
                 checkpoint_dir, checkpoint_every, keep_checkpoints)
    run.quiet_resume = bool(backups)
    try:
        run.start(initial_epoch, resume)
        history = run.run()
        if backups and backups[0].delete_checkpoint:
            # Keras's BackupAndRestore deletes its backup when training ends; the directory goes
            # too if nothing else is in it but our own lock file (removed while still held)
            for path in ckpt.list_checkpoints(checkpoint_dir):
                os.remove(path)
            if os.path.isdir(checkpoint_dir) and set(os.listdir(checkpoint_dir)) <= {LOCK_NAME}:
                shutil.rmtree(checkpoint_dir)
    finally:
        if run.saver is not None:  # releases the checkpoint directory's lock
            run.saver.close()
    return history
