"""Sequential: the user-facing model, a :class:`~minicnn.model.Network` that also trains
(:mod:`minicnn.training`) and saves itself (:mod:`minicnn.io`)."""

from __future__ import annotations

from . import io, training
from .model import Network


class Sequential(Network):
    """A linear stack of layers with Keras's API: ``compile``, ``fit``, ``evaluate``,
    ``predict``, ``summary``, ``save``.

    Parameters
    ----------
    layers : list of layers, or None (then use :meth:`add`).
    input_shape : per-sample input shape, e.g. (28, 28, 1); may also be given to the first layer,
        to :meth:`build`, or inferred on the first ``fit``/``predict``.
    dtype : 'float32' (default) or 'float64'; weights, activations and gradients all use it.
    seed : seeds weight initialisation and the training RNG (shuffling, dropout).
    """

    def train_on_batch(self, x, y):
        """One step: forward, loss, backward, non-finite check, update. Returns [loss, accuracy]."""
        return training.train_on_batch(self, x, y)

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
        a checkpoint and raise :class:`~minicnn.training.TrainingInterrupted` (a second signal
        stops at once). A NaN/inf loss or gradient raises :class:`~minicnn.errors.NonFiniteError`
        before the update; no checkpoint with non-finite weights is ever written. The checkpoint
        directory is locked for the run (another run on it raises
        :class:`~minicnn.errors.LockedError` naming its pid); a checkpoint that cannot be written
        (disk full, read-only, ...) stops training with :class:`~minicnn.errors.FileWriteError`,
        the previous checkpoint intact.
        """
        return training.fit(self, x, y, batch_size=batch_size, epochs=epochs, verbose=verbose,
                            callbacks=callbacks, validation_split=validation_split,
                            validation_data=validation_data, shuffle=shuffle, seed=seed,
                            initial_epoch=initial_epoch, checkpoint_dir=checkpoint_dir,
                            checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints,
                            resume=resume, stream=stream)

    def save(self, path) -> None:
        """Save architecture (JSON) and weights in one ``.npz`` (no pickle), or, for a path ending
        in ``.keras``, ``.h5`` or ``.weights.h5``, a Keras file that Keras 3 loads."""
        io.save_model(self, path)

    def save_weights(self, path) -> None:
        """Save the weights only: ``.weights.h5`` (Keras 3 layout) or another ``.h5`` (Keras 2's
        ``save_weights`` layout); Keras 3's ``load_weights`` reads both."""
        io.keras.save_weights(self, path)

    def load_weights(self, path) -> None:
        """Overwrite the weights from a Keras file (``.weights.h5``, Keras 2 ``.h5`` weights, a
        full-model ``.h5`` or ``.keras``) or a minicnn ``.npz`` model file."""
        if not self.built:
            self.build()
        if io.is_keras_path(path):
            io.keras.load_weights(self, path)
        else:
            self.set_weights(io.load_model(path).get_weights())


def load_model(path, architecture=None) -> Sequential:
    """Load a model saved by :meth:`Sequential.save`, or a Keras file (weights-only Keras files
    need ``architecture``, a built model whose weights are overwritten)."""
    return io.load_model(path, architecture=architecture, model_class=Sequential)


def model_from_checkpoint(path):
    """(model, state): a compiled Sequential with a checkpoint's weights and optimizer state."""
    return io.checkpoint.model_from_checkpoint(path, model_class=Sequential)
