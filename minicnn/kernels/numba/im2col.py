"""im2col and its adjoint col2im on chunks of whole images: the serial bodies that the im2col +
GEMM conv kernels (:mod:`.conv`) call once per chunk, into a per-thread buffer.

Layouts: x and dx NHWC, the im2col matrix one row per output pixel (images n0.., then rows, then
columns) with its columns in the kernel's (kh, kw, c) order (HWIO), so that ``cols @ W`` with W
the (KH*KW*C, F) view of the kernel is the convolution.
"""

from __future__ import annotations

from numba import njit

__all__ = ["im2col_imgs", "col2im_imgs"]


@njit(cache=True)
def im2col_imgs(x, n0, n1, kh, kw, sh, sw, dh, dw, top, left, oh, ow, cols):
    """Rows of images n0..n1-1 of x (N, H, W, C) into cols[0:(n1-n0)*OH*OW]: one row per output
    pixel, columns in (kh, kw, c) order (HWIO); tap (di, dj) of output pixel (i, j) is input cell
    (i*sh + di*dh - top, j*sw + dj*dw - left) (``dh``, ``dw``: the dilation); cells in the padding
    (``top``, ``left`` and past the far edges) are 0."""
    _, h, w, c = x.shape
    row = 0
    for n in range(n0, n1):
        for i in range(oh):
            for j in range(ow):
                for di in range(kh):
                    r = i * sh + di * dh - top
                    for dj in range(kw):
                        s = j * sw + dj * dw - left
                        off = (di * kw + dj) * c
                        if 0 <= r < h and 0 <= s < w:
                            for ch in range(c):
                                cols[row, off + ch] = x[n, r, s, ch]
                        else:
                            for ch in range(c):
                                cols[row, off + ch] = 0
                row += 1


@njit(cache=True)
def col2im_imgs(dcols, n0, n1, kh, kw, sh, sw, dh, dw, top, left, oh, ow, dx):
    """Adjoint of :func:`im2col_imgs` (same arguments) for images n0..n1-1, as a gather in
    (di, dj) order: each cell of dx (N, H, W, C) is overwritten with the sum of its patch entries
    (cell r is tap di of output row i when r + top - di*dh == i*sh)."""
    _, h, w, c = dx.shape
    for n in range(n0, n1):
        base = (n - n0) * oh
        for r in range(h):
            for s in range(w):
                for ch in range(c):
                    dx[n, r, s, ch] = 0
                for di in range(kh):
                    ii = r + top - di * dh
                    if sh == 1:
                        if ii < 0 or ii >= oh:
                            continue
                        i = ii
                    else:
                        if ii < 0 or ii % sh != 0 or ii // sh >= oh:
                            continue
                        i = ii // sh
                    for dj in range(kw):
                        jj = s + left - dj * dw
                        if sw == 1:
                            if jj < 0 or jj >= ow:
                                continue
                            j = jj
                        else:
                            if jj < 0 or jj % sw != 0 or jj // sw >= ow:
                                continue
                            j = jj // sw
                        row = (base + i) * ow + j
                        off = (di * kw + dj) * c
                        for ch in range(c):
                            dx[n, r, s, ch] += dcols[row, off + ch]
