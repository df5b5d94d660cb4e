"""Pick, by measurement, whether a whole pass runs on the thread pool or on the calling thread.

Why: a parallel kernel wakes the pool's other threads and waits for the slowest of them. For a
pass made of small ops (one image through ``predict`` on LeNet-5 or the mobile preset) the
waking costs more than the second core gives back, and how much it costs
depends on the machine: on a virtual machine whose idle vCPU the hypervisor has descheduled, a
wake-up takes tens of microseconds, on a quiet bare-metal core a few. Measured, float32, numba
backend, a 2-core Intel Xeon VM, in one process (medians of runs of 200 back-to-back calls,
``numba.set_num_threads``): one image through LeNet-5's ``predict`` 0.27 ms on one thread against
0.34 ms on the pool, the mobile preset's 0.50 against 0.70, but the seed model's 1.27 against
0.76; LeNet-5's train step at batch 32 5.3 against 4.3-5.0 ms. The same machine, measured half an
hour earlier, had one thread ahead on most of these: no fixed threshold fits every machine (nor
every hour of a shared one). So :class:`ThreadPicker` measures, in the process that runs the
model: per kind of pass and batch size it
times a few calls on the pool and as many on one thread, in alternating blocks (a block's first
call is not timed), and keeps the faster (one thread only when clearly faster: by its median and by
its fastest call).

Why that is safe: every numba kernel computes the same bits for any thread count (the reductions
are split by fixed groups, not by thread; ``tests/kernels/numba`` checks it, and training is tested
bitwise-equal for 1 and 2 threads), so the choice changes the time of a pass, never its result.

Only the numba backend has a pool to pick for (the numpy backend's passes run as they are), and
only when it has more than one thread. ``MINICNN_THREAD_PICK=0`` (or ``off``) turns picking off:
every pass then runs on the threads numba is set to, as before.
"""

from __future__ import annotations

import os
import threading
import time
from statistics import median

from . import get_backend

__all__ = ["ThreadPicker", "TRIALS", "CALLS_TO_CHOOSE", "picking_enabled"]

#: the trials: ROUNDS rounds of a block of BLOCK calls on the pool, then BLOCK on one thread; the
#: first call of each block is not timed (it pays the switch), so each candidate gets
#: ROUNDS * (BLOCK - 1) samples of back-to-back calls, as a pass then runs (measured: a switch
#: before every call costs a few %: LeNet-5, one image, 0.36 ms on the pool against 0.34 back to
#: back, 0.30 on one thread against 0.27)
#: (4 rounds, not 2: with 4 samples a side, two slow pool calls in a burst of another process's
#: work were enough to pick one thread for LeNet-5's predict at batch 1000, which then ran 1.5x
#: slower than on the pool, in a 2-core AMD EPYC VM whose pass times vary by +-30%)
ROUNDS = 4
BLOCK = 3
#: one thread is chosen only when both its median and its fastest sample are below this
#: fraction of the pool's: a close call keeps the pool (what ran before picking existed), and a
#: burst of noise on one side's samples moves at most one of the two statistics
MARGIN = 0.95
#: calls a key needs before its choice holds: an untimed first one (it compiles kernels, allocates
#: and faults in buffers), then the trials
CALLS_TO_CHOOSE = 1 + 2 * ROUNDS * BLOCK
#: samples per candidate
TRIALS = ROUNDS * (BLOCK - 1)
#: keys (kind of pass, batch size) remembered per picker; later ones run on the pool unpicked
MAX_KEYS = 64
#: the environment variable that turns picking off
ENV = "MINICNN_THREAD_PICK"
_OFF = ("0", "off", "false", "no")

#: the clock the trials are timed with
_clock = time.perf_counter

#: set while a picked pass runs on this thread: a pass inside it (the forward of a train step)
#: runs on the threads already chosen
_inside = threading.local()


def picking_enabled(environ=os.environ) -> bool:
    """False when ``MINICNN_THREAD_PICK`` is 0/off/false/no (read at each call: cheap)."""
    return environ.get(ENV, "").strip().lower() not in _OFF


def _pool_control():
    """(get, set) of the active backend's thread count, or None when it has no pool to pick."""
    backend = get_backend()
    get, put = getattr(backend, "get_num_threads", None), getattr(backend, "set_num_threads", None)
    return (get, put) if get is not None and put is not None else None


def _one_is_faster(one: list[float], pool: list[float]) -> bool:
    """Whether one thread clearly beat the pool: median and fastest sample both below
    :data:`MARGIN` times the pool's."""
    return median(one) < MARGIN * median(pool) and min(one) < MARGIN * min(pool)


class _Trial:
    """The samples of one key, and its choice once made."""

    __slots__ = ("calls", "one", "pool", "choice")

    def __init__(self):
        self.calls = 0
        self.one: list[float] = []
        self.pool: list[float] = []
        self.choice = None  # 1: the calling thread; 0: the pool


class ThreadPicker:
    """Runs passes keyed by (kind, batch size) on one thread or on the pool, whichever its trials
    measured faster (see the module docstring). One per model; not shared between processes."""

    def __init__(self):
        self._keys: dict = {}
        self._lock = threading.Lock()

    def __deepcopy__(self, memo):
        """A copy of a model (the explorer's twin, the warm-up's clone) measures for itself."""
        return ThreadPicker()

    def run(self, key, fn):
        """``fn()``, on the threads chosen for ``key`` (while choosing: on the trial's)."""
        if getattr(_inside, "on", False) or not picking_enabled():
            return fn()
        control = _pool_control()
        if control is None:
            return fn()
        get, put = control
        pool = int(get())
        if pool <= 1:
            return fn()
        with self._lock:
            trial = self._keys.get((key, pool))
            if trial is None:
                if len(self._keys) >= MAX_KEYS:
                    return fn()
                trial = self._keys[(key, pool)] = _Trial()
            trial.calls += 1
            k = trial.calls
        if trial.choice is not None:
            one, timed = trial.choice == 1, False
        elif k == 1:
            one, timed = False, False
        else:
            block, pos = divmod(k - 2, BLOCK)  # pool blocks, then one-thread blocks, in turn
            one, timed = block % 2 == 1, pos > 0
        _inside.on = True
        if one:
            put(1)
        try:
            t0 = _clock()
            out = fn()
            dt = _clock() - t0
        finally:
            if one:
                put(pool)
            _inside.on = False
        if timed:
            with self._lock:
                (trial.one if one else trial.pool).append(dt)
                if trial.choice is None and len(trial.one) >= TRIALS and len(trial.pool) >= TRIALS:
                    trial.choice = 1 if _one_is_faster(trial.one, trial.pool) else 0
        return out

    def choices(self) -> dict:
        """{(kind, batch): {"threads": "one" | "pool" | None (still measuring), "pool": N,
        "one_ms": median, "pool_ms": median}} for every key seen: what ran, for reports."""
        out = {}
        with self._lock:
            for (key, pool), t in self._keys.items():
                picked = None if t.choice is None else ("one" if t.choice == 1 else "pool")
                out[key] = {"threads": picked,
                            "pool": pool,
                            "one_ms": round(median(t.one) * 1e3, 4) if t.one else None,
                            "pool_ms": round(median(t.pool) * 1e3, 4) if t.pool else None}
        return out
