"""Checkpoints written by ``fit``: contents, atomicity, rotation, exact resumption, signals,
damaged-checkpoint fallback, refusal of another run's checkpoints, and the non-finite guard."""

from __future__ import annotations

import io
import os
import signal
import stat
from pathlib import Path

import numpy as np
import pytest

from minicnn.io import checkpoint as ckpt
from minicnn import optimizers
from minicnn.callbacks import Callback
from minicnn.errors import ModelFileError, NonFiniteError
from minicnn.fileio import atomic_write
from minicnn import TrainingInterrupted

from tests.training._train_worker import small_model, synthetic_data

X, Y = synthetic_data()  # 120 samples; 96 train after the 0.2 split -> 10 steps of 10 an epoch
STEPS = 10


def fit(model, directory=None, **kw):
    args = dict(batch_size=10, epochs=3, verbose=0, seed=0, validation_split=0.2)
    args.update(kw)
    return model.fit(X, Y, checkpoint_dir=directory, **args)


class Crash(Exception):
    pass


class AtIteration(Callback):
    """Run ``action(model)`` once, after the step that brings the optimizer to ``iteration``."""

    def __init__(self, iteration, action):
        self.iteration, self.action, self.done = iteration, action, False

    def on_batch_end(self, step, logs):
        if not self.done and self.model.optimizer.iterations == self.iteration:
            self.done = True
            self.action(self.model)


def crash(model):
    raise Crash


def names(directory):
    return [os.path.basename(p) for p in ckpt.list_checkpoints(directory)]


def snapshot(model):
    return {"weights": [w.copy() for w in model.get_weights()],
            "opt": {k: np.array(v) for k, v in model.optimizer.get_state().items()},
            "rng": model.train_rng.bit_generator.state, "history": model.history.history}


def assert_same_training_state(a, b):
    assert len(a["weights"]) == len(b["weights"])
    for wa, wb in zip(a["weights"], b["weights"]):
        assert wa.dtype == wb.dtype and np.array_equal(wa.view(np.uint8), wb.view(np.uint8))
    assert a["opt"].keys() == b["opt"].keys()
    for k in a["opt"]:
        assert a["opt"][k].tobytes() == b["opt"][k].tobytes() and a["opt"][k].dtype == b["opt"][k].dtype, k
    assert a["rng"] == b["rng"]
    assert a["history"] == b["history"]


@pytest.fixture
def reference(backend):
    model = small_model()
    fit(model, checkpoint_every=None)
    return snapshot(model)


# ----------------------------------------------------------------------------- what is written
def test_checkpoints_every_epoch_and_every_n_steps_keeping_the_last_k(tmp_path):
    model = small_model()
    fit(model, tmp_path / "all", checkpoint_every=4, keep_checkpoints=100)
    assert names(tmp_path / "all") == [f"ckpt-{i:09d}.npz" for i in (4, 8, 10, 14, 18, 20, 24, 28, 30)]

    model = small_model()
    fit(model, tmp_path / "two", checkpoint_every=4, keep_checkpoints=2)
    assert names(tmp_path / "two") == ["ckpt-000000028.npz", "ckpt-000000030.npz"]
    assert not [n for n in os.listdir(tmp_path / "two") if n.startswith(".tmp")]

    arrays, meta = ckpt.read_checkpoint(tmp_path / "two" / "ckpt-000000030.npz")
    for key, p, _ in model.named_parameters():
        assert np.array_equal(arrays[f"weights/{key}"], p)
    for key, v in model.optimizer.get_state().items():
        assert np.array_equal(arrays[f"optimizer/{key}"], v)
    assert meta["epoch"] == 3 and meta["step"] == 0 and "perm" not in arrays
    assert meta["rng"] == model.train_rng.bit_generator.state
    assert meta["history"]["history"] == model.history.history and meta["history"]["epoch"] == [0, 1, 2]
    assert meta["fit"] == {"batch_size": 10, "num_samples": 96, "shuffle": True}
    assert len(meta["sha256"]) == 64

    arrays, meta = ckpt.read_checkpoint(tmp_path / "two" / "ckpt-000000028.npz")
    assert meta["epoch"] == 2 and meta["step"] == 8
    assert sorted(arrays["perm"]) == list(range(96))
    assert meta["sums"]["count"] == 80


def test_model_from_checkpoint_rebuilds_the_compiled_model(tmp_path):
    model = small_model()
    fit(model, tmp_path, epochs=1)
    rebuilt, state = ckpt.model_from_checkpoint(ckpt.list_checkpoints(tmp_path)[-1])
    assert rebuilt.get_config() == model.get_config()
    assert all(np.array_equal(a, b) for a, b in zip(rebuilt.get_weights(), model.get_weights()))
    assert rebuilt.optimizer.iterations == model.optimizer.iterations == STEPS
    assert state.epoch == 1 and state.step == 0


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "f.bin"
    atomic_write(target, b"old")

    def half_then_fail(f):
        f.write(b"new, but only half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"]


def test_atomic_write_gives_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "f.bin", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "f.bin").st_mode) == 0o644


def test_stale_temporary_files_of_a_killed_writer_are_removed(tmp_path):
    (tmp_path / ".tmp-k2j3h4-ckpt-000000005.npz").write_bytes(b"half a checkpoint")
    (tmp_path / ".tmp-k2j3h4-notes.txt").write_bytes(b"not ours")
    ckpt.CheckpointWriter(tmp_path).close()
    assert sorted(os.listdir(tmp_path)) == [".minicnn.lock", ".tmp-k2j3h4-notes.txt"]


def test_checkpoint_listing_is_numeric_and_survives_glob_characters(tmp_path):
    d = tmp_path / "run[1]*"
    d.mkdir()
    for name in ("ckpt-1000000000.npz", "ckpt-999999999.npz", "ckpt-000000007.npz", "ckpt-7.npz",
                 "ckpt-000000008.npz.damaged", "xckpt-000000009.npz"):
        (d / name).write_bytes(b"")
    assert names(d) == ["ckpt-000000007.npz", "ckpt-999999999.npz", "ckpt-1000000000.npz"]
    assert ckpt.list_checkpoints(tmp_path / "missing") == []


# ----------------------------------------------------------------------------- exact resumption
def test_crash_mid_epoch_then_resume_is_bitwise_identical(tmp_path, reference, backend):
    with pytest.raises(Crash):
        fit(small_model(), tmp_path, checkpoint_every=4, callbacks=[AtIteration(17, crash)])
    assert names(tmp_path)[-1] == "ckpt-000000014.npz"  # epoch 2, step 4
    model = small_model()
    out = io.StringIO()
    fit(model, tmp_path, checkpoint_every=4, resume=True, verbose=2, stream=out)
    assert f"Resuming from {tmp_path / 'ckpt-000000014.npz'}: epoch 2/3, step 4/10." in out.getvalue()
    assert_same_training_state(reference, snapshot(model))


def test_resume_from_an_end_of_epoch_checkpoint_is_bitwise_identical(tmp_path, reference, backend):
    with pytest.raises(Crash):
        fit(small_model(), tmp_path, callbacks=[AtIteration(25, crash)])
    assert names(tmp_path)[-1] == "ckpt-000000020.npz"
    model = small_model()
    fit(model, tmp_path, resume=True)
    assert_same_training_state(reference, snapshot(model))


def test_resume_of_a_finished_run_changes_nothing(tmp_path, reference):
    fit(small_model(), tmp_path)
    model = small_model()
    fit(model, tmp_path, resume=True)
    assert_same_training_state(reference, snapshot(model))


def test_resume_without_checkpoints_starts_from_scratch(tmp_path, reference):
    model = small_model()
    out = io.StringIO()
    fit(model, tmp_path / "new", resume=True, verbose=2, stream=out)
    assert f"No checkpoint in {tmp_path / 'new'}; starting from scratch." in out.getvalue()
    assert_same_training_state(reference, snapshot(model))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_writes_a_checkpoint_says_how_to_resume_and_resume_is_exact(tmp_path, reference, signum,
                                                                          interactive_sigint):
    before = signal.getsignal(signum)
    with pytest.raises(TrainingInterrupted) as exc:
        fit(small_model(), tmp_path, callbacks=[AtIteration(13, lambda m: os.kill(os.getpid(), signum))])
    msg = str(exc.value)
    name = signal.Signals(signum).name
    assert f"{name} received: training stopped in epoch 2/3 after step 3/10" in msg
    assert str(tmp_path / "ckpt-000000013.npz") in msg and "--resume" in msg and "resume=True" in msg
    assert signal.getsignal(signum) is before  # handlers restored
    assert names(tmp_path) == ["ckpt-000000010.npz", "ckpt-000000013.npz"]
    model = small_model()
    fit(model, tmp_path, resume=True)
    assert_same_training_state(reference, snapshot(model))


def test_signal_at_the_last_step_of_an_epoch_checkpoints_the_epoch_end(tmp_path, interactive_sigint):
    with pytest.raises(TrainingInterrupted, match=r"SIGINT received: training stopped after epoch 1/3"):
        fit(small_model(), tmp_path, callbacks=[AtIteration(10, lambda m: os.kill(os.getpid(), signal.SIGINT))])
    assert names(tmp_path) == ["ckpt-000000010.npz"]


def test_a_second_signal_stops_at_once_without_a_checkpoint(tmp_path, interactive_sigint):
    def twice(model):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted, match="second SIGINT received: stopped at once"):
        fit(small_model(), tmp_path, callbacks=[AtIteration(13, twice)])
    assert names(tmp_path) == ["ckpt-000000010.npz"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_without_a_checkpoint_dir_sigint_is_a_plain_keyboard_interrupt(interactive_sigint):
    with pytest.raises(KeyboardInterrupt) as exc:
        fit(small_model(), callbacks=[AtIteration(3, lambda m: os.kill(os.getpid(), signal.SIGINT))])
    assert not isinstance(exc.value, TrainingInterrupted)


def test_an_ignored_sigint_stays_ignored_and_sigterm_still_checkpoints(tmp_path):
    # a background job of a non-interactive shell (or nohup's caller) starts with SIGINT ignored
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        def both(model):
            os.kill(os.getpid(), signal.SIGINT)   # ignored: training goes on
            os.kill(os.getpid(), signal.SIGTERM)  # stops it at the next step boundary

        with pytest.raises(TrainingInterrupted, match="SIGTERM received: training stopped in epoch 2/3 after step 3/10"):
            fit(small_model(), tmp_path, callbacks=[AtIteration(13, both)])
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


# ----------------------------------------------------------------------------- damaged checkpoints
def _flip_middle(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x5A
    path.write_bytes(bytes(data))


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])


def _tamper_json(path):
    # rewrite the record with a different epoch but keep a well-formed archive (valid zip CRCs)
    import json
    import zipfile
    with zipfile.ZipFile(path) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    meta = json.loads(np.load(io.BytesIO(entries["config.json.npy"])).tobytes())
    meta["epoch"] = 0
    body = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    arr = np.frombuffer(body, dtype=np.uint8)
    buf = io.BytesIO()
    np.save(buf, arr)
    entries["config.json.npy"] = buf.getvalue()
    with zipfile.ZipFile(path, "w") as z:
        for n, b in entries.items():
            z.writestr(n, b)


@pytest.mark.parametrize("damage", [_flip_middle, _truncate, _tamper_json,
                                    lambda p: p.write_bytes(b""), lambda p: p.write_bytes(b"PK\x03\x04junk")],
                         ids=["flipped-byte", "truncated", "tampered-json", "empty", "garbage"])
def test_damaged_newest_checkpoint_falls_back_to_the_previous_with_a_warning(tmp_path, reference, damage):
    with pytest.raises(Crash):
        fit(small_model(), tmp_path, checkpoint_every=4, callbacks=[AtIteration(19, crash)])
    assert names(tmp_path) == ["ckpt-000000010.npz", "ckpt-000000014.npz", "ckpt-000000018.npz"]
    newest = tmp_path / "ckpt-000000018.npz"
    damage(newest)
    with pytest.raises(ModelFileError, match="ckpt-000000018.npz"):
        ckpt.read_checkpoint(newest)

    err, model = io.StringIO(), small_model()
    fit(model, tmp_path, checkpoint_every=4, resume=True, stream=err)
    text = err.getvalue()
    assert f"minicnn: warning: checkpoint {newest} is damaged and was skipped" in text
    assert f"resuming from the previous checkpoint, {tmp_path / 'ckpt-000000014.npz'}" in text
    assert (tmp_path / "ckpt-000000018.npz.damaged").exists()
    assert_same_training_state(reference, snapshot(model))  # replaying from step 14 is exact too


def test_when_every_checkpoint_is_damaged_resume_refuses(tmp_path):
    with pytest.raises(Crash):
        fit(small_model(), tmp_path, checkpoint_every=4, callbacks=[AtIteration(15, crash)])
    for p in ckpt.list_checkpoints(tmp_path):
        _truncate(Path(p))
    model = small_model()
    initial = [w.copy() for w in model.get_weights()]
    with pytest.raises(ModelFileError, match="no valid checkpoint .* all 3 are damaged"):
        fit(model, tmp_path, resume=True, stream=io.StringIO())
    assert all(np.array_equal(a, b) for a, b in zip(initial, model.get_weights()))
    assert names(tmp_path) == []
    fit(small_model(), tmp_path)  # starting over in the same directory is now allowed


# ----------------------------------------------------------------------------- another run's checkpoints
def test_a_fresh_run_refuses_a_directory_with_another_runs_checkpoints(tmp_path):
    fit(small_model(), tmp_path, epochs=1)
    model = small_model()
    initial = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match=r"already holds checkpoints of another run \(newest: "
                                         r"ckpt-000000010.npz\): pass resume=True"):
        fit(model, tmp_path)
    assert all(np.array_equal(a, b) for a, b in zip(initial, model.get_weights()))


def test_fitting_the_same_model_again_may_reuse_its_directory(tmp_path):
    model = small_model()
    fit(model, tmp_path, epochs=1)
    fit(model, tmp_path, epochs=1)
    assert names(tmp_path) == ["ckpt-000000010.npz", "ckpt-000000020.npz"]


def _other_architecture():
    from minicnn.layers import Conv2D, Dense, Flatten
    from minicnn import Sequential
    m = Sequential([Conv2D(2, 3, activation="relu"), Flatten(), Dense(10, activation="softmax")],
                   input_shape=(12, 12, 1), seed=0)
    m.compile("adam", "categorical_crossentropy", ["accuracy"])
    return m


def _sgd_model():
    m = small_model()
    m.compile(optimizers.SGD(0.01, momentum=0.9), "categorical_crossentropy", ["accuracy"])
    return m


@pytest.mark.parametrize("make, kwargs, message", [
    (_other_architecture, {}, "was written for a different model"),
    (small_model, {"batch_size": 12}, "batch size 10; this run has 12"),
    (small_model, {"validation_split": 0.25}, "training samples 96; this run has 90"),
    (small_model, {"shuffle": False}, "shuffle setting True; this run has False"),
    (_sgd_model, {}, "was written with optimizer"),
])
def test_resuming_with_a_different_model_or_data_is_an_error(tmp_path, make, kwargs, message):
    with pytest.raises(Crash):
        fit(small_model(), tmp_path, checkpoint_every=4, callbacks=[AtIteration(15, crash)])
    before = names(tmp_path)
    with pytest.raises(ValueError, match=message):
        fit(make(), tmp_path, resume=True, **kwargs)
    assert names(tmp_path) == before  # nothing renamed: the checkpoints are fine


def test_resuming_with_another_learning_rate_warns(tmp_path):
    with pytest.raises(Crash):
        fit(small_model(), tmp_path, callbacks=[AtIteration(15, crash)])
    model = small_model()
    model.compile(optimizers.Adam(0.0005), "categorical_crossentropy", ["accuracy"])
    err = io.StringIO()
    fit(model, tmp_path, resume=True, stream=err)
    assert "was written with optimizer settings" in err.getvalue() and "0.0005" in err.getvalue()
    assert model.optimizer.iterations == 30


def test_argument_validation():
    m = small_model()
    with pytest.raises(ValueError, match="need checkpoint_dir"):
        m.fit(X, Y, resume=True, verbose=0)
    with pytest.raises(ValueError, match="need checkpoint_dir"):
        m.fit(X, Y, checkpoint_every=3, verbose=0)
    for kw, what in [({"checkpoint_every": 0}, "checkpoint_every"), ({"keep_checkpoints": 0}, "keep_checkpoints"),
                     ({"batch_size": 0}, "batch_size"), ({"batch_size": 2.5}, "batch_size"),
                     ({"epochs": -1}, "epochs"), ({"batch_size": True}, "batch_size")]:
        with pytest.raises(ValueError, match=what):
            m.fit(X, Y, verbose=0, checkpoint_dir="unused", **kw)
    assert m.optimizer.iterations == 0 and not os.path.exists("unused")
    m.fit(X[:20], Y[:20], batch_size=np.int64(10), epochs=np.int32(1), verbose=0)  # numpy ints are fine


# ----------------------------------------------------------------------------- non-finite guard
def _assert_checkpoint_intact(path):
    arrays, meta = ckpt.read_checkpoint(path)  # checksum and structure verify
    assert all(np.isfinite(a).all() for k, a in arrays.items() if k.startswith("weights/"))
    model, _ = ckpt.model_from_checkpoint(path)
    assert all(np.array_equal(model.get_layer(k.split("/")[1]).params[k.split("/")[2]], a)
               for k, a in arrays.items() if k.startswith("weights/"))


def test_huge_learning_rate_stops_at_once_and_the_last_checkpoint_is_intact(tmp_path):
    model = small_model()
    model.compile(optimizers.SGD(1e30), "categorical_crossentropy", ["accuracy"])
    with pytest.raises(NonFiniteError) as exc:
        fit(model, tmp_path, checkpoint_every=1)
    msg = str(exc.value)
    assert msg.startswith("non-finite loss at epoch 1, step 2 (of 10); it first appears in the output "
                          "of layer 'dense'")
    assert "Try a lower learning rate" in msg
    assert f"Newest checkpoint: {tmp_path / 'ckpt-000000001.npz'}" in msg
    assert names(tmp_path) == ["ckpt-000000001.npz"] and model.optimizer.iterations == 1
    _assert_checkpoint_intact(tmp_path / "ckpt-000000001.npz")


@pytest.mark.parametrize("layer, weight", [("dense", "kernel"), ("conv2d", "bias"), ("dense_1", "bias")])
def test_inf_injected_into_a_weight_is_caught_at_the_next_step(tmp_path, layer, weight, backend):
    def inject(model):
        model.get_layer(layer).params[weight].flat[0] = np.inf

    model = small_model()
    with pytest.raises(NonFiniteError) as exc:
        fit(model, tmp_path, checkpoint_every=4, callbacks=[AtIteration(12, inject)])
    msg = str(exc.value)
    assert msg.startswith(f"non-finite loss at epoch 2, step 3 (of 10); it first appears in the weights of "
                          f"layer '{layer}' ({layer}/{weight})")
    assert f"Newest checkpoint: {tmp_path / 'ckpt-000000010.npz'}" in msg
    assert model.optimizer.iterations == 12
    _assert_checkpoint_intact(tmp_path / "ckpt-000000010.npz")


def test_nan_reaching_a_checkpoint_step_is_never_written(tmp_path):
    def inject(model):
        model.get_layer("dense").params["kernel"][1, 2] = np.nan

    with pytest.raises(NonFiniteError, match=r"non-finite weights in layer 'dense' \(dense/kernel\) after the "
                                             r"update at epoch 2, step 4 \(of 10\)"):
        fit(small_model(), tmp_path, checkpoint_every=4, callbacks=[AtIteration(14, inject)])
    assert names(tmp_path) == ["ckpt-000000004.npz", "ckpt-000000008.npz", "ckpt-000000010.npz"]
    _assert_checkpoint_intact(tmp_path / "ckpt-000000010.npz")


def test_non_finite_weights_at_the_end_of_training_are_reported():
    def inject(model):
        model.get_layer("dense_1").params["kernel"][0, 0] = -np.inf

    with pytest.raises(NonFiniteError, match="non-finite weights in layer 'dense_1'.*end of training"):
        fit(small_model(), callbacks=[AtIteration(30, inject)])


def test_guard_raises_before_the_update_and_without_numpy_warnings():
    # pytest turns warnings into errors: a RuntimeWarning from the overflow would fail this test
    model = small_model()
    model.compile(optimizers.Adam(1e30), "categorical_crossentropy", ["accuracy"])
    seen = {}
    with pytest.raises(NonFiniteError, match="at epoch 1, step 2"):
        fit(model, callbacks=[AtIteration(1, lambda m: seen.update(w=[w.copy() for w in m.get_weights()]))])
    assert model.optimizer.iterations == 1
    assert all(np.array_equal(a, b) for a, b in zip(seen["w"], model.get_weights()))
