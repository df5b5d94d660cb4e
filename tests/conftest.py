"""Shared fixtures: backend parametrisation and a seeded RNG (helpers live in tests/helpers.py)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import minicnn.kernels as kernels


def _numba_available():
    try:
        importlib.import_module("minicnn.kernels.numba_backend")
        return True
    except ImportError:
        return False


BACKEND_PARAMS = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(
    not _numba_available(), reason="numba backend not importable"))]


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request):
    """Run the test once per kernel backend, restoring the previous one afterwards."""
    previous = kernels._current
    kernels.use_backend(request.param)
    yield request.param
    kernels._current = previous


@pytest.fixture
def rng():
    return np.random.default_rng(1234)

