"""Kernel backends: twin modules with the same function names and signatures.

``numpy`` is the readable reference (im2col + BLAS); ``numba`` is the fast one and the default.
Pick one with :func:`use_backend`, the ``MINICNN_BACKEND`` environment variable or the CLI's
``--backend``. Layers look the backend up at call time through :func:`get_backend`.
"""

from __future__ import annotations

import importlib
import os

BACKENDS = ("numba", "numpy")
_DEFAULT = "numba"
_current = None


def _load(name: str):
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return importlib.import_module(f"minicnn.kernels.{name}_backend")


def get_backend():
    """The active backend module (chosen from ``MINICNN_BACKEND`` on first use)."""
    global _current
    if _current is None:
        name = os.environ.get("MINICNN_BACKEND", "").strip().lower() or _DEFAULT
        if name not in BACKENDS:
            raise ValueError(f"MINICNN_BACKEND={name!r} is not a backend; choose one of {', '.join(BACKENDS)}")
        _current = _load(name)
    return _current


def use_backend(name: str):
    """Switch backend for everything computed from now on; returns the backend module."""
    global _current
    _current = _load(str(name).lower())
    return _current


def backend_name() -> str:
    return get_backend().NAME
