"""Train a minicnn preset with Keras on whatever devices TensorFlow sees.

    python -m reference.train --preset seed --epochs 10 [--strategy default|mirrored|multiworker]
        [--batch-size 100] [--out DIR] [--data-dir DIR] [--limit N] [--logical-devices N]
        [--backup-dir DIR [--backup-every STEPS]]

The model is minicnn's preset converted with :func:`reference.convert.to_keras` (so it starts
from minicnn's seeded initial weights), trained with Adam (Keras defaults) on categorical
cross-entropy, and saved as ``DIR/<preset>.keras``, ``DIR/<preset>.h5`` (legacy) and
``DIR/<preset>.weights.h5``, plus ``DIR/<preset>.test_probabilities.npy`` (the trained model's
float32 predictions on the MNIST test set) and ``DIR/<preset>.history.json``. minicnn loads all
three model files without TensorFlow (``minicnn evaluate DIR/seed.keras``).

Devices and strategies:

* TF32 is turned off (``enable_tensor_float_32_execution(False)``), so GPU matmuls/convs stay
  float32-accurate; when TensorFlow sees a GPU, training runs there (TensorFlow's default
  placement) with op determinism on (``enable_op_determinism()``, after which the seeds set by
  ``keras.utils.set_random_seed`` make runs repeatable); the first log line and
  ``history.json`` (``device``) name the device, "device: CPU (no GPU visible)" otherwise;
* ``--strategy default`` picks MultiWorkerMirroredStrategy when ``TF_CONFIG`` is set,
  MirroredStrategy when more than one device (GPU, or logical CPU) is visible, and the default
  strategy otherwise; ``mirrored`` / ``multiworker`` force one;
* ``--logical-devices N`` splits the first physical CPU (or GPU) into N logical devices, for
  testing the mirrored path on one machine.

Under MultiWorkerMirroredStrategy only the chief (worker 0) writes to ``--out``; the other
workers save into a temporary directory that is removed (Keras requires every worker to save).
Multi-worker runs train with ``tf_keras`` (Keras 2, the ``tf`` extra), because Keras 3's
``fit()`` fails under MultiWorkerMirroredStrategy with more than one worker (it reduces
per-replica values it cannot convert: keras-team/keras#20585, tensorflow/tensorflow#72388;
TensorFlow's multi-worker tutorial uses tf_keras too). Single-process runs use Keras 3. Both
write the same three files, which minicnn reads. TF's coordination service (the workers'
heartbeats) gets a timeout of :data:`HEARTBEAT_TIMEOUT_S` instead of TF's 10 s: on a loaded 2-core
machine a worker busy predicting missed its own heartbeat and the run failed after training.

Fault tolerance: ``--backup-dir DIR`` adds Keras's ``BackupAndRestore`` (a backup after every
epoch, or every ``--backup-every`` steps; deleted when training finishes). Restarting a killed run
(every worker, under MultiWorkerMirroredStrategy) with the same command line resumes from the last
backup. Under MultiWorkerMirroredStrategy all workers are given the same DIR: the chief writes
the backup there, the others into temporary directories (tf_keras's convention).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from minicnn.presets import PRESETS  # noqa: E402

STRATEGIES = ("default", "mirrored", "multiworker")


def choose_strategy(requested: str, n_devices: int, tf_config: str | None) -> str:
    """'multiworker', 'mirrored' or 'single' for the requested strategy and what is visible."""
    if requested not in STRATEGIES:
        raise ValueError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {requested!r}")
    if requested == "multiworker":
        return "multiworker"
    if requested == "mirrored":
        return "mirrored"
    if tf_config and tf_config.strip():
        return "multiworker"
    return "mirrored" if n_devices > 1 else "single"


def task_info(tf_config: str | None) -> tuple[str, int]:
    """(task type, index) from TF_CONFIG; ('worker', 0) when unset."""
    if not tf_config:
        return "worker", 0
    try:
        cfg = json.loads(tf_config)
        task = cfg.get("task", {})
        return str(task.get("type", "worker")), int(task.get("index", 0))
    except (ValueError, TypeError, AttributeError) as e:
        raise ValueError(f"TF_CONFIG is not valid JSON with a task: {e}") from None


def is_chief(tf_config: str | None) -> bool:
    kind, index = task_info(tf_config)
    return kind == "chief" or (kind == "worker" and index == 0 and not _has_chief(tf_config))


def _cluster(tf_config) -> dict | None:
    """TF_CONFIG's cluster dict, or None when there is none or it is not valid JSON."""
    try:
        cluster = json.loads(tf_config).get("cluster")
    except (ValueError, TypeError, AttributeError):
        return None
    return cluster if isinstance(cluster, dict) and cluster else None


def _has_chief(tf_config):
    return bool((_cluster(tf_config) or {}).get("chief"))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m reference.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=PRESETS, default="seed")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=100, help="global batch size (split across replicas)")
    p.add_argument("--strategy", choices=STRATEGIES, default="default")
    p.add_argument("--out", default="models/keras", help="output directory (default models/keras)")
    p.add_argument("--data-dir", default=None, help="MNIST directory (default: $MINICNN_DATA_DIR, caches)")
    p.add_argument("--limit", type=int, default=None, help="train on the first N training images only")
    p.add_argument("--logical-devices", type=int, default=None,
                   help="split the first physical device into N logical devices")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=2)
    p.add_argument("--backup-dir", default=None,
                   help="back up the training state with Keras's BackupAndRestore; rerun the same "
                        "command to resume")
    p.add_argument("--backup-every", type=int, default=None,
                   help="with --backup-dir: back up every N steps (default: every epoch)")
    return p


def _configure_devices(tf, logical: int | None, select_device) -> dict:
    """TF32 off, op determinism on a GPU, and the logical device split; touches only
    configuration (no runtime start: MultiWorkerMirroredStrategy must be created before the
    runtime initialises). Returns :func:`reference.crosscheck.environment.select_device`'s
    dict of the device in use ('kind' 'GPU' or 'CPU', 'text' the log line)."""
    tf.config.experimental.enable_tensor_float_32_execution(False)
    gpus = tf.config.list_physical_devices("GPU")
    device = select_device(gpus)
    if device["determinism"]:
        tf.config.experimental.enable_op_determinism()
    if logical and logical > 1:
        target = gpus[0] if gpus else tf.config.list_physical_devices("CPU")[0]
        extra = {"memory_limit": 1024} if gpus else {}
        tf.config.set_logical_device_configuration(
            target, [tf.config.LogicalDeviceConfiguration(**extra) for _ in range(logical)])
    return device


#: the coordination service's heartbeat timeout under MultiWorkerMirroredStrategy, in seconds.
#: TF's default (10 s) failed a CI run: two workers beside the test suite's other process on a
#: 2-core Zen 1 EPYC, the chief's predict of the test set starved its own heartbeat
#: ("Task /job:worker/replica:0/task:0 heartbeat timeout") after training had finished. A worker
#: that really dies is still noticed, later (the resume test stops the survivor itself).
HEARTBEAT_TIMEOUT_S = 300


def _configure_coordination(tf, cluster: dict, heartbeat_s: float = HEARTBEAT_TIMEOUT_S) -> bool:
    """Configure TF's coordination service as MultiWorkerMirroredStrategy would (the chief and
    worker jobs of ``cluster``, TF_CONFIG's, led by the chief or worker 0), with a heartbeat timeout
    of ``heartbeat_s``; call before creating the strategy, which keeps a service already configured.
    TF has no public API for the timeout (``tensorflow.python.eager.context``): if that moved, TF's
    default stays and this returns False (with a warning)."""
    try:
        from tensorflow.python.distribute import multi_worker_util
        from tensorflow.python.eager import context
        from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    except ImportError as e:  # a TensorFlow whose internals moved
        print(f"reference.train: warning: TF's coordination service keeps its default heartbeat timeout ({e})",
              file=sys.stderr)
        return False
    spec = tf.train.ClusterSpec(cluster)
    jobs = [coordination_config_pb2.CoordinatedJob(name=job, num_tasks=spec.num_tasks(job))
            for job in ("chief", "worker") if job in spec.jobs]
    context.context().configure_coordination_service(
        service_type="standalone", service_leader=multi_worker_util.coordination_leader(spec),
        heartbeat_timeout_in_ms=int(heartbeat_s * 1000), coordinated_jobs=jobs)
    return True


def _StepCounter(keras):
    """A callback counting the training steps this process ran: after a resume from a mid-epoch
    backup it is less than the run's total, which is how the tests see that the run resumed."""

    class StepCounter(keras.callbacks.Callback):
        count = 0

        def on_train_batch_end(self, batch, logs=None):
            self.count += 1

    return StepCounter()


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.epochs < 0 or args.batch_size < 1 or (args.limit is not None and args.limit < 1):
        raise SystemExit("--epochs must be >= 0, --batch-size >= 1 and --limit >= 1")
    if args.backup_every is not None and (args.backup_every < 1 or not args.backup_dir):
        raise SystemExit("--backup-every needs --backup-dir and must be >= 1")

    import keras
    import tensorflow as tf

    from minicnn import datasets
    from minicnn.presets import build_preset
    from reference.convert import to_keras, to_tf_keras
    from reference.crosscheck.environment import select_device

    tf_config = os.environ.get("TF_CONFIG")
    device = _configure_devices(tf, args.logical_devices, select_device)
    device_kind = device["kind"]
    if choose_strategy(args.strategy, 0, tf_config) == "multiworker":
        kind = "multiworker"
        cluster = _cluster(tf_config)
        if cluster:  # (else the strategy reports what is wrong with TF_CONFIG)
            _configure_coordination(tf, cluster)
        strategy = tf.distribute.MultiWorkerMirroredStrategy()  # before anything starts the runtime
        devices = [d.name for d in tf.config.list_logical_devices(device_kind)]
    else:
        devices = [d.name for d in tf.config.list_logical_devices(device_kind)]
        kind = choose_strategy(args.strategy, len(devices), tf_config)
        if kind == "mirrored":
            strategy = tf.distribute.MirroredStrategy(devices=devices)
        else:
            strategy = tf.distribute.get_strategy()
    if kind == "multiworker":
        import tf_keras as keras  # noqa: F811 - see the module docstring
        keras.backend.set_floatx(args.dtype)
        convert = to_tf_keras
    else:
        keras.config.set_floatx(args.dtype)
        convert = to_keras
    keras.utils.set_random_seed(args.seed)

    (xtr, ytr), (xte, yte) = datasets.load_mnist(args.data_dir)
    if args.limit:
        xtr, ytr = xtr[:args.limit], ytr[:args.limit]
    xtr, xte = datasets.to_float_nhwc(xtr, args.dtype), datasets.to_float_nhwc(xte, args.dtype)
    ytr_1h, yte_1h = datasets.one_hot(ytr, 10, args.dtype), datasets.one_hot(yte, 10, args.dtype)

    print(f"reference.train: '{args.preset}' on {len(xtr)} MNIST images, {args.epochs} epochs, batch "
          f"{args.batch_size}, {args.dtype}; strategy {type(strategy).__name__} with "
          f"{strategy.num_replicas_in_sync} replica(s) on {', '.join(devices)}; TF32 off; "
          f"TensorFlow {tf.__version__}, Keras {keras.__version__}; {device['text']}", flush=True)
    with strategy.scope():
        model = convert(build_preset(args.preset, dtype=args.dtype, seed=args.seed))
        model.compile(optimizer=keras.optimizers.Adam(), loss=keras.losses.CategoricalCrossentropy(),
                      metrics=["accuracy"], jit_compile=False)
    steps = _StepCounter(keras)
    callbacks = [steps]
    if args.backup_dir:
        callbacks.append(keras.callbacks.BackupAndRestore(backup_dir=args.backup_dir,
                                                          save_freq=args.backup_every or "epoch"))
    t0 = time.perf_counter()
    history = model.fit(xtr, ytr_1h, batch_size=args.batch_size, epochs=args.epochs, shuffle=True,
                        verbose=args.verbose, callbacks=callbacks)
    wall = time.perf_counter() - t0
    loss, acc = model.evaluate(xte, yte_1h, batch_size=1000, verbose=0)
    probs = model.predict(xte, batch_size=1000, verbose=0).astype(np.float32)

    chief = kind != "multiworker" or is_chief(tf_config)
    out = args.out if chief else tempfile.mkdtemp(prefix="reference-train-worker-")
    os.makedirs(out, exist_ok=True)
    stem = os.path.join(out, args.preset)
    model.save(stem + ".keras")
    model.save(stem + ".h5")
    model.save_weights(stem + ".weights.h5")
    np.save(stem + ".test_probabilities.npy", probs)
    record = {"history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
              "test_loss": float(loss), "test_accuracy": float(acc), "train_seconds": wall,
              "strategy": type(strategy).__name__, "replicas": int(strategy.num_replicas_in_sync),
              "devices": devices, "device": device["text"], "preset": args.preset, "images": int(len(xtr)), "epochs": args.epochs,
              "epochs_run": len(history.history.get("loss", [])), "steps_run": steps.count,
              "steps_total": args.epochs * -(-len(xtr) // args.batch_size), "batch_size": args.batch_size,
              "dtype": args.dtype, "tensorflow": tf.__version__, "keras": keras.__version__,
              "keras_package": keras.__name__}
    with open(stem + ".history.json", "w") as f:
        json.dump(record, f, indent=1)
    if not chief:
        import shutil
        shutil.rmtree(out, ignore_errors=True)
    print(f"test loss {loss:.4f} - test accuracy {acc:.4f} - training took {wall:.1f} s")
    if chief:
        print(f"saved {stem}.keras, {stem}.h5, {stem}.weights.h5, {stem}.test_probabilities.npy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
