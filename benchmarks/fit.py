"""A real training run and its peak memory: one subprocess per framework loads the training set
through ``minicnn.datasets`` (which honours ``MINICNN_DATA_DIR``/``MINICNN_OFFLINE``), holds it as
floats NHWC + one-hot, and fits the model for one epoch (``--quick``: a subset). Peak RSS is the
process's ``ru_maxrss``. If the dataset cannot be loaded, random data of the model's shapes is
used and the result says so.
"""

from __future__ import annotations

import time

import numpy as np

from . import models
from .timing import peak_rss_mb, rss_mb


def load_training_set(name: str, path, dtype):
    """(x, y one-hot, description) of the named dataset's training split."""
    from minicnn import datasets

    (x, y), _ = datasets.load(name, path)
    classes = int(y.max()) + 1
    return datasets.to_float_nhwc(x, dtype), datasets.one_hot(y, classes, dtype), name


def dataset_shapes(name: str, path) -> dict:
    """Per-sample input shape, number of classes and training-set size of a dataset (loads it)."""
    from minicnn import datasets

    (x, y), _ = datasets.load(name, path)
    shape = list(x.shape[1:]) + ([1] if x.ndim == 3 else [])
    return {"input_shape": shape, "num_classes": int(y.max()) + 1, "train_samples": int(x.shape[0])}


def worker(args: dict) -> dict:
    fw = args["framework"]
    dtype = args["dtype"]
    rss0 = rss_mb()
    if fw == "tensorflow":
        from .sides.tf_side import setup

        setup()
    import minicnn

    minicnn.use_backend("numpy" if fw == "tensorflow" else fw.split("-", 1)[1])
    rss_imports = rss_mb()
    try:
        x, y, source = load_training_set(args["dataset"], args.get("data_dir"), dtype)
    except Exception as exc:  # noqa: BLE001 - any failure falls back to random data, flagged
        rng = np.random.default_rng(0)
        n = args.get("fallback_samples", 60000)
        x = rng.random((n, *args["input_shape"])).astype(dtype)
        y = np.eye(args["num_classes"], dtype=dtype)[rng.integers(0, args["num_classes"], n)]
        source = f"random data of the model's shapes ({type(exc).__name__}: {str(exc)[:300]})"
    rss_data = rss_mb()
    n = args["samples"] or x.shape[0]
    model = models.compiled(args["spec"], dtype, list(x.shape[1:]), y.shape[1], seed=0)
    t0 = time.perf_counter()
    if fw == "tensorflow":
        from reference.convert import to_keras

        kmodel = to_keras(model)
        kmodel.compile(optimizer="adam", loss=models.LOSS, metrics=["accuracy"])
        t0 = time.perf_counter()
        hist = kmodel.fit(x[:n], y[:n], batch_size=args["batch"], epochs=1, verbose=0, shuffle=True)
    else:
        hist = model.fit(x[:n], y[:n], batch_size=args["batch"], epochs=1, verbose=0, shuffle=True, seed=0)
    fit_s = time.perf_counter() - t0
    return {"framework": fw, "model": args["spec"]["label"], "dtype": dtype, "data": source,
            "samples_trained": int(n), "batch": args["batch"], "data_mb": (x.nbytes + y.nbytes) / 2**20,
            "rss_start_mb": rss0, "rss_after_imports_mb": rss_imports, "rss_after_data_mb": rss_data,
            "rss_end_mb": rss_mb(), "peak_rss_mb": peak_rss_mb(), "fit_seconds": fit_s,
            "epoch_loss": float(hist.history["loss"][-1])}
