"""Look inside a model: per-layer outputs and statistics for one input.

:func:`inspect_model` runs one input through the model and returns one :class:`LayerRecord` per
layer (its output and statistics). It needs only NumPy; :mod:`minicnn.study.figures` draws the
records.

Statistics per layer (on the output for this one input):

* ``minimum``, ``maximum``, ``mean``;
* ``zero_share``: the share of values that are exactly 0, reported for outputs that come from a
  ReLU (a layer with ``activation='relu'``, a ReLU layer, or a pooling/flatten/dropout layer
  whose input came from one); None elsewhere. A large share means many units are silent for
  this input.
* ``tie_share`` (max pooling only): the share of pooling windows in which more than one cell
  equals the window's maximum. Only the *first* of them (row-major order) receives the gradient
  in backward. After ReLU most ties are all-zero windows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..layers import Dropout, Flatten, MaxPool2D, ReLU

#: dots per inch of every figure: 100 keeps the PNGs small and the pixel size = inches * 100
DPI = 100

#: class names per dataset (index = class number)
CLASS_NAMES = {
    "mnist": [str(i) for i in range(10)],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                "truck"],
}

INSTALL_HINT = "pip install minicnn[viz]"


class MissingDependency(ImportError):
    """An optional package (matplotlib, Pillow) is needed for this and is not installed."""


def require_matplotlib():
    """Import matplotlib or raise :class:`MissingDependency` with the install command."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError as e:
        raise MissingDependency(f"figures need matplotlib, which is not installed ({e}); "
                                f"install it with: {INSTALL_HINT}") from None
    return matplotlib


def class_labels(num_classes: int, dataset: str | None = "mnist") -> list[str]:
    """The dataset's class names if it has ``num_classes`` classes, else '0', '1', ..."""
    names = CLASS_NAMES.get(dataset or "", [])
    return list(names) if len(names) == num_classes else [str(i) for i in range(num_classes)]


# ----------------------------------------------------------------------------- records
@dataclass
class LayerRecord:
    """What one layer produced for one input (no batch axis anywhere)."""

    index: int
    name: str
    kind: str                     # the layer's class name: Conv2D, MaxPool2D, Dense, ...
    layer: object = field(repr=False)
    output: np.ndarray = field(repr=False)
    output_shape: tuple
    minimum: float
    maximum: float
    mean: float
    zero_share: float | None      # share of exact zeros, for outputs that come from a ReLU
    tie_share: float | None       # max-pooling windows with more than one maximal cell
    activation: str | None = None

    @property
    def is_probabilities(self) -> bool:
        """True for a layer whose output is a softmax (class probabilities)."""
        return bool(getattr(self.layer, "ends_in_softmax", False))

    @property
    def is_spatial(self) -> bool:
        return self.output.ndim == 3


def pool_tie_share(x: np.ndarray, layer: MaxPool2D) -> float:
    """Share of ``layer``'s windows over one input ``x`` (H, W, C) whose maximum occurs more
    than once (see :meth:`minicnn.layers.MaxPool2D.tie_share`)."""
    return layer.tie_share(np.asarray(x)[None])


def _as_sample(model, x) -> np.ndarray:
    """One sample as a (1, H, W, C) array of the model dtype (accepts (H, W), (H, W, C), (1, H, W, C))."""
    x = np.asarray(x)
    if x.dtype == np.uint8:
        x = x / 255.0  # pixels 0..255 -> [0, 1], as minicnn.datasets.to_float_nhwc does
    shape = tuple(model.input_shape)
    if x.shape == shape:
        x = x[None]
    elif x.ndim == 2 and shape[-1] == 1 and x.shape == shape[:2]:
        x = x[None, :, :, None]
    elif x.shape != (1, *shape):
        raise ValueError(f"inspect needs one input of shape {shape} (or (1, {', '.join(map(str, shape))})), "
                         f"received {x.shape}")
    x = x.astype(model.dtype, copy=False)
    if not np.isfinite(x).all():
        raise ValueError("the input contains NaN or inf")
    return x


def inspect_model(model, x) -> list[LayerRecord]:
    """Run one input through ``model`` (inference mode) and describe every layer's output.

    Parameters
    ----------
    model : a built :class:`minicnn.Sequential`.
    x : one input: (H, W, C), (1, H, W, C) or, for one channel, (H, W); floats in [0, 1]
        (uint8 pixels 0..255 are divided by 255 first).

    Returns
    -------
    list of :class:`LayerRecord`, one per layer, in order.
    """
    if not model.built:
        model.build()
    x = _as_sample(model, x)
    _, outs = model.forward(x, training=False, record=True)
    records = []
    from_relu = False
    inp = x[0]
    for i, (layer, out) in enumerate(zip(model.layers, outs)):
        y = np.asarray(out[0])
        act = getattr(layer, "activation", None)
        if isinstance(layer, ReLU) or act == "relu":
            from_relu = True
        elif not isinstance(layer, (MaxPool2D, Flatten, Dropout)):
            from_relu = False
        tie = pool_tie_share(inp, layer) if isinstance(layer, MaxPool2D) else None
        y64 = y.astype(np.float64)
        records.append(LayerRecord(
            index=i, name=layer.name, kind=type(layer).__name__, layer=layer, output=y,
            output_shape=tuple(y.shape), minimum=float(y64.min()), maximum=float(y64.max()),
            mean=float(y64.mean()), zero_share=float((y == 0).mean()) if from_relu else None,
            tie_share=tie, activation=act if isinstance(act, str) else None))
        inp = y
    return records


def describe(rec: LayerRecord) -> str:
    """The layer's settings and activation in a few words (for titles and tables)."""
    layer = rec.layer
    parts = [p for p in (layer.describe(), rec.activation) if p]
    return ", ".join(dict.fromkeys(parts))  # an Activation layer describes itself by its activation


def format_table(records: list[LayerRecord]) -> str:
    """The statistics as a fixed-width text table (one row per layer)."""
    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}%"

    head = ("#", "layer", "type", "output shape", "min", "max", "mean", "zeros", "pool ties")
    rows = [(str(r.index), r.name, r.kind, str(tuple(r.output_shape)),
             f"{r.minimum:.4f}", f"{r.maximum:.4f}", f"{r.mean:.4f}", pct(r.zero_share), pct(r.tie_share))
            for r in records]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    left = {1, 2, 3}

    def fmt(row):
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    lines = [fmt(head), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows]
    notes = ["zeros: share of exact zeros in an output that comes from a ReLU",
             "pool ties: share of max-pool windows whose maximum occurs more than once"]
    return "\n".join(lines + notes)


def top_k(probs, k=3, labels=None) -> list[tuple[int, str, float]]:
    """The ``k`` most probable classes as (index, label, probability), most probable first."""
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    labels = labels or [str(i) for i in range(p.size)]
    order = np.argsort(-p, kind="stable")[:k]
    return [(int(i), labels[int(i)], float(p[i])) for i in order]
