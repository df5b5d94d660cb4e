"""Training callbacks.

:mod:`.base`: the hooks, History, the Keras-style progress bar and EarlyStopping;
:mod:`.keras_style`: the rest of Keras's callbacks minicnn has (ModelCheckpoint, CSVLogger,
ReduceLROnPlateau, LearningRateScheduler, TerminateOnNaN, BackupAndRestore, LambdaCallback);
:mod:`.tensorboard`: TensorBoard event files with weight, gradient and activation histograms;
:mod:`.dynamics`: per-layer training dynamics (gradient norms, update ratios, dead ReLUs, ...).
Every callback's ``set_data(x, y)`` is given the training arrays when ``fit`` starts.

Hooks (all optional): ``on_train_begin(logs)``, ``on_epoch_begin(epoch)``,
``on_batch_end(step, logs)``, ``on_epoch_end(epoch, logs)``, ``on_train_end(logs)``. Epochs are
0-based in hooks and 1-based in printed messages, as in Keras; ``step`` counts the batches done
in the epoch (1-based). In ``on_epoch_end`` the user's callbacks run first, then History, then
the progress bar (Keras's order), so a callback may add to ``logs`` (``learning_rate``).
"""

from .base import Callback, EarlyStopping, History, ProgressBar, format_duration, format_logs
from .keras_style import (
    BackupAndRestore,
    CSVLogger,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TerminateOnNaN,
)
from .dynamics import TrainingDynamics
from .tensorboard import TensorBoard

__all__ = ["Callback", "History", "ProgressBar", "EarlyStopping", "format_logs", "format_duration",
           "ModelCheckpoint", "CSVLogger", "ReduceLROnPlateau", "LearningRateScheduler",
           "TerminateOnNaN", "BackupAndRestore", "LambdaCallback", "TensorBoard", "TrainingDynamics"]
