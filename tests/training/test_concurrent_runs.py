"""Two runs on one checkpoint directory: the second is refused with a message naming the first's
pid (an advisory flock on ``.minicnn.lock``), and the lock of a run killed with SIGKILL is found
stale and taken over by the next run, which says so."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minicnn.errors import LockedError
from minicnn.io import checkpoint as ckpt
from minicnn.io.dirlock import LOCK_NAME, DirectoryLock

from tests.helpers import write_fake_mnist
from tests.training._train_worker import small_model, synthetic_data

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).resolve().with_name("_train_worker.py")


def _env(step_sleep=None):
    env = dict(os.environ, MINICNN_OFFLINE="1", MINICNN_BACKEND="numpy", PYTHONUNBUFFERED="1",
               PYTHONPATH=str(ROOT))
    env.pop("MINICNN_TEST_STEP_SLEEP", None)
    if step_sleep:
        env["MINICNN_TEST_STEP_SLEEP"] = str(step_sleep)
    return env


def _argv(data, d, out, *extra):
    return [sys.executable, str(WORKER), "cli", "train", "--preset", "lenet5", "--data-dir", str(data),
            "--limit", "40", "--batch-size", "20", "--backend", "numpy", "--verbose", "0",
            "--checkpoint-dir", str(d), "--out", str(out), *extra]


def test_a_second_writer_in_the_same_process_is_refused_naming_the_pid(tmp_path):
    first = ckpt.CheckpointWriter(tmp_path)
    try:
        with pytest.raises(LockedError, match=rf"in use by another run \(pid {os.getpid()}; lock file "):
            ckpt.CheckpointWriter(tmp_path)
    finally:
        first.close()
    ckpt.CheckpointWriter(tmp_path).close()  # released: free again
    assert (tmp_path / LOCK_NAME).read_text() == ""


def test_fit_releases_the_lock_also_when_it_fails(tmp_path):
    x, y = synthetic_data()
    model = small_model()
    model.fit(x, y, batch_size=20, epochs=1, verbose=0, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="already holds checkpoints of another run"):
        small_model().fit(x, y, batch_size=20, epochs=1, verbose=0, checkpoint_dir=tmp_path)
    DirectoryLock(tmp_path).release()  # neither run left it held


def test_a_stale_pid_is_reported_and_taken_over(tmp_path):
    (tmp_path / LOCK_NAME).write_text("999999999\n")  # a pid no process has: its run was killed
    out = io.StringIO()
    lock = DirectoryLock(tmp_path, stream=out)
    try:
        assert lock.stale_pid == 999999999
        assert "stale lock from pid 999999999" in out.getvalue() and "taken over" in out.getvalue()
        assert (tmp_path / LOCK_NAME).read_text() == f"{os.getpid()}\n"
    finally:
        lock.release()


def _wait_for(condition, proc, timeout=120.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the first run ended early (status {proc.returncode})")
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_two_cli_runs_on_one_directory_then_sigkill_and_a_stale_lock(tmp_path):
    data = write_fake_mnist(tmp_path / "data", n_train=40, n_test=20)
    d = tmp_path / "ck"
    first = subprocess.Popen(_argv(data, d, tmp_path / "a.npz", "--epochs", "50"), env=_env(step_sleep=0.2),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        lock = d / LOCK_NAME
        _wait_for(lambda: lock.exists() and lock.read_text().strip() == str(first.pid), first)
        second = subprocess.run(_argv(data, d, tmp_path / "b.npz", "--epochs", "1", "--resume"), env=_env(),
                                capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert second.returncode == 1
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in second.stderr, second.stderr
        assert lines[0].startswith(f"minicnn train: error: checkpoint directory {str(d)!r} is in use by another "
                                   f"run (pid {first.pid}; lock file {lock})"), lines[0]
        assert not (tmp_path / "b.npz").exists()
        _wait_for(lambda: ckpt.list_checkpoints(d), first)  # let it write a checkpoint, then kill it
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    assert lock.read_text().strip() == str(first.pid)  # what a killed run leaves
    third = subprocess.run(_argv(data, d, tmp_path / "c.npz", "--epochs", "1", "--resume"), env=_env(),
                           capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert third.returncode == 0, third.stderr
    assert f"minicnn: warning: stale lock from pid {first.pid} in {str(d)!r}" in third.stderr
    assert "taken over" in third.stderr
    assert lock.read_text() == ""  # released at the end
    assert (tmp_path / "c.npz").exists()
