"""Shared fixtures: backend parametrisation and a seeded RNG (helpers live in tests/helpers.py)."""

from __future__ import annotations

import importlib
import signal

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



@pytest.fixture
def interactive_sigint():
    """SIGINT as an interactive Python has it (``default_int_handler``), whatever the suite was
    started with: under ``nohup`` or as a background job SIGINT is ignored, and fit leaves an
    ignored signal ignored (tested separately)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
