"""The zoo's element-wise and pooling kernels, numba against numpy, kernel by kernel.

    python -m benchmarks.zoo_ops [--quick] [--dtype float32[,float64]] [--only NAME[,NAME]] [--json PATH]

Each kernel is called directly (``minicnn.kernels.numba_backend`` and ``numpy_backend``) on the
shapes these ops see in the presets at batch 100 (activations on a conv output (100, 28, 28, 32)
and a dense one (100, 84); average pooling on LeNet's (100, 28, 28, 6); global pooling on
(100, 7, 7, 64); zero padding on (100, 28, 28, 1) and (100, 14, 14, 32)), after a warm-up call
(numba's compilation, numpy's first-touch), as the best of ``repeats`` calls. The per-layer
section of ``benchmarks.run`` (``ops``) times these kernels inside their layers (LeNet-5's tanh and
average pooling, the global pooling of allconv and mobile); this one isolates the kernels.

Prints a table (ms per call, and numpy / numba: above 1 numba is faster) and, with ``--json``,
writes the rows.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from .machine import machine_info

ACT_SHAPES = ((100, 28, 28, 32), (100, 84))
#: (name, forward args beyond z, what the backward takes besides dy: "y" or "z", backward args)
ACTIVATIONS = (
    ("tanh", (), "y", ()), ("sigmoid", (), "y", ()), ("softplus", (), "z", ()), ("silu", (), "z", ()),
    ("gelu", ("c",), "z", ("c",)), ("elu", ("alpha",), "z", ("alpha",)), ("selu", (), "y", ()),
    ("leaky_relu", ("slope",), "y", ("slope",)), ("capped_relu", ("capped",), "z", ("capped",)),
    ("prelu", ("palpha",), "z", ("palpha",)),
)


def _best(fn, repeats):
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def _params(kind, dt, shape):
    t = np.dtype(dt).type
    if kind == "c":
        return (t(np.float32(0.7071067811865476)),)
    if kind == "alpha":
        return (t(1.0),)
    if kind == "slope":
        return (t(np.float32(0.2)),)
    if kind == "capped":  # relu(max_value=6, threshold=0.5, negative_slope=0.1)
        return t(0.1), t(6.0), t(0.5), t(0.5)
    if kind == "palpha":  # PReLU's alpha shared over H and W (per channel)
        a_shape = (1,) * (len(shape) - 2) + (shape[-1],)
        return (np.full(a_shape, 0.25, dtype=dt),)
    raise ValueError(kind)


def cases(dtypes):
    """(op, shape, dtype, numpy call, numba call) for every kernel."""
    from minicnn.kernels import numba_backend as nb
    from minicnn.kernels import numpy_backend as ref
    from minicnn.kernels.shapes import window_output

    rng = np.random.default_rng(0)
    out = []
    for dt in dtypes:
        for shape in ACT_SHAPES:
            z = (rng.standard_normal(shape) * 2).astype(dt)
            dy = rng.standard_normal(shape).astype(dt)
            for name, fargs, saved, bargs in ACTIVATIONS:
                fa = sum((_params(k, dt, shape) for k in fargs), ())
                ba = sum((_params(k, dt, shape) for k in bargs), ())
                fwd = name + "_forward"
                y = getattr(ref, fwd)(z, *fa)
                s = y if saved == "y" else z
                out.append((fwd, shape, dt, lambda f=getattr(ref, fwd), a=fa, z=z: f(z, *a),
                            lambda f=getattr(nb, fwd), a=fa, z=z: f(z, *a)))
                bwd = name + "_backward"
                out.append((bwd, shape, dt, lambda f=getattr(ref, bwd), a=ba, s=s, dy=dy: f(dy, s, *a),
                            lambda f=getattr(nb, bwd), a=ba, s=s, dy=dy: f(dy, s, *a)))
        x = rng.standard_normal((100, 28, 28, 6)).astype(dt)
        for padding in ("valid", "same"):
            (_, _), pads = window_output((28, 28), (2, 2), (2, 2), padding)
            y = ref.avgpool2d_forward(x, (2, 2), (2, 2), pads)
            dy = rng.standard_normal(y.shape).astype(dt)
            args = ((2, 2), (2, 2), pads)
            out.append((f"avgpool2d_forward[{padding}]", x.shape, dt,
                        lambda a=args, x=x: ref.avgpool2d_forward(x, *a),
                        lambda a=args, x=x: nb.avgpool2d_forward(x, *a)))
            out.append((f"avgpool2d_backward[{padding}]", x.shape, dt,
                        lambda a=args, dy=dy, x=x: ref.avgpool2d_backward(dy, x.shape, *a),
                        lambda a=args, dy=dy, x=x: nb.avgpool2d_backward(dy, x.shape, *a)))
        g = rng.standard_normal((100, 7, 7, 64)).astype(dt)
        gy = rng.standard_normal((100, 64)).astype(dt)
        gmax = ref.global_maxpool2d_forward(g)
        for name, r, n in (
                ("global_avgpool2d_forward", lambda g=g: ref.global_avgpool2d_forward(g),
                 lambda g=g: nb.global_avgpool2d_forward(g)),
                ("global_avgpool2d_backward", lambda g=g, gy=gy: ref.global_avgpool2d_backward(gy, g.shape),
                 lambda g=g, gy=gy: nb.global_avgpool2d_backward(gy, g.shape)),
                ("global_maxpool2d_forward", lambda g=g: ref.global_maxpool2d_forward(g),
                 lambda g=g: nb.global_maxpool2d_forward(g)),
                ("global_maxpool2d_backward", lambda g=g, gy=gy, m=gmax: ref.global_maxpool2d_backward(gy, g, m),
                 lambda g=g, gy=gy, m=gmax: nb.global_maxpool2d_backward(gy, g, m))):
            out.append((name, g.shape, dt, r, n))
        for shape, pads in (((100, 28, 28, 1), (2, 2, 2, 2)), ((100, 14, 14, 32), (1, 1, 1, 1))):
            x = rng.standard_normal(shape).astype(dt)
            xp = ref.zeropad2d_forward(x, pads)
            out.append(("zeropad2d_forward", shape, dt, lambda x=x, p=pads: ref.zeropad2d_forward(x, p),
                        lambda x=x, p=pads: nb.zeropad2d_forward(x, p)))
            out.append(("zeropad2d_backward", shape, dt, lambda xp=xp, p=pads: ref.zeropad2d_backward(xp, p),
                        lambda xp=xp, p=pads: nb.zeropad2d_backward(xp, p)))
    return out


def measure(dtypes=("float32", "float64"), repeats=9, only=None):
    """Rows {op, shape, dtype, numpy_ms, numba_ms, speedup} (speedup = numpy / numba)."""
    rows = []
    for op, shape, dt, r, n in cases([np.dtype(d) for d in dtypes]):
        if only and not any(o in op for o in only):
            continue
        t_np, t_nb = _best(r, repeats), _best(n, repeats)
        rows.append({"op": op, "shape": list(shape), "dtype": str(np.dtype(dt)), "numpy_ms": t_np,
                     "numba_ms": t_nb, "speedup": t_np / t_nb})
    return rows


def table(rows) -> str:
    lines = [f"{'op':34s} {'shape':18s} {'dtype':8s} {'numpy ms':>9s} {'numba ms':>9s} {'np/nb':>6s}"]
    for r in rows:
        lines.append(f"{r['op']:34s} {str(tuple(r['shape'])):18s} {r['dtype']:8s} {r['numpy_ms']:9.3f} "
                     f"{r['numba_ms']:9.3f} {r['speedup']:6.2f}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.zoo_ops", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 repeats instead of 9")
    ap.add_argument("--dtype", default="float32,float64")
    ap.add_argument("--only", default="", help="comma-separated substrings of op names")
    ap.add_argument("--json", default=None, help="write the rows here")
    a = ap.parse_args(argv)
    machine = machine_info()
    machine.pop("flags", None)
    load_before = os.getloadavg()
    rows = measure(a.dtype.split(","), 3 if a.quick else 9, [o for o in a.only.split(",") if o])
    load_after = os.getloadavg()
    blas = machine["blas"]
    print(f"machine: {machine['cpu_model']} ({machine.get('microarchitecture') or 'unknown'}), "
          f"{machine['usable_cpus']} CPUs; BLAS {blas.get('name')} core {blas.get('core_type')} "
          f"(OPENBLAS_CORETYPE={machine['env'].get('OPENBLAS_CORETYPE') or 'unset'}); load average "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print(table(rows))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": machine, "load_average": [load_before[0], load_after[0]], "rows": rows},
                      f, indent=1)


if __name__ == "__main__":
    main()
