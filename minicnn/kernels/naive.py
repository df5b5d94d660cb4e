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


# ----------------------------------------------------------------------------- pooling zoo
def avgpool2d(x, pool_size, strides, pads):
    """Average pooling by loops: each window's real cells summed and divided by how many there
    are (padded cells are skipped, as TensorFlow's avg_pool does)."""
    n, h, w, c = x.shape
    ph, pw = pool_size
    oh, ow = padded_output_hw(x.shape, pool_size, strides, pads)
    y = np.zeros((n, oh, ow, c), dtype=x.dtype)
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                for ch in range(c):
                    total, count = 0.0, 0
                    for di in range(ph):
                        for dj in range(pw):
                            r, s = i * strides[0] + di - pads[0], j * strides[1] + dj - pads[2]
                            if 0 <= r < h and 0 <= s < w:
                                total, count = total + x[b, r, s, ch], count + 1
                    y[b, i, j, ch] = total / count
    return y


def avgpool2d_backward(dy, x_shape, pool_size, strides, pads):
    """Each window's dy / (its number of real cells) added to each of its real cells, by loops."""
    n, h, w, c = x_shape
    ph, pw = pool_size
    dx = np.zeros(x_shape, dtype=dy.dtype)
    for b in range(n):
        for i in range(dy.shape[1]):
            for j in range(dy.shape[2]):
                real = []
                for di in range(ph):
                    for dj in range(pw):
                        r, s = i * strides[0] + di - pads[0], j * strides[1] + dj - pads[2]
                        if 0 <= r < h and 0 <= s < w:
                            real.append((r, s))
                for ch in range(c):
                    for r, s in real:
                        dx[b, r, s, ch] += dy[b, i, j, ch] / len(real)
    return dx


def global_avgpool2d(x):
    """Mean over every (row, column) of each sample and channel: (N, H, W, C) -> (N, C)."""
    n, h, w, c = x.shape
    y = np.zeros((n, c), dtype=x.dtype)
    for b in range(n):
        for ch in range(c):
            y[b, ch] = sum(x[b, r, s, ch] for r in range(h) for s in range(w)) / (h * w)
    return y


def global_maxpool2d(x):
    """Largest value of each sample and channel: (N, H, W, C) -> (N, C)."""
    n, h, w, c = x.shape
    y = np.zeros((n, c), dtype=x.dtype)
    for b in range(n):
        for ch in range(c):
            y[b, ch] = max(x[b, r, s, ch] for r in range(h) for s in range(w))
    return y


def global_maxpool2d_backward(dy, x):
    """dy shared equally by every cell that equals its channel's maximum, by loops."""
    n, h, w, c = x.shape
    dx = np.zeros(x.shape, dtype=dy.dtype)
    for b in range(n):
        for ch in range(c):
            best = max(x[b, r, s, ch] for r in range(h) for s in range(w))
            winners = [(r, s) for r in range(h) for s in range(w) if x[b, r, s, ch] == best]
            for r, s in winners:
                dx[b, r, s, ch] = dy[b, ch] / len(winners)
    return dx


def zeropad2d(x, pads):
    """Copy ``x`` (N, H, W, C) into the middle of a zero array padded by (top, bottom, left, right)."""
    n, h, w, c = x.shape
    top, bottom, left, right = pads
    y = np.zeros((n, h + top + bottom, w + left + right, c), dtype=x.dtype)
    for b in range(n):
        for r in range(h):
            for s in range(w):
                for ch in range(c):
                    y[b, r + top, s + left, ch] = x[b, r, s, ch]
    return y


# ----------------------------------------------------------------------------- batchnorm
def batchnorm(x, gamma, beta, mean=None, var=None, epsilon=1e-3):
    """Batch normalisation over the last axis by loops, as the paper writes it:
    ``gamma * (x - mean) / sqrt(var + epsilon) + beta`` per channel. Without ``mean``/``var``
    (training mode) the batch's own statistics are used: the mean, and the biased variance
    (sum of squared deviations / count). Returns (y, mean, var)."""
    rows = x.reshape(-1, x.shape[-1])
    m, c = rows.shape
    y = np.zeros_like(rows)
    mu, sigma2 = np.zeros(c, dtype=x.dtype), np.zeros(c, dtype=x.dtype)
    for ch in range(c):
        mu[ch] = sum(rows[i, ch] for i in range(m)) / m if mean is None else mean[ch]
        sigma2[ch] = sum((rows[i, ch] - mu[ch]) ** 2 for i in range(m)) / m if var is None else var[ch]
        for i in range(m):
            xhat = (rows[i, ch] - mu[ch]) / np.sqrt(sigma2[ch] + epsilon)
            y[i, ch] = xhat * (1 if gamma is None else gamma[ch]) + (0 if beta is None else beta[ch])
    return y.reshape(x.shape), mu, sigma2


def batchnorm_backward(dy, x, gamma, epsilon=1e-3):
    """Training-mode gradients (dx, dgamma, dbeta) by loops, with the chain rule through the batch
    variance and mean written out term by term (Ioffe & Szegedy 2015, section 3)."""
    rows, drows = x.reshape(-1, x.shape[-1]), dy.reshape(-1, x.shape[-1])
    m, c = rows.shape
    dx = np.zeros_like(rows)
    dgamma, dbeta = np.zeros(c, dtype=x.dtype), np.zeros(c, dtype=x.dtype)
    for ch in range(c):
        col, dcol = rows[:, ch], drows[:, ch]
        mu = sum(col) / m
        var = sum((v - mu) ** 2 for v in col) / m
        std = np.sqrt(var + epsilon)
        g = 1 if gamma is None else gamma[ch]
        dxhat = [dcol[i] * g for i in range(m)]
        dvar = sum(dxhat[i] * (col[i] - mu) for i in range(m)) * -0.5 * std ** -3
        dmu = sum(-dxhat[i] / std for i in range(m)) + dvar * sum(-2 * (col[i] - mu) for i in range(m)) / m
        for i in range(m):
            dx[i, ch] = dxhat[i] / std + dvar * 2 * (col[i] - mu) / m + dmu / m
        dgamma[ch] = sum(dcol[i] * (col[i] - mu) / std for i in range(m))
        dbeta[ch] = sum(dcol)
    return dx.reshape(x.shape), dgamma, dbeta
