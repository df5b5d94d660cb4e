"""The only place where output sizes and padding are computed.

For one spatial axis with input size ``n``, window ``k`` and stride ``s``::

    'valid':  out = floor((n - k) / s) + 1            (requires n >= k)
    'same':   out = ceil(n / s)
              pad_total = max((out - 1) * s + k - n, 0)
              pad_before = pad_total // 2,  pad_after = pad_total - pad_before

TensorFlow puts the odd padding row/column at the *end* (bottom/right); so does minicnn.
Conv layers pad with zeros, pooling layers with -inf (padded cells never win the max).

A window dilated by ``d`` (``dilation_rate``) takes every ``d``-th cell: it spans
``(k - 1) * d + 1`` cells, and that *effective* size replaces ``k`` in every formula above
(Keras's ``compute_conv_output_shape`` in keras/src/ops/operation_utils.py; TensorFlow's 'same'
with dilation, as Keras's ``_pad_same_spatial_channels_last`` in
keras/src/backend/tensorflow/nn.py spells it out).
"""

from __future__ import annotations

PADDINGS = ("valid", "same")


def normalize_pair(value, name: str) -> tuple[int, int]:
    """Turn ``3`` or ``(3, 3)`` into ``(3, 3)``; reject anything that is not positive ints."""
    if isinstance(value, (int,)) and not isinstance(value, bool):
        pair = (value, value)
    else:
        try:
            pair = tuple(value)
        except TypeError:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}") from None
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < 1:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return (int(pair[0]), int(pair[1]))


def normalize_padding(padding: str) -> str:
    p = str(padding).lower()
    if p not in PADDINGS:
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    return p


def effective_size(k: int, d: int = 1) -> int:
    """The number of cells a window of ``k`` taps dilated by ``d`` spans: ``(k - 1) * d + 1``."""
    return (k - 1) * d + 1


def axis_output(n: int, k: int, s: int, padding: str, d: int = 1) -> tuple[int, int, int]:
    """Output size and (pad_before, pad_after) along one axis for a window of ``k`` taps dilated
    by ``d``; ``out`` is 0 if the window cannot fit."""
    k = effective_size(k, d)
    if padding == "same":
        out = -(-n // s)
        total = max((out - 1) * s + k - n, 0)
        return out, total // 2, total - total // 2
    if n < k:
        return 0, 0, 0
    return (n - k) // s + 1, 0, 0


def window_output(hw: tuple[int, int], kernel: tuple[int, int], strides: tuple[int, int],
                  padding: str, dilation: tuple[int, int] = (1, 1)
                  ) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """Output ``(OH, OW)`` and pads ``(top, bottom, left, right)`` of a 2-D window op.

    Parameters
    ----------
    hw : (H, W) input spatial size.
    kernel : (KH, KW) window size.
    strides : (SH, SW).
    padding : 'valid' or 'same'.
    dilation : (DH, DW), 1 for an ordinary window.
    """
    oh, top, bottom = axis_output(hw[0], kernel[0], strides[0], padding, dilation[0])
    ow, left, right = axis_output(hw[1], kernel[1], strides[1], padding, dilation[1])
    return (oh, ow), (top, bottom, left, right)


def padded_output_hw(x_shape, ksize, strides, pads, dilation=(1, 1)) -> tuple[int, int]:
    """Output ``(OH, OW)`` of a window op on an (N, H, W, C) input with explicit pads
    ``(top, bottom, left, right)``: ``(H + top + bottom - EKH) // SH + 1`` (likewise for W), with
    ``EKH = (KH - 1) * DH + 1`` the dilated window's span (``KH`` when not dilated).

    The kernels use this form: the layers have already chosen the pads with :func:`window_output`.
    """
    ekh, ekw = effective_size(ksize[0], dilation[0]), effective_size(ksize[1], dilation[1])
    oh = (x_shape[1] + pads[0] + pads[1] - ekh) // strides[0] + 1
    ow = (x_shape[2] + pads[2] + pads[3] - ekw) // strides[1] + 1
    return oh, ow
