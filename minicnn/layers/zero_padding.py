"""ZeroPadding2D: rows and columns of zeros around each feature map."""

from __future__ import annotations

from ..errors import KerasConfigError
from ..kernels import get_backend
from . import keras_options as ko
from .base import Layer


def _count(value, what) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"ZeroPadding2D padding: {what} must be an int >= 0, got {value!r}")
    return int(value)


def normalize_zero_padding(padding) -> tuple[tuple[int, int], tuple[int, int]]:
    """((top, bottom), (left, right)) from Keras's three forms (keras/src/layers/reshaping/
    zero_padding2d.py): an int for all four sides, (symmetric_height, symmetric_width), or
    ((top, bottom), (left, right)); the two entries of a pair may mix the last two forms."""
    if isinstance(padding, int) and not isinstance(padding, bool):
        p = _count(padding, "padding")
        return ((p, p), (p, p))
    try:
        entries = tuple(padding)
    except TypeError:
        entries = None
    if entries is None or len(entries) != 2:
        raise ValueError("ZeroPadding2D padding must be an int, a pair (height, width) or a pair of pairs "
                         f"((top, bottom), (left, right)), got {padding!r}")
    out = []
    for entry, axis in zip(entries, ("height", "width")):
        if isinstance(entry, int) and not isinstance(entry, bool):
            out.append((_count(entry, axis),) * 2)
            continue
        try:
            pair = tuple(entry)
        except TypeError:
            pair = ()
        if len(pair) != 2:
            raise ValueError(f"ZeroPadding2D padding: the {axis} entry must be an int or a pair of ints, "
                             f"got {entry!r}")
        out.append((_count(pair[0], f"{axis} padding"), _count(pair[1], f"{axis} padding")))
    return (out[0], out[1])


class ZeroPadding2D(Layer):
    """(N, H, W, C) -> (N, top + H + bottom, left + W + right, C), the new cells zero
    (Keras: ``ops.pad`` with zeros). Backward crops dy back to (N, H, W, C). Nothing is cached.

    ``padding`` takes Keras's three forms (see :func:`normalize_zero_padding`); it is stored as
    ((top, bottom), (left, right)), as Keras's ``get_config`` writes it.
    """

    kind = "zero_padding2d"
    backward_needs_forward = False  # a crop by known amounts

    def __init__(self, padding=1, name=None, input_shape=None):
        super().__init__(name=name, input_shape=input_shape)
        self.padding = normalize_zero_padding(padding)
        (top, bottom), (left, right) = self.padding
        self.pads = (top, bottom, left, right)  # the kernels' order

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            self._fail(f"expects inputs of shape (batch, height, width, channels), "
                       f"received (batch, {', '.join(map(str, input_shape))})")
        top, bottom, left, right = self.pads
        return (input_shape[0] + top + bottom, input_shape[1] + left + right, input_shape[2])

    def describe(self):
        (top, bottom), (left, right) = self.padding
        return f"pad rows {top}+{bottom}, cols {left}+{right}"

    def forward(self, x, training=False):
        self._check_input(x)
        return get_backend().zeropad2d_forward(x, self.pads)

    def backward(self, dy):
        return get_backend().zeropad2d_backward(dy, self.pads)

    def _padding_list(self):
        return [list(self.padding[0]), list(self.padding[1])]

    def get_config(self):
        return {**super().get_config(), "padding": self._padding_list()}

    def keras_config(self):
        return {"padding": self._padding_list(), "data_format": "channels_last"}

    @classmethod
    def from_keras_config(cls, cfg, where):
        ko.check_options(cfg, {"padding"}, dict(ko.CHANNELS_LAST), where)
        try:
            padding = normalize_zero_padding(cfg.get("padding", 1))
        except ValueError as e:
            raise KerasConfigError(f"{where}: {e}") from None
        return cls(padding, name=cfg.get("name"))
