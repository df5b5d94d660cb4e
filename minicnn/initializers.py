"""Weight initialisers with Keras's definitions (values come from minicnn's own seeded RNG)."""

from __future__ import annotations

import math

import numpy as np


def fans(shape) -> tuple[int, int]:
    """Keras's fan_in / fan_out: conv kernels (KH, KW, C, F) count the receptive field on both sides."""
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def glorot_uniform(shape, dtype, rng: np.random.Generator) -> np.ndarray:
    """U(-limit, limit) with limit = sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(shape)
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def he_uniform(shape, dtype, rng: np.random.Generator) -> np.ndarray:
    """U(-limit, limit) with limit = sqrt(6 / fan_in)."""
    limit = math.sqrt(6.0 / fans(shape)[0])
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def zeros(shape, dtype, rng=None) -> np.ndarray:
    return np.zeros(shape, dtype=dtype)


def ones(shape, dtype, rng=None) -> np.ndarray:
    """All ones (BatchNormalization's gamma and moving variance); draws nothing from ``rng``."""
    return np.ones(shape, dtype=dtype)


INITIALIZERS = {"glorot_uniform": glorot_uniform, "he_uniform": he_uniform, "zeros": zeros, "ones": ones}


def get(name: str):
    try:
        return INITIALIZERS[name]
    except KeyError:
        raise ValueError(f"unknown initializer {name!r}; choose one of {', '.join(INITIALIZERS)}") from None
