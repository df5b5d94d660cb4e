"""The machine's measured floating-point peak, independent of any BLAS.

* :func:`fma_probe`: a loop of ``nacc`` independent vector FMA chains (``acc = acc * a + b``),
  written in LLVM IR through a numba ``@intrinsic`` with the ``llvm.fma`` vector intrinsic, so the
  accumulators live in registers and nothing but FMAs and a loop counter runs. One chain would be
  bound by the FMA latency (4 cycles on current x86); ``nacc`` >= 2 x latency x FMA ports keeps
  every FMA unit busy every cycle. Run on one thread (per core) and on every numba thread in a
  ``prange`` (all cores); the generated assembly is checked for the vector FMA instructions, their
  register width and for spills (:func:`asm_evidence`).
* :func:`clock_probe`: the core clock while running, from a chain of dependent integer adds in
  inline assembly (one add per cycle on every x86 core), so "FMA instructions per cycle" can be
  checked against the number of FMA units.
* :func:`blas_reference`: numpy's matmul on a large square product, "what BLAS achieves" here.

The probe's result is the denominator of every "% of peak" in the report; the best of several
repeats is used, since a shared machine can only make a sample slower.
"""

from __future__ import annotations

import re
import time

import numpy as np

from .timing import measure

#: accumulator chains by vector width: 24 of 32 zmm registers (AVX-512), 12 of 16 ymm (AVX2),
#: leaving room for the two operand vectors and nothing to spill
DEFAULT_CHAINS = {512: 24, 256: 12, 128: 12}
#: FMA rounds per loop iteration (each round is ``nacc`` independent FMAs)
UNROLL = 4
#: vector FMA units per core on any x86 so far (Skylake-SP..Granite Rapids, Zen 1..5)
MAX_FMA_UNITS = 2
#: dependent adds per clock-probe iteration
CLOCK_ADDS = 200


def vector_bits(flags) -> int:
    """The widest vector FMA the CPU flags promise: 512 (avx512f), 256 (fma + avx2) or 128."""
    flags = set(flags or ())
    if "avx512f" in flags:
        return 512
    if "fma" in flags and "avx" in flags:
        return 256
    return 128


def _make_chain(nacc: int, lanes: int, double: bool):
    """An intrinsic ``chain(iters, seed) -> float64``: iters x UNROLL x nacc vector FMAs."""
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def chain(typingctx, iters, seed):
        sig = types.float64(types.int64, types.float64)

        def codegen(context, builder, signature, args):
            n, s = args
            fty = ir.DoubleType() if double else ir.FloatType()
            vty = ir.VectorType(fty, lanes)
            i32, i64 = ir.IntType(32), ir.IntType(64)
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vty, [vty, vty, vty]),
                "llvm.fma.v%d%s" % (lanes, "f64" if double else "f32"))
            undef = ir.Constant(vty, ir.Undefined)
            zeros = ir.Constant(ir.VectorType(i32, lanes), [0] * lanes)

            def splat(x):
                return builder.shuffle_vector(builder.insert_element(undef, x, ir.Constant(i32, 0)),
                                              undef, zeros)

            sf = builder.fptrunc(s, fty) if not double else s
            # acc -> acc * a + b converges to b / (1 - a) = 1: no overflow, no denormals; a and b
            # come from the run-time seed so nothing can be folded at compile time
            a = splat(builder.fsub(ir.Constant(fty, 1.0), builder.fmul(sf, ir.Constant(fty, 1e-3))))
            b = splat(builder.fmul(sf, ir.Constant(fty, 1e-3)))
            # starting away from the fixed point: a chain starting on it would be constant-folded
            init = [splat(builder.fmul(sf, ir.Constant(fty, 2.0 + 0.01 * k))) for k in range(nacc)]
            entry = builder.basic_block
            loop = builder.append_basic_block("fma_loop")
            done = builder.append_basic_block("fma_done")
            builder.branch(loop)
            builder.position_at_end(loop)
            i = builder.phi(i64)
            i.add_incoming(ir.Constant(i64, 0), entry)
            phis = []
            for k in range(nacc):
                p = builder.phi(vty)
                p.add_incoming(init[k], entry)
                phis.append(p)
            acc = list(phis)
            for _ in range(UNROLL):
                acc = [builder.call(fma, [x, a, b]) for x in acc]
            nxt = builder.add(i, ir.Constant(i64, 1))
            for p, x in zip(phis, acc):
                p.add_incoming(x, loop)
            i.add_incoming(nxt, loop)
            builder.cbranch(builder.icmp_signed("<", nxt, n), loop, done)
            builder.position_at_end(done)
            total = acc[0]
            for x in acc[1:]:
                total = builder.fadd(total, x)
            out = builder.extract_element(total, ir.Constant(i32, 0))
            return builder.fpext(out, ir.DoubleType()) if not double else out

        return sig, codegen

    return chain


def _make_clock():
    """An intrinsic ``clock(iters) -> int64``: iters x CLOCK_ADDS dependent integer adds."""
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def clock(typingctx, iters):
        sig = types.int64(types.int64)

        def codegen(context, builder, signature, args):
            i64 = ir.IntType(64)
            x = cgutils.alloca_once_value(builder, ir.Constant(i64, 0))
            one = ir.Constant(i64, 1)
            with cgutils.for_range(builder, args[0]):
                # register + register: Golden Cove and later fold "add reg, imm" chains in the
                # renamer (zero latency), never a register operand
                v = builder.asm(ir.FunctionType(i64, [i64, i64]), "add $2, $0\n\t" * CLOCK_ADDS,
                                "=r,0,r,~{flags}", [builder.load(x), one], side_effect=True)
                builder.store(v, x)
            return builder.load(x)

        return sig, codegen

    return clock


class Kernels:
    """The compiled probe functions for one (dtype, vector width, chains) combination."""

    def __init__(self, dtype, bits: int, nacc: int):
        from numba import njit, prange

        self.dtype = np.dtype(dtype)
        self.bits, self.nacc = bits, nacc
        self.lanes = bits // (8 * self.dtype.itemsize)
        chain = _make_chain(nacc, self.lanes, self.dtype == np.float64)

        @njit
        def single(iters, seed):
            return chain(iters, seed)

        @njit(parallel=True)
        def multi(iters, seed, out):
            for t in prange(out.shape[0]):
                out[t] = chain(iters, seed + 0.001 * t)

        self.single, self.multi = single, multi

    @property
    def flops_per_iter(self) -> int:
        return UNROLL * self.nacc * self.lanes * 2

    def asm(self) -> str:
        self.single(1, 1.0)
        return self.single.inspect_asm(self.single.signatures[0])


def asm_evidence(asm: str, dtype, bits: int) -> dict:
    """What the hot loop of the probe's assembly holds: FMA instructions by register width, every
    other instruction, and stack references (spills) in that loop."""
    suffix = "pd" if np.dtype(dtype) == np.float64 else "ps"
    reg = {512: "zmm", 256: "ymm", 128: "xmm"}[bits]
    blocks, cur = [], []
    for line in asm.splitlines():
        s = line.strip()
        if not s or s.startswith(("#", ".")) and not s.startswith(".LBB"):
            continue
        if re.match(r"^[.\w$]+:", s):
            blocks.append(cur)
            cur = []
            continue
        cur.append(s.split("#")[0].strip())
        if s.startswith(("j", "ret")):  # a jump ends a basic block too
            blocks.append(cur)
            cur = []
    blocks.append(cur)
    fma_re = re.compile(r"^vfn?madd\d{3}" + suffix + r"\b")
    hot = max(blocks, key=lambda b: sum(1 for i in b if fma_re.match(i)), default=[])
    fmas = [i for i in hot if fma_re.match(i)]
    widths = {w: sum(1 for i in fmas if f"%{w}" in i) for w in ("zmm", "ymm", "xmm")}
    others = [i for i in hot if not fma_re.match(i)]
    return {"fma_instructions_in_loop": len(fmas), "by_register": widths, "expected_register": reg,
            "other_instructions_in_loop": others, "stack_refs_in_loop": sum(1 for i in hot if "rsp" in i),
            "example": fmas[0] if fmas else None,
            "ok": bool(fmas) and widths.get(reg, 0) == len(fmas)
            and not any("rsp" in i for i in hot)}


def _best_rate(fn, flops, repeats, quiet=True):
    """Highest and median GFLOP/s over ``repeats`` calls of ``fn`` doing ``flops``; with ``quiet``,
    samples during which other processes used the CPU are retried (``timing.measure``)."""
    t = measure(fn, repeats, warmup=0, max_discard=None if quiet else 0)
    return flops / t["min_ms"] / 1e6, flops / t["median_ms"] / 1e6, t


def _iters_for(fn_of_iters, seconds):
    """Iterations making ``fn_of_iters(iters)`` last about ``seconds`` (one compile + calibration)."""
    fn_of_iters(10)
    n = 1 << 14
    while True:
        t0 = time.perf_counter()
        fn_of_iters(n)
        dt = time.perf_counter() - t0
        if dt > 0.02 or n > 1 << 34:
            return max(1000, int(n * seconds / dt))
        n *= 4


def fma_probe(dtype="float32", flags=None, nacc=None, seconds=0.25, repeats=5) -> dict:
    """Measured FMA throughput (GFLOP/s) of one core and of every numba thread at once."""
    import numba

    bits = vector_bits(flags)
    nacc = nacc or DEFAULT_CHAINS[bits]
    k = Kernels(dtype, bits, nacc)
    evidence = asm_evidence(k.asm(), dtype, bits)
    threads = int(numba.get_num_threads())
    iters = _iters_for(lambda n: k.single(n, 1.0), seconds)
    # one thread too is retried when other processes ran: on a VM they can take this very core
    one, one_med, t1 = _best_rate(lambda: k.single(iters, 1.0), iters * k.flops_per_iter, repeats)
    out = np.zeros(threads)
    k.multi(10, 1.0, out)
    alln, all_med, tn = _best_rate(lambda: k.multi(iters, 1.0, out), threads * iters * k.flops_per_iter,
                                   repeats)
    return {"dtype": k.dtype.name, "vector_bits": bits, "lanes": k.lanes, "chains": nacc,
            "unroll": UNROLL, "iterations": iters, "threads": threads,
            "per_core_gflops": one, "per_core_gflops_median": one_med, "per_core_noisy": t1["noisy"],
            "all_cores_gflops": alln, "all_cores_gflops_median": all_med,
            "all_cores_noisy": tn["noisy"], "all_cores_discarded": tn["discarded"], "asm": evidence}


def chain_sweep(dtype="float32", flags=None, chains=(1, 4, 8, 16, 24), seconds=0.1) -> dict:
    """One-core GFLOP/s by number of chains: latency-bound below latency x ports, flat above."""
    bits = vector_bits(flags)
    out = {}
    for n in chains:
        k = Kernels(dtype, bits, n)
        iters = _iters_for(lambda m: k.single(m, 1.0), seconds)
        out[str(n)] = _best_rate(lambda: k.single(iters, 1.0), iters * k.flops_per_iter, 3, quiet=False)[0]
    return out


def clock_probe(seconds=0.2, repeats=5) -> dict:
    """Core clock (GHz) while running one thread: CLOCK_ADDS dependent adds = CLOCK_ADDS cycles."""
    import platform

    from numba import njit

    if platform.machine().lower() not in ("x86_64", "amd64"):
        return {"ghz": None, "why": f"inline x86 assembly; this is {platform.machine()}"}
    import llvmlite.binding

    llvmlite.binding.initialize_native_asmparser()  # numba's JIT needs it for inline assembly
    clock = _make_clock()

    @njit
    def run(iters):
        return clock(iters)

    iters = _iters_for(run, seconds)
    ghz, med, _ = _best_rate(lambda: run(iters), iters * CLOCK_ADDS, repeats)  # Gcycles/s
    return {"ghz": ghz, "ghz_median": med, "dependent_adds": iters * CLOCK_ADDS}


def plausibility(per_core_gflops: float, lanes: int, ghz: float | None, cores: int,
                 all_cores_gflops: float) -> dict:
    """Vector FMA instructions per cycle of one core (~ the number of FMA units: 1 or 2 on x86),
    the peak that implies (units x lanes x 2 flops x clock), and whether the all-cores figure is
    below 75% of cores x one core's (then other processes most likely held a core)."""
    out = {"fma_per_cycle": None, "disturbed": bool(cores and all_cores_gflops < 0.75 * cores * per_core_gflops)}
    if ghz and per_core_gflops and lanes:
        per_cycle = per_core_gflops / (lanes * 2 * ghz)
        units = max(1, round(per_cycle))
        out.update({"fma_per_cycle": per_cycle, "expected_gflops_per_core": units * lanes * 2 * ghz,
                    # near a whole number of units (and no x86 core has more than MAX_FMA_UNITS
                    # vector FMA units), or the clock or the probe was disturbed
                    "fma_units_estimate": units if abs(per_cycle - units) < 0.2 and units <= MAX_FMA_UNITS
                    else None})
    return out


def blas_reference(dtype="float32", n=4096, repeats=5) -> dict:
    """numpy ``matmul(a, b, out=c)`` GFLOP/s on an n x n x n product (numpy's BLAS threads)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    c = np.empty((n, n), dtype)
    np.matmul(a, b, out=c)
    best, med, _ = _best_rate(lambda: np.matmul(a, b, out=c), 2.0 * n ** 3, repeats)
    return {"dtype": np.dtype(dtype).name, "n": n, "gflops": best, "gflops_median": med}


def worker(args: dict) -> dict:
    """Subprocess entry: FMA peak per dtype, clock, chain sweep, numba threading, MXCSR; numpy
    matmul per dtype. ``fma_only``: the FMA peak alone."""
    quick = args.get("quick", False)
    flags = args.get("flags")
    out = {"fma": {}, "blas": {}}
    # many short samples: on a shared machine the best of them is the likeliest to be undisturbed
    secs, reps = (0.05, 9) if quick else (0.2, 15)
    if not args.get("fma_only"):
        out["clock"] = clock_probe(seconds=secs, repeats=reps)
    for dt in args["dtypes"]:
        out["fma"][dt] = fma_probe(dt, flags, seconds=secs, repeats=reps)
    if args.get("fma_only"):  # the re-check at the end of a run
        return out
    # the clock before and after the FMA probes (the best): a disturbed sample can only read low
    after = clock_probe(seconds=secs, repeats=reps)
    if (after.get("ghz") or 0) > (out["clock"].get("ghz") or 0):
        out["clock"] = after
    if not quick:
        out["chain_sweep_float32"] = chain_sweep("float32", flags)
    import numba

    out["numba_threading_layer"] = numba.threading_layer()
    out["numba_threads"] = int(numba.get_num_threads())
    out["mxcsr"] = mxcsr_state()
    for dt in args["dtypes"]:
        out["blas"][dt] = blas_reference(dt, n=2048 if quick else 4096, repeats=3 if quick else 5)
    return out


def mxcsr_state() -> dict:
    """This thread's FTZ/DAZ flags (denormals flushed?), read with ``stmxcsr``; x86 only."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        return {}
    from llvmlite import ir
    from numba import njit, types
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def read(typingctx):
        def codegen(context, builder, signature, args):
            i32 = ir.IntType(32)
            slot = cgutils.alloca_once(builder, i32)
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer()]),
                "llvm.x86.sse.stmxcsr")
            builder.call(fn, [builder.bitcast(slot, ir.IntType(8).as_pointer())])
            return builder.zext(builder.load(slot), ir.IntType(64))

        return types.int64(), codegen

    @njit
    def get():
        return read()

    v = int(get())
    return {"mxcsr": hex(v), "ftz": bool(v & 0x8000), "daz": bool(v & 0x40)}
