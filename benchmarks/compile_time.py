"""numba compile time: a fresh process with an empty ``NUMBA_CACHE_DIR`` (the first-ever run:
every kernel compiles), then a second process on the now-warm cache (kernels load from it).
Per model: the first train step and the first ``predict`` minus their steady-state times.
The parent sets ``NUMBA_CACHE_DIR`` to a temporary directory for both processes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from . import models
from . import ops as ops_mod
from .timing import measure


def worker(args: dict) -> dict:
    t0 = time.perf_counter()
    import minicnn

    minicnn.use_backend("numba")
    from minicnn.kernels import numba_backend  # noqa: F401 - imported by use_backend; timed here

    out = {"import_s": time.perf_counter() - t0, "cache_dir": os.environ.get("NUMBA_CACHE_DIR"),
           "dtype": args["dtype"], "batch": args["batch"], "models": {}}
    for spec in args["specs"]:
        model = models.compiled(spec, args["dtype"], args["input_shape"], args["num_classes"], seed=0)
        x, y = ops_mod.batch_data(model, args["batch"])
        t = time.perf_counter()
        model.train_on_batch(x, y)
        first = time.perf_counter() - t
        t = time.perf_counter()
        model.predict(x, batch_size=args["batch"])
        first_pred = time.perf_counter() - t
        steady = measure(lambda: model.train_on_batch(x, y), repeats=5, warmup=1)["median_ms"] / 1e3
        pred = measure(lambda: model.predict(x, batch_size=args["batch"]), repeats=3, warmup=1)["median_ms"] / 1e3
        out["models"][spec["label"]] = {"first_step_s": first, "steady_step_s": steady,
                                        "first_step_overhead_s": first - steady, "first_predict_s": first_pred,
                                        "first_predict_overhead_s": first_pred - pred}
    cache = os.environ.get("NUMBA_CACHE_DIR")
    out["cached_functions"] = len(list(Path(cache).rglob("*.nbi"))) if cache else None
    return out
