"""Every measurement runs in a fresh interpreter, one at a time, so thread pools never share the
cores and peak-memory figures never mix:

    python -m benchmarks.workers NAME ARGS_JSON RESULT_PATH

:func:`run_worker` starts one and returns its JSON result, or ``{"error": ...}``, with its wall
and CPU seconds (``wall_s``, ``cpu_s``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _peak(args):
    from . import peak

    return peak.worker(args)


def _minicnn(args):
    from .sides import drive
    from .sides.minicnn_side import MinicnnSide

    return drive(MinicnnSide(args["backend"], tiles=args.get("tiles", True)), args)


def _tf(args):
    from .sides import drive
    from .sides.tf_side import TFSide

    return drive(TFSide(), args)


def _torch(args):
    from .sides import drive
    from .sides.torch_side import TorchSide

    return drive(TorchSide(), args)


def _fit(args):
    from . import fit

    return fit.worker(args)


def _compile(args):
    from . import compile_time

    return compile_time.worker(args)


def _steps(args):
    """``args["steps"]`` train steps of one model (what ``perf stat`` counts in the traffic section)."""
    import minicnn

    from . import models, ops

    minicnn.use_backend(args.get("backend", "numba"))
    m = models.compiled(args["spec"], args["dtype"], args["input_shape"], args["num_classes"], seed=0)
    x, y = ops.batch_data(m, args["batch"])
    for _ in range(args["steps"]):
        m.train_on_batch(x, y)
    return {"steps": args["steps"]}


WORKERS = {"steps": _steps, "peak": _peak, "minicnn": _minicnn, "tf": _tf, "torch": _torch, "fit": _fit, "compile": _compile}


def run_worker(name: str, wargs: dict, env_extra: dict | None = None, timeout: float = 3600) -> dict:
    """Run worker ``name`` in a fresh interpreter; its JSON result (plus ``wall_s``) or an error."""
    with tempfile.TemporaryDirectory() as tmp:
        res_path = os.path.join(tmp, "result.json")
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.update(env_extra or {})
        cmd = [sys.executable, "-m", "benchmarks.workers", name, json.dumps(wargs, default=json_default),
               res_path]
        t0, c0 = time.perf_counter(), children_cpu_s()
        try:
            p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout} s"}
        wall, cpu = time.perf_counter() - t0, children_cpu_s() - c0
        if p.returncode != 0 or not os.path.exists(res_path):
            return {"error": f"exit {p.returncode}: {p.stderr.strip()[-3000:]}", "wall_s": wall, "cpu_s": cpu}
        with open(res_path) as f:
            out = json.load(f)
        out["wall_s"], out["cpu_s"] = wall, cpu
        return out


def children_cpu_s() -> float:
    """CPU seconds (user + system) of this process's finished children: a worker's CPU time, which
    unlike its wall time hardly depends on what else the machine runs (for duration estimates)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def main(argv=None):
    name, wargs, result = (argv if argv is not None else sys.argv[1:])[:3]
    out = WORKERS[name](json.loads(wargs))
    with open(result, "w") as f:
        json.dump(out, f, default=json_default)
    return 0


if __name__ == "__main__":
    sys.exit(main())
