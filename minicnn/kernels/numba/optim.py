"""Fused optimizer updates for the numba backend: one pass over each weight, split over the threads.

NumPy's ``m += (g - m) * c1`` etc. walks the 4.7M weights of the seed model a dozen times with
temporaries; these loops read and write each element once. They perform the same float
operations in the same order as :func:`minicnn.kernels.numpy_backend.adam_update` (no fastmath,
no reassociation), so both backends give bitwise-identical updates, except that denormals are
flushed to zero here (:mod:`.fpu`; Adam's moments decay into that range).

Tiers: :func:`_adam_at` (one element, inlined), :func:`_adam` (a serial ``nogil`` kernel over a
range of blocks of ``config.EW_BLOCK`` elements, which :func:`.fanout.run` splits over the threads:
a ``prange`` kernel compiled the same loop twice, 0.8 s cold against ~0.3 s) and the public
:func:`adam_update`. Each element is updated independently, so any split gives the same bits.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import checks, fanout
from .config import EW_BLOCK
from .fpu import denormals_off, denormals_restore

__all__ = ["adam_update"]

#: the work of one element's update for :func:`.fanout.run` (in its unit, one GEMM FLOP's time on
#: one thread): it streams 4 reads and 3 writes and takes a square root and a division, ~3.2 ns an
#: element on one thread past L2, 1.5-1.9x faster split over two cores; 130 splits the weights of
#: more than ~30k elements, where the split measured to pay (medians of four runs of
#: ``python -m benchmarks.fanout_work``, 2-core Zen 3)
ADAM_WORK_PER_ELEMENT = 130


@njit(inline="always", cache=True, error_model="numpy")
def _adam_at(i, p, g, m, v, c1, c2, alpha, eps):
    """Element ``i`` of the update (arguments as in :func:`adam_update`)."""
    gi = g[i]
    mi = m[i] + (gi - m[i]) * c1
    vi = v[i] + (gi * gi - v[i]) * c2
    m[i] = mi
    v[i] = vi
    p[i] = p[i] - mi * alpha / (np.sqrt(vi) + eps)


# error_model="numpy": a float division by zero gives IEEE inf/NaN, as numpy's does, instead of
# numba's default ZeroDivisionError check, a branch in the loop that kept LLVM from vectorising it
# (scalar vsqrtss/vdivss: 11.2 ms for the seed's dense1 on one thread, 2.5 ms vectorised)
@njit(nogil=True, cache=True, error_model="numpy")
def _adam(p, g, m, v, c1, c2, alpha, eps, b_lo, b_hi, worker):
    """The update of 1-D ``p``, ``m``, ``v`` (in place) from ``g`` on the blocks b_lo..b_hi-1 of
    ``EW_BLOCK`` elements; scalars as in :func:`adam_update` (``worker`` unused)."""
    fpu = denormals_off()  # (see fpu)
    for blk in range(b_lo, b_hi):
        i0, i1 = blk * EW_BLOCK, min(p.size, blk * EW_BLOCK + EW_BLOCK)
        # slices, looped from 0: with range(i0, i1) numba's negative-index handling stops LLVM
        # from vectorising (4.2 ms instead of 1.4 for dense1)
        ps, gs, ms, vs = p[i0:i1], g[i0:i1], m[i0:i1], v[i0:i1]
        for i in range(ps.size):
            _adam_at(i, ps, gs, ms, vs, c1, c2, alpha, eps)
    denormals_restore(fpu)


def adam_update(p, g, m, v, c1, c2, alpha, eps):
    """In place: ``m += (g - m) c1; v += (g^2 - v) c2; p -= m alpha / (sqrt(v) + eps)``.

    ``p``, ``m``, ``v`` must be C-contiguous (they are: minicnn allocates them); ``g`` is made so.
    Scalars are of the weights' dtype.
    """
    checks.same_shape("adam_update", "pgmv", p, g, m, v)
    g = np.ascontiguousarray(g)
    fanout.run(_adam, -(-p.size // EW_BLOCK), p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1),
               c1, c2, alpha, eps, work=ADAM_WORK_PER_ELEMENT * p.size)
