"""The public functions refuse shapes that do not fit together (minicnn.kernels.numba.checks):
the kernels behind them index raw memory, so a mismatch must be an error, not a stray read."""

from __future__ import annotations

import numpy as np
import pytest

nb = pytest.importorskip("minicnn.kernels.numba_backend")

F32 = np.float32
X, K, B = np.ones((2, 6, 6, 16), F32), np.ones((3, 3, 16, 32), F32), np.ones(32, F32)
DY = np.ones((2, 4, 4, 32), F32)
V = ((1, 1), (0, 0, 0, 0))


@pytest.mark.parametrize(("call", "match"), [
    (lambda: nb.conv2d_forward(X, K[:, :, :8], B, *V), "conv2d_forward: x must be .* got .*16.* and .*8"),
    (lambda: nb.conv2d_forward(X[0], K, B, *V), "conv2d_forward: x must be"),
    (lambda: nb.conv2d_forward(X, K, B[:5], *V), r"conv2d_forward: bias must have shape \(32,\)"),
    (lambda: nb.conv2d_forward(X, K, B, (0, 1), (0, 0, 0, 0)), "conv2d_forward: .* must be positive"),
    (lambda: nb.conv2d_forward(X, K, B, (1, 1), (0, 0, 0)), "conv2d_forward: expected .* 4 pads"),
    (lambda: nb.conv2d_backward(DY[:, :3], X, K, *V),
     r"conv2d_backward: dy has shape \(2, 3, 4, 32\), .*\(2, 4, 4, 32\)"),
    (lambda: nb.conv2d_backward(DY[..., :16], X, K, *V), "conv2d_backward: dy has shape"),
    (lambda: nb.dense_forward(np.ones((3, 10), F32), np.ones((11, 4), F32), None), "dense_forward: x must be"),
    (lambda: nb.dense_forward(np.ones((3, 10), F32), np.ones((10, 4), F32), np.ones(3, F32)), "dense_forward: bias"),
    (lambda: nb.dense_backward(np.ones((3, 5), F32), np.ones((3, 10), F32), np.ones((10, 4), F32)),
     r"dense_backward: dy has shape \(3, 5\)"),
    (lambda: nb.maxpool2d_forward(np.ones((6, 6, 1), F32), (2, 2), (2, 2), (0, 0, 0, 0)), "maxpool2d_forward: x must"),
    (lambda: nb.maxpool2d_backward(np.ones((2, 3, 3, 16), F32), np.zeros((2, 3, 3, 16), np.int32), (2, 6, 6, 8),
                                   (2, 2), (2, 2), (0, 0, 0, 0)), "maxpool2d_backward: dy .* output shape"),
    (lambda: nb.maxpool2d_backward(np.ones((2, 3, 3, 16), F32), np.zeros((2, 3, 2, 16), np.int32), X.shape,
                                   (2, 2), (2, 2), (0, 0, 0, 0)), "maxpool2d_backward: dy .* argmax"),
    (lambda: nb.relu_backward(np.ones((40000,), F32), np.ones((39999,), F32)), "relu_backward: shapes differ"),
    (lambda: nb.adam_update(*(np.ones(40000, F32) for _ in range(3)), np.ones(4, F32), *(F32(0.1),) * 4),
     "adam_update: shapes differ"),
])
def test_a_mismatched_shape_is_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_matching_shapes_pass():
    y = nb.conv2d_forward(X, K, B, *V)
    assert y.shape == DY.shape
    assert nb.conv2d_backward(DY, X, K, *V)[1].shape == K.shape
    p, a = nb.maxpool2d_forward(X, (2, 2), (2, 2), (0, 0, 0, 0))
    assert nb.maxpool2d_backward(p, a, X.shape, (2, 2), (2, 2), (0, 0, 0, 0)).shape == X.shape
