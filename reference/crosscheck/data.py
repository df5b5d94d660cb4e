"""Real MNIST test images for the crosscheck."""

from __future__ import annotations

import numpy as np

from minicnn import datasets


def load_mnist_batch(n, sample="first", seed=0, data_dir=None, dtype="float32"):
    """``n`` real MNIST test images (NHWC in [0, 1]) and one-hot labels, plus a description:
    the first ``n`` (``sample='first'``) or ``n`` drawn without replacement with ``seed``
    (``sample='random'``, kept in file order)."""
    (_, _), (xte, yte) = datasets.load_mnist(data_dir)
    if n > len(xte):
        raise ValueError(f"only {len(xte)} MNIST test images; asked for {n}")
    if sample == "first":
        idx = np.arange(n)
        where = f"MNIST test images [0:{n}]"
    else:
        idx = np.sort(np.random.default_rng(seed).choice(len(xte), n, replace=False))
        where = f"{n} MNIST test images sampled with seed {seed}"
    x = datasets.to_float_nhwc(xte[idx], dtype)
    y = datasets.one_hot(yte[idx], 10, dtype)
    return x, y, where
