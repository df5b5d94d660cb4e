"""python -m reference.train: Keras training (distributed on two logical CPUs), files minicnn loads."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from reference.train import choose_strategy, is_chief, task_info

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_strategy_choice():
    assert choose_strategy("default", 1, None) == "single"
    assert choose_strategy("default", 2, None) == "mirrored"
    assert choose_strategy("default", 1, '{"cluster": {}}') == "multiworker"
    assert choose_strategy("mirrored", 1, None) == "mirrored"
    assert choose_strategy("multiworker", 4, None) == "multiworker"
    with pytest.raises(ValueError):
        choose_strategy("tpu", 1, None)
    cfg = '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}'
    assert task_info(cfg) == ("worker", 1) and not is_chief(cfg)
    assert is_chief(cfg.replace('"index": 1', '"index": 0')) and is_chief(None)
    assert not is_chief('{"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}')


def run_train(out, *args, env_extra=None):
    from tests.helpers import mnist_dir
    pytest.importorskip("tensorflow")
    env = {**os.environ, "MINICNN_DATA_DIR": mnist_dir(), "TF_CPP_MIN_LOG_LEVEL": "2", **(env_extra or {})}
    r = subprocess.run([sys.executable, "-m", "reference.train", "--out", str(out), "--verbose", "0", *args],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


@pytest.mark.tf
@pytest.mark.mnist
@pytest.mark.slow
def test_mirrored_training_and_minicnn_loads_every_format(tmp_path):
    """1 epoch on 6000 images under MirroredStrategy (2 logical CPUs); minicnn reproduces Keras's
    predictions on the whole MNIST test set from each of the three files."""
    from minicnn import build_preset, datasets
    from minicnn.io import keras as keras_files
    from minicnn.cli import main
    from tests.helpers import mnist_dir

    r = run_train(tmp_path, "--preset", "seed", "--epochs", "1", "--limit", "6000", "--logical-devices", "2")
    record = json.loads((tmp_path / "seed.history.json").read_text())
    assert record["strategy"] == "MirroredStrategy" and record["replicas"] == 2, r.stdout
    assert record["test_accuracy"] > 0.85
    probs = np.load(tmp_path / "seed.test_probabilities.npy")
    models = [keras_files.load(tmp_path / "seed.keras"), keras_files.load(tmp_path / "seed.h5"),
              keras_files.load(tmp_path / "seed.weights.h5", architecture=build_preset("seed"))]
    for other in models[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(models[0].get_weights(), other.get_weights()))
    (_, _), (xte, yte) = datasets.load_mnist(mnist_dir())
    p = models[0].predict(datasets.to_float_nhwc(xte), batch_size=500)
    assert (p.argmax(1) == probs.argmax(1)).mean() >= 0.999
    np.testing.assert_allclose(p, probs, rtol=0, atol=1e-5)
    acc = float((p.argmax(1) == yte).mean())
    assert abs(acc - record["test_accuracy"]) < 1e-3
    assert main(["evaluate", str(tmp_path / "seed.keras"), "--data-dir", mnist_dir()]) == 0


@pytest.mark.tf
@pytest.mark.mnist
@pytest.mark.slow
def test_multiworker_single_worker(tmp_path):
    """MultiWorkerMirroredStrategy from TF_CONFIG (one worker on loopback), a tiny run."""
    from minicnn.io import keras as keras_files

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tf_config = json.dumps({"cluster": {"worker": [f"127.0.0.1:{port}"]}, "task": {"type": "worker", "index": 0}})
    r = run_train(tmp_path, "--preset", "pooled", "--epochs", "1", "--limit", "300",
                  env_extra={"TF_CONFIG": tf_config})
    record = json.loads((tmp_path / "pooled.history.json").read_text())
    assert record["strategy"] in ("MultiWorkerMirroredStrategy", "CollectiveAllReduceStrategy")
    import tensorflow as tf  # the device line: the GPU when TensorFlow sees one (TF32 off, determinism on)
    gpu = bool(tf.config.list_physical_devices("GPU"))
    expected = "device: GPU " if gpu else "device: CPU (no GPU visible)"
    assert record["device"].startswith(expected) and expected in r.stdout.splitlines()[0], r.stdout
    assert keras_files.load(tmp_path / "pooled.keras").name == "pooled"


@pytest.mark.tf
def test_multiworker_coordination_gets_the_longer_heartbeat_timeout():
    """The coordination service is configured before the strategy, as the strategy would (jobs,
    leader), with HEARTBEAT_TIMEOUT_S instead of TF's 10 s; in a fresh process (the configuration
    is process-wide), before anything starts TF's runtime."""
    pytest.importorskip("tensorflow")
    code = (
        "import json, sys, tensorflow as tf\n"
        "from tensorflow.python.eager import context\n"
        "from reference.train import _configure_coordination, _cluster, HEARTBEAT_TIMEOUT_S\n"
        "cfg = json.dumps({'cluster': {'worker': ['127.0.0.1:1', '127.0.0.1:2']}, 'task': {'type': 'worker', 'index': 1}})\n"
        "assert _cluster('not json') is None and _cluster('{\"task\": {}}') is None\n"
        "assert _configure_coordination(tf, _cluster(cfg))\n"
        "c = context.context().coordination_service\n"
        "print(json.dumps({'ms': c.heartbeat_timeout_in_ms, 'leader': c.service_leader, 'type': c.service_type,\n"
        "                  'jobs': [(j.name, j.num_tasks) for j in c.coordinated_job_list], 'want': HEARTBEAT_TIMEOUT_S}))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["ms"] == got["want"] * 1000 > 10_000
    assert got["leader"] == "/job:worker/replica:0/task:0" and got["type"] == "standalone"
    assert got["jobs"] == [["worker", 2]]
