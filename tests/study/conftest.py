"""Fixtures for the study tools: the numpy backend (no JIT warm-up), a digit-like input, a
seeded untrained seed model and a way to hide matplotlib."""

from __future__ import annotations

import builtins

import pytest

import minicnn
import minicnn.kernels as kernels

from tests.study.studyhelpers import digit_seven


@pytest.fixture(autouse=True)
def numpy_backend():
    previous = kernels._current
    kernels.use_backend("numpy")
    yield
    kernels._current = previous


@pytest.fixture
def seven():
    return digit_seven()


@pytest.fixture(scope="session")
def seed_model():
    return minicnn.build_preset("seed", seed=0)


@pytest.fixture
def no_matplotlib(monkeypatch):
    """Make every ``import matplotlib...`` fail, as on a machine without it."""
    real_import = builtins.__import__

    def fake_import(name, globals=None, locals=None, fromlist=(), level=0):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named {name!r} (simulated)")
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", fake_import)
