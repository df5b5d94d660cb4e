"""Training subprocess for tests/training/test_resume.py (killed, interrupted and resumed by the tests).

``python tests/training/_train_worker.py api --out W.npz --checkpoint-dir D [--checkpoint-every N]
[--resume] [--epochs E] [--step-sleep S]`` trains a small model (Conv2D, MaxPool2D, Dropout,
Dense) on seeded synthetic data with ``Sequential.fit`` and saves the final model to ``--out``.
TrainingInterrupted is reported on stderr with exit status 130, as the CLI does.

``python tests/training/_train_worker.py cli ARGS...`` runs ``minicnn.cli.main(ARGS)``; the tests pass
``--data-dir`` with small IDX files they wrote, read by the real ``minicnn.datasets`` loader.
``MINICNN_TEST_STEP_SLEEP`` (seconds) slows every training step down so that a test can reliably
signal the process mid-epoch.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def _slow_steps():
    delay = float(os.environ.get("MINICNN_TEST_STEP_SLEEP", "0") or 0)
    if delay <= 0:
        return
    from minicnn.training import loop  # the step the fit loop calls
    original = loop.train_on_batch

    def train_on_batch(*args, **kwargs):
        time.sleep(delay)
        return original(*args, **kwargs)

    loop.train_on_batch = train_on_batch


def small_model(seed=0):
    from minicnn.layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D
    from minicnn import Sequential
    model = Sequential([Conv2D(4, 3, activation="relu"), MaxPool2D(2), Dropout(0.25), Flatten(),
                        Dense(16, activation="relu"), Dropout(0.5), Dense(10, activation="softmax")],
                       input_shape=(12, 12, 1), seed=seed)
    model.compile("adam", "categorical_crossentropy", ["accuracy"])
    return model


def synthetic_data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = rng.random((n, 12, 12, 1), dtype=np.float32) * 0.3
    for i, c in enumerate(y):  # learnable: class c lights up row c
        x[i, 1 + c, 2:10, 0] += 0.7
    return x, np.eye(10, dtype=np.float32)[y]


def run_api(argv) -> int:
    from minicnn import TrainingInterrupted
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--checkpoint-dir", required=True)
    p.add_argument("--checkpoint-every", type=int, default=None)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--resume", action="store_true")
    args = p.parse_args(argv)
    x, y = synthetic_data()
    model = small_model()
    try:
        model.fit(x, y, batch_size=10, epochs=args.epochs, verbose=0, seed=0, validation_split=0.2,
                  checkpoint_dir=args.checkpoint_dir, checkpoint_every=args.checkpoint_every,
                  resume=args.resume)
    except TrainingInterrupted as e:
        print(f"worker: {e}", file=sys.stderr)
        return 130
    model.save(args.out)
    return 0


# ----------------------------------------------------------------------------- CLI mode
def run_cli(argv) -> int:
    from minicnn.cli import main
    return main(argv)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    _slow_steps()
    mode, rest = sys.argv[1], sys.argv[2:]
    sys.exit(run_api(rest) if mode == "api" else run_cli(rest))
