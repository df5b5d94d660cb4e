"""minicnn (numba or numpy backend): each layer's own ``forward``/``backward``, ``train_on_batch``
and ``predict``, exactly as a user calls them; on the numba backend, which kernels each op ran
(``minicnn.kernels.numba.info.trace_kernels``, one extra call after the timed ones)."""

from __future__ import annotations

import os

from .. import ops as ops_mod
from ..timing import measure, measure_latency

#: glibc keeps freed blocks up to these sizes instead of unmapping them (and faulting them back in
#: on the next step); read at process start, so set for a subprocess only ("malloc" variant)
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(256 << 20)}


class MinicnnSide:
    def __init__(self, backend: str, tiles: bool = True):
        import minicnn

        self.backend = backend
        minicnn.use_backend(backend)
        self.tiles = tiles
        if backend == "numba" and not tiles:  # the im2col + GEMM alternative to the FMA tiles
            from minicnn.kernels import numba_backend

            if not hasattr(numba_backend, "_TILES"):
                raise RuntimeError("this minicnn has no numba_backend._TILES switch")
            numba_backend._TILES = False

    def info(self) -> dict:
        out = {"backend": self.backend, "tiles": self.tiles,
               "malloc_env": {k: os.environ.get(k) for k in MALLOC_ENV}}
        if self.backend == "numba":
            from minicnn.kernels import numba_backend

            if hasattr(numba_backend, "threading_info"):
                out["threading"] = numba_backend.threading_info()
        return out

    def prepare(self, model):
        return None

    def ops(self, handle, model, batch, repeats):
        cases, (y, z, fused) = ops_mod.cases(model, batch)
        res = {}
        for c in cases:
            layer = c.layer
            if hasattr(layer, "need_dx"):
                layer.need_dx = c.need_dx  # as Sequential.backward sets it in a train step
            fwd = measure(lambda: layer.forward(c.x, training=True), repeats["op"])
            layer.forward(c.x, training=True)  # the cache the backward reads
            back = layer.logits_backward if c.from_logits else layer.backward
            res[c.name] = {"fwd": fwd, "bwd": measure(lambda: back(c.dy), repeats["op"]),
                           "bwd_from_logits": c.from_logits}
            if self.backend == "numba":  # after the timed calls: every kernel is compiled
                res[c.name]["paths"] = {"fwd": self._trace(lambda: layer.forward(c.x, training=True)),
                                        "bwd": self._trace(lambda: back(c.dy))}
        loss = model.loss
        if fused:
            lf = lambda: loss.logits_loss_and_grad(y, z, need_grad=False)  # noqa: E731
            lb = lambda: loss.logits_loss_and_grad(y, z)  # noqa: E731
        else:
            lf = lambda: loss.loss_and_grad(y, z, need_grad=False)  # noqa: E731
            lb = lambda: loss.loss_and_grad(y, z)  # noqa: E731
        res[ops_mod.LOSS_OP] = {"fwd": measure(lf, repeats["op"]), "bwd": measure(lb, repeats["op"]),
                                "from_logits": fused}
        return res

    def _trace(self, fn) -> dict:
        """{"kernels": [...], "path": "FMA tiles" ...}: what one call of ``fn`` ran (numba only)."""
        from minicnn.kernels.numba import info

        with info.trace_kernels() as names:
            fn()
        return {"kernels": list(names), "path": info.path_of(names)}

    def _pick_calls(self) -> int:
        """Calls the numba backend's thread picker needs per pass before its choice holds
        (minicnn.kernels.threads; the numpy backend has no pool to pick)."""
        from minicnn.kernels.threads import CALLS_TO_CHOOSE

        return CALLS_TO_CHOOSE if self.backend == "numba" else 0

    def train_step(self, handle, model, batch, repeats):
        x, y = ops_mod.batch_data(model, batch)
        out = measure(lambda: model.train_on_batch(x, y), repeats["step"], warmup=max(3, self._pick_calls()))
        if self.backend == "numba":
            out["paths"] = self._trace(lambda: model.train_on_batch(x, y))
        return _with_threads(out, model, "train", batch)

    def latency(self, handle, model, repeats):
        """One image: ``model.predict(x1)`` (what a user calls), ``model(x1)`` and the bare
        ``model.forward(x1)`` (no argument checks, no output copy)."""
        x, _ = ops_mod.batch_data(model, 1, seed=3)
        n = repeats["latency"]
        out = {"predict": measure_latency(lambda: model.predict(x), n),
               "call": measure_latency(lambda: model(x), n),
               "forward": measure_latency(lambda: model.forward(x), n)}
        return _with_threads(out, model, "infer", 1)

    def infer(self, handle, model, batch, repeats):
        x, _ = ops_mod.batch_data(model, batch, seed=2)
        # every predict call runs each of its chunk sizes at least once: after this many warm-up
        # calls each has made its thread choice
        out = measure(lambda: model.predict(x, batch_size=batch), repeats["infer"], warmup=max(2, self._pick_calls()))
        from minicnn.model import PREDICT_CHUNK

        step = min(batch, PREDICT_CHUNK)
        chunks = sorted({step} | ({batch % step} if batch % step else set()))
        return _with_threads(out, model, "infer", *chunks)


def _with_threads(out, model, kind, *batches):
    """``out`` with ``threads``: what the model's thread picker chose for these passes
    (minicnn.kernels.threads), when it picked (the numba backend with more than one thread)."""
    got = model.thread_picker.choices()
    picked = {str(b): got[(kind, b)] for b in batches if (kind, b) in got}
    if picked:
        out["threads"] = picked
    return out
