"""``keras.utils``: to_categorical and set_random_seed."""

from __future__ import annotations

import random

import numpy as np

from .. import state
from ..unsupported import missing_names
from .np_utils import to_categorical


def set_random_seed(seed: int) -> None:
    """Seed Python's and NumPy's RNGs and make every Sequential created afterwards (without a
    ``seed=``) take this seed: runs repeat exactly."""
    random.seed(seed)
    np.random.seed(seed)
    state.default_seed = int(seed)


__all__ = ["to_categorical", "set_random_seed", "np_utils"]
__getattr__ = missing_names(__name__, __all__, {"plot_model": "print model.summary() instead"})
