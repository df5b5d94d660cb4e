"""Which code ran: the instruction set numba compiled minicnn's kernels for, and per op the numba
path (FMA tiles, BLAS GEMM, numba loops, numpy fallback) and the kernels behind it, recorded by
``minicnn.kernels.numba.info.trace_kernels`` in the minicnn-numba worker."""

from __future__ import annotations

DASH = "—"
FW = "minicnn-numba"


def _fw(R, fw=FW):
    return (R.get("frameworks") or {}).get(fw) or {}


def threads_note(t) -> str:
    """" (1 thread)" when minicnn's thread picker (``minicnn.kernels.threads``) ran the measured
    pass on the calling thread instead of the pool; " (1 thread: chunks of 104)" when only some of
    predict's chunk sizes did; "" otherwise (the pool, or no picker)."""
    picks = (t or {}).get("threads") or {}
    one = sorted((int(b) for b, c in picks.items() if (c or {}).get("threads") == "one"))
    if not one:
        return ""
    if len(one) == len(picks):
        return " (1 thread)"
    return f" (1 thread: chunks of {', '.join(map(str, one))})"


def isa_section(R) -> list[str]:
    """One paragraph: the codegen target (AVX-512 / AVX2) and the tiles switch, per minicnn worker."""
    L = []
    for fw in (FW, "minicnn-numba-gemm", "minicnn-numba-malloc"):
        th = (_fw(R, fw).get("info") or {}).get("threading") or {}
        cg = th.get("codegen")
        if cg:
            L.append(f"- {fw}: kernels compiled for **{cg['cpu_name']}** ({cg['cpu_name_source']}; features "
                     f"{cg['features_source']}) → **{cg['vector_isa']}** vectors; FMA tiles "
                     f"{'on' if th.get('fma_tiles') else 'off'}; BLAS from numba threads "
                     f"{'yes' if th.get('blas_in_numba') else 'no'} (OpenBLAS core {th.get('blas_corename')}; "
                     f"its buffers' huge pages: {th.get('blas_huge_pages', 'not recorded')})")
    return (["### Code paths that ran\n"] + L + [""]) if L else []


def section(R) -> list[str]:
    """Per model and dtype (first batch measured): each op's forward and backward path."""
    L = []
    for label, by_dt in (_fw(R).get("models") or {}).items():
        for dt, node in by_dt.items():
            batches = node.get("batches") or {}
            if not batches:
                continue
            b = sorted(batches, key=int)[0]
            ops = (batches[b].get("ops") or {})
            rows = [(op, e["paths"]) for op, e in ops.items() if isinstance(e, dict) and e.get("paths")]
            if not rows:
                continue
            L.append(f"### {label}, {dt}, batch {b}\n")
            L += ["| op | forward path | forward kernels | backward path | backward kernels |", "|---|---|---|---|---|"]
            for op, p in rows:
                f, bw = p.get("fwd") or {}, p.get("bwd") or {}
                L.append(f"| {op} | {f.get('path') or DASH} | {', '.join(f.get('kernels') or []) or DASH} | "
                         f"{bw.get('path') or DASH} | {', '.join(bw.get('kernels') or []) or DASH} |")
            step = (batches[b].get("train_step") or {}).get("paths")
            if step:
                L.append(f"| (whole train step) | {step['path']} | {', '.join(step['kernels'])} | | |")
            L.append("")
    if not L:
        return []
    return ["## Which numba path each op ran\n",
            "Recorded, not derived: one extra forward and backward of every op with "
            "`minicnn.kernels.numba.info.trace_kernels()` open, which lists the jitted kernels the Python tier "
            "called (`[m]`: a multi-mode kernel's mode: `_conv_tiles[0]` forward, `[1]` dx, `[2]` the fused "
            "backward) and the numpy backend's functions (a fallback, or a layout helper such as `pad_nhwc`). "
            "Path: FMA tiles (LLVM-IR register tiles), BLAS GEMM (im2col/sliced GEMMs called from numba), numba "
            "loops (any other kernel), numpy fallback. The vector width is the codegen target's "
            "(see \"Code paths that ran\").\n"] + L
