"""Comparison of one tensor (or one series of losses) between minicnn and Keras, and its verdict.

Every comparison carries whether it is judged. A judged one has an ``rtol`` and ``passed`` is
True or False; one that is not judged (``rtol=None``) has ``passed`` None and the status
"not judged" — it is reported as information and never counted as passed.
"""

from __future__ import annotations

import numpy as np

from .histogram import decade_histogram

OK, FAIL, NOT_JUDGED = "ok", "FAIL", "not judged"


def _status(judged: bool, passed) -> str:
    if not judged:
        return NOT_JUDGED
    return OK if passed else FAIL


def _index(flat, shape):
    return [int(i) for i in np.unravel_index(int(flat), shape)] if shape else []


def nonfinite(mine, ref) -> dict:
    """Where the two tensors are NaN or infinite, compared position by position before any value:
    a mismatch is a position where one side is NaN and the other is not, or where either is
    infinite and the two differ. ``kind`` names the first mismatch's kind ('NaN' or 'Inf'; None
    when the non-finite positions agree)."""
    m_nan, r_nan = np.isnan(mine), np.isnan(ref)
    m_inf, r_inf = np.isinf(mine), np.isinf(ref)
    nan_bad = m_nan != r_nan
    inf_bad = (m_inf | r_inf) & ~(m_nan | r_nan) & (mine != ref)
    bad = nan_bad | inf_bad
    out = {"mine_nan": int(m_nan.sum()), "ref_nan": int(r_nan.sum()), "mine_inf": int(m_inf.sum()),
           "ref_inf": int(r_inf.sum()), "mismatches": int(bad.sum()), "kind": None, "first": None}
    if out["mismatches"]:
        first = int(np.flatnonzero(bad.ravel())[0])
        out["kind"] = "NaN" if nan_bad.ravel()[first] else "Inf"
        out["first"] = _index(first, mine.shape)
        out["first_values"] = {"mine": float(mine.ravel()[first]), "ref": float(ref.ravel()[first])}
    return out


def ulp_distance(mine, ref, dtype) -> int:
    """The largest elementwise distance in units in the last place of ``dtype``: the number of
    representable ``dtype`` values between the two (both rounded to ``dtype``), finite positions
    only. 0 means bit-identical."""
    dt = np.dtype(dtype)
    if dt.kind != "f" or not mine.size:
        return 0
    it = np.int32 if dt.itemsize == 4 else np.int64
    a = np.ascontiguousarray(mine, dtype=dt).view(it).astype(np.int64)
    b = np.ascontiguousarray(ref, dtype=dt).view(it).astype(np.int64)
    # map the sign-magnitude bit patterns onto a monotonic integer line (-0 and +0 meet)
    a = np.where(a < 0, np.int64(np.iinfo(it).min) - a, a)
    b = np.where(b < 0, np.int64(np.iinfo(it).min) - b, b)
    ok = np.isfinite(mine) & np.isfinite(ref)
    return int(np.abs(a - b)[ok].max()) if ok.any() else 0


def compare(mine, ref, rtol, atol=0.0) -> dict:
    """max|d|, mean|d|, max|d|/max|ref| ('rel'), the argmax index of |d|, the distance in ULPs
    and the verdict of one tensor pair. ``rtol=None``: information only (``judged`` False,
    ``passed`` None).

    NaN and Inf positions are compared first (:func:`nonfinite`): a mismatch fails the row with
    ``failure`` 'NaN' or 'Inf' and the first such index, whatever the values; the numbers (max|d|,
    rel, ULPs) are then over the positions finite on both sides. ``ulps`` is max|d| in units of the
    spacing of ``dtype`` at max|ref| (normwise, comparable to rel / epsilon); ``max_elementwise_ulps``
    the largest elementwise ULP distance; ``rel_histogram`` the log-decade histogram of the
    elementwise relative errors (:func:`.histogram.decade_histogram`). ``failure`` is None, 'shape', 'NaN', 'Inf' or 'value'."""
    mine = np.asarray(mine)
    ref = np.asarray(ref)
    judged = rtol is not None
    if not judged:
        atol = None
    if mine.shape != ref.shape:
        ref_max = float(np.max(np.abs(ref))) if ref.size else 0.0
        return {"shape": list(ref.shape), "mine_shape": list(mine.shape), "max_abs": float("inf"),
                "mean_abs": float("inf"), "ref_max": ref_max, "rel": float("inf"), "argmax": None,
                "ulps": None, "max_elementwise_ulps": None, "nonfinite": None, "rel_histogram": None,
                "rtol": rtol, "atol": atol, "judged": judged, "passed": False if judged else None,
                "status": _status(judged, False), "failure": "shape", "note": "shape mismatch"}
    dtype = ref.dtype if ref.dtype.kind == "f" else np.dtype(np.float64)
    nf = nonfinite(mine, ref)
    finite = np.isfinite(mine) & np.isfinite(ref)
    m64 = np.where(finite, mine, 0).astype(np.float64)
    r64 = np.where(finite, ref, 0).astype(np.float64)
    ref_max = float(np.max(np.abs(r64))) if ref.size else 0.0
    d = np.abs(m64 - r64)
    max_abs = float(d.max()) if d.size else 0.0
    idx = _index(np.argmax(d), d.shape) if d.size else []
    rel = max_abs / ref_max if ref_max > 0 else (0.0 if max_abs == 0 else float("inf"))
    spacing = float(np.spacing(dtype.type(ref_max))) if ref_max > 0 else float(np.finfo(dtype).smallest_subnormal)
    passed = failure = None
    if nf["mismatches"]:
        failure = nf["kind"]
    elif judged and not max_abs <= atol + rtol * ref_max:
        failure = "value"
    if judged:
        passed = failure is None
    out = {"shape": list(ref.shape), "max_abs": max_abs, "mean_abs": float(d.mean()) if d.size else 0.0,
           "ref_max": ref_max, "rel": rel, "argmax": idx, "ulps": max_abs / spacing,
           "max_elementwise_ulps": ulp_distance(mine, ref, dtype), "nonfinite": nf,
           "rel_histogram": decade_histogram(mine, ref),
           "rtol": rtol, "atol": atol, "judged": judged, "passed": passed, "status": _status(judged, passed),
           "failure": failure}
    if failure in ("NaN", "Inf"):
        v = nf["first_values"]
        out["note"] = (f"{failure} mismatch at {tuple(nf['first'])}: minicnn {v['mine']!r}, reference {v['ref']!r} "
                       f"({nf['mismatches']} position(s); values compared where both are finite)")
    return out


def rel_error(mine, ref) -> float:
    """max|mine - ref| / max|ref| (information; see :func:`compare`)."""
    return compare(mine, ref, None)["rel"]


def rel_diffs(a, b) -> list[float]:
    """Elementwise |a - b| / |b| of two series of scalars (|a - b| where b is 0)."""
    return [abs(p - q) / abs(q) if q else abs(p - q) for p, q in zip(a, b)]


def series_check(name, mine, ref, rtol, atol=0.0, reason=None) -> dict:
    """One line of the report about a series of losses: the largest relative difference of
    ``mine`` against ``ref`` and, when ``rtol`` is given, its verdict (every value of ``mine``
    must also be finite). ``reason`` says why a check is not judged."""
    nf = nonfinite(np.asarray(mine, np.float64), np.asarray(ref, np.float64))
    diffs = [d if np.isfinite(d) else 0.0 for d in rel_diffs(mine, ref)] if nf["mismatches"] else rel_diffs(mine, ref)
    worst = max(diffs, default=0.0)
    judged = rtol is not None
    passed = None
    failure = nf["kind"] if nf["mismatches"] else None
    if judged:
        passed = bool(failure is None and np.all(np.isfinite(mine)) and worst <= rtol + atol)
        if not passed and failure is None:
            failure = "NaN" if np.isnan(mine).any() else "Inf" if not np.all(np.isfinite(mine)) else "value"
    out = {"check": name, "value": worst, "rel_diff": diffs, "rtol": rtol, "judged": judged,
           "passed": passed, "status": _status(judged, passed), "failure": failure}
    if failure in ("NaN", "Inf") and nf["first"] is not None:
        out["note"] = f"{failure} mismatch at step {nf['first'][0] + 1}"
    if reason and not judged:
        out["reason"] = reason
    return out


def info(name, value, reason=None) -> dict:
    """One line of information (a number that no tolerance applies to)."""
    out = {"check": name, "value": value, "rtol": None, "judged": False, "passed": None, "status": NOT_JUDGED}
    if reason:
        out["reason"] = reason
    return out


def verdict_text(check: dict) -> str:
    """'ok (rtol 1.00e-04)', 'FAIL (rtol 1.00e-10)' or 'not judged'."""
    if not check["judged"]:
        return NOT_JUDGED
    return f"{check['status']} (rtol {check['rtol']:.2e})"
