"""What splitting a call over the threads costs, and what each fanned element-wise kernel's work is.

``python -m benchmarks.fanout_work [--elements 1048576] [--repeats 15] [--json out.json]``

:func:`minicnn.kernels.numba.fanout.run` splits a call over the threads when its ``work`` is at
least ``config.FANOUT_MIN_FLOPS``, in GEMM-FLOP equivalents. The GEMM kernels pass their FLOPs;
the element-wise kernels (the activations, PReLU, Adam) pass a work per element. This measures
both sides of that bargain on the machine at hand:

* the **hand-off**: a ``fanout.run`` of a kernel that does nothing, split over every thread,
  minus the same kernel called directly (what a split costs beyond the work);
* the **GEMM FLOP**: the seed's conv2 forward (batch 100, float32) on one thread, time / FLOPs;
* each element-wise kernel on one thread, float32, ``--elements`` elements (past L2), and the
  pooling zoo's on preset shapes: its ns per element (read and written, for the pools) and that
  over the GEMM FLOP's time, beside the work per element in the code.

Each kernel is also timed split over every thread (whatever its estimate), beside its one-thread
time. A split gains when the work's time on one thread is more than about twice the hand-off and
the kernel is not bound by the memory bandwidth the cores share; :func:`suggested_work` turns the
two times into the work per element that starts the split where it pays (0: it never does), and
the table says from how many elements each kernel is split with the shipped estimates.
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def _cases(nb, activations, optim, n, rng):
    """(name, code's work per element, call) for each fanned element-wise kernel on ``n`` elements."""
    f32 = np.float32
    z = rng.standard_normal(n).astype(f32)
    dy = rng.standard_normal(n).astype(f32)
    y = np.tanh(z)
    s = 1 / (1 + np.exp(-z))
    c = f32(0.70710677)
    cut = n - n % 100  # PReLU: per-sample alpha over 100 samples
    za, da = z[:cut].reshape(100, -1), dy[:cut].reshape(100, -1)
    alpha = np.full(za.shape[1], f32(0.25))
    p, g, m, v = (rng.standard_normal(n).astype(f32) for _ in range(4))
    v = np.abs(v)
    scalars = tuple(f32(x) for x in (0.1, 0.001, 3e-4, 1e-7))
    A, W = activations, activations._WORK
    return [
        ("tanh forward (numba op)", W[A.TANH_F], lambda: A._unary(A.TANH_F, "tanh_forward", z)),
        ("tanh backward", W[A.TANH_B], lambda: nb.tanh_backward(dy, y)),
        ("sigmoid forward", W[A.SIGMOID_F], lambda: nb.sigmoid_forward(z)),
        ("sigmoid backward", W[A.SIGMOID_B], lambda: nb.sigmoid_backward(dy, s)),
        ("softplus forward", W[A.SOFTPLUS_F], lambda: nb.softplus_forward(z)),
        ("softplus backward", W[A.SOFTPLUS_B], lambda: nb.softplus_backward(dy, z)),
        ("silu forward", W[A.SILU_F], lambda: nb.silu_forward(z)),
        ("silu backward", W[A.SILU_B], lambda: nb.silu_backward(dy, z)),
        ("gelu forward", W[A.GELU_F], lambda: nb.gelu_forward(z, c)),
        ("gelu backward", W[A.GELU_B], lambda: nb.gelu_backward(dy, z, c)),
        ("elu forward", W[A.ELU_F], lambda: nb.elu_forward(z, 1.0)),
        ("elu backward", W[A.ELU_B], lambda: nb.elu_backward(dy, z, 1.0)),
        ("selu forward", W[A.SELU_F], lambda: nb.selu_forward(z)),
        ("selu backward", W[A.SELU_B], lambda: nb.selu_backward(dy, y)),
        ("leaky_relu forward", W[A.LEAKY_F], lambda: nb.leaky_relu_forward(z, 0.2)),
        ("leaky_relu backward", W[A.LEAKY_B], lambda: nb.leaky_relu_backward(dy, y, 0.2)),
        ("capped_relu forward", W[A.CAPPED_F], lambda: nb.capped_relu_forward(z, 0.1, 6.0, 0.0, 0.0)),
        ("capped_relu backward", W[A.CAPPED_B], lambda: nb.capped_relu_backward(dy, z, 0.1, 6.0, 0.0, 0.0)),
        ("prelu forward", W[A.PRELU_F], lambda: nb.prelu_forward(za, alpha)),
        ("prelu backward", W[A.PRELU_B], lambda: nb.prelu_backward(da, za, alpha)),
        ("adam update", optim.ADAM_WORK_PER_ELEMENT, lambda: optim.adam_update(p, g, m, v, *scalars)),
    ]


def _pool_cases(nb, avgpool, rng, n):
    """(name, code's work per element, call, elements read and written) for the pooling zoo's
    fanned kernels on preset shapes at batch ``n`` (LeNet-5's pools, a global pool after 7x7x64,
    a padded MNIST batch), float32."""
    f32, none = np.float32, (0, 0, 0, 0)
    x6 = rng.standard_normal((n, 28, 28, 6)).astype(f32)
    x16 = rng.standard_normal((n, 10, 10, 16)).astype(f32)
    dy6, dy16 = x6[:, ::2, ::2].copy(), x16[:, ::2, ::2].copy()
    g = rng.standard_normal((n, 7, 7, 64)).astype(f32)
    gy = g.max(axis=(1, 2))
    m = rng.standard_normal((n, 28, 28, 1)).astype(f32)
    P, C = avgpool.POOL_WORK, avgpool.COPY_WORK
    return [
        (f"avgpool forward ({n}, 28, 28, 6) 2x2/2", P, lambda: nb.avgpool2d_forward(x6, (2, 2), (2, 2), none),
         x6.size + dy6.size),
        (f"avgpool backward, disjoint ({n}, 28, 28, 6)", P,
         lambda: nb.avgpool2d_backward(dy6, x6.shape, (2, 2), (2, 2), none), x6.size + dy6.size),
        (f"avgpool backward, gather ({n}, 10, 10, 16)", P,
         lambda: nb.avgpool2d_backward(dy16, x16.shape, (2, 2), (2, 2), none), x16.size + dy16.size),
        (f"global avgpool forward ({n}, 7, 7, 64)", C, lambda: nb.global_avgpool2d_forward(g), g.size),
        (f"global maxpool backward ({n}, 7, 7, 64)", C, lambda: nb.global_maxpool2d_backward(gy, g, gy),
         2 * g.size),
        (f"zero padding ({n}, 28, 28, 1) + 1", C, lambda: nb.zeropad2d_forward(m, (1, 1, 1, 1)),
         m.size + n * 30 * 30),
    ]


def suggested_work(ns_per_element, one_ms, split_ms, handoff_us, min_flops):
    """The work per element that makes :func:`fanout.run` split a call exactly where splitting
    starts to pay, under a linear model: one thread takes ``T`` (us), a split ``T / s + h``, with
    ``s`` the speedup measured (``one / (split - h)``) and ``h`` the hand-off. The split pays from
    ``T* = h s / (s - 1)``; the estimate puts ``min_flops`` there. 0 when the split never pays
    (``s <= 1``: a kernel bound by the memory bandwidth the cores share)."""
    rest = split_ms * 1e3 - handoff_us
    s = one_ms * 1e3 / rest if rest > 0 else float("inf")
    if s <= 1:
        return 0.0, s
    t_star_us = handoff_us * s / (s - 1) if s != float("inf") else handoff_us
    return min_flops * (ns_per_element * 1e-3) / t_star_us, s


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--elements", type=int, default=1 << 20)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    import numba
    from numba import njit

    from minicnn.kernels import numba_backend as nb
    from minicnn.kernels.numba import activations, avgpool, config, fanout, optim

    from .machine import machine_info
    from .timing import measure

    @njit(nogil=True)
    def nothing(a, lo, hi, worker):
        a[worker] = hi - lo

    threads = numba.get_num_threads()
    scratch = np.zeros(max(threads, 1), np.int64)
    nothing(scratch, 0, 1, 0)
    split = measure(lambda: fanout.run(nothing, threads, scratch, work=float("inf")), 200, warmup=20)
    direct = measure(lambda: nothing(scratch, 0, threads, 0), 200, warmup=20)
    handoff_us = (split["median_ms"] - direct["median_ms"]) * 1e3

    rng = np.random.default_rng(0)
    x = rng.standard_normal((100, 26, 26, 32)).astype(np.float32)
    k = rng.standard_normal((3, 3, 32, 64)).astype(np.float32)
    flops = 2 * 100 * 24 * 24 * 64 * 3 * 3 * 32
    numba.set_num_threads(1)
    try:
        conv = measure(lambda: nb.conv2d_forward(x, k, None, (1, 1), (0, 0, 0, 0), relu=False), args.repeats)
    finally:
        numba.set_num_threads(threads)
    flop_ns = conv["median_ms"] * 1e6 / flops
    rows = []
    cases = [(*c, args.elements) for c in _cases(nb, activations, optim, args.elements, rng)]
    saved = config.FANOUT_MIN_FLOPS
    for name, code, call, elements in cases + _pool_cases(nb, avgpool, rng, 100) + _pool_cases(nb, avgpool, rng, 256):
        numba.set_num_threads(1)
        try:
            one = measure(call, args.repeats)
        finally:
            numba.set_num_threads(threads)
        config.FANOUT_MIN_FLOPS = 0  # every call split, whatever the estimate
        try:
            split = measure(call, args.repeats)
        finally:
            config.FANOUT_MIN_FLOPS = saved
        ns = one["median_ms"] * 1e6 / elements
        work, speedup = suggested_work(ns, one["median_ms"], split["median_ms"], handoff_us, saved)
        rows.append({"kernel": name, "elements": elements, "ns_per_element": ns, "measured_work": ns / flop_ns,
                     "one_thread_ms": one["median_ms"], "split_ms": split["median_ms"],
                     "speedup_beyond_handoff": speedup, "suggested_work": work,
                     "code_work": code, "split_from_elements": (saved / code) if code else None,
                     "noisy": one["noisy"] or split["noisy"]})

    m = machine_info()
    print(f"CPU {m['cpu_model']} ({m['microarchitecture']}), OpenBLAS core {m['blas'].get('core_type')}, "
          f"{threads} numba threads")
    print(f"hand-off of a split over {threads} threads: {handoff_us:.1f} us (median of 200; "
          f"direct call {direct['median_ms'] * 1e3:.2f} us)")
    print(f"GEMM FLOP on one thread (seed conv2 forward, float32, batch 100): {flop_ns * 1e3:.2f} ps "
          f"({1 / flop_ns:.1f} GFLOP/s); FANOUT_MIN_FLOPS {config.FANOUT_MIN_FLOPS:.0e} = "
          f"{config.FANOUT_MIN_FLOPS * flop_ns / 1e3:.0f} us of one thread's GEMM")
    print(f"\n| kernel (float32; {args.elements} elements unless shaped) | ns / element, 1 thread | time in GEMM "
          f"FLOPs / element | 1 thread → split over {threads} (ms) | speedup beyond the hand-off | suggested work "
          f"/ element | in the code | split from (elements) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        frm = f"{r['split_from_elements']:,.0f}" if r["split_from_elements"] else "never (outside the tests)"
        print(f"| {r['kernel']} | {r['ns_per_element']:.3f}{' *' if r['noisy'] else ''} | "
              f"{r['measured_work']:.1f} | {r['one_thread_ms']:.3f} → {r['split_ms']:.3f} "
              f"({r['one_thread_ms'] / r['split_ms']:.2f}x) | {r['speedup_beyond_handoff']:.2f} | "
              f"{r['suggested_work']:.0f} | {r['code_work']} | {frm} |")
    out = {"machine": {"cpu": m["cpu_model"], "microarchitecture": m["microarchitecture"],
                       "blas_core": m["blas"].get("core_type")},
           "threads": threads, "handoff_us": handoff_us, "gemm_flop_ns": flop_ns, "rows": rows,
           "fanout_min_flops": config.FANOUT_MIN_FLOPS}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
