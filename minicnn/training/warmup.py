"""Compile a model's numba kernels in a background thread, off the critical path.

numba compiles a kernel on its first call (for the dtype and the array kinds it is called with)
and caches it on disk; the first-ever run of a model therefore pays its kernels' compile time in
its first training step. :class:`Warmup` moves that into a thread that runs while the caller does
something else: ``minicnn train`` starts it right after building the model and then reads and
decodes the dataset (several seconds for MNIST), joining it before the first epoch.

The thread trains a *deep copy* of the compiled model for one step on a zero batch of the real
batch size (and evaluates one batch of each evaluation batch size), so exactly the kernels, dtypes
and shape-dependent paths (tiles, GEMM, serial/parallel) of the real run are compiled, and nothing
of the model itself, its weights, its optimizer state or its RNGs, changes. It evaluates rather
than predicts because ``evaluate`` runs a whole batch through the layers (1,000 samples at the end
of ``minicnn train``: the dense layers take BLAS there), while ``predict`` cuts it into chunks of
at most 128 (the tiles): warming ``predict`` left the evaluation's kernels to compile after
training (measured: ``dense._dense_fwd`` and ``blas.gemm``). With the numpy backend (nothing to
compile) it does nothing. An exception in the thread is raised again by :meth:`Warmup.join`.
"""

from __future__ import annotations

import copy
import threading
import time

import numpy as np

from ..kernels import get_backend

__all__ = ["Warmup", "needs_warmup"]


def needs_warmup() -> bool:
    """Whether the active backend compiles kernels (the numba backend with JIT on)."""
    backend = get_backend()
    if backend.NAME != "numba":
        return False
    import numba  # the numba backend is loaded, so numba is

    return not numba.config.DISABLE_JIT


class Warmup:
    """One training step and one ``evaluate`` batch per evaluation batch size of a copy of
    ``model``, in a background thread.

    ``model`` must be compiled (optimizer and loss: the step runs them) and built with its input
    shape; ``batch_size`` is the training batch size, ``predict_batch`` the evaluation batch size
    (0: none) and ``eval_batches`` more of them (a validation split's). :meth:`start` returns
    self; :meth:`join` waits and returns the thread's seconds (or raises the exception the thread
    raised)."""

    def __init__(self, model, batch_size: int, predict_batch: int = 0, eval_batches=()):
        if getattr(model, "optimizer", None) is None:
            raise ValueError("Warmup needs a compiled model (call model.compile first)")
        self.model = model
        self.batch_size = int(batch_size)
        self.predict_batch = int(predict_batch)
        sizes = [self.predict_batch] + [int(b) for b in eval_batches]
        self.eval_batches = tuple(dict.fromkeys(b for b in sizes if b > 0))  # in order, no repeats
        self.seconds = None
        self.error = None
        self._thread = None

    def _run(self) -> None:
        t0 = time.perf_counter()
        try:
            clone = copy.deepcopy(self.model)
            shape = tuple(clone.input_shape)
            classes = int(clone.layers[-1].output_shape[-1])
            x = np.zeros((self.batch_size, *shape), dtype=clone.dtype)
            y = np.zeros((self.batch_size, classes), dtype=clone.dtype)
            y[:, 0] = 1
            clone.train_on_batch(x, y)
            for n in self.eval_batches:
                ye = np.zeros((n, classes), dtype=clone.dtype)
                ye[:, 0] = 1
                clone.evaluate(np.zeros((n, *shape), dtype=clone.dtype), ye, batch_size=n)
        except BaseException as e:  # noqa: BLE001 - re-raised by join() in the caller's thread
            self.error = e
        finally:
            self.seconds = time.perf_counter() - t0

    def start(self) -> "Warmup":
        if self._thread is not None:
            raise RuntimeError("Warmup.start() called twice")
        self._thread = threading.Thread(target=self._run, name="minicnn-warmup", daemon=True)
        self._thread.start()
        return self

    def join(self) -> float:
        """Wait for the thread; its seconds, or its exception raised here."""
        if self._thread is None:
            raise RuntimeError("Warmup.join() before start()")
        self._thread.join()
        if self.error is not None:
            raise RuntimeError(f"kernel warm-up failed: {self.error!r}") from self.error
        return self.seconds
