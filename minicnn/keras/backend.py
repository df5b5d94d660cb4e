"""``keras.backend``: the few session functions Keras code calls; minicnn has no graph or session."""

from __future__ import annotations

from .unsupported import missing_names


def clear_session(free_memory=True) -> None:
    """Nothing to clear (minicnn names layers per model, not per session)."""


def backend() -> str:
    return "minicnn"


def floatx() -> str:
    return "float32"


def image_data_format() -> str:
    return "channels_last"


__all__ = ["clear_session", "backend", "floatx", "image_data_format"]
__getattr__ = missing_names(__name__, __all__)
