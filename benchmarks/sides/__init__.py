"""One module per framework ("side"): how it runs a model's layers, a train step and inference.

Each side is a class with ``info()``, ``prepare(model)``, ``ops(handle, model, batch, repeats)``,
``train_step(handle, model, batch, repeats)``, ``infer(handle, model, batch, repeats)`` and
``latency(handle, model, repeats)`` (batch 1: {call name: timing with median and p95}).
:func:`drive` runs one side over every requested model, dtype and batch size, in the worker
process of that side; the minicnn model built from the spec is the source of the architecture,
the weights and the data for every side.
"""

from __future__ import annotations

import traceback

from .. import models


def drive(side, args: dict) -> dict:
    """{"info": ..., "models": {label: {dtype: {"batches": {B: {...}}, "infer": {B: ...},
    "latency": {call: ...}}}}}."""
    out = {"info": side.info(), "models": {}}
    sections = set(args.get("sections", ("ops", "steps")))
    for spec in args["specs"]:
        for dtype in args["dtypes"]:
            entry = out["models"].setdefault(spec["label"], {}).setdefault(dtype, {"batches": {}, "infer": {}})
            try:
                model = models.compiled(spec, dtype, args["input_shape"], args["num_classes"], seed=0)
                handle = side.prepare(model)
            except Exception as exc:  # noqa: BLE001 - one model's failure is reported, not fatal
                entry["error"] = _error(exc)
                continue
            for batch in args["batches"]:
                b = entry["batches"].setdefault(str(batch), {})
                for what in ("ops", "train_step"):
                    if (what == "ops" and "ops" in sections and batch in args.get("ops_batches", [batch])
                            and dtype in args.get("ops_dtypes", [dtype])) or (what == "train_step" and "steps" in sections):
                        try:
                            b[what] = getattr(side, what)(handle, model, batch, args["repeats"])
                        except Exception as exc:  # noqa: BLE001
                            b[f"{what}_error"] = _error(exc)
            if "steps" in sections:
                for batch in args["infer_batches"]:
                    try:
                        entry["infer"][str(batch)] = side.infer(handle, model, batch, args["repeats"])
                    except Exception as exc:  # noqa: BLE001
                        entry["infer"][str(batch)] = {"error": _error(exc)}
            if "latency" in sections:
                try:
                    entry["latency"] = side.latency(handle, model, args["repeats"])
                except Exception as exc:  # noqa: BLE001
                    entry["latency"] = {"error": _error(exc)}
    return out


def _error(exc) -> str:
    return f"{type(exc).__name__}: {exc}\n" + "".join(traceback.format_exc(limit=-3))[-1500:]
