"""What the dataset readers share: display names and the checks every split must pass."""

from __future__ import annotations

import numpy as np

from ..errors import DatasetError

_TITLES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}


def _check_split(x: np.ndarray, y: np.ndarray, xwhere: str, ywhere: str,
                 image_shape: tuple[int, ...]) -> None:
    if x.shape[1:] != image_shape:
        raise DatasetError(f"{xwhere}: images are {'x'.join(map(str, x.shape[1:]))}, "
                           f"expected {'x'.join(map(str, image_shape))}")
    if len(x) != len(y):
        raise DatasetError(f"{xwhere} holds {len(x)} images but {ywhere} holds {len(y)} labels")
    if len(x) == 0:
        raise DatasetError(f"{xwhere}: holds no images")
    _check_labels(y, ywhere)


def _check_labels(y: np.ndarray, where: str) -> None:
    if y.size and y.max() > 9:
        i = int(np.argmax(y > 9))
        raise DatasetError(f"{where}: label {int(y[i])} at index {i} is outside 0..9")
