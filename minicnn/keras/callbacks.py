"""``keras.callbacks``: minicnn's callbacks under Keras's names, and a ``Callback`` base class
with Keras 3's hook names (``on_train_batch_begin/end(batch, logs)``, ``batch`` 0-based)."""

from __future__ import annotations

from .. import callbacks as _cb
from ..callbacks import (
    BackupAndRestore,
    CSVLogger,
    EarlyStopping,
    History,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TensorBoard,
    TerminateOnNaN,
)
from .unsupported import missing_names


class Callback(_cb.Callback):
    """Subclass and override Keras's hooks: ``on_train_begin(logs)``, ``on_epoch_begin(epoch, logs)``,
    ``on_epoch_end(epoch, logs)``, ``on_train_batch_begin(batch, logs)``,
    ``on_train_batch_end(batch, logs)``, ``on_train_end(logs)``. ``self.model`` is the model."""

    def on_epoch_begin(self, epoch, logs=None): ...

    def on_batch_begin(self, step, logs=None):
        self.on_train_batch_begin(step - 1, {})

    def on_batch_end(self, step, logs=None):
        self.on_train_batch_end(step - 1, logs)

    def on_train_batch_begin(self, batch, logs=None): ...
    def on_train_batch_end(self, batch, logs=None): ...


__all__ = ["Callback", "History", "EarlyStopping", "ModelCheckpoint", "CSVLogger", "ReduceLROnPlateau",
           "LearningRateScheduler", "TerminateOnNaN", "BackupAndRestore", "LambdaCallback", "TensorBoard"]
__getattr__ = missing_names(__name__, __all__, {"RemoteMonitor": "no network calls from training",
                                                "ProgbarLogger": "fit(verbose=...) draws the progress bar"})
