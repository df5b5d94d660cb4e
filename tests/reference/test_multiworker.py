"""python -m reference.train under MultiWorkerMirroredStrategy with two worker processes on
127.0.0.1: synchronised training, files minicnn loads with Keras's predictions, and a worker
killed mid-epoch whose restart resumes from Keras's BackupAndRestore backup."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = [pytest.mark.tf, pytest.mark.mnist, pytest.mark.slow]


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def start_workers(tmp_path, tag: str, *args) -> list[subprocess.Popen]:
    """Two reference.train processes forming one cluster on loopback (fresh ports per call)."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf_keras")
    from tests.helpers import mnist_dir

    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = {**os.environ, "MINICNN_DATA_DIR": mnist_dir(), "TF_CPP_MIN_LOG_LEVEL": "2",
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        log = open(tmp_path / f"{tag}-worker{index}.log", "w")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "reference.train", "--out", str(tmp_path / "out"), "--verbose", "2",
             *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
        log.close()
    return procs


def wait_all(procs, tmp_path, tag, timeout=900) -> list[str]:
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    logs = [(tmp_path / f"{tag}-worker{i}.log").read_text() for i in range(len(procs))]
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-4000:]
    return logs


def final_line(log: str) -> str:
    """'test loss L - test accuracy A' (without the worker's own wall time)."""
    line = [line for line in log.splitlines() if line.startswith("test loss")][-1]
    return line.split(" - training took")[0]


def check_files_load_with_keras_predictions(out, preset: str) -> None:
    """minicnn reads the chief's three files to the same weights and reproduces the Keras model's
    float32 test-set probabilities (different summation orders: a few float32 ulps of values <= 1)."""
    from minicnn import build_preset, datasets
    from minicnn.io import keras as keras_files
    from tests.helpers import mnist_dir

    models = [keras_files.load(out / f"{preset}.keras"), keras_files.load(out / f"{preset}.h5"),
              keras_files.load(out / f"{preset}.weights.h5", architecture=build_preset(preset))]
    for other in models[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(models[0].get_weights(), other.get_weights()))
    (_, _), (xte, _) = datasets.load_mnist(mnist_dir())
    probs = np.load(out / f"{preset}.test_probabilities.npy")
    p = models[0].predict(datasets.to_float_nhwc(xte[:2000]), batch_size=500)
    np.testing.assert_allclose(p, probs[:2000], rtol=0, atol=1e-5)
    assert (p.argmax(1) == probs[:2000].argmax(1)).all()


def test_two_workers_train_the_seed_model_in_step(tmp_path):
    """One epoch of the seed preset on 400 images, global batch 50 split over two workers."""
    procs = start_workers(tmp_path, "run", "--preset", "seed", "--epochs", "1", "--limit", "400",
                          "--batch-size", "50")
    logs = wait_all(procs, tmp_path, "run")
    # the replicas are synchronised: both workers end with the same model, hence the same figures
    assert final_line(logs[0]) == final_line(logs[1])
    record = json.loads((tmp_path / "out" / "seed.history.json").read_text())
    assert record["replicas"] == 2, logs[0][-2000:]
    assert record["strategy"] in ("MultiWorkerMirroredStrategy", "CollectiveAllReduceStrategy")
    assert record["keras_package"] == "tf_keras" and record["steps_run"] == record["steps_total"] == 8
    check_files_load_with_keras_predictions(tmp_path / "out", "seed")


def test_killed_worker_resumes_from_backup(tmp_path):
    """SIGKILL one worker after the first mid-epoch backup, stop the other (its peer is gone),
    restart both with the same command: they resume from the backup (fewer steps than the whole
    run) and finish, and the files load into minicnn."""
    args = ("--preset", "pooled", "--epochs", "2", "--limit", "1200", "--batch-size", "50",
            "--backup-dir", str(tmp_path / "backup"), "--backup-every", "3")
    procs = start_workers(tmp_path, "first", *args)
    deadline = time.monotonic() + 600
    try:
        while not any(f.startswith("checkpoint") or f.endswith(".index")
                      for _, _, files in os.walk(tmp_path / "backup") for f in files):
            assert all(p.poll() is None for p in procs), "a worker ended before the first backup"
            assert time.monotonic() < deadline, "no backup written within 600 s"
            time.sleep(0.05)
        time.sleep(0.5)  # let the backup's files be complete
        procs[1].send_signal(signal.SIGKILL)
        procs[1].wait()
        try:  # the surviving worker fails or blocks on its dead peer; the restart replaces it
            procs[0].wait(timeout=10)
        except subprocess.TimeoutExpired:
            procs[0].kill()
            procs[0].wait()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert procs[1].returncode == -signal.SIGKILL
    assert not (tmp_path / "out" / "pooled.history.json").exists(), "the first run finished before the kill"

    logs = wait_all(start_workers(tmp_path, "second", *args), tmp_path, "second")
    assert final_line(logs[0]) == final_line(logs[1])
    record = json.loads((tmp_path / "out" / "pooled.history.json").read_text())
    assert record["steps_total"] == 48
    assert 0 < record["steps_run"] < record["steps_total"], record  # resumed, not restarted
    assert record["test_accuracy"] > 0.5
    check_files_load_with_keras_predictions(tmp_path / "out", "pooled")
