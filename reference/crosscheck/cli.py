"""``minicnn crosscheck``'s work (the options are defined in :mod:`minicnn.cli.crosscheck`)."""

from __future__ import annotations

import json
import os

from minicnn import load_model
from minicnn.presets import build_preset

from .check import crosscheck
from .data import load_mnist_batch
from .framework_report import format_frameworks_report
from .frameworks import frameworks_check, parse_frameworks
from .report import format_report


def load_checked_model(args):
    """The model to check: ``--model FILE`` (with ``--preset`` as the architecture of a
    weights-only file) or a freshly initialised preset; it must map MNIST to 10 classes."""
    if args.model:
        if not os.path.exists(args.model):
            raise FileNotFoundError(f"model file {args.model!r} does not exist")
        arch = build_preset(args.preset) if args.preset else None
        model = load_model(args.model, architecture=arch)
    else:
        model = build_preset(args.preset or "seed", seed=args.seed)
    if tuple(model.input_shape) != (28, 28, 1) or model.output_shape[-1] != 10:
        raise ValueError(f"crosscheck feeds MNIST (28, 28, 1) -> 10 classes; model '{model.name}' "
                         f"is {model.input_shape} -> {model.output_shape}")
    return model


def run(args) -> int:
    """Check, print the report (and write it as JSON with ``--json``); exit status 0 when every
    judged quantity is within tolerance, 1 otherwise."""
    if args.batch < 1 or args.steps < 0:
        raise ValueError("--batch must be >= 1 and --steps >= 0")
    bisect = getattr(args, "bisect", False)
    bisect_rtol = getattr(args, "bisect_rtol", None)
    if bisect and args.steps < 1:
        raise ValueError("--bisect needs --steps >= 1")
    if bisect_rtol is not None and not (bisect and bisect_rtol > 0):
        raise ValueError(f"--bisect-rtol must be > 0 and given with --bisect, got {bisect_rtol}")
    bisect_every = getattr(args, "bisect_every", None)
    if bisect_every is not None and not (bisect and bisect_every >= 1):
        raise ValueError(f"--bisect-every must be >= 1 and given with --bisect, got {bisect_every}")
    model = load_checked_model(args)
    if getattr(args, "frameworks", None):
        return run_frameworks(args, model)
    n = args.batch * max(1, args.steps)
    x, y, where = load_mnist_batch(n, args.sample, args.seed, args.data_dir, args.dtype)
    where = f"{where}; layer check on the first {args.batch}"
    report = crosscheck(model, x, y, dtype=args.dtype, steps=args.steps, optimizer=args.optimizer,
                        seed=args.seed, batch=args.batch, data_source=where, threads=args.threads,
                        keras_floatx=getattr(args, "keras_floatx", None), bisect=bisect,
                        bisect_rtol=bisect_rtol, bisect_every=bisect_every)
    print(format_report(report, histograms=getattr(args, "histograms", False)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        print(f"report written to {args.json}")
    return 0 if report["summary"]["passed"] else 1


def run_frameworks(args, model) -> int:
    """``--frameworks``: minicnn and Keras on each named backend against float64
    (:mod:`.frameworks`); exit status 1 when a side is outside a row's tolerance."""
    names = parse_frameworks(args.frameworks)
    n = args.batch * max(1, args.steps)
    x, y, where = load_mnist_batch(n, args.sample, args.seed, args.data_dir, args.dtype)
    where = f"{where}; layer check on the first {args.batch}"
    report = frameworks_check(model, x, y, names, dtype=args.dtype, steps=args.steps, optimizer=args.optimizer,
                              seed=args.seed, batch=args.batch, data_source=where, threads=args.threads or 1)
    text = format_frameworks_report(report)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        print(f"report written to {args.json}")
    return 0 if report["summary"]["passed"] else 1
