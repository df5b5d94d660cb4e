"""Comparison of one tensor (or one series of losses) between minicnn and Keras, and its verdict.

Every comparison carries whether it is judged. A judged one has an ``rtol`` and ``passed`` is
True or False; one that is not judged (``rtol=None``) has ``passed`` None and the status
"not judged" — it is reported as information and never counted as passed.
"""

from __future__ import annotations

import numpy as np

OK, FAIL, NOT_JUDGED = "ok", "FAIL", "not judged"


def _status(judged: bool, passed) -> str:
    if not judged:
        return NOT_JUDGED
    return OK if passed else FAIL


def compare(mine, ref, rtol, atol=0.0) -> dict:
    """max|d|, mean|d|, max|d|/max|ref| ('rel'), the argmax index of |d| and the verdict of one
    tensor pair. ``rtol=None``: information only (``judged`` False, ``passed`` None)."""
    mine = np.asarray(mine)
    ref = np.asarray(ref)
    judged = rtol is not None
    if not judged:
        atol = None
    ref_max = float(np.max(np.abs(ref))) if ref.size else 0.0
    if mine.shape != ref.shape:
        return {"shape": list(ref.shape), "mine_shape": list(mine.shape), "max_abs": float("inf"),
                "mean_abs": float("inf"), "ref_max": ref_max, "rel": float("inf"), "argmax": None,
                "rtol": rtol, "atol": atol, "judged": judged, "passed": False if judged else None,
                "status": _status(judged, False), "note": "shape mismatch"}
    d = np.abs(mine.astype(np.float64) - ref.astype(np.float64))
    max_abs = float(d.max()) if d.size else 0.0
    idx = [int(i) for i in np.unravel_index(int(np.argmax(d)), d.shape)] if d.size else []
    rel = max_abs / ref_max if ref_max > 0 else (0.0 if max_abs == 0 else float("inf"))
    passed = None
    if judged:
        finite = bool(np.isfinite(mine).all() and np.isfinite(ref).all())
        passed = finite and max_abs <= atol + rtol * ref_max
    return {"shape": list(ref.shape), "max_abs": max_abs, "mean_abs": float(d.mean()) if d.size else 0.0,
            "ref_max": ref_max, "rel": rel, "argmax": idx, "rtol": rtol, "atol": atol, "judged": judged,
            "passed": passed, "status": _status(judged, passed)}


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
    diffs = rel_diffs(mine, ref)
    worst = max(diffs, default=0.0)
    judged = rtol is not None
    passed = None
    if judged:
        passed = bool(np.all(np.isfinite(mine)) and np.all(np.isfinite(ref)) and worst <= rtol + atol)
    out = {"check": name, "value": worst, "rel_diff": diffs, "rtol": rtol, "judged": judged,
           "passed": passed, "status": _status(judged, passed)}
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
