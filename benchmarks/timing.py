"""Timing: warm-up, repeated samples, medians and spreads; discarding samples other processes
disturbed; process memory.

Every measurement is ``warmup`` untimed calls, then ``repeats`` timed ones. The machine may be
shared: a sample during which *other* processes used more than ``slack`` jiffies of CPU (from
``/proc/stat``) is discarded and retried, up to ``4 x repeats`` times; past that the noisy samples
are kept and the result says ``noisy``.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np


def _sys_busy_jiffies():
    try:
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:]]
        return sum(v) - v[3] - v[4]  # everything but idle and iowait
    except (OSError, ValueError, IndexError):
        return None


def _own_jiffies():
    t = os.times()
    return (t.user + t.system) * os.sysconf("SC_CLK_TCK")


def summarize(samples_ms, discarded=0, noisy=False) -> dict:
    """Median, min, max and quartiles (ms) of a list of samples."""
    a = np.asarray(samples_ms, dtype=float)
    return {"median_ms": float(np.median(a)), "min_ms": float(a.min()), "max_ms": float(a.max()),
            "q1_ms": float(np.percentile(a, 25)), "q3_ms": float(np.percentile(a, 75)),
            "p95_ms": float(np.percentile(a, 95)),
            "n": int(a.size), "discarded": int(discarded), "noisy": bool(noisy)}


def measure(fn, repeats, warmup=2, max_discard=None, slack=2) -> dict:
    """Median and spread (ms) of ``fn()`` after ``warmup`` calls (see the module docstring)."""
    for _ in range(warmup):
        fn()
    max_discard = 4 * repeats if max_discard is None else max_discard
    samples, discarded = [], 0
    while len(samples) < repeats:
        s0, o0 = _sys_busy_jiffies(), _own_jiffies()
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        if s0 is not None and discarded < max_discard:
            s1 = _sys_busy_jiffies()
            others = (s1 - s0) - (_own_jiffies() - o0) if s1 is not None else 0
            if others > slack:
                discarded += 1
                time.sleep(0.05)
                continue
        samples.append(dt * 1e3)
    return summarize(samples, discarded, discarded >= max_discard)


def measure_latency(fn, repeats, warmup=None) -> dict:
    """Latency of a short call (batch-1 predict): ``repeats`` back-to-back timed calls after
    ``warmup``, median and p95 (ms). No sample is discarded: a per-call latency includes what the
    machine does meanwhile, and the p95 is there to show it (calls are far shorter than the
    /proc/stat jiffy that :func:`measure` filters with). ``warmup`` defaults to 20 calls, or the
    thread picker's :data:`~minicnn.kernels.threads.CALLS_TO_CHOOSE` if more (every timed call
    then runs on what it picked)."""
    if warmup is None:
        from minicnn.kernels.threads import CALLS_TO_CHOOSE

        warmup = max(20, CALLS_TO_CHOOSE)
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return summarize(samples)


def rss_mb() -> float:
    """Current resident set size in MiB (NaN without psutil)."""
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        return float("nan")


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB (``ru_maxrss``)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024 if sys.platform != "darwin" else r / 2**20  # KiB on Linux, bytes on macOS


def ratio(a, b):
    """How many times faster ``a`` is than ``b`` (b's median / a's median), NaN if unknown."""
    try:
        return b["median_ms"] / a["median_ms"]
    except (TypeError, KeyError, ZeroDivisionError):
        return float("nan")
