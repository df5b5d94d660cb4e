"""Serial numba kernels run on numba's thread count from Python threads, instead of ``parallel=True``.

Why: a ``parallel=True`` kernel is compiled twice over. numba types and lowers the function, then
outlines the ``prange`` body into a gufunc that goes through a second full compile, which links in
every jitted callee (im2col, BLAS wrappers, relu's rule) and optimises them again at O3.
``conv._conv_bwd_gemm`` took 3.1 s to compile cold as a parfor and 1.0 s as the same body in a
serial ``@njit(nogil=True)`` kernel over a range of its groups. Both ran in 29-31 ms at the seed's
conv2 shapes, and gave the same bits (Zen 3, float32, batch 100). The price is the hand-off: a
call split over two Python threads costs ~20 us (a sleeping thread's wake-up) against ~2 us for
numba's OpenMP launch, so this is for kernels whose calls take tens of microseconds or more (the
im2col + GEMM conv and dense, the planar first layer, the FMA tiles of conv and dense, the ordered
group sums after them, and the batch norm, depthwise and max-pooling passes), and a call with
little work (``config.FANOUT_MIN_FLOPS``: a batch of one) stays on the calling thread. The
elementwise kernels, with their microsecond calls, stay on ``prange``.

Work items are split into contiguous blocks, one per worker, as numba's static schedule splits a
``prange``. The kernels decide their partial sums by the shapes only, never by the block bounds,
so results are bitwise equal for any thread count. A kernel gets ``(..., lo, hi, worker)``: its
items ``lo <= item < hi`` and the worker's index (for per-thread scratch, sized by
``numba.get_num_threads()``). The range comes last so that :func:`.info.trace_kernels` does not
take a bound for a mode argument.

Tiers: :func:`blocks` (the split), :func:`_workers` (daemon threads, each blocked on its own
``queue.SimpleQueue``: a hand-off measured at ~20 us, against 40-55 us through a
``ThreadPoolExecutor``'s futures), :func:`run` (the launch, block 0 on the calling thread).
"""

from __future__ import annotations

import os
import queue
import threading

import numba

from . import config

__all__ = ["blocks", "run"]

_lock = threading.Lock()
#: the worker threads' job queues (worker w >= 1 reads _queues[w - 1]) and the process they run in
_queues: list[queue.SimpleQueue] = []
_queues_pid: int | None = None


def blocks(items: int, workers: int) -> list[tuple[int, int]]:
    """``workers`` contiguous (lo, hi) ranges covering 0..items-1 in order, sizes differing by at
    most one (the larger ones first); ``min(workers, items)`` of them, at least one."""
    workers = max(1, min(workers, items))
    base, extra = divmod(items, workers)
    out, lo = [], 0
    for w in range(workers):
        hi = lo + base + (w < extra)
        out.append((lo, hi))
        lo = hi
    return out


def _serve(jobs: queue.SimpleQueue) -> None:
    """A worker thread: run each (kernel, args, results) job, put None or the error on results."""
    while True:
        kernel, args, results = jobs.get()
        try:
            kernel(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, which raises it
            results.put(exc)
        else:
            results.put(None)


def _workers(count: int) -> list[queue.SimpleQueue]:
    """The job queues of at least ``count`` worker threads (daemons, started on first use). Threads
    started before a fork do not exist in the child, so a new process starts its own."""
    global _queues, _queues_pid
    with _lock:
        if _queues_pid != os.getpid():
            _queues, _queues_pid = [], os.getpid()
        while len(_queues) < count:
            jobs = queue.SimpleQueue()
            threading.Thread(target=_serve, args=(jobs,), name=f"minicnn-fanout-{len(_queues) + 1}",
                             daemon=True).start()
            _queues.append(jobs)
        return _queues[:count]


def element_work(per_element: float, *arrays) -> float:
    """A pass's ``work`` for :func:`run`: ``per_element`` (measured per float32 element, in the
    unit of ``config.FANOUT_MIN_FLOPS``) times the elements of ``arrays``; float64 counts twice
    (half the vector lanes, twice the bytes)."""
    return per_element * sum(a.size for a in arrays) * (arrays[0].itemsize // 4)


def run(kernel, items: int, *args, work: float) -> None:
    """``kernel(*args, lo, hi, worker)`` for each block of :func:`blocks` (items,
    ``numba.get_num_threads()``), block 0 on the calling thread and the others on worker threads,
    and back when every block is done. ``kernel`` must release the GIL (``@njit(nogil=True)``) to run
    in parallel. ``work``: the call's floating-point operations (or their equivalent); under
    ``config.FANOUT_MIN_FLOPS`` all the items are one call on this thread (same bits: the blocks
    never change the result).

    An error raised by a block is raised here once every block has finished (block 0's first, then
    the workers' in the order they finished). A KeyboardInterrupt while waiting is raised only
    after the other blocks have finished too, so no thread is still writing the outputs when the
    caller unwinds.
    """
    parts = blocks(items, numba.get_num_threads() if work >= config.FANOUT_MIN_FLOPS else 1)
    if len(parts) == 1:
        kernel(*args, 0, items, 0)
        return
    results = _results()
    for w, jobs in enumerate(_workers(len(parts) - 1), start=1):
        jobs.put((kernel, (*args, parts[w][0], parts[w][1], w), results))
    errors: list[BaseException] = []
    try:
        kernel(*args, parts[0][0], parts[0][1], 0)
    except BaseException as exc:  # noqa: BLE001 - raised below, after the other blocks
        errors.append(exc)
    interrupt = None
    pending = len(parts) - 1
    while pending:
        try:
            err = results.get()
        except KeyboardInterrupt as exc:  # the blocks still write the outputs: wait, then raise
            interrupt = interrupt or exc
            continue
        pending -= 1
        if err is not None:
            errors.append(err)
    if errors:
        raise errors[0]
    if interrupt is not None:
        raise interrupt


def _results() -> queue.SimpleQueue:
    """Where a call's blocks report (one queue per call; a seam for the tests)."""
    return queue.SimpleQueue()
