"""fanout: the split of work items over threads, the launch, errors and interrupts."""

from __future__ import annotations

import ast
import importlib
import queue
import threading
import time
from pathlib import Path

import numba
import pytest

from minicnn.kernels.numba import config, fanout

PACKAGE = Path(fanout.__file__).parent


@pytest.mark.parametrize("items", [0, 1, 2, 3, 7, 64, 100])
@pytest.mark.parametrize("workers", [1, 2, 3, 8])
def test_blocks_cover_the_items_in_order_evenly(items, workers):
    parts = fanout.blocks(items, workers)
    assert len(parts) == max(1, min(items, workers))
    assert parts[0][0] == 0 and parts[-1][1] == items
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
    sizes = [hi - lo for lo, hi in parts]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


@pytest.fixture
def two_threads():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has one thread here (NUMBA_NUM_THREADS=1)")
    saved = numba.get_num_threads()
    numba.set_num_threads(2)
    yield
    numba.set_num_threads(saved)


def _recorder():
    calls, lock = [], threading.Lock()

    def kernel(tag, lo, hi, worker):
        with lock:
            calls.append((tag, lo, hi, worker, threading.get_ident()))
    return kernel, calls


def test_run_gives_each_worker_its_block_block_0_on_the_caller(two_threads):
    kernel, calls = _recorder()
    fanout.run(kernel, 9, "t", work=1e12)
    calls.sort(key=lambda c: c[3])
    assert [c[:4] for c in calls] == [("t", 0, 5, 0), ("t", 5, 9, 1)]
    assert calls[0][4] == threading.get_ident() != calls[1][4]


@pytest.mark.parametrize("items", [0, 1])
def test_one_item_or_none_is_one_call_on_the_caller(two_threads, items):
    kernel, calls = _recorder()
    fanout.run(kernel, items, "t", work=1e12)
    assert [c[:4] for c in calls] == [("t", 0, items, 0)] and calls[0][4] == threading.get_ident()


def test_little_work_is_one_call_on_the_caller(two_threads):
    kernel, calls = _recorder()
    fanout.run(kernel, 10, "t", work=config.FANOUT_MIN_FLOPS - 1)
    assert [c[:4] for c in calls] == [("t", 0, 10, 0)] and calls[0][4] == threading.get_ident()
    fanout.run(kernel, 10, "u", work=config.FANOUT_MIN_FLOPS)
    assert sorted(c[:4] for c in calls if c[0] == "u") == [("u", 0, 5, 0), ("u", 5, 10, 1)]


def test_one_thread_is_one_call(two_threads):
    numba.set_num_threads(1)
    kernel, calls = _recorder()
    fanout.run(kernel, 10, "t", work=1e12)
    assert [c[:4] for c in calls] == [("t", 0, 10, 0)]


def test_an_error_in_a_block_is_raised_after_every_block_finished(two_threads):
    done = threading.Event()

    def kernel(lo, hi, worker):
        if worker == 0:
            raise ValueError("block 0 failed")
        time.sleep(0.2)
        done.set()

    with pytest.raises(ValueError, match="block 0 failed"):
        fanout.run(kernel, 2, work=1e12)
    assert done.is_set()

    def worker_fails(lo, hi, worker):
        if worker == 1:
            raise RuntimeError("block 1 failed")

    with pytest.raises(RuntimeError, match="block 1 failed"):
        fanout.run(worker_fails, 2, work=1e12)


def test_an_interrupt_while_waiting_is_raised_after_the_blocks(two_threads, monkeypatch):
    """Ctrl-C during the wait must not leave a worker thread writing the outputs as the caller
    unwinds: the wait goes on, then the KeyboardInterrupt is raised."""
    done = threading.Event()

    class InterruptedOnce(queue.SimpleQueue):
        interrupted = False

        def get(self):
            if not InterruptedOnce.interrupted:
                InterruptedOnce.interrupted = True
                raise KeyboardInterrupt
            return super().get()

    def kernel(lo, hi, worker):
        if worker == 1:
            time.sleep(0.2)
            done.set()

    monkeypatch.setattr(fanout, "_results", InterruptedOnce)
    with pytest.raises(KeyboardInterrupt):
        fanout.run(kernel, 2, work=1e12)
    assert InterruptedOnce.interrupted and done.is_set()


def test_a_new_process_starts_its_own_workers(two_threads, monkeypatch):
    kernel, calls = _recorder()
    fanout.run(kernel, 2, "t", work=1e12)
    before = list(fanout._queues)
    monkeypatch.setattr(fanout, "_queues_pid", -1)  # as after a fork: the threads are gone
    fanout.run(kernel, 2, "u", work=1e12)
    assert fanout._queues and fanout._queues[0] is not before[0] and fanout._queues_pid > 0
    assert sorted(c[:4] for c in calls if c[0] == "u") == [("u", 0, 1, 0), ("u", 1, 2, 1)]


def _fanned_kernels():
    """(module, name) of every kernel the package passes to fanout.run, read from its source."""
    found = []
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "run"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "fanout"):
                assert isinstance(node.args[0], ast.Name), f"{path.name}: fanout.run's kernel by name"
                found.append((path.stem, node.args[0].id))
    return found


def test_every_fanned_out_kernel_releases_the_gil():
    """A kernel that holds the GIL would run its blocks one after the other (slower, still right):
    nothing else would catch it."""
    kernels = _fanned_kernels()
    # conv fwd/bwd, planar fwd/bwd, dense fwd/bwd, sum_groups, Adam, the activations and PReLU (3),
    # the pooling zoo (9)
    assert len(kernels) >= 20
    for mod, name in kernels:
        dispatcher = getattr(importlib.import_module(f"minicnn.kernels.numba.{mod}"), name)
        assert dispatcher.targetoptions.get("nogil") is True, f"{mod}.{name} holds the GIL"
        assert not dispatcher.targetoptions.get("parallel"), f"{mod}.{name} is a parfor"
