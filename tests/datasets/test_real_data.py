"""The real files, when present: MNIST via $MINICNN_DATA_DIR, Debian's Fashion-MNIST package."""

import hashlib
import os

import numpy as np
import pytest

from minicnn import datasets
from minicnn.datasets import idx
from tests.datasets.datahelpers import STEMS, idx_bytes


@pytest.mark.mnist
@pytest.mark.skipif(not os.environ.get("MINICNN_DATA_DIR"),
                    reason="set MINICNN_DATA_DIR to the MNIST files")
def test_real_mnist(monkeypatch):
    monkeypatch.setenv("MINICNN_OFFLINE", "1")
    (xtr, ytr), (xte, yte) = datasets.load_mnist()
    assert xtr.shape == (60000, 28, 28) and xte.shape == (10000, 28, 28)
    assert ytr.shape == (60000,) and yte.shape == (10000,)
    assert xtr.dtype == ytr.dtype == xte.dtype == yte.dtype == np.uint8
    assert np.bincount(ytr)[1] == 6742 and np.bincount(yte, minlength=10).sum() == 10000
    # the arrays are byte for byte the official files (independently of the loader's own check)
    for stem, arr in zip(STEMS, (xtr, ytr, xte, yte)):
        assert hashlib.sha256(idx_bytes(arr)).hexdigest() == idx._SHA256["mnist"][stem]
    sums = os.path.join(os.environ["MINICNN_DATA_DIR"], "SHA256SUMS-uncompressed")
    if os.path.isfile(sums):
        with open(sums) as f:
            listed = dict(line.split()[::-1] for line in f if line.strip())
        assert listed == idx._SHA256["mnist"]


FASHION = "/usr/share/datasets/fashion-mnist"


@pytest.mark.skipif(not os.path.isdir(FASHION), reason="Debian's dataset-fashion-mnist not installed")
def test_debian_fashion_mnist():
    (xtr, ytr), (xte, yte) = datasets.load_fashion_mnist(FASHION)
    assert xtr.shape == (60000, 28, 28) and xte.shape == (10000, 28, 28)
    assert ytr.shape == (60000,) and yte.shape == (10000,)
    assert np.all(np.bincount(ytr) == 6000) and np.all(np.bincount(yte) == 1000)
