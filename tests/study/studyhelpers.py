"""Helpers shared by the study tests (imported as tests.study.studyhelpers)."""

from __future__ import annotations

import numpy as np


def digit_seven(size=28) -> np.ndarray:
    """A crude bright '7' on black, (size, size, 1) float32 in [0, 1]."""
    x = np.zeros((size, size), np.float32)
    x[6:9, 6:22] = 1.0
    for r in range(9, 23):
        c = 21 - (r - 9) // 2
        x[r, c - 1:c + 2] = 0.8
    return x[:, :, None]


def write_fake_mnist(path, n_train=20, n_test=40, seed=0):
    """A Keras-style mnist.npz with digit-like images (class k = a bar at row 2k) for CLI tests."""
    rng = np.random.default_rng(seed)

    def make(n):
        y = rng.integers(0, 10, n).astype(np.uint8)
        x = rng.integers(0, 30, (n, 28, 28)).astype(np.uint8)
        for i, k in enumerate(y):
            x[i, 2 + 2 * k:4 + 2 * k, 4:24] = 255
        return x, y

    xtr, ytr = make(n_train)
    xte, yte = make(n_test)
    np.savez(path, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    return str(path)
