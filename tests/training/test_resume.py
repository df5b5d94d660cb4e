"""Interrupt real training processes (SIGKILL, SIGTERM) and resume them: the final weights must be
bitwise those of an uninterrupted run (same backend, NUMBA_NUM_THREADS fixed).

Two entry points are exercised: ``Sequential.fit`` (tests/training/_train_worker.py api: a small model
with Dropout, validation split and mid-epoch checkpoints) and the ``minicnn train`` command
(tests/training/_train_worker.py cli: the seed preset on a tiny synthetic IDX dataset).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from minicnn.io import checkpoint as ckpt
from minicnn import load_model

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).resolve().with_name("_train_worker.py")
HAVE_NUMBA = importlib.util.find_spec("numba") is not None and (ROOT / "minicnn/kernels/numba_backend.py").exists()
BACKENDS = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(not HAVE_NUMBA, reason="no numba backend"))]


def _env(backend, step_sleep=None):
    env = dict(os.environ)
    env.update(MINICNN_BACKEND=backend, NUMBA_NUM_THREADS="2", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
    env.pop("MINICNN_TEST_STEP_SLEEP", None)
    if step_sleep:
        env["MINICNN_TEST_STEP_SLEEP"] = str(step_sleep)
    return env


def _cmd(args):
    return [sys.executable, str(WORKER), *map(str, args)]


def _run(args, env, cwd=None):
    proc = subprocess.run(_cmd(args), env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    return proc


def _iterations(path) -> int:
    return int(Path(path).name[len("ckpt-"):-len(".npz")])


def _wait_until(proc, condition, timeout=120.0):
    """Poll ``condition`` until true; False if the process ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if proc.poll() is not None:
            return condition()
        time.sleep(0.002)
    proc.kill()
    raise AssertionError("timed out waiting for the training process")


def _weights(path):
    return load_model(path).get_weights()


def _assert_bitwise_equal(a, b):
    assert len(a) == len(b)
    for wa, wb in zip(a, b):
        assert wa.dtype == wb.dtype and wa.shape == wb.shape
        assert np.array_equal(wa.view(np.uint8), wb.view(np.uint8))


# ----------------------------------------------------------------------------- fit (API worker)
@pytest.mark.parametrize("backend", BACKENDS)
def test_sigkill_mid_epoch_then_resume_is_bitwise_identical_fit(tmp_path, backend):
    env = _env(backend)
    ref = _run(["api", "--out", tmp_path / "ref.npz", "--checkpoint-dir", tmp_path / "ref_ckpt",
                "--checkpoint-every", 3], env)
    assert ref.returncode == 0, ref.stderr

    run_dir = tmp_path / "ckpt"
    proc = subprocess.Popen(_cmd(["api", "--out", tmp_path / "resumed.npz", "--checkpoint-dir", run_dir,
                                  "--checkpoint-every", 3]),
                            env=_env(backend, step_sleep=0.06), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    # 96 training samples, batch 10: 10 steps an epoch; mid-epoch checkpoints at steps 3, 6, 9
    reached = _wait_until(proc, lambda: any(_iterations(p) >= 13 for p in ckpt.list_checkpoints(run_dir)))
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert reached and proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "resumed.npz").exists()
    newest = ckpt.list_checkpoints(run_dir)[-1]
    _, meta = ckpt.read_checkpoint(newest)
    assert meta["epoch"] == 1 and meta["step"] > 0, "the newest checkpoint should be a mid-epoch one"

    resumed = _run(["api", "--out", tmp_path / "resumed.npz", "--checkpoint-dir", run_dir,
                    "--checkpoint-every", 3, "--resume"], env)
    assert resumed.returncode == 0, resumed.stderr
    _assert_bitwise_equal(_weights(tmp_path / "ref.npz"), _weights(tmp_path / "resumed.npz"))
    # the resumed run's final checkpoint records the same history as the uninterrupted one
    _, m_ref = ckpt.read_checkpoint(ckpt.list_checkpoints(tmp_path / "ref_ckpt")[-1])
    _, m_res = ckpt.read_checkpoint(ckpt.list_checkpoints(run_dir)[-1])
    assert m_ref["history"] == m_res["history"] and m_ref["epoch"] == m_res["epoch"] == 3


# ----------------------------------------------------------------------------- minicnn train
def _write_idx(path, array):
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = (0x0800 | array.ndim).to_bytes(4, "big")
    path.write_bytes(magic + b"".join(int(d).to_bytes(4, "big") for d in array.shape) + array.tobytes())


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("idx")
    rng = np.random.default_rng(1)
    for prefix, n in (("train", 60), ("t10k", 20)):
        y = rng.integers(0, 10, n).astype(np.uint8)
        x = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(y):
            x[i, 2 + 2 * c: 4 + 2 * c, 4:24] = 255
        _write_idx(d / f"{prefix}-images-idx3-ubyte", x)
        _write_idx(d / f"{prefix}-labels-idx1-ubyte", y)
    return d


def _train_args(idx_dir, out, checkpoint_dir, *extra):
    # 48 training images after the split, batch 8: 6 steps an epoch; a checkpoint after step 3
    # of each epoch and one at its end (iterations 3, 6, 9, 12)
    return ["cli", "train", "--data-dir", idx_dir, "--limit", 60, "--validation-split", 0.2,
            "--batch-size", 8, "--epochs", 2, "--seed", 3, "--verbose", 0, "--out", out,
            "--checkpoint-dir", checkpoint_dir, "--checkpoint-every", 3, *extra]


_CLI_REFERENCES = {}


@pytest.fixture
def cli_reference(idx_dir, tmp_path_factory):
    """The final weights of an uninterrupted ``minicnn train`` run, per backend (run once each)."""
    def get(backend):
        if backend not in _CLI_REFERENCES:
            d = tmp_path_factory.mktemp(f"cli_ref_{backend}")
            proc = _run(_train_args(idx_dir, d / "ref.npz", d / "ckpt"), _env(backend), cwd=d)
            assert proc.returncode == 0, proc.stderr
            _CLI_REFERENCES[backend] = _weights(d / "ref.npz")
        return _CLI_REFERENCES[backend]
    return get


@pytest.mark.parametrize("backend", BACKENDS)
def test_cli_sigkill_mid_epoch_then_resume_is_bitwise_identical(idx_dir, cli_reference, tmp_path, backend):
    run_dir = tmp_path / "ckpt"
    args = _train_args(idx_dir, tmp_path / "m.npz", run_dir)
    proc = subprocess.Popen(_cmd(args), env=_env(backend, step_sleep=0.1), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reached = _wait_until(proc, lambda: any(_iterations(p) >= 9 for p in ckpt.list_checkpoints(run_dir)))
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert reached and proc.returncode == -signal.SIGKILL
    _, meta = ckpt.read_checkpoint(ckpt.list_checkpoints(run_dir)[-1])
    assert meta["epoch"] == 1 and meta["step"] == 3

    proc = _run(args + ["--resume"], _env(backend), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    _assert_bitwise_equal(cli_reference(backend), _weights(tmp_path / "m.npz"))


def test_cli_sigterm_writes_checkpoint_exits_130_and_resume_finishes(idx_dir, cli_reference, tmp_path):
    run_dir = tmp_path / "ckpt"
    args = _train_args(idx_dir, tmp_path / "m.npz", run_dir)
    proc = subprocess.Popen(_cmd(args), env=_env("numpy", step_sleep=0.05), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert _wait_until(proc, lambda: len(ckpt.list_checkpoints(run_dir)) >= 1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    newest = ckpt.list_checkpoints(run_dir)[-1]
    assert "SIGTERM received" in err and "--resume" in err and newest in err
    assert "Traceback" not in err
    ckpt.read_checkpoint(newest)  # verifies

    proc = _run(args + ["--resume"], _env("numpy"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    _assert_bitwise_equal(cli_reference("numpy"), _weights(tmp_path / "m.npz"))


def test_cli_resume_skips_a_damaged_newest_checkpoint(idx_dir, cli_reference, tmp_path):
    run_dir = tmp_path / "ckpt"
    args = _train_args(idx_dir, tmp_path / "m.npz", run_dir)
    proc = subprocess.Popen(_cmd(args), env=_env("numpy", step_sleep=0.05), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert _wait_until(proc, lambda: len(ckpt.list_checkpoints(run_dir)) >= 2)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    *_, previous, newest = ckpt.list_checkpoints(run_dir)
    data = bytearray(Path(newest).read_bytes())
    data[len(data) // 2] ^= 0xFF
    Path(newest).write_bytes(bytes(data))

    proc = _run(args + ["--resume", "--verbose", 2], _env("numpy"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"warning: checkpoint {newest} is damaged" in proc.stderr
    assert f"resuming from the previous checkpoint, {previous}" in proc.stderr
    assert f"Resuming from {previous}" in proc.stdout
    assert Path(newest + ckpt.DAMAGED_SUFFIX).exists()
    _assert_bitwise_equal(cli_reference("numpy"), _weights(tmp_path / "m.npz"))
