"""The Keras callbacks minicnn has: ModelCheckpoint, CSVLogger, ReduceLROnPlateau,
LearningRateScheduler, TerminateOnNaN, BackupAndRestore, LambdaCallback (no TensorFlow)."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from minicnn import Sequential, callbacks
from minicnn.layers import Dense, Flatten

pytest.importorskip("h5py")


def model(lr=0.01, seed=0):
    m = Sequential([Flatten(), Dense(3, activation="softmax")], input_shape=(4, 4, 1), seed=seed)
    m.compile(optimizer={"name": "sgd", "learning_rate": lr}, metrics=["accuracy"])
    return m


def data(n=32):
    rng = np.random.default_rng(0)
    x = rng.random((n, 4, 4, 1), dtype=np.float32)
    return x, np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]


def test_model_checkpoint_formats_and_best_only(tmp_path):
    x, y = data()
    m = model()
    out = io.StringIO()
    m.fit(x, y, epochs=3, verbose=0, validation_data=(x, y), callbacks=[
        callbacks.ModelCheckpoint(str(tmp_path / "e{epoch:02d}-{val_loss:.2f}.keras")),
        callbacks.ModelCheckpoint(str(tmp_path / "best.weights.h5"), save_best_only=True,
                                  save_weights_only=True, verbose=1, stream=out)])
    assert len(list(tmp_path.glob("e0*.keras"))) == 3
    assert (tmp_path / "best.weights.h5").exists()
    assert "Epoch 1: val_loss improved from inf to" in out.getvalue()


def test_csv_logger_writes_keras_s_columns(tmp_path):
    x, y = data()
    m = model()
    path = tmp_path / "log.csv"
    m.fit(x, y, epochs=2, verbose=0, validation_split=0.25, callbacks=[callbacks.CSVLogger(str(path))])
    rows = list(csv.reader(path.read_text().splitlines()))
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [r[0] for r in rows[1:]] == ["0", "1"]
    m.fit(x, y, epochs=1, verbose=0, validation_split=0.25, callbacks=[callbacks.CSVLogger(str(path), append=True)])
    assert len(list(csv.reader(path.read_text().splitlines()))) == 4


def test_reduce_lr_on_plateau_and_learning_rate_in_history():
    x, y = data()
    m = model(lr=1e-9)  # nothing improves by min_delta
    out = io.StringIO()
    h = m.fit(x, y, epochs=4, verbose=0, callbacks=[
        callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=1.0, verbose=1, stream=out)])
    assert h.history["learning_rate"][0] == pytest.approx(1e-9)
    assert h.history["learning_rate"][-1] < 1e-9
    assert "ReduceLROnPlateau reducing learning rate to" in out.getvalue()


def test_learning_rate_scheduler_both_signatures():
    x, y = data()
    m = model()
    h = m.fit(x, y, epochs=3, verbose=0, callbacks=[callbacks.LearningRateScheduler(lambda e: 0.1 / (e + 1))])
    assert h.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.1 / 3])
    h = m.fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.LearningRateScheduler(lambda e, lr: lr * 0.5)])
    assert h.history["learning_rate"] == pytest.approx([0.1 / 6, 0.1 / 12])
    with pytest.raises(ValueError, match="positive float"):
        m.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.LearningRateScheduler(lambda e: "x")])


def test_terminate_on_nan_stops_quietly_with_finite_weights():
    x, y = data()
    m = model()
    x_bad = x.copy()
    m.build()
    m.layers[1].params["kernel"][0, 0] = np.nan  # the loss is NaN in the first step
    out = io.StringIO()
    h = m.fit(x_bad, y, epochs=2, verbose=1, stream=out, callbacks=[callbacks.TerminateOnNaN()])
    assert "Batch 0: Invalid loss, terminating training" in out.getvalue()
    assert h.epoch == [] and m.stop_training


def test_backup_and_restore_resumes_and_cleans_up(tmp_path):
    x, y = data()
    ref = model(seed=1)
    ref.fit(x, y, epochs=3, verbose=0, seed=5)
    backup = tmp_path / "backup"
    m = model(seed=1)

    class Stop(callbacks.Callback):
        def on_epoch_end(self, epoch, logs):
            if epoch == 1:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        m.fit(x, y, epochs=3, verbose=0, seed=5, callbacks=[Stop(), callbacks.BackupAndRestore(str(backup))])
    assert list(backup.iterdir())
    m2 = model(seed=1)
    m2.fit(x, y, epochs=3, verbose=0, seed=5, callbacks=[callbacks.BackupAndRestore(str(backup))])
    assert not backup.exists()
    for a, b in zip(m2.get_weights(), ref.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_lambda_callback_keras_signatures():
    x, y = data()
    seen = []
    cb = callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: seen.append(("eb", e)),
                                  on_train_batch_end=lambda b, logs: seen.append(("be", b)),
                                  on_train_end=lambda logs: seen.append(("te",)))
    model().fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[cb])
    assert seen == [("eb", 0), ("be", 0), ("be", 1), ("te",)]
