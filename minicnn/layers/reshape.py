"""Reshape: the same values per sample in another shape (C order, as Keras)."""

from __future__ import annotations

import math

from ..errors import KerasConfigError
from . import keras_options as ko
from .base import Layer


def normalize_target_shape(target_shape) -> tuple[int, ...]:
    """A tuple of positive ints with at most one -1 (the size to infer); ValueError otherwise.

    Keras (keras/src/ops/operation_utils.py ``validate_reshape_shape``) also allows 0, which can
    only match an input of size 0: minicnn's per-sample shapes are never empty, so it refuses it.
    """
    try:
        dims = tuple(target_shape)
    except TypeError:
        raise ValueError(f"Reshape target_shape must be a tuple of ints, got {target_shape!r}") from None
    if not dims or not all(isinstance(d, int) and not isinstance(d, bool) for d in dims):
        raise ValueError(f"Reshape target_shape must be a non-empty tuple of ints, got {target_shape!r}")
    if any(d < 1 and d != -1 for d in dims) or dims.count(-1) > 1:
        raise ValueError("Reshape target_shape takes positive sizes and at most one -1 (inferred), "
                         f"got {target_shape!r}")
    return tuple(int(d) for d in dims)


class Reshape(Layer):
    """(N, *input_shape) -> (N, *target_shape), values in row-major (C) order: Keras's
    ``ops.reshape`` (keras/src/layers/reshaping/reshape.py). One entry may be -1, inferred from
    the input's size; a size that does not match is refused naming the layer. ``target_shape``
    is kept as given (with its -1), as Keras's config keeps it. Backward reshapes dy back.
    """

    kind = "reshape"
    backward_needs_forward = False  # a reshape to its known input shape

    def __init__(self, target_shape, name=None, input_shape=None):
        super().__init__(name=name, input_shape=input_shape)
        self.target_shape = normalize_target_shape(target_shape)

    def compute_output_shape(self, input_shape):
        size = math.prod(input_shape)
        if -1 not in self.target_shape:
            if math.prod(self.target_shape) != size:
                self._fail(f"cannot reshape an input of shape {tuple(input_shape)} ({size} values per "
                           f"sample) into {self.target_shape} ({math.prod(self.target_shape)} values)")
            return self.target_shape
        known = -math.prod(self.target_shape)  # the product of the other sizes
        if size % known:
            self._fail(f"cannot reshape an input of shape {tuple(input_shape)} ({size} values per sample) "
                       f"into {self.target_shape}: {size} is not a multiple of {known}")
        return tuple(size // known if d == -1 else d for d in self.target_shape)

    def describe(self):
        return "to " + "x".join(map(str, self.output_shape))

    def forward(self, x, training=False):
        self._check_input(x)
        return x.reshape((x.shape[0], *self.output_shape))  # explicit sizes: 0 samples work too

    def backward(self, dy):
        return dy.reshape((dy.shape[0], *self.input_shape))

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}

    def keras_config(self):
        return {"target_shape": list(self.target_shape)}

    @classmethod
    def from_keras_config(cls, cfg, where):
        ko.check_options(cfg, {"target_shape"}, {}, where)
        try:
            return cls(cfg["target_shape"], name=cfg.get("name"))
        except ValueError as e:
            raise KerasConfigError(f"{where}: {e}") from None
