"""The kernel warm-up thread (minicnn.training.warmup) and its use by ``minicnn train``: it
compiles through a copy (the model, its optimizer state and RNGs are untouched), its errors
surface in the caller's thread, and it does nothing where nothing compiles."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

import minicnn.kernels as kernels
from minicnn import layers as L
from minicnn.cli import train as train_cli
from minicnn.sequential import Sequential
from minicnn.training.warmup import Warmup, needs_warmup


def small_model(dtype="float32"):
    model = Sequential([L.Conv2D(4, 3, activation="relu"), L.Flatten(), L.Dropout(0.5),
                        L.Dense(3, activation="softmax")], input_shape=(6, 6, 1), dtype=dtype, seed=3)
    model.build()
    model.compile("adam", "categorical_crossentropy", ["accuracy"])
    return model


def state(model):
    return ([w.copy() for w in model.get_weights()], model.train_rng.bit_generator.state,
            model.optimizer.get_config() if hasattr(model.optimizer, "get_config") else None)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_warmup_leaves_the_model_untouched(backend, dtype):
    model = small_model(dtype)
    before = state(model)
    warm = Warmup(model, batch_size=5, predict_batch=7).start()
    seconds = warm.join()
    assert seconds is not None and seconds >= 0 and warm.error is None
    after = state(model)
    assert all(np.array_equal(a, b) for a, b in zip(before[0], after[0]))
    assert before[1] == after[1]  # the training RNG (dropout, shuffling) did not advance
    assert before[2] == after[2]
    # and the model still trains as one that was never warmed up
    other = small_model(dtype)
    x = np.random.default_rng(0).random((5, 6, 6, 1)).astype(dtype)
    y = np.eye(3, dtype=dtype)[[0, 1, 2, 0, 1]]
    assert model.train_on_batch(x, y) == other.train_on_batch(x, y)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), other.get_weights()))


def test_warmup_errors_surface_in_join():
    model = small_model()

    def broken(x, y):
        raise ZeroDivisionError("kernel exploded")

    model.train_on_batch = broken  # an instance attribute: the copy has it too
    warm = Warmup(model, batch_size=2).start()
    with pytest.raises(RuntimeError, match="warm-up failed") as info:
        warm.join()
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_warmup_needs_a_compiled_model_and_one_start():
    model = Sequential([L.Flatten(), L.Dense(2)], input_shape=(2, 2, 1), seed=0)
    model.build()
    with pytest.raises(ValueError, match="compiled"):
        Warmup(model, 2)
    warm = Warmup(small_model(), 2)
    with pytest.raises(RuntimeError, match="before start"):
        warm.join()
    warm.start()
    with pytest.raises(RuntimeError, match="twice"):
        warm.start()
    warm.join()


def test_needs_warmup_only_for_numba(backend):
    import numba

    assert needs_warmup() == (backend == "numba" and not numba.config.DISABLE_JIT)


def _args(**kw):
    base = dict(epochs=1, batch_size=4, dataset="mnist", data_dir=None, limit=8, dtype="float32",
                preset="seed", model=None, keep_weights=False, seed=0, optimizer="adam", lr=None,
                validation_split=0.0, verbose=0, checkpoint_dir=None, checkpoint_every=None,
                keep_checkpoints=3, resume=False, out=None, no_warmup=False)
    base.update(kw)
    return argparse.Namespace(**base)


class _Stop(Exception):
    pass


@pytest.mark.parametrize(("no_warmup", "validation_split"), [(False, 0.0), (True, 0.0), (False, 0.1)])
def test_train_starts_the_warmup_before_loading_the_data(monkeypatch, no_warmup, validation_split):
    """``minicnn train`` builds the model and starts the warm-up before reading the dataset
    (unless --no-warmup), and joins it before training."""
    events = []

    class FakeWarmup:
        def __init__(self, model, batch_size, predict_batch=0, eval_batches=()):
            events.append(("warmup", tuple(model.input_shape), batch_size, predict_batch, tuple(eval_batches)))
            self.seconds = 0.0

        def start(self):
            events.append("start")
            return self

        def join(self):
            events.append("join")
            return 0.0

    def fake_load(name, data_dir=None):
        events.append("load")
        raise _Stop

    monkeypatch.setattr(train_cli, "Warmup", FakeWarmup)
    monkeypatch.setattr(train_cli, "needs_warmup", lambda: True)
    monkeypatch.setattr(train_cli, "load_dataset", fake_load)
    with pytest.raises(_Stop):
        train_cli.run_train(_args(no_warmup=no_warmup, validation_split=validation_split))
    if no_warmup:
        assert events == ["load"]
    else:  # the validation batches of fit (max(batch, 256)) too when there is a validation split
        val = (256,) if validation_split else ()
        assert events == [("warmup", (28, 28, 1), 4, train_cli.EVAL_BATCH, val), "start", "load"]


def test_warmup_evaluates_whole_batches_of_each_evaluation_size():
    """The copy runs ``evaluate`` on one batch of each size, whole (``predict`` would cut it into
    128-sample chunks, which take other kernel paths than the 1,000-sample evaluation)."""
    model = small_model()
    calls = []

    def evaluate(x, y, batch_size=32, verbose=0):
        calls.append((x.shape, y.shape, batch_size))
        return [0.0, 0.0]

    model.evaluate = evaluate  # an instance attribute: the copy has it too
    Warmup(model, batch_size=5, predict_batch=300, eval_batches=(256, 300, 0)).start().join()
    assert calls == [((300, 6, 6, 1), (300, 3), 300), ((256, 6, 6, 1), (256, 3), 256)]


def test_train_cli_has_no_warmup_flag():
    parser = argparse.ArgumentParser()
    train_cli.register(parser.add_subparsers())
    args = parser.parse_args(["train", "--no-warmup"])
    assert args.no_warmup is True
    assert parser.parse_args(["train"]).no_warmup is False
