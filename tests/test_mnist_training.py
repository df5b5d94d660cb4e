"""The seed model on the real MNIST: one epoch must reach >= 97.5% test accuracy (slow; CI runs it)."""

from __future__ import annotations

import numpy as np
import pytest

import minicnn
from minicnn.presets import build_preset

from tests.helpers import mnist_dir


@pytest.mark.slow
@pytest.mark.mnist
def test_seed_one_epoch_reaches_97_5_percent(monkeypatch):
    from minicnn import datasets, kernels
    (xtr, ytr), (xte, yte) = datasets.load_mnist(mnist_dir())
    monkeypatch.setattr(kernels, "_current", kernels.get_backend())  # restored after the test
    minicnn.use_backend("numba")
    model = build_preset("seed", seed=0)
    model.compile("adam", "categorical_crossentropy", ["accuracy"])
    model.fit(datasets.to_float_nhwc(xtr), datasets.one_hot(ytr), batch_size=100, epochs=1, verbose=2, seed=0)
    loss, acc = model.evaluate(datasets.to_float_nhwc(xte), datasets.one_hot(yte), batch_size=1000)
    print(f"seed preset, 1 epoch: test accuracy {acc:.4f}, loss {loss:.4f}")
    assert acc >= 0.975
    assert np.isfinite(loss)
