"""Text renderings for terminals without matplotlib: an image as numbers or ASCII shades,
probabilities as bars."""

from __future__ import annotations

import numpy as np

#: darkest to brightest; MNIST stores ink as bright values on a black (0) background
SHADES = " .:-=+*#%@"


def _gray(img) -> np.ndarray:
    a = np.asarray(img, dtype=np.float64)
    if a.ndim == 4:
        a = a[0]
    if a.ndim == 3:
        a = a.mean(axis=-1)
    if a.ndim != 2:
        raise ValueError(f"expected an image (H, W), (H, W, C) or (1, H, W, C), got shape {np.shape(img)}")
    return a


def _to_255(a: np.ndarray) -> np.ndarray:
    """Pixel values as integers 0..255 (inputs in [0, 1] are scaled; larger ones are kept)."""
    if a.size and a.max() <= 1.0:
        a = a * 255.0
    return np.clip(np.rint(a), 0, 255).astype(int)


def pixel_matrix(img) -> str:
    """The image as rows of pixel values 0..255, one text line per image row (28 for MNIST),
    the way a notebook prints ``x_train[0]``."""
    a = _to_255(_gray(img))
    return "\n".join(" ".join(f"{v:3d}" for v in row) for row in a)


def ascii_shades(img) -> str:
    """The image drawn with the characters of :data:`SHADES` (two per pixel, so it is not
    squashed: terminal cells are about twice as tall as wide)."""
    a = _gray(img)
    if a.size and a.max() > 1.0:
        a = a / 255.0
    idx = np.clip((a * len(SHADES)).astype(int), 0, len(SHADES) - 1)
    return "\n".join("".join(SHADES[i] * 2 for i in row) for row in idx)


def render_image(img, style="matrix") -> str:
    if style == "matrix":
        return pixel_matrix(img)
    if style == "ascii":
        return ascii_shades(img)
    raise ValueError(f"unknown text style {style!r}; choose 'matrix' or 'ascii'")


def probability_bars(probs, labels=None, width=40) -> str:
    """One line per class: label, probability and a bar of '#' proportional to it."""
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    labels = labels or [str(i) for i in range(p.size)]
    w = max(len(s) for s in labels)
    best = int(np.argmax(p))
    return "\n".join(f"{lab:>{w}}  {v:6.4f}  {'#' * int(round(v * width))}{'  <- top' if i == best else ''}"
                     for i, (lab, v) in enumerate(zip(labels, p)))
