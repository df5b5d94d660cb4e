"""Fused optimizer updates for the numba backend: one parallel pass over each weight.

NumPy's ``m += (g - m) * c1`` etc. walks the 4.7M weights of the seed model a dozen times with
temporaries; these loops read and write each element once. They perform the same float
operations in the same order as :func:`minicnn.kernels.numpy_backend.adam_update` (no fastmath,
no reassociation), so both backends give bitwise-identical updates, except that denormals are
flushed to zero here (:mod:`.fpu`; Adam's moments decay into that range).

Tiers: :func:`_adam_at` (one element, inlined), :func:`_adam` (parallel over blocks of
``config.EW_BLOCK``) and :func:`_adam_serial` (small weights: no thread-pool wake-up), and the
public :func:`adam_update`, which picks one by size (``config.SMALL_ELEMENTWISE``). Each element
is updated independently, so the three give the same bits.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import checks, config
from .config import EW_BLOCK
from .fpu import denormals_off, denormals_restore

__all__ = ["adam_update"]


@njit(inline="always", cache=True)
def _adam_at(i, p, g, m, v, c1, c2, alpha, eps):
    """Element ``i`` of the update (arguments as in :func:`adam_update`)."""
    gi = g[i]
    mi = m[i] + (gi - m[i]) * c1
    vi = v[i] + (gi * gi - v[i]) * c2
    m[i] = mi
    v[i] = vi
    p[i] = p[i] - mi * alpha / (np.sqrt(vi) + eps)


@njit(parallel=True, cache=True)
def _adam(p, g, m, v, c1, c2, alpha, eps):
    """The update of 1-D ``p``, ``m``, ``v`` (in place) from ``g``, one block of ``EW_BLOCK``
    elements per parallel iteration; scalars as in :func:`adam_update`."""
    for blk in prange((p.size + EW_BLOCK - 1) // EW_BLOCK):
        fpu = denormals_off()  # (see fpu)
        i0, i1 = blk * EW_BLOCK, min(p.size, blk * EW_BLOCK + EW_BLOCK)
        # slices, looped from 0: with range(i0, i1) numba's negative-index handling stops LLVM
        # from vectorising (4.2 ms instead of 1.4 for dense1)
        ps, gs, ms, vs = p[i0:i1], g[i0:i1], m[i0:i1], v[i0:i1]
        for i in range(ps.size):
            _adam_at(i, ps, gs, ms, vs, c1, c2, alpha, eps)
        denormals_restore(fpu)


@njit(cache=True)
def _adam_serial(p, g, m, v, c1, c2, alpha, eps):
    """As :func:`_adam`, on the calling thread."""
    fpu = denormals_off()
    for i in range(p.size):
        _adam_at(i, p, g, m, v, c1, c2, alpha, eps)
    denormals_restore(fpu)


def adam_update(p, g, m, v, c1, c2, alpha, eps):
    """In place: ``m += (g - m) c1; v += (g^2 - v) c2; p -= m alpha / (sqrt(v) + eps)``.

    ``p``, ``m``, ``v`` must be C-contiguous (they are: minicnn allocates them); ``g`` is made so.
    Scalars are of the weights' dtype.
    """
    checks.same_shape("adam_update", "pgmv", p, g, m, v)
    g = np.ascontiguousarray(g)
    (_adam if p.size >= config.SMALL_ELEMENTWISE else _adam_serial)(
        p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1), c1, c2, alpha, eps)
