"""Log-decade histogram of the elementwise relative errors of one tensor pair.

A row's ``max|d|/max|ref|`` says how bad the worst element is; the histogram says how the errors
are spread: a float32 row whose elements sit around 1e-8 with a tail to 1e-5 (rounding plus a few
cancelling sums) reads differently from one whose bulk sits at 1e-3 (a wrong formula).

Bins (:data:`LABELS`, :data:`RULE`), of ``r = |a - b| / max(|b|, tiny)`` at every position finite
on both sides, ``tiny`` the smallest *normal* number of the reference's dtype:

* ``exact``: r == 0 (the two values are equal; +0 and -0 are equal);
* ``<=1e-17``: 0 < r <= 1e-17 (below float64's resolution: only a reference far larger than the
  difference's own scale lands here, e.g. float64 values compared against a float32 copy);
* ``1e-16``, ``1e-15``, ... ``1e-1``, ``1``: the decade (10^(k-1), 10^k], labelled by its upper end
  10^k (``1e-16`` holds (1e-17, 1e-16], ``1`` holds (0.1, 1]);
* ``>1``: r > 1 (the two differ by more than the reference itself: a sign flip, or a reference
  that is 0 or subnormal where the other side is not: the denominator is then ``tiny``, so any
  difference above ``tiny`` counts as >1 — a value the reference has as 0 is wrong by all of it).

Positions where either side is NaN or infinite are not binned: they are counted in ``nonfinite``
(their agreement is judged by :func:`.compare.nonfinite`). Counts are exact integers; the decade
of an r within rounding of a power of ten follows ``np.log10`` (a boundary case either side).

Shapes: ``a`` and ``b`` are any two arrays of the same shape; the histogram is over all elements.
"""

from __future__ import annotations

import numpy as np

#: the bin labels, in order (the JSON's ``counts`` follow them)
LABELS = ("exact", "<=1e-17") + tuple(f"1e{k}" for k in range(-16, 0)) + ("1", ">1")
RULE = ("elementwise r = |minicnn - ref| / max(|ref|, tiny), tiny = the dtype's smallest normal; bins: exact "
        "(r = 0), <=1e-17, then decades (1e(k-1), 1ek] labelled 1ek from (1e-17, 1e-16] to (0.1, 1], then >1; NaN/Inf "
        "positions (either side) counted apart as nonfinite")

# ASCII levels of the compact line: ' ' empty, then log-scaled fractions of the largest bin
_LEVELS = ".:-=+*#@"


def relative_errors(a, b) -> tuple[np.ndarray, int]:
    """(r at the positions finite on both sides, flattened; the number of other positions)."""
    a = np.asarray(a)
    b = np.asarray(b)
    dtype = b.dtype if b.dtype.kind == "f" else np.dtype(np.float64)
    finite = np.isfinite(a) & np.isfinite(b)
    every = bool(finite.all())  # the usual case: no gather needed
    a64 = (a if every else a[finite]).astype(np.float64).ravel()
    b64 = (b if every else b[finite]).astype(np.float64).ravel()
    tiny = float(np.finfo(dtype).tiny)
    return np.abs(a64 - b64) / np.maximum(np.abs(b64), tiny), int(finite.size - finite.sum())


def bin_index(r: np.ndarray) -> np.ndarray:
    """The bin of every r (an index into :data:`LABELS`)."""
    r = np.asarray(r, np.float64)
    out = np.empty(r.shape, np.int64)
    zero = r == 0
    big = r > 1
    mid = ~zero & ~big
    with np.errstate(divide="ignore"):
        k = np.ceil(np.log10(r[mid]))  # (10^(k-1), 10^k] -> k
    # decade (10^(k-1), 10^k] is bin k + 18 (1e-16 -> 2, 1 -> 18); r <= 1e-17 (k <= -17) is bin 1
    out[mid] = np.clip(k, -17, 0).astype(np.int64) + 18
    out[zero] = 0
    out[big] = len(LABELS) - 1
    return out


def decade_histogram(a, b) -> dict:
    """Counts of the elementwise relative errors of ``a`` against reference ``b`` per bin
    (:data:`LABELS`), with ``nonfinite`` (positions NaN/Inf on either side, not binned), ``total``
    (all positions), and the bins of the median and of the largest r (None when nothing is
    finite)."""
    r, nonfinite = relative_errors(a, b)
    bins = bin_index(r)
    counts = np.bincount(bins, minlength=len(LABELS))
    out = {"counts": [int(c) for c in counts], "nonfinite": nonfinite, "total": int(r.size + nonfinite),
           "median": None, "max": None}
    if r.size:
        # the bin of the lower median: the first whose running count passes (n - 1) // 2
        out["median"] = LABELS[int(np.searchsorted(np.cumsum(counts), (r.size - 1) // 2, side="right"))]
        out["max"] = LABELS[int(bins.max())]
    return out


def sparkline(counts) -> str:
    """One character per bin: ' ' for an empty bin, then ``.:-=+*#@`` by log10 of the count over
    the largest count (each character one eighth of the decades between 1 and the largest)."""
    counts = np.asarray(counts, np.float64)
    top = counts.max() if counts.size else 0.0
    if top <= 0:
        return " " * counts.size
    span = max(np.log10(top), 1.0)
    chars = []
    for c in counts:
        if c <= 0:
            chars.append(" ")
        else:
            level = int(np.floor(np.log10(c) / span * (len(_LEVELS) - 1) + 1e-9))
            chars.append(_LEVELS[min(max(level, 0), len(_LEVELS) - 1)])
    return "".join(chars)


def compact(h: dict | None) -> str:
    """'|  .:*@#-.     |  median 1e-8, max 1e-5' (bins exact, <=1e-17, 1e-16 ... 1, >1), plus the
    number of non-finite positions when there are any."""
    if h is None:
        return "-"
    text = f"|{sparkline(h['counts'])}|  median {h['median'] or '-'}, max {h['max'] or '-'}"
    return text + (f", {h['nonfinite']} NaN/Inf" if h["nonfinite"] else "")
