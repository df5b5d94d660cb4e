"""Slow, obviously-correct loop oracles. Used by the tests; never on a hot path.

Each loop mirrors the textbook definition so that a reader can check it by eye.
"""

from __future__ import annotations

import numpy as np

from .shapes import padded_output_hw


def conv2d(x, kernel, bias, strides, pads, dilation=(1, 1)):
    """Cross-correlation by explicit loops. x (N,H,W,C), kernel (KH,KW,C,F) -> (N,OH,OW,F);
    tap (di, dj) of a kernel dilated by (DH, DW) reads the cell di * DH rows, dj * DW columns in."""
    n, h, w, c = x.shape
    kh, kw, _, f = kernel.shape
    sh, sw = strides
    dh, dw = dilation
    top, bottom, left, right = pads
    oh, ow = padded_output_hw(x.shape, (kh, kw), strides, pads, dilation)
    y = np.zeros((n, oh, ow, f), dtype=x.dtype)
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                for o in range(f):
                    acc = 0.0
                    for di in range(kh):
                        for dj in range(kw):
                            r, s = i * sh + di * dh - top, j * sw + dj * dw - left
                            if 0 <= r < h and 0 <= s < w:  # outside the image: zero padding
                                for ch in range(c):
                                    acc += x[b, r, s, ch] * kernel[di, dj, ch, o]
                    y[b, i, j, o] = acc + (bias[o] if bias is not None else 0.0)
    return y


def maxpool2d(x, pool_size, strides, pads):
    """Max pooling by loops; returns (y, argmax) with argmax the first max in row-major order."""
    n, h, w, c = x.shape
    ph, pw = pool_size
    sh, sw = strides
    top, bottom, left, right = pads
    oh, ow = padded_output_hw(x.shape, pool_size, strides, pads)
    y = np.zeros((n, oh, ow, c), dtype=x.dtype)
    arg = np.zeros((n, oh, ow, c), dtype=np.int32)
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                for ch in range(c):
                    best, best_k = -np.inf, 0
                    for di in range(ph):
                        for dj in range(pw):
                            r, s = i * sh + di - top, j * sw + dj - left
                            if 0 <= r < h and 0 <= s < w and x[b, r, s, ch] > best:
                                best, best_k = x[b, r, s, ch], di * pw + dj  # strict '>' keeps the first
                    y[b, i, j, ch], arg[b, i, j, ch] = best, best_k
    return y, arg


def maxpool2d_backward(dy, argmax, x_shape, pool_size, strides, pads):
    """Send each dy to the winning cell of its window, by loops."""
    dx = np.zeros(x_shape, dtype=dy.dtype)
    n, oh, ow, c = dy.shape
    pw = pool_size[1]
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                for ch in range(c):
                    k = argmax[b, i, j, ch]
                    r = i * strides[0] + k // pw - pads[0]
                    s = j * strides[1] + k % pw - pads[2]
                    dx[b, r, s, ch] += dy[b, i, j, ch]
    return dx


def dense(x, kernel, bias):
    """y[n, o] = sum_i x[n, i] kernel[i, o] + bias[o], by loops."""
    y = np.zeros((x.shape[0], kernel.shape[1]), dtype=x.dtype)
    for b in range(x.shape[0]):
        for o in range(kernel.shape[1]):
            y[b, o] = sum(x[b, i] * kernel[i, o] for i in range(x.shape[1])) + (0 if bias is None else bias[o])
    return y


def softmax(z):
    """Row-wise softmax by the definition (shifted by the row max for stability)."""
    out = np.empty_like(z)
    for b in range(z.shape[0]):
        e = [np.exp(v - max(z[b])) for v in z[b]]
        out[b] = [v / sum(e) for v in e]
    return out


# ----------------------------------------------------------------------------- depthwise and dilation
def depthwise_conv2d(x, kernel, bias, strides, pads, dilation=(1, 1)):
    """Depthwise cross-correlation by loops: x (N,H,W,C), kernel (KH,KW,C,M) -> (N,OH,OW,C*M),
    output channel ch * M + m seeing input channel ch only (Keras's order)."""
    n, h, w, c = x.shape
    kh, kw, _, mult = kernel.shape
    oh, ow = padded_output_hw(x.shape, (kh, kw), strides, pads, dilation)
    y = np.zeros((n, oh, ow, c * mult), dtype=x.dtype)
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                for ch in range(c):
                    for m in range(mult):
                        acc = 0.0
                        for di in range(kh):
                            for dj in range(kw):
                                r = i * strides[0] + di * dilation[0] - pads[0]
                                s = j * strides[1] + dj * dilation[1] - pads[2]
                                if 0 <= r < h and 0 <= s < w:  # outside the image: zero padding
                                    acc += x[b, r, s, ch] * kernel[di, dj, ch, m]
                        y[b, i, j, ch * mult + m] = acc + (bias[ch * mult + m] if bias is not None else 0.0)
    return y


def separable_conv2d(x, depthwise_kernel, pointwise_kernel, bias, strides, pads, dilation=(1, 1)):
    """A depthwise convolution (no bias) then a 1x1 convolution (pointwise_kernel (1,1,C*M,F))
    with the bias, by the loops above: what Keras's SeparableConv2D computes."""
    z = depthwise_conv2d(x, depthwise_kernel, None, strides, pads, dilation)
    return conv2d(z, pointwise_kernel, bias, (1, 1), (0, 0, 0, 0))
