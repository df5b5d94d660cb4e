"""The callback hooks, History, the Keras-style progress bar and EarlyStopping.

Hooks (all optional): ``on_train_begin(logs)``, ``on_epoch_begin(epoch)``,
``on_batch_begin(step)`` (``step``: 1-based number of the batch about to run),
``on_batch_end(step, logs)``, ``on_epoch_end(epoch, logs)``, ``on_train_end(logs)``. Epochs are
0-based in hooks and 1-based in printed messages, as in Keras.
"""

from __future__ import annotations

import sys
import time


class Callback:
    model = None

    def set_model(self, model):
        self.model = model

    def set_data(self, x, y):
        """The training arrays of the ``fit`` about to start (not copied: keep a slice, if anything)."""

    def on_train_begin(self, logs=None): ...
    def on_epoch_begin(self, epoch): ...
    def on_batch_begin(self, step): ...
    def on_batch_end(self, step, logs): ...
    def on_epoch_end(self, epoch, logs): ...
    def on_train_end(self, logs=None): ...


class History(Callback):
    """``history`` maps each metric ('loss', 'accuracy', 'val_loss', ...) to its per-epoch values."""

    def __init__(self):
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.params: dict = {}
        #: per-layer training dynamics, {quantity: {layer: [per epoch]}} (TrainingDynamics fills it)
        self.dynamics: dict[str, dict[str, list[float]]] = {}

    def on_epoch_end(self, epoch, logs):
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(float(v))

    def to_dict(self):
        d = {"epoch": list(self.epoch), "history": {k: list(v) for k, v in self.history.items()},
             "params": dict(self.params)}
        if self.dynamics:
            d["dynamics"] = {q: {k: list(v) for k, v in per.items()} for q, per in self.dynamics.items()}
        return d

    @classmethod
    def from_dict(cls, d):
        h = cls()
        h.epoch = list(d.get("epoch", []))
        h.history = {k: list(v) for k, v in d.get("history", {}).items()}
        h.params = dict(d.get("params", {}))
        h.dynamics = {q: {k: list(v) for k, v in per.items()} for q, per in d.get("dynamics", {}).items()}
        return h


def format_logs(logs: dict) -> str:
    """`` - accuracy: 0.9876 - loss: 0.0412`` with metrics sorted by name, as Keras 3 prints them."""
    return "".join(f" - {k}: {v:.4f}" for k, v in sorted(logs.items()))


def format_duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds >= 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{int(round(seconds))}s"


class ProgressBar(Callback):
    """Keras 3's per-epoch line: ``600/600 ━━━━━━━━━━━━━━━━━━━━ 29s 48ms/step - accuracy: ... - loss: ...``.

    On a terminal the line is redrawn in place (at most every 0.1 s) with the steps done, the
    ETA and the running metrics, in Jupyter at most every 0.5 s; elsewhere (logs, CI) only the
    finished line of each epoch is printed. ``verbose=2`` prints one short line per epoch.
    """

    width = 20

    def __init__(self, steps: int, epochs: int, verbose: int = 1, stream=None):
        self.steps, self.epochs, self.verbose = steps, epochs, verbose
        self.stream = stream if stream is not None else sys.stdout
        tty = getattr(self.stream, "isatty", lambda: False)()
        # a Jupyter kernel's stdout is no terminal but its front end redraws a line on "\r"
        jupyter = type(self.stream).__module__.startswith("ipykernel")
        self.live = verbose == 1 and (tty or jupyter)
        self.interval = 0.1 if tty else 0.5

    def _write(self, text, end="\n"):
        self.stream.write(text + end)
        self.stream.flush()

    def on_epoch_begin(self, epoch):
        self.t0 = self._last_draw = time.perf_counter()
        self._write(f"Epoch {epoch + 1}/{self.epochs}")

    def bar(self, step: int) -> str:
        done = self.width if step >= self.steps else int(self.width * step / max(self.steps, 1))
        return "━" * done + "─" * (self.width - done)

    def on_batch_end(self, step, logs):
        if not self.live:
            return
        now = time.perf_counter()
        if now - self._last_draw < self.interval and step < self.steps:
            return
        self._last_draw = now
        per_step = (now - self.t0) / step
        eta = per_step * (self.steps - step)
        width = len(str(self.steps))
        self._write(f"\r{step:>{width}}/{self.steps} {self.bar(step)} {format_duration(eta)} "
                    f"{per_step * 1000:.0f}ms/step{format_logs(logs)}", end="")

    def on_epoch_end(self, epoch, logs):
        elapsed = time.perf_counter() - self.t0
        per_step = elapsed / max(self.steps, 1)
        if self.verbose == 2:
            self._write(f"{self.steps}/{self.steps} - {format_duration(elapsed)} - "
                        f"{per_step * 1000:.0f}ms/step{format_logs(logs)}")
            return
        prefix = "\r" if self.live else ""
        self._write(f"{prefix}{self.steps}/{self.steps} {self.bar(self.steps)} {format_duration(elapsed)} "
                    f"{per_step * 1000:.0f}ms/step{format_logs(logs)}")


class EarlyStopping(Callback):
    """Stop when ``monitor`` has stopped improving (Keras 3 defaults and messages).

    With ``restore_best_weights=True`` the best epoch's weights are put back at the end of
    training, whether or not training stopped early (Keras 3 behaviour).
    """

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0, stream=None):
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor, self.patience, self.verbose = monitor, int(patience), verbose
        self.baseline, self.restore_best_weights = baseline, bool(restore_best_weights)
        self.start_from_epoch = int(start_from_epoch)
        if mode == "auto":
            mode = "max" if ("acc" in monitor or monitor.endswith("auc")) else "min"
        self.mode = mode
        self.min_delta = abs(min_delta) if mode == "max" else -abs(min_delta)
        self.stream = stream if stream is not None else sys.stdout

    def _better(self, current, reference):
        if reference is None:
            return True
        return current - self.min_delta > reference if self.mode == "max" else current - self.min_delta < reference

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch = 0, 0
        self.best = None
        self.best_weights, self.best_epoch = None, 0

    def on_epoch_end(self, epoch, logs):
        current = logs.get(self.monitor)
        if current is None:
            raise ValueError(f"EarlyStopping monitors '{self.monitor}', which is not among the logged "
                             f"metrics: {', '.join(sorted(logs))}")
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = [w.copy() for w in self.model.get_weights()]
            self.best_epoch = epoch
        self.wait += 1
        if self._better(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = [w.copy() for w in self.model.get_weights()]
            if self.baseline is None or self._better(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            self.stream.write(f"Epoch {self.stopped_epoch + 1}: early stopping\n")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                self.stream.write(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.\n")
            self.model.set_weights(self.best_weights)

