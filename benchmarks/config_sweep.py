"""Does this machine want other block sizes? The numba backend's run-time constants swept, in one
process, interleaved, as ratios to the shipped value.

``python -m benchmarks.config_sweep --param DENSE_TILE_MAX_SAMPLES=0,256,4096
--case predict:seed:1000 --case step:seed:100 [--rounds 5] [--calls 10] [--dtype float32]
[--json FILE]``

The constants of :mod:`minicnn.kernels.numba.config` named in :data:`TUNABLES` are read by the
Python tier at each call (shapes of work items, path thresholds), so one process can set each
value in turn and time the same compiled kernels: no recompile, no second process whose cache or
page state differs. A case is ``step:PRESET:BATCH`` (``train_on_batch`` on synthetic data,
:func:`benchmarks.models.preset_step_case`), ``predict:PRESET:BATCH`` (``model.predict`` of BATCH
images, ``batch_size=BATCH``, in predict's own cache-sized chunks) or ``latency:PRESET``
(``predict`` of one image). Each round times every
value of a parameter (the order rotated from round to round, so no value always runs first after
a change) for ``calls`` calls after two warm-up calls, and takes the median; the ratio of a value
is its median over the shipped value's in the same round, and the summary is the median and range
of those ratios over the rounds. Thread picking is off (``MINICNN_THREAD_PICK=0``) unless
``--pick``: the picker would decide once, for the first value, and every other value would run on
that choice.

Most of these constants change how sums are cut into blocks, so a different value gives
different float32 bits (still deterministic for any thread count); this measures speed only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

#: the constants this sweep may set: name -> (smallest allowed value, value must be a multiple of)
TUNABLES = {
    "CHUNK_ROWS": (1, 1),            # conv im2col chunk (the GEMM path: CPUs without AVX-512, dilation)
    "MAX_GROUPS": (1, 1),            # partial sums of a conv's dkernel
    "DENSE_KSPLIT": (1, 1),          # slices of the dense forward's inner dimension
    "DENSE_MIN_KSLICE": (1, 1),
    "DENSE_TILE_ROWS": (16, 16),     # kernel rows per dense tile block (the backward transposes 16 x 16)
    "DENSE_TILE_MAX_SAMPLES": (0, 1),  # dense forward: tiles up to this many samples, else BLAS
    "DENSE_BLOCK": (1, 1),
    "FANOUT_MIN_FLOPS": (0, 1),      # less work than this stays on the calling thread
    "BN_BLOCK": (1, 1),              # values per batch-norm row block
    "BN_SMALL": (0, 1),              # batch norm below this many values runs on the calling thread
}

KINDS = ("step", "predict", "latency")
MAX_BATCH = 4096


def parse_param(text: str) -> tuple[str, list[int]]:
    """``NAME=v1,v2,...`` -> (NAME, [v1, v2, ...]), checked against :data:`TUNABLES`."""
    name, sep, values = text.partition("=")
    name = name.strip()
    if not sep or name not in TUNABLES:
        raise ValueError(f"--param {text!r}: expected NAME=v1,v2,... with NAME one of {', '.join(TUNABLES)}")
    lo, mult = TUNABLES[name]
    out = []
    for v in values.split(","):
        try:
            n = int(v)
        except ValueError:
            raise ValueError(f"--param {name}: {v!r} is not an integer") from None
        if n < lo or n % mult:
            raise ValueError(f"--param {name}: {n} must be >= {lo}" + (f" and a multiple of {mult}" if mult > 1 else ""))
        out.append(n)
    if len(set(out)) != len(out):
        raise ValueError(f"--param {name}: a value is given twice")
    return name, out


def parse_case(text: str) -> tuple[str, str, int]:
    """``step:PRESET:BATCH`` / ``predict:PRESET:BATCH`` / ``latency:PRESET`` -> (kind, preset, batch)."""
    from minicnn.presets import PRESETS

    parts = text.split(":")
    kind = parts[0]
    if kind not in KINDS or len(parts) != (2 if kind == "latency" else 3):
        raise ValueError(f"--case {text!r}: expected step:PRESET:BATCH, predict:PRESET:BATCH or latency:PRESET")
    if parts[1] not in PRESETS:
        raise ValueError(f"--case {text!r}: unknown preset {parts[1]!r} (one of {', '.join(PRESETS)})")
    if kind == "latency":
        return kind, parts[1], 1
    try:
        batch = int(parts[2])
    except ValueError:
        raise ValueError(f"--case {text!r}: batch {parts[2]!r} is not an integer") from None
    if not 1 <= batch <= MAX_BATCH:
        raise ValueError(f"--case {text!r}: batch {batch} is outside 1..{MAX_BATCH}")
    return kind, parts[1], batch


def case_fn(kind: str, preset: str, batch: int, dtype: str):
    """A no-argument callable running the case once."""
    from benchmarks.models import preset_step_case

    model, x, y = preset_step_case(preset, dtype, batch)
    if kind == "step":
        return lambda: model.train_on_batch(x, y)
    return lambda: model.predict(x, batch_size=batch, verbose=0)


def sweep(name: str, values: list[int], fn, rounds: int, calls: int) -> dict:
    """Per value: the medians of each round (ms) and the ratios to the shipped value's."""
    from minicnn.kernels.numba import config

    from .timing import measure_latency  # back-to-back calls after a warm-up, no sample discarded

    shipped = getattr(config, name)
    vals = values if shipped in values else [shipped, *values]
    per = {v: [] for v in vals}
    try:
        for r in range(rounds):
            k = r % len(vals)
            for v in vals[k:] + vals[:k]:
                setattr(config, name, v)
                per[v].append(measure_latency(fn, calls, warmup=2)["median_ms"])
    finally:
        setattr(config, name, shipped)
    out = {}
    for v in vals:
        ratios = [a / b for a, b in zip(per[v], per[shipped])]
        out[str(v)] = {"shipped": v == shipped, "ms": per[v], "median_ms": statistics.median(per[v]),
                       "ratio_to_shipped": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}
    return out


def _run(a, params, cases) -> list[dict]:
    """Every case x parameter swept; prints the tables, writes --json; returns the results."""
    import minicnn
    from benchmarks.machine import blas_info, machine_info

    minicnn.use_backend("numba")
    mach, blas = machine_info(), blas_info()
    print(f"CPU {mach.get('cpu_model')} ({mach.get('microarchitecture')}); BLAS core {blas.get('core_type')}; "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}; {a.dtype}; thread picking "
          f"{'on' if a.pick else 'off'}", flush=True)
    results = []
    for kind, preset, batch in cases:
        fn = case_fn(kind, preset, batch, a.dtype)
        for name, values in params:
            got = sweep(name, values, fn, a.rounds, a.calls)
            label = f"{kind} {preset}" + ("" if kind == "latency" else f" batch {batch}")
            results.append({"case": label, "param": name, "values": got})
            print(f"\n{label}, {name} ({a.rounds} rounds x {a.calls} calls):")
            print("| value | median ms | time / shipped value's (median, range) |\n|---|---|---|")
            for v, g in got.items():
                print(f"| {v}{' (shipped)' if g['shipped'] else ''} | {g['median_ms']:.3f} | "
                      f"{g['ratio_to_shipped']:.3f} ({g['min']:.3f}-{g['max']:.3f}) |", flush=True)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"args": vars(a) | {"json": str(a.json)}, "machine": mach, "blas": blas,
                                      "results": results}, indent=1, default=str))
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--param", action="append", required=True, help="NAME=v1,v2,... (repeatable)")
    ap.add_argument("--case", action="append", required=True, help="step:PRESET:BATCH, predict:PRESET:BATCH, "
                                                                 "latency:PRESET (repeatable)")
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=10)
    ap.add_argument("--pick", action="store_true", help="leave the thread picker on")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    try:
        params = [parse_param(p) for p in a.param]
        cases = [parse_case(c) for c in a.case]
    except ValueError as e:
        ap.error(str(e))
    if a.rounds < 1 or a.calls < 1:
        ap.error("--rounds and --calls must be >= 1")
    from minicnn import kernels

    saved_pick, saved_backend = os.environ.get("MINICNN_THREAD_PICK"), kernels.backend_name()
    if not a.pick:
        os.environ["MINICNN_THREAD_PICK"] = "0"
    try:
        _run(a, params, cases)
    finally:  # a caller in the same process (a test) gets its settings back
        kernels.use_backend(saved_backend)
        if saved_pick is None:
            os.environ.pop("MINICNN_THREAD_PICK", None)
        else:
            os.environ["MINICNN_THREAD_PICK"] = saved_pick
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
