"""The fast backend: numba kernels, register-blocked FMA micro-kernels and in-loop BLAS calls.

Same function names, signatures and return conventions as :mod:`numpy_backend` (the contract);
the tests check every function against it. Layouts: NHWC activations, HWIO kernels, ``pads`` =
(top, bottom, left, right). Outputs have the input's dtype (float32 or float64; a kernel or bias of
another dtype is cast to the input's dtype; other dtypes are delegated to the numpy backend),
inputs are never written, and any input may be non-contiguous (it is copied to C order first).

Algorithm per op, chosen by measurement on the seed model's shapes (batch 100, float32, 2 cores;
the numbers are in ``benchmarks/README.md``):

* **conv2d, float32, output channels a multiple of 16** (both of the seed model's convs): direct
  convolution with a register-blocked micro-kernel ("tiles", below): up to 6 output pixels x 64
  channels accumulate in 24 AVX-512 registers over the whole (kh, kw, c) reduction; no im2col.
  Forward: parallel over output rows, bias + relu fused into the store. Backward: one pass over
  dy per image (images in fixed groups, one group per parallel iteration): dz = dy * (y > 0)
  (relu's gradient, fused) goes into a per-thread zero-bordered buffer while dbias sums it;
  dx (stride 1, input channels a multiple of 16) correlates that buffer with the flipped,
  transposed kernel; dkernel, per kernel row, is a tile of (kw, c) rows x filters accumulated
  over the image's pixels and added to the group's partial sum; the group partials are added
  in order. dz is never written to memory. ~90% of the machine's measured matmul peak for the
  forward, versus ~75% for im2col + OpenBLAS on the same shapes.
* **conv2d otherwise** (float64, odd channel counts, dx of strided convs): im2col + GEMM on chunks
  of whole images (~1k output rows, so the chunk's im2col matrix stays in L2); backward rebuilds
  the chunk, ``cols.T @ dy`` and ``dy @ W.T`` + a *gathering* col2im (each input cell sums its
  patch entries in a fixed (kh, kw) order: no scatter, no race).
* max pooling: one parallel pass computing max + first argmax (window loop outside the channel
  loop, so the compare-and-select vectorises); backward is a gather. relu: parallel passes.
* dense, float32, out (and in, for the backward) a multiple of 16 (the seed model's dense1):
  the tiles again. Forward (up to 256 samples): 4 fixed slices of the inner dimension, each
  64-row blocks of the kernel swept by tiles of samples x 64 outputs, partial products added in
  order. Backward: per 64-row block of the kernel, the block of x is packed (x's rows are
  ``in`` floats apart, a stride that maps them to a few cache sets), dkernel = packed^T @ dy,
  then the kernel block is transposed 16 x 16 in registers and dx = dy @ that. The tiles also
  check dkernel for NaN/inf while it is in registers (``check_finite``), which spares the
  training step's guard a pass over the model's largest gradient.
* dense otherwise: the forward cuts the inner dimension into 4 fixed slices (4 GEMMs, partial
  products added in order); the backward splits dkernel's rows and dx's columns into blocks.
  Products under OpenBLAS's own threading threshold (dense2) go straight to numpy.

**Threads.** Every GEMM here is a call to OpenBLAS's ``cblas_?gemm`` made from *inside* a numba
``prange`` loop, with OpenBLAS switched to one thread for the duration of the call (restored
afterwards): numba's and OpenBLAS's thread pools alternating on the same 2 cores starve each
other (an idle OpenBLAS worker spins ~0.1 s in ``sched_yield`` after each call). For the same
reason this module asks GNU OpenMP (numba's ``omp`` layer) to sleep instead of spinning ~15 ms
after every parallel region: ``OMP_WAIT_POLICY=PASSIVE``, unless the user set a policy; it has to
be set before numba starts its OpenMP pool (:func:`threading_info` reports what happened).
Measured: 50 small GEMMs alternating with a numba pass took 12 ms with it, 330 ms without.

**Determinism.** Chunk, group and block boundaries depend only on the shapes, never on the
thread count; every parallel iteration writes its own slice; reductions are per-group partials
added in group order. Results are therefore bitwise reproducible for *any* thread count. No
``fastmath`` anywhere: the tiles use LLVM's ``llvm.fma`` intrinsic explicitly (one exactly rounded
operation, like BLAS kernels), not contraction permission.

If numpy's BLAS is not the ILP64 ``scipy-openblas`` that numpy's wheels ship (the symbols this
module calls), the GEMM-based paths (dense, and conv2d where the tiles do not apply) fall back to
the numpy backend's implementation; with JIT disabled, the tiles are off too.
:func:`threading_info` says which paths are active.
"""

from __future__ import annotations

import ctypes
import os
import threading


def _libgomp_loaded() -> bool:
    try:
        with open("/proc/self/maps") as f:
            return "libgomp" in f.read()
    except OSError:
        return False


_OMP_POLICY_SET_HERE = False
if "OMP_WAIT_POLICY" not in os.environ and not _libgomp_loaded():
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # read by libgomp when numba first loads it
    _OMP_POLICY_SET_HERE = True

import llvmlite.binding as _llvm  # noqa: E402
import numba  # noqa: E402
import numpy as np  # noqa: E402
from llvmlite import ir  # noqa: E402
from numba import njit, prange, types  # noqa: E402
from numba.core import cgutils  # noqa: E402
from numba.extending import intrinsic  # noqa: E402

from . import numpy_backend as _ref  # noqa: E402
from .numba_fpu import X86 as _fpu_x86  # noqa: E402
from .numba_fpu import denormals_off, denormals_restore  # noqa: E402
from .shapes import padded_output_hw  # noqa: E402

NAME = "numba"


def _has_avx512() -> bool:
    """The tiles are sized for 32 512-bit registers; elsewhere they would spill (still correct)."""
    try:
        return bool(_llvm.get_host_cpu_features().get("avx512f", False))
    except Exception:  # noqa: BLE001 - feature query unsupported on this platform
        return False


#: use the register-blocked FMA tiles (see "micro-kernels") where the shapes allow (AVX-512
#: CPUs); tests switch this off and on to exercise both paths
_TILES = _has_avx512() and not numba.config.DISABLE_JIT
#: target number of output rows (N*OH*OW) per conv chunk: the chunk's im2col matrix stays in L2
_CHUNK_ROWS = 1024
#: at most this many partial sums for a conv's dkernel/dbias (groups of consecutive chunks)
_MAX_GROUPS = 64
#: dense forward: the inner dimension is split into this many GEMMs (slices of at least
#: _DENSE_MIN_KSLICE), whose partial products are added in order
_DENSE_KSPLIT = 4
_DENSE_MIN_KSLICE = 1024
#: dense backward: dkernel rows / dx columns are split into blocks of at least this many
_DENSE_BLOCK = 64
#: ... and into at most this many blocks
_DENSE_MAX_BLOCKS = 16
#: dense on the tiles: rows of the kernel per block (backward: its transpose, out x this, stays in L1)
_DENSE_TILE_ROWS = 64
#: dense forward on the tiles up to this many samples: every 64-row block adds into the (samples x
#: out) partial sums, which must stay in L2; measured (seed dense1): tiles 2.8 ms vs BLAS 3.2 at
#: 100 samples, 7.0 vs 7.6 at 256, 17.5 vs 15.3 at 512 (so inference batches of 1000 take BLAS)
_DENSE_TILE_MAX_SAMPLES = 256
#: products with M*N*K at most this go to numpy's matmul: OpenBLAS runs them on the calling thread
#: anyway (its own multithreading threshold is 65536 * 4), and a parallel launch would cost more
_SMALL_GEMM = 65536 * 4
#: elementwise ops on fewer elements than this use numpy (no parallel launch)
_SMALL_ELEMENTWISE = 1 << 15


# ----------------------------------------------------------------------------- BLAS access
class _Blas:
    """numpy's OpenBLAS: cblas ?gemm symbols for numba, and its thread-count switch."""

    def __init__(self):
        self.lib = None
        self.path = None
        self.corename = None
        self._lock = threading.Lock()
        self._depth = 0
        self._saved = None
        for path in self._candidates():
            try:
                lib = ctypes.CDLL(path)
                sgemm, dgemm = lib.scipy_cblas_sgemm64_, lib.scipy_cblas_dgemm64_
                self._get, self._set = lib.scipy_openblas_get_num_threads64_, lib.scipy_openblas_set_num_threads64_
            except (OSError, AttributeError):
                continue
            self._get.restype = ctypes.c_int
            self._set.argtypes = [ctypes.c_int]
            _llvm.add_symbol("minicnn_cblas_sgemm64", ctypes.cast(sgemm, ctypes.c_void_p).value)
            _llvm.add_symbol("minicnn_cblas_dgemm64", ctypes.cast(dgemm, ctypes.c_void_p).value)
            self.lib, self.path = lib, path
            try:
                lib.scipy_openblas_get_corename64_.restype = ctypes.c_char_p
                self.corename = lib.scipy_openblas_get_corename64_().decode()
            except AttributeError:
                pass
            break

    @staticmethod
    def _candidates():
        """Loaded libraries whose name says scipy_openblas64 (numpy has imported its BLAS by now)."""
        try:
            with open("/proc/self/maps") as f:
                paths = {line.split()[-1] for line in f if "scipy_openblas64" in line}
        except OSError:
            paths = set()
        if not paths:
            import glob

            libdir = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
            paths = set(glob.glob(os.path.join(libdir, "libscipy_openblas64*.so*")))
        return sorted(paths)

    @property
    def available(self) -> bool:
        return self.lib is not None

    def threads(self) -> int:
        return int(self._get()) if self.available else 0

    def __enter__(self):
        """OpenBLAS single-threaded while numba threads call it (nesting and threads are counted)."""
        with self._lock:
            if self._depth == 0:
                self._saved = int(self._get())
                if self._saved != 1:
                    self._set(1)
            self._depth += 1
        return self

    def __exit__(self, *exc):
        with self._lock:
            self._depth -= 1
            if self._depth == 0 and self._saved not in (None, 1):
                self._set(self._saved)
        return False


_blas = _Blas()
# BLAS calls from numba code need compiled code (not NUMBA_DISABLE_JIT); tests may switch this
# off to exercise the fallback path
_FAST = _blas.available and not numba.config.DISABLE_JIT

_i32, _i64, _f32, _f64 = types.int32, types.int64, types.float32, types.float64
# cblas_?gemm(order, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc), ILP64; the
# pointers are passed as int64 (same calling convention on LP64 platforms)
_sgemm = types.ExternalFunction(
    "minicnn_cblas_sgemm64",
    types.void(_i32, _i32, _i32, _i64, _i64, _i64, _f32, _i64, _i64, _i64, _i64, _f32, _i64, _i64))
_dgemm = types.ExternalFunction(
    "minicnn_cblas_dgemm64",
    types.void(_i32, _i32, _i32, _i64, _i64, _i64, _f64, _i64, _i64, _i64, _i64, _f64, _i64, _i64))


@njit(cache=True)
def _gemm(single, ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc):
    """Row-major C = op(A) @ op(B) + beta*C on raw addresses; ``single`` picks sgemm over dgemm."""
    if m == 0 or n == 0:
        return
    tra = 112 if ta else 111  # CblasTrans / CblasNoTrans
    trb = 112 if tb else 111
    if single:
        _sgemm(101, tra, trb, m, n, k, np.float32(1.0), a, lda, b, ldb, np.float32(beta), c, ldc)
    else:
        _dgemm(101, tra, trb, m, n, k, 1.0, a, lda, b, ldb, np.float64(beta), c, ldc)


# ----------------------------------------------------------------------------- micro-kernels
# A register-blocked FMA tile written directly in LLVM IR (numba cannot keep a 6 x 64 block of
# accumulators in vector registers from Python source, and without fastmath LLVM never contracts
# a*b+c into an FMA; llvm.fma is an explicit, exactly-rounded operation, not a fastmath flag).
#
# tile(R, V):  for r < R and v < V (vectors of L = 16 float32 or 8 float64 lanes):
#     acc[r][v] = sum over k1 < n1, k2 < n2, k3 < n3 (in that order) of
#                 A[a + k1*a1 + k2*a2 + k3*a3 + r*ar] * B[b + k1*b1 + k2*b2 + k3*b3 + v*L : +L]
#     out[r*ldo + v*L : +L] = acc + bias[v*L : +L], then max(., 0) if relu (NaN stays NaN),
#                             or out += acc if accumulate
#     if flag (an address, else 0): the int64 at flag |= 1 when a stored value is NaN or +-inf
#                             (a finiteness check of the output while it is still in registers)
# Offsets are in elements, pointers are raw addresses; the accumulators stay in registers for the
# whole k loop (they live in allocas that LLVM promotes). R*V <= 24 keeps them in the 32 zmm
# registers next to the V B-vectors and the broadcast A value.
_L = {4: 16, 8: 8}  # lanes per 512-bit vector, by itemsize


def _emit_tile_body(builder, R, V, double, args):
    """The tile's IR (see above) into ``builder``; ``args`` are the 18 int64 values."""
    L = 8 if double else 16
    fty = ir.DoubleType() if double else ir.FloatType()
    vty = ir.VectorType(fty, L)
    i64, i32 = ir.IntType(64), ir.IntType(32)
    align = 8 if double else 4
    fptr, vptr = fty.as_pointer(), vty.as_pointer()
    (a, b, out, bias, n1, n2, n3, a1, a2, a3, ar, b1, b2, b3, ldo, relu, accumulate, flag) = args
    fma = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vty, [vty, vty, vty]), "llvm.fma.v%d%s" % (L, "f64" if double else "f32"))
    zero = ir.Constant(vty, [0.0] * L)
    undef = ir.Constant(vty, ir.Undefined)
    splat = ir.Constant(ir.VectorType(i32, L), [0] * L)
    acc = [[cgutils.alloca_once(builder, vty) for _ in range(V)] for _ in range(R)]
    for r in range(R):
        for v in range(V):
            builder.store(zero, acc[r][v])
    abase, bbase = builder.inttoptr(a, fptr), builder.inttoptr(b, fptr)
    roff = [builder.mul(ar, ir.Constant(i64, r)) for r in range(R)]
    with cgutils.for_range(builder, n1) as l1:
        ao1, bo1 = builder.mul(l1.index, a1), builder.mul(l1.index, b1)
        with cgutils.for_range(builder, n2) as l2:
            ao2 = builder.add(ao1, builder.mul(l2.index, a2))
            bo2 = builder.add(bo1, builder.mul(l2.index, b2))
            with cgutils.for_range(builder, n3) as l3:
                ao = builder.add(ao2, builder.mul(l3.index, a3))
                bo = builder.add(bo2, builder.mul(l3.index, b3))
                bv = [builder.load(builder.bitcast(builder.gep(bbase, [builder.add(bo, ir.Constant(i64, v * L))]),
                                                   vptr), align=align) for v in range(V)]
                for r in range(R):
                    sc = builder.load(builder.gep(abase, [builder.add(ao, roff[r])]))
                    sv = builder.shuffle_vector(builder.insert_element(undef, sc, ir.Constant(i32, 0)), undef, splat)
                    for v in range(V):
                        builder.store(builder.call(fma, [sv, bv[v], builder.load(acc[r][v])]), acc[r][v])
    obase, biasbase = builder.inttoptr(out, fptr), builder.inttoptr(bias, fptr)
    do_relu = builder.icmp_signed("!=", relu, ir.Constant(i64, 0))
    do_acc = builder.icmp_signed("!=", accumulate, ir.Constant(i64, 0))
    bias_v = [builder.load(builder.bitcast(builder.gep(biasbase, [ir.Constant(i64, v * L)]), vptr), align=align)
              for v in range(V)]

    def out_ptr(r, v):
        return builder.bitcast(builder.gep(obase, [builder.add(builder.mul(ldo, ir.Constant(i64, r)),
                                                               ir.Constant(i64, v * L))]), vptr)

    with builder.if_else(do_acc) as (then, otherwise):
        with then:
            for r in range(R):
                for v in range(V):
                    p = out_ptr(r, v)
                    builder.store(builder.fadd(builder.load(p, align=align), builder.load(acc[r][v])), p, align=align)
        with otherwise:
            for r in range(R):
                for v in range(V):
                    val = builder.fadd(builder.load(acc[r][v]), bias_v[v])
                    neg = builder.fcmp_ordered("<", val, zero)
                    val = builder.select(do_relu, builder.select(neg, zero, val), val)
                    builder.store(val, out_ptr(r, v), align=align)
    # the finiteness flag (only for stored, not accumulated, outputs): v - v is NaN iff v is NaN/inf
    with builder.if_then(builder.and_(builder.icmp_signed("!=", flag, ir.Constant(i64, 0)),
                                      builder.not_(do_acc))):
        bad = None
        for r in range(R):
            for v in range(V):
                p = out_ptr(r, v)
                val = builder.load(p, align=align)
                nan = builder.fcmp_unordered("uno", builder.fsub(val, val), zero)
                bad = nan if bad is None else builder.or_(bad, nan)
        anybad = builder.icmp_unsigned("!=", builder.bitcast(bad, ir.IntType(L)), ir.Constant(ir.IntType(L), 0))
        fptr64 = builder.inttoptr(flag, i64.as_pointer())
        builder.store(builder.or_(builder.load(fptr64), builder.zext(anybad, i64)), fptr64)


def _make_tile(R, V):
    @intrinsic
    def tile(typingctx, carrier, a, b, out, bias, n1, n2, n3, a1, a2, a3, ar, b1, b2, b3, ldo, relu, accumulate,
             flag):
        """``carrier`` is any array of the working dtype (it picks float or double, nothing else)."""
        double = carrier.dtype == types.float64
        sig = types.void(carrier, *([types.int64] * 18))

        def codegen(context, builder, signature, args):
            # the body is a separate noinline function of the module, defined once: inlined at
            # every call site it would multiply LLVM's optimisation time
            mod = builder.module
            name = "minicnn_fma_tile_%dx%d_%s" % (R, V, "f64" if double else "f32")
            i64 = ir.IntType(64)
            fnty = ir.FunctionType(ir.VoidType(), [i64] * 18)
            fn = mod.globals.get(name)
            if fn is None:
                fn = ir.Function(mod, fnty, name)
                fn.linkage = "internal"
                fn.attributes.add("noinline")
                body = ir.IRBuilder(fn.append_basic_block("entry"))
                _emit_tile_body(body, R, V, double, list(fn.args))
                body.ret_void()
            builder.call(fn, list(args[1:]))
            return context.get_dummy_value()

        return sig, codegen

    return tile


_t6x4, _t4x4, _t2x4, _t1x4 = (_make_tile(r, 4) for r in (6, 4, 2, 1))
_t13x2, _t12x2, _t8x2, _t4x2, _t2x2, _t1x2 = (_make_tile(r, 2) for r in (13, 12, 8, 4, 2, 1))
_t16x1, _t8x1, _t4x1, _t2x1, _t1x1 = (_make_tile(r, 1) for r in (16, 8, 4, 2, 1))


def _emit_transpose16(builder, args):
    """16 x 16 float32 transpose in registers: 16 row loads, 4 stages of 16 two-source shuffles
    (stage s swaps bit s of the row index with bit s of the column index), 16 row stores."""
    src, lds, dst, ldd = args
    f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
    vty = ir.VectorType(f32, 16)
    fptr, vptr = f32.as_pointer(), vty.as_pointer()
    sbase, dbase = builder.inttoptr(src, fptr), builder.inttoptr(dst, fptr)

    def row_ptr(base, ld, r):
        return builder.bitcast(builder.gep(base, [builder.mul(ld, ir.Constant(i64, r))]), vptr)

    rows = [builder.load(row_ptr(sbase, lds, r), align=4) for r in range(16)]
    for stage in range(4):
        m = 1 << stage
        new = []
        for a in range(16):
            if a & m == 0:  # lanes with bit s clear from row a, the others from row a|m (moved down)
                s0, s1, idx = rows[a], rows[a | m], [b if not b & m else 16 + (b ^ m) for b in range(16)]
            else:  # lanes with bit s clear from row a&~m (moved up), the others from row a
                s0, s1, idx = rows[a & ~m], rows[a], [b | m if not b & m else 16 + b for b in range(16)]
            new.append(builder.shuffle_vector(s0, s1, ir.Constant(ir.VectorType(i32, 16), idx)))
        rows = new
    for r in range(16):
        builder.store(rows[r], row_ptr(dbase, ldd, r), align=4)


@intrinsic
def _transpose16(typingctx, src, lds, dst, ldd):
    """float32 dst[j * ldd + i] = src[i * lds + j] for i, j < 16 (raw addresses, strides in elements)."""
    sig = types.void(types.int64, types.int64, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        mod = builder.module
        fn = mod.globals.get("minicnn_transpose16_f32")
        if fn is None:
            i64 = ir.IntType(64)
            fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [i64] * 4), "minicnn_transpose16_f32")
            fn.linkage = "internal"
            fn.attributes.add("noinline")
            body = ir.IRBuilder(fn.append_basic_block("entry"))
            _emit_transpose16(body, list(fn.args))
            body.ret_void()
        builder.call(fn, list(args))
        return context.get_dummy_value()

    return sig, codegen


@njit(inline="always", cache=True)
def _tile_run(carrier, v, count, a, ar, b, out, ldo, bias, n1, n2, n3, a1, a2, a3, b1, b2, b3, relu, accumulate,
              flag):
    """``count`` items along the R direction (A stride ``ar``, out stride ``ldo``), V = v vectors:
    the widest tile first, then 4, 2, 1 for the rest."""
    isz = carrier.itemsize
    rest = (bias, n1, n2, n3, a1, a2, a3, ar, b1, b2, b3, ldo, relu, accumulate, flag)
    j = 0
    if v == 4:
        while count - j >= 6:
            _t6x4(carrier, a + j * ar * isz, b, out + j * ldo * isz, *rest)
            j += 6
        if count - j >= 4:
            _t4x4(carrier, a + j * ar * isz, b, out + j * ldo * isz, *rest)
            j += 4
        if count - j >= 2:
            _t2x4(carrier, a + j * ar * isz, b, out + j * ldo * isz, *rest)
            j += 2
        if count - j >= 1:
            _t1x4(carrier, a + j * ar * isz, b, out + j * ldo * isz, *rest)
    elif v == 2:
        if count % 13 == 0:  # 26 (the seed model's conv2 dx rows): two 13-pixel tiles, no tail
            while count - j >= 13:
                _t13x2(carrier, a + j * ar * isz, b, out + j * ldo * isz, *rest)
                j += 13
        while count - j >= 12:
            _t12x2(carrier, a + j * ar * isz, b, out + j * ldo * isz, *rest)
            j += 12
        if count - j >= 8:
            _t8x2(carrier, a + j * ar * isz, b, out + j * ldo * isz, *rest)
            j += 8
        if count - j >= 4:
            _t4x2(carrier, a + j * ar * isz, b, out + j * ldo * isz, *rest)
            j += 4
        if count - j >= 2:
            _t2x2(carrier, a + j * ar * isz, b, out + j * ldo * isz, *rest)
            j += 2
        if count - j >= 1:
            _t1x2(carrier, a + j * ar * isz, b, out + j * ldo * isz, *rest)
    else:
        while count - j >= 16:
            _t16x1(carrier, a + j * ar * isz, b, out + j * ldo * isz, *rest)
            j += 16
        if count - j >= 8:
            _t8x1(carrier, a + j * ar * isz, b, out + j * ldo * isz, *rest)
            j += 8
        if count - j >= 4:
            _t4x1(carrier, a + j * ar * isz, b, out + j * ldo * isz, *rest)
            j += 4
        if count - j >= 2:
            _t2x1(carrier, a + j * ar * isz, b, out + j * ldo * isz, *rest)
            j += 2
        if count - j >= 1:
            _t1x1(carrier, a + j * ar * isz, b, out + j * ldo * isz, *rest)


@njit(inline="always", cache=True)
def _tile_grid(carrier, count, width, a, ar, b, out, ldo, bias, n1, n2, n3, a1, a2, a3, b1, b2, b3, relu, accumulate,
               flag):
    """``count`` items x ``width`` outputs (a multiple of L): blocks of 4 vectors, then 2, then 1."""
    isz = carrier.itemsize
    lanes = 16 if isz == 4 else 8
    nvec = width // lanes
    c0 = 0
    while c0 < nvec:
        v = 4 if nvec - c0 >= 4 else 2 if nvec - c0 >= 2 else 1
        _tile_run(carrier, v, count, a, ar, b + c0 * lanes * isz, out + c0 * lanes * isz, ldo, bias + c0 * lanes * isz,
                  n1, n2, n3, a1, a2, a3, b1, b2, b3, relu, accumulate, flag)
        c0 += v


@njit(parallel=True, cache=True)
def _conv_tiles(mode, src, wgt, out, vec, zeros, scratch, part, sh, sw, top, left, gimg, ngroups, relu,
                xpad, mask, pbias):
    """The conv kernels built on the FMA tiles, in one function so that the tile code is compiled
    once per dtype (each kernel would otherwise re-optimise all of it).

    mode 0, forward: ``src`` = padded x (N, Hp, Wp, C), ``wgt`` = kernel (KH, KW, C, F), ``out`` = y,
        ``vec`` = bias; parallel over output rows, each a run of tiles of up to 6 pixels x 64
        channels, relu fused.
    mode 1, dx alone (stride 1; when dkernel goes by GEMM): ``src`` = dy, ``wgt`` = the flipped,
        transposed kernel (KH, KW, F, C), ``out`` = dx, ``top``/``left`` = the forward's padding;
        per image, dy is copied into a zero-bordered per-thread buffer (``scratch``) and
        correlated with ``wgt``; kernel rows that would only meet the border are skipped.
    mode 2, the whole backward in one pass over dy (relu's gradient fused): ``src`` = dy,
        ``mask`` = the layer's relu output y (or empty: no relu), ``xpad`` = padded x, ``wgt`` and
        ``out`` as in mode 1 (without dx: ``out`` empty, ``wgt`` an empty (KH, KW, 0, 0) placeholder
        giving the kernel size). Per group of ``gimg`` images, one image at a time: dz = dy * (y > 0)
        goes into the per-thread buffer (zero-bordered if dx is wanted) while pbias[g] sums it;
        then the dx rows (as in mode 1) and, per kernel row di, a tile of the (kw, c) rows x f
        filters of dkernel[di] read dz from there (part[g] accumulates the group's images in
        order). dz never goes to memory.

    The arguments a mode does not use are empty arrays (one signature per dtype).
    """
    isz = zeros.itemsize
    zb = np.int64(zeros.ctypes.data)
    sb, wb, ob, vb = (np.int64(src.ctypes.data), np.int64(wgt.ctypes.data), np.int64(out.ctypes.data),
                      np.int64(vec.ctypes.data))
    pkb = np.int64(part.ctypes.data)
    xb = np.int64(xpad.ctypes.data)
    has_dx = out.shape[0] > 0
    # one prange loop for all modes (each prange loop is compiled, with the tiles, separately)
    if mode == 0:
        n_img, hp, wp, c = src.shape
        kh, kw, _, f = wgt.shape
        oh, ow = out.shape[1], out.shape[2]
        total = n_img * oh
    elif mode == 1:
        n_img, hp, wp, c = out.shape  # dx (N, H, W, C); hp, wp are H, W here
        kh, kw, f = wgt.shape[0], wgt.shape[1], wgt.shape[2]
        oh, ow = src.shape[1], src.shape[2]
        total = n_img
    else:
        n_img, oh, ow, f = src.shape
        kh, kw = wgt.shape[0], wgt.shape[1]
        c = xpad.shape[3]
        xh, xw = xpad.shape[1], xpad.shape[2]
        hp, wp = (out.shape[1], out.shape[2]) if has_dx else (oh, ow)  # dx's H, W (as in mode 1)
        total = ngroups
    # mode 1/2 buffer: dz of one image, (PH, PW, F), its interior at (pt, pl); without dx, no border
    if mode == 1 or has_dx:
        ph, pw, pt, pl = hp + kh - 1, wp + kw - 1, kh - 1 - top, kw - 1 - left
    else:
        ph, pw, pt, pl = oh, ow, 0, 0
    step = gimg if mode == 2 else 1  # images per iteration (mode 0: one output row)
    for u in prange(total):
        fpu = denormals_off()  # (see numba_fpu)
        i0 = u * step
        for n in range(i0, min(n_img, i0 + step) if mode != 0 else i0 + 1):
            nrows = 1
            ndx = 0  # mode 2: the first ndx rows are dx rows, the kh after them dkernel rows
            if mode != 0:  # dz[n] into the buffer (mode 2: masked, and summed for dbias)
                buf = scratch[numba.get_thread_id()]
                if mode == 1 or has_dx:
                    for r in range(ph):  # zero the border only; the interior is overwritten just below
                        if r < pt or r >= pt + oh:
                            buf[r] = 0
                        else:
                            buf[r, :pl] = 0
                            buf[r, pl + ow:] = 0
                if mode == 1:
                    for i in range(oh):
                        for j in range(ow):
                            for o in range(f):
                                buf[pt + i, pl + j, o] = src[n, i, j, o]
                    nrows = hp
                else:
                    pb = pbias[u]
                    if n == i0:
                        pb[:] = 0
                    masked = mask.shape[0] > 0
                    for i in range(oh):
                        for j in range(ow):
                            row, dyr = buf[pt + i, pl + j], src[n, i, j]
                            yr = mask[n, i, j] if masked else dyr
                            for o in range(f):  # a select, not a branch: it vectorises
                                v = dyr[o] if not masked or yr[o] > 0 else zeros[0]
                                row[o] = v
                                pb[o] += v
                    ndx = hp if has_dx else 0
                    nrows = ndx + kh
            for r in range(nrows):  # a single tile call site (it is inlined: one copy keeps compiling cheap)
                acc = 0
                if mode == 0:  # output row (n, i): ow pixels x f channels
                    n_ = u // oh
                    i = u - n_ * oh
                    cnt, wid, a, ar, b, o_, ldo, bias = ow, f, sb + ((n_ * hp + i * sh) * wp) * c * isz, sw * c, \
                        wb, ob + (u * ow) * f * isz, f, vb
                    n1, n2, n3, a1, a2, a3, b1, b2, b3, rl = kh, kw, c, wp * c, c, 1, kw * c * f, c * f, f, relu
                elif mode == 1 or r < ndx:  # dx row r of image n: wp pixels x c channels, kernel rows d0..d1-1
                    d0 = max(0, kh - 1 - top - r)
                    d1 = min(kh, kh - 1 - top + oh - r)
                    cnt, wid, ar, ldo, bias = wp, c, f, c, zb
                    a = np.int64(scratch[numba.get_thread_id()].ctypes.data) + ((r + d0) * pw) * f * isz
                    b = wb + d0 * kw * f * c * isz
                    o_ = ob + ((n * hp + r) * wp) * c * isz
                    n1, n2, n3, a1, a2, a3 = max(0, d1 - d0), kw, f, pw * f, f, 1
                    b1, b2, b3, rl = kw * f * c, f * c, c, 0
                else:  # mode 2, dkernel[di] of image n (dz from the buffer), added to part[u]: its kw * c
                    # rows (dj, c) are consecutive in x too: x[.., j + dj, c] is element dj * C + c
                    # after pixel j
                    di = r - ndx
                    cnt, wid, ar, ldo, bias = kw * c, f, 1, f, zb
                    a = xb + ((n * xh + di) * xw) * c * isz
                    b = np.int64(scratch[numba.get_thread_id()].ctypes.data) + (pt * pw + pl) * f * isz
                    o_ = pkb + ((u * kh + di) * kw * c) * f * isz
                    n1, n2, n3 = 1, oh, ow
                    a1, a2, a3, b1, b2, b3, rl = 0, sh * xw * c, sw * c, 0, pw * f, f, 0
                    acc = 1 if n > i0 else 0
                _tile_grid(zeros, cnt, wid, a, ar, b, o_, ldo, bias, n1, n2, n3, a1, a2, a3, b1, b2, b3, rl, acc, 0)
        denormals_restore(fpu)


# ----------------------------------------------------------------------------- helpers
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _as(a, dtype):
    """C-contiguous array of ``dtype`` (no copy when it already is one)."""
    return np.ascontiguousarray(a, dtype=dtype)


def _bias_or_zeros(bias, f, dtype):
    return np.zeros(f, dtype=dtype) if bias is None else _as(bias, dtype)


def threading_info() -> dict:
    """numba's threading layer and thread count, and how BLAS is used (runs a tiny parallel kernel
    first if none has run yet, because numba picks its layer lazily)."""
    try:
        layer = numba.threading_layer()
    except ValueError:
        z = np.zeros(4, dtype=np.float32)
        _relu_fwd(z, z.copy())
        layer = numba.threading_layer()
    return {
        "layer": layer,
        "num_threads": int(numba.get_num_threads()),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "omp_wait_policy_set_by_minicnn": _OMP_POLICY_SET_HERE,
        "fma_tiles": bool(_TILES),
        "denormals_flushed_in_kernels": bool(_fpu_x86),
        "blas_in_numba": bool(_FAST),
        "blas_library": _blas.path,
        "blas_corename": _blas.corename,
        "blas_threads_outside_calls": _blas.threads(),
    }


def _conv_chunking(n, oh, ow):
    """(images per chunk, number of chunks, number of groups): shapes only, never thread count."""
    cimg = max(1, _CHUNK_ROWS // max(1, oh * ow))
    nq = -(-n // cimg)
    return cimg, nq, min(nq, _MAX_GROUPS)


# ----------------------------------------------------------------------------- numba kernels
@njit(cache=True)
def _im2col_imgs(x, n0, n1, kh, kw, sh, sw, top, left, oh, ow, cols):
    """Rows of images n0..n1-1 into cols[0:(n1-n0)*OH*OW]: columns in (kh, kw, c) order (HWIO)."""
    _, h, w, c = x.shape
    row = 0
    for n in range(n0, n1):
        for i in range(oh):
            for j in range(ow):
                for di in range(kh):
                    r = i * sh + di - top
                    for dj in range(kw):
                        s = j * sw + dj - left
                        off = (di * kw + dj) * c
                        if 0 <= r < h and 0 <= s < w:
                            for ch in range(c):
                                cols[row, off + ch] = x[n, r, s, ch]
                        else:
                            for ch in range(c):
                                cols[row, off + ch] = 0
                row += 1


@njit(cache=True)
def _col2im_imgs(dcols, n0, n1, kh, kw, sh, sw, top, left, oh, ow, dx):
    """Adjoint of :func:`_im2col_imgs` for images n0..n1-1, as a gather in (di, dj) order."""
    _, h, w, c = dx.shape
    for n in range(n0, n1):
        base = (n - n0) * oh
        for r in range(h):
            for s in range(w):
                for ch in range(c):
                    dx[n, r, s, ch] = 0
                for di in range(kh):
                    ii = r + top - di
                    if sh == 1:
                        if ii < 0 or ii >= oh:
                            continue
                        i = ii
                    else:
                        if ii < 0 or ii % sh != 0 or ii // sh >= oh:
                            continue
                        i = ii // sh
                    for dj in range(kw):
                        jj = s + left - dj
                        if sw == 1:
                            if jj < 0 or jj >= ow:
                                continue
                            j = jj
                        else:
                            if jj < 0 or jj % sw != 0 or jj // sw >= ow:
                                continue
                            j = jj // sw
                        row = (base + i) * ow + j
                        off = (di * kw + dj) * c
                        for ch in range(c):
                            dx[n, r, s, ch] += dcols[row, off + ch]


@njit(cache=True)
def _bias_act_rows(y2, r0, r1, b, relu):
    """In place on rows r0..r1-1 of (M, F): y += b, then max(., 0) if relu (NaN stays NaN)."""
    f = y2.shape[1]
    for r in range(r0, r1):
        for o in range(f):
            v = y2[r, o] + b[o]
            if relu and v < 0:
                y2[r, o] = 0
            else:
                y2[r, o] = v


@njit(parallel=True, cache=True)
def _conv_fwd_gemm(x, k4, b, sh, sw, top, left, relu, identity, cimg, scratch, y):
    """y = bias + im2col(x) @ W per chunk of ``cimg`` images, relu fused; one GEMM per chunk.

    ``identity``: 1x1 kernel, stride 1, no padding — x's rows are the im2col matrix already.
    """
    n_img = x.shape[0]
    kh, kw, c, f = k4.shape
    _, oh, ow, _ = y.shape
    kdim = kh * kw * c
    p = oh * ow
    single = x.itemsize == 4
    isz = x.itemsize
    nq = (n_img + cimg - 1) // cimg
    y2 = y.reshape(n_img * p, f)
    for q in prange(nq):
        fpu = denormals_off()  # (see numba_fpu)
        n0 = q * cimg
        n1 = min(n_img, n0 + cimg)
        cols = scratch[numba.get_thread_id()]
        if identity:
            src = np.int64(x.ctypes.data) + n0 * p * kdim * isz
        else:
            _im2col_imgs(x, n0, n1, kh, kw, sh, sw, top, left, oh, ow, cols)
            src = np.int64(cols.ctypes.data)
        _gemm(single, False, False, (n1 - n0) * p, f, kdim, src, kdim,
              np.int64(k4.ctypes.data), f, 0.0, np.int64(y.ctypes.data) + n0 * p * f * isz, f)
        _bias_act_rows(y2, n0 * p, n1 * p, b, relu)
        denormals_restore(fpu)


@njit(parallel=True, cache=True)
def _conv_bwd_gemm(dy, x, k4, sh, sw, top, left, need_dx, need_dw, identity, cimg, ngroups, scratch, pk, pb, dx):
    """Per group of chunks: pk[g] = sum of im2col(x)^T @ dy, pb[g] = column sums of dy (chunks
    in order); and dx = col2im(dy @ W^T) per chunk when ``need_dx``."""
    n_img = x.shape[0]
    kh, kw, c, f = k4.shape
    _, oh, ow, _ = dy.shape
    kdim = kh * kw * c
    p = oh * ow
    single = x.itemsize == 4
    isz = x.itemsize
    nq = (n_img + cimg - 1) // cimg
    dy2 = dy.reshape(n_img * p, f)
    for g in prange(ngroups):
        fpu = denormals_off()  # (see numba_fpu)
        q0 = g * nq // ngroups
        q1 = (g + 1) * nq // ngroups
        pkg = np.int64(pk.ctypes.data) + g * kdim * f * isz
        for o in range(f):
            pb[g, o] = 0
        for q in range(q0, q1):
            n0 = q * cimg
            n1 = min(n_img, n0 + cimg)
            rows = (n1 - n0) * p
            dyp = np.int64(dy.ctypes.data) + n0 * p * f * isz
            cols = scratch[numba.get_thread_id()]
            if identity:
                src = np.int64(x.ctypes.data) + n0 * p * kdim * isz
            elif need_dw:
                _im2col_imgs(x, n0, n1, kh, kw, sh, sw, top, left, oh, ow, cols)
                src = np.int64(cols.ctypes.data)
            if need_dw:
                _gemm(single, True, False, kdim, f, rows, src, kdim, dyp, f, 0.0 if q == q0 else 1.0, pkg, f)
                for r in range(n0 * p, n1 * p):
                    for o in range(f):
                        pb[g, o] += dy2[r, o]
            if need_dx:
                if identity:
                    _gemm(single, False, True, rows, kdim, f, dyp, f, np.int64(k4.ctypes.data), f, 0.0,
                          np.int64(dx.ctypes.data) + n0 * p * kdim * isz, kdim)
                else:
                    _gemm(single, False, True, rows, kdim, f, dyp, f, np.int64(k4.ctypes.data), f, 0.0,
                          np.int64(cols.ctypes.data), kdim)
                    _col2im_imgs(cols, n0, n1, kh, kw, sh, sw, top, left, oh, ow, dx)
        denormals_restore(fpu)


@njit(parallel=True, cache=True)
def _sum_groups(p, out):
    """out[j] = p[0, j] + p[1, j] + ... (in that order), parallel over blocks of j."""
    ng, length = p.shape
    nb = (length + 511) // 512
    for blk in prange(nb):
        fpu = denormals_off()  # (see numba_fpu)
        j0 = blk * 512
        o = out[j0:min(length, j0 + 512)]  # slices: indices from 0 vectorise (see _EW_BLOCK)
        o[:] = p[0, j0:j0 + o.size]
        for g in range(1, ng):
            row = p[g, j0:j0 + o.size]
            for j in range(o.size):
                o[j] += row[j]
        denormals_restore(fpu)


@njit(parallel=True, cache=True)
def _dense_fwd(x, w, nparts, nrowblk, part):
    """part[t] = x[:, K_t] @ w[K_t, :] for ``nparts`` fixed slices K_t of the inner dimension,
    each computed as ``nrowblk`` GEMMs over fixed blocks of rows."""
    m, k = x.shape
    n = w.shape[1]
    isz = x.itemsize
    for u in prange(nparts * nrowblk):
        fpu = denormals_off()  # (see numba_fpu)
        t = u // nrowblk
        rb = u - t * nrowblk
        k0 = t * k // nparts
        k1 = (t + 1) * k // nparts
        r0 = rb * m // nrowblk
        r1 = (rb + 1) * m // nrowblk
        _gemm(isz == 4, False, False, r1 - r0, n, k1 - k0, np.int64(x.ctypes.data) + (r0 * k + k0) * isz, k,
              np.int64(w.ctypes.data) + k0 * n * isz, n, 0.0,
              np.int64(part.ctypes.data) + (t * m + r0) * n * isz, n)
        denormals_restore(fpu)


@njit(parallel=True, cache=True)
def _dense_fwd_tiles(x, w, nparts, kb, zeros, part):
    """float32 ``part[t] = x[:, K_t] @ w[K_t, :]`` on the FMA tiles for ``nparts`` fixed slices K_t of
    the inner dimension (one per parallel iteration), each in blocks of ``kb`` rows of w (the
    block of w and of x stay in L2 while every tile of samples x 64 sweeps them; the block
    results are added into part[t] in order)."""
    m, k = x.shape
    n = w.shape[1]
    isz = x.itemsize
    xb, wb, pb, zb = np.int64(x.ctypes.data), np.int64(w.ctypes.data), np.int64(part.ctypes.data), \
        np.int64(zeros.ctypes.data)
    for t in prange(nparts):
        fpu = denormals_off()  # (see numba_fpu)
        k0 = t * k // nparts
        k1 = (t + 1) * k // nparts
        for b0 in range(k0, k1, kb):
            _tile_grid(zeros, m, n, xb + b0 * isz, k, wb + b0 * n * isz, pb + t * m * n * isz, n, zb,
                       1, 1, min(k1, b0 + kb) - b0, 0, 0, 1, 0, 0, n, 0, 1 if b0 > k0 else 0, 0)
        denormals_restore(fpu)


@njit(cache=True)
def _dense_finish(part, b, relu, y):
    """y = part[0] + part[1] + ... (in order) + b, relu fused (small: N x out)."""
    nparts, m, n = part.shape
    fpu = denormals_off()
    for r in range(m):
        for o in range(n):
            v = part[0, r, o]
            for t in range(1, nparts):
                v += part[t, r, o]
            v += b[o]
            if relu and v < 0:
                y[r, o] = 0
            else:
                y[r, o] = v
    denormals_restore(fpu)


@njit(parallel=True, cache=True)
def _dense_bwd(dy, x, w, need_dx, blk, dx, dw):
    """dw = x^T @ dy by blocks of dw's rows; dx = dy @ w^T by blocks of dx's columns."""
    m, k = x.shape
    n = w.shape[1]
    single = x.itemsize == 4
    isz = x.itemsize
    nb = (k + blk - 1) // blk
    for t in prange(nb):
        fpu = denormals_off()  # (see numba_fpu)
        r0 = t * blk
        r1 = min(k, r0 + blk)
        _gemm(single, True, False, r1 - r0, n, m, np.int64(x.ctypes.data) + r0 * isz, k,
              np.int64(dy.ctypes.data), n, 0.0, np.int64(dw.ctypes.data) + r0 * n * isz, n)
        if need_dx:
            _gemm(single, False, True, m, r1 - r0, n, np.int64(dy.ctypes.data), n,
                  np.int64(w.ctypes.data) + r0 * n * isz, n, 0.0, np.int64(dx.ctypes.data) + r0 * isz, k)
        denormals_restore(fpu)


@njit(parallel=True, cache=True)
def _dense_bwd_tiles(dy, x, w, need_dx, ib, scratch, xpack, zeros, dx, dw, nonfinite):
    """float32 dense backward on the FMA tiles, per block of ``ib`` rows of w (``in`` and ``out``
    multiples of 16): x[:, block] is packed into the thread's ``xpack`` (samples x ib: x's rows are
    ``in`` floats apart, a stride that maps them all to a few cache sets), dw[block] = that^T @ dy
    (a tile of rows x 64 accumulates over the samples), then the block of w is transposed 16 x 16
    at a time into the thread's ``scratch`` (out x ib) and dx[:, block] = dy @ that (tiles of
    samples x 64 over ``out``). Each output element is one tile's sum in a fixed order:
    deterministic for any thread count. nonfinite[t] (zeroed by the caller) becomes 1 if block t
    of dw holds a NaN or inf (checked by the tiles while the values are in registers)."""
    m, k = x.shape
    n = w.shape[1]
    isz = x.itemsize
    wb, dyb = np.int64(w.ctypes.data), np.int64(dy.ctypes.data)
    dxb, dwb, zb = np.int64(dx.ctypes.data), np.int64(dw.ctypes.data), np.int64(zeros.ctypes.data)
    fb = np.int64(nonfinite.ctypes.data)
    for t in prange(-(-k // ib)):
        fpu = denormals_off()  # (see numba_fpu)
        i0 = t * ib
        rows = min(k, i0 + ib) - i0
        wt = np.int64(scratch[numba.get_thread_id()].ctypes.data)
        xp = xpack[numba.get_thread_id()]
        for phase in range(2 if need_dx else 1):  # one tile call site (keeps compiling cheap)
            if phase == 0:  # dw rows i0.. : A = x[s, i0 + r] packed (r along the tile), B = dy[s, :]
                for s_ in range(m):
                    xp[s_, :rows] = x[s_, i0:i0 + rows]
                cnt, wid, a, ar, b, o_, ldo, a3, b3 = rows, n, np.int64(xp.ctypes.data), 1, dyb, dwb + i0 * n * isz, \
                    n, ib, n
            else:  # dx columns i0.. : A = dy[s, j] (s along the tile), B = w[i0 + c, j] transposed
                for j0 in range(0, n, 16):
                    for r0 in range(0, rows, 16):
                        _transpose16(wb + ((i0 + r0) * n + j0) * isz, n, wt + (j0 * ib + r0) * isz, ib)
                cnt, wid, a, ar, b, o_, ldo, a3, b3 = m, rows, dyb, n, wt, dxb + i0 * isz, k, 1, ib
            _tile_grid(zeros, cnt, wid, a, ar, b, o_, ldo, zb, 1, 1, n if phase else m, 0, 0, a3, 0, 0, b3, 0, 0,
                       0 if phase else fb + t * 8)
        denormals_restore(fpu)


@njit(parallel=True, cache=True)
def _maxpool_fwd(x, ph, pw, sh, sw, top, left, y, arg):
    """Max and first argmax per window, np.argmax's rule: a NaN wins, padded cells are -inf.

    The window loop is outside the channel loop, so the compare-and-select is vectorised over C.
    """
    n_img, h, w, c = x.shape
    _, oh, ow, _ = y.shape
    for t in prange(n_img * oh):
        n = t // oh
        i = t - n * oh
        for j in range(ow):
            for di in range(ph):
                r = i * sh + di - top
                for dj in range(pw):
                    s = j * sw + dj - left
                    kk = di * pw + dj
                    inside = 0 <= r < h and 0 <= s < w
                    if kk == 0:
                        for ch in range(c):
                            y[n, i, j, ch] = x[n, r, s, ch] if inside else -np.inf
                            arg[n, i, j, ch] = 0
                    elif inside:  # a padded cell (-inf) never replaces the current best
                        for ch in range(c):
                            v = x[n, r, s, ch]
                            best = y[n, i, j, ch]
                            if (v > best or np.isnan(v)) and not np.isnan(best):
                                y[n, i, j, ch] = v
                                arg[n, i, j, ch] = kk


@njit(parallel=True, cache=True)
def _maxpool_bwd(dy, arg, ph, pw, sh, sw, top, left, dx):
    """Gather: each input cell sums dy of the windows whose argmax is it, in (di, dj) order."""
    n_img, h, w, c = dx.shape
    _, oh, ow, _ = dy.shape
    for t in prange(n_img * h):
        n = t // h
        r = t - n * h
        for s in range(w):
            for ch in range(c):
                dx[n, r, s, ch] = 0
            for di in range(ph):
                ii = r + top - di
                if ii < 0 or ii % sh != 0 or ii // sh >= oh:
                    continue
                i = ii // sh
                for dj in range(pw):
                    jj = s + left - dj
                    if jj < 0 or jj % sw != 0 or jj // sw >= ow:
                        continue
                    j = jj // sw
                    kk = di * pw + dj
                    for ch in range(c):
                        if arg[n, i, j, ch] == kk:
                            dx[n, r, s, ch] += dy[n, i, j, ch]


#: elementwise kernels: one prange iteration per block (amortises scheduling). A block is taken as
#: slices, looped from index 0: numba cannot tell that ``range(t * B, ...)`` is non-negative, and
#: its negative-index handling stops LLVM from vectorising (measured: Adam 4.2 ms vs 1.4, relu
#: backward 1.0 vs 0.75)
_EW_BLOCK = 16384


@njit(parallel=True, cache=True)
def _relu_fwd(x, y):
    size = x.shape[0]
    for t in prange((size + _EW_BLOCK - 1) // _EW_BLOCK):
        t0, t1 = t * _EW_BLOCK, min(size, t * _EW_BLOCK + _EW_BLOCK)
        xs, ys = x[t0:t1], y[t0:t1]
        for i in range(xs.size):
            ys[i] = 0 if xs[i] < 0 else xs[i]


@njit(parallel=True, cache=True)
def _relu_bwd(dy, y, dx):
    size = dy.shape[0]
    for t in prange((size + _EW_BLOCK - 1) // _EW_BLOCK):
        t0, t1 = t * _EW_BLOCK, min(size, t * _EW_BLOCK + _EW_BLOCK)
        dys, ys, dxs = dy[t0:t1], y[t0:t1], dx[t0:t1]
        for i in range(dys.size):
            dxs[i] = dys[i] if ys[i] > 0 else 0


# ----------------------------------------------------------------------------- conv2d
def _scratch(nrows, kdim, dtype):
    """One private im2col chunk buffer per numba thread (numba.get_thread_id() indexes it)."""
    return np.empty((numba.get_num_threads(), nrows, kdim), dtype=dtype)


def _tiles_ok(dtype, width) -> bool:
    """The FMA tiles serve float32 (the speed dtype) when ``width`` fills whole 16-lane vectors;
    float64 (the accuracy dtype) takes the im2col + GEMM path, which keeps compile time down."""
    return _TILES and dtype == np.float32 and width % _L[4] == 0


_EMPTY4 = {np.dtype(t): np.empty((0, 0, 0, 0), dtype=t) for t in (np.float32, np.float64)}
_EMPTY2 = {np.dtype(t): np.empty((0, 0), dtype=t) for t in (np.float32, np.float64)}


def conv2d_forward(x, kernel, bias, strides, pads, relu=False, cache=None):
    """2-D cross-correlation, as :func:`minicnn.kernels.numpy_backend.conv2d_forward`.

    Returns y : (N, OH, OW, F) with ``x``'s dtype. ``cache`` is accepted for the contract; this
    backend keeps nothing in it (the backward needs only x).
    """
    x = np.asarray(x)
    if x.dtype not in _FLOATS or not (_FAST or _tiles_ok(x.dtype, np.shape(kernel)[3])):
        return _ref.conv2d_forward(x, kernel, bias, strides, pads, relu=relu, cache=cache)
    x = np.ascontiguousarray(x)
    dtype = x.dtype
    kernel = _as(kernel, dtype)
    kh, kw, c, f = kernel.shape
    sh, sw = strides
    n = x.shape[0]
    oh, ow = padded_output_hw(x.shape, (kh, kw), (sh, sw), pads)
    b = _bias_or_zeros(bias, f, dtype)
    y = np.empty((n, oh, ow, f), dtype=dtype)
    if _tiles_ok(dtype, f):
        _conv_tiles(0, _ref.pad_nhwc(x, pads), kernel, y, b, b, _EMPTY4[dtype], _EMPTY2[dtype], sh, sw, 0, 0, 0, 0,
                    1 if relu else 0, _EMPTY4[dtype], _EMPTY4[dtype], _EMPTY2[dtype])
    else:
        identity = kh == 1 and kw == 1 and sh == 1 and sw == 1 and not any(pads)
        cimg, _, _ = _conv_chunking(n, oh, ow)
        scratch = _scratch(0 if identity else cimg * oh * ow, kh * kw * c, dtype)
        with _blas:
            _conv_fwd_gemm(x, kernel, b, sh, sw, pads[0], pads[2], bool(relu), identity, cimg, scratch, y)
    return y


def conv2d_backward(dy, x, kernel, strides, pads, need_dx=True, cache=None, relu_y=None):
    """Gradients of :func:`conv2d_forward`: ``(dx | None, dkernel, dbias)``; with ``relu_y`` (the
    forward's relu output), of the relu'd convolution (dy masked by ``relu_y > 0``)."""
    dy = np.asarray(dy)
    if dy.dtype not in _FLOATS or (relu_y is not None and np.shape(relu_y) != dy.shape):
        return _ref.conv2d_backward(dy, x, kernel, strides, pads, need_dx=need_dx, cache=cache, relu_y=relu_y)
    dy = np.ascontiguousarray(dy)
    dtype = dy.dtype
    x = _as(x, dtype)
    kernel = _as(kernel, dtype)
    kh, kw, c, f = kernel.shape
    sh, sw = strides
    n = x.shape[0]
    oh, ow = dy.shape[1:3]
    kdim = kh * kw * c
    if n == 0 or oh * ow == 0:  # an empty batch: zero gradients (nothing to reduce)
        return (np.zeros(x.shape, dtype) if need_dx else None), np.zeros(kernel.shape, dtype), np.zeros(f, dtype)
    # dkernel/dbias: FMA tiles when F fills whole vectors, else im2col + GEMM
    dw_mode = "tiles" if _tiles_ok(dtype, f) else "gemm"
    # dx: FMA tiles (a stride-1 correlation of the padded dy with the flipped kernel), else GEMM
    dx_mode = None
    if need_dx:
        fits = sh == 1 and sw == 1 and pads[0] < kh and pads[1] < kh and pads[2] < kw and pads[3] < kw
        dx_mode = "tiles" if _tiles_ok(dtype, c) and fits else "gemm"
    if not _FAST and "gemm" in (dw_mode, dx_mode):  # no BLAS to call from numba: the numpy backend
        return _ref.conv2d_backward(dy, x, kernel, strides, pads, need_dx=need_dx, cache=cache, relu_y=relu_y)
    dx = np.empty(x.shape if need_dx else (0, 0, 0, 0), dtype=dtype)
    dkernel = np.empty(kdim * f, dtype=dtype)
    dbias = np.empty(f, dtype=dtype)
    zeros = np.zeros(max(c, f), dtype=dtype)
    if dx_mode == "tiles":
        wt = np.ascontiguousarray(kernel[::-1, ::-1].transpose(0, 1, 3, 2))  # (KH, KW, F, C), flipped
    else:
        wt = np.empty((kh, kw, 0, 0), dtype=dtype)  # (only its shape: the kernel size)
    if dw_mode == "tiles":  # dkernel, dbias and the tiles' dx in one pass over dy, relu fused
        gimg = -(-n // min(n, _MAX_GROUPS))  # images per partial sum: from the shape only
        ng = -(-n // gimg)
        pk = np.empty((ng, kdim * f), dtype=dtype)
        pb = np.empty((ng, f), dtype=dtype)
        tiles_dx = dx_mode == "tiles"
        bh, bw = (x.shape[1] + kh - 1, x.shape[2] + kw - 1) if tiles_dx else (oh, ow)
        scratch = np.empty((numba.get_num_threads(), bh, bw, f), dtype=dtype)
        _conv_tiles(2, dy, wt, dx if tiles_dx else _EMPTY4[dtype], zeros, zeros, scratch, pk, sh, sw, pads[0],
                    pads[2], gimg, ng, 0, _ref.pad_nhwc(x, pads),
                    _EMPTY4[dtype] if relu_y is None else _as(relu_y, dtype), pb)
        _sum_groups(pk, dkernel)
        _sum_groups(pb, dbias)
        if dx_mode != "gemm":
            return (dx if need_dx else None), dkernel.reshape(kernel.shape), dbias
    # what is left: dx of a strided conv, or dkernel/dbias for F not filling whole vectors
    if relu_y is not None:
        dy = relu_backward(dy, relu_y)
    if dx_mode == "tiles":  # (and dkernel by GEMM below)
        scratch = np.empty((numba.get_num_threads(), x.shape[1] + kh - 1, x.shape[2] + kw - 1, f), dtype=dtype)
        _conv_tiles(1, dy, wt, dx, zeros, zeros, scratch, _EMPTY2[dtype], 1, 1, pads[0], pads[2], 0, 0, 0,
                    _EMPTY4[dtype], _EMPTY4[dtype], _EMPTY2[dtype])
    cimg, _, ngroups = _conv_chunking(n, oh, ow)
    identity = kh == 1 and kw == 1 and sh == 1 and sw == 1 and not any(pads)
    scratch = _scratch(0 if identity else cimg * oh * ow, kdim, dtype)
    pk = np.empty((ngroups, kdim * f), dtype=dtype)
    pb = np.empty((ngroups, f), dtype=dtype)
    with _blas:
        _conv_bwd_gemm(dy, x, kernel, sh, sw, pads[0], pads[2], dx_mode == "gemm", dw_mode == "gemm", identity,
                       cimg, ngroups, scratch, pk, pb, dx)
    if dw_mode == "gemm":
        _sum_groups(pk, dkernel)
        _sum_groups(pb, dbias)
    return (dx if need_dx else None), dkernel.reshape(kernel.shape), dbias


# ----------------------------------------------------------------------------- max pooling
def maxpool2d_forward(x, pool_size, strides, pads):
    """Max over each window; returns ``(y, argmax)`` exactly as the numpy backend does
    (argmax: int32 window-local ``i * PW + j`` of the first maximum in row-major order)."""
    x = np.ascontiguousarray(x)
    if x.dtype not in _FLOATS:
        return _ref.maxpool2d_forward(x, pool_size, strides, pads)
    ph, pw = pool_size
    oh, ow = padded_output_hw(x.shape, (ph, pw), strides, pads)
    n, _, _, c = x.shape
    y = np.empty((n, oh, ow, c), dtype=x.dtype)
    arg = np.empty((n, oh, ow, c), dtype=np.int32)
    _maxpool_fwd(x, ph, pw, strides[0], strides[1], pads[0], pads[2], y, arg)
    return y, arg


def maxpool2d_backward(dy, argmax, x_shape, pool_size, strides, pads):
    """Route each upstream gradient to the input cell that won its window. Returns dx (x_shape)."""
    dy = np.ascontiguousarray(dy)
    if dy.dtype not in _FLOATS:
        return _ref.maxpool2d_backward(dy, argmax, x_shape, pool_size, strides, pads)
    argmax = np.ascontiguousarray(argmax, dtype=np.int32)
    dx = np.empty(tuple(x_shape), dtype=dy.dtype)
    _maxpool_bwd(dy, argmax, pool_size[0], pool_size[1], strides[0], strides[1], pads[0], pads[2], dx)
    return dx


# ----------------------------------------------------------------------------- relu, dense
def relu_forward(x):
    """max(x, 0), same dtype (NaN propagates)."""
    x = np.ascontiguousarray(x)
    if x.dtype not in _FLOATS or x.size < _SMALL_ELEMENTWISE:
        return _ref.relu_forward(x)
    y = np.empty_like(x)
    _relu_fwd(x.reshape(-1), y.reshape(-1))
    return y


def relu_backward(dy, y):
    """dy where the output was positive, 0 elsewhere (so the gradient at exactly 0 is 0)."""
    dy = np.ascontiguousarray(dy)
    if dy.dtype not in _FLOATS or dy.size < _SMALL_ELEMENTWISE:
        return _ref.relu_backward(dy, np.asarray(y, dtype=dy.dtype))
    y = _as(y, dy.dtype)
    dx = np.empty_like(dy)
    _relu_bwd(dy.reshape(-1), y.reshape(-1), dx.reshape(-1))
    return dx


def dense_forward(x, kernel, bias, relu=False):
    """``x @ kernel + bias``: x (N, in), kernel (in, out), bias (out,) or None -> (N, out)."""
    x = np.asarray(x)
    if x.dtype not in _FLOATS or not _FAST or x.shape[0] * np.size(kernel) <= _SMALL_GEMM:
        return _ref.dense_forward(x, np.asarray(kernel, dtype=x.dtype),
                                  None if bias is None else np.asarray(bias, dtype=x.dtype), relu=relu)
    x = np.ascontiguousarray(x)
    kernel = _as(kernel, x.dtype)
    (m, k), n = x.shape, kernel.shape[1]
    # the inner dimension is cut into a fixed number of slices (shape-only: deterministic for
    # any thread count); each slice is one GEMM, the partial products are added in order
    nparts = max(1, min(_DENSE_KSPLIT, k // _DENSE_MIN_KSLICE))
    if _tiles_ok(x.dtype, n) and m <= _DENSE_TILE_MAX_SAMPLES:
        part = np.empty((nparts, m, n), dtype=x.dtype)
        _dense_fwd_tiles(x, kernel, nparts, _DENSE_TILE_ROWS, np.zeros(n, x.dtype), part)
    else:
        nrowblk = 1 if nparts > 1 else max(1, min(_DENSE_MAX_BLOCKS, m // _DENSE_BLOCK))
        part = np.empty((nparts, m, n), dtype=x.dtype)
        with _blas:
            _dense_fwd(x, kernel, nparts, nrowblk, part)
    y = np.empty((m, n), dtype=x.dtype)
    _dense_finish(part, _bias_or_zeros(bias, n, x.dtype), bool(relu), y)
    return y


def dense_backward(dy, x, kernel, need_dx=True, check_finite=False):
    """Returns dx (N, in) or None, dkernel (in, out), dbias (out,) [, finite] (see the numpy backend)."""
    dy = np.asarray(dy)
    if dy.dtype not in _FLOATS or not _FAST or dy.shape[0] * np.size(kernel) <= _SMALL_GEMM:
        return _ref.dense_backward(dy, np.asarray(x, dtype=dy.dtype), np.asarray(kernel, dtype=dy.dtype),
                                   need_dx=need_dx, check_finite=check_finite)
    dy = np.ascontiguousarray(dy)
    x = _as(x, dy.dtype)
    kernel = _as(kernel, dy.dtype)
    m, k = x.shape
    n = kernel.shape[1]
    dw = np.empty((k, n), dtype=dy.dtype)
    dx = np.empty((m, k) if need_dx else (0, 0), dtype=dy.dtype)
    db = dy.sum(axis=0)
    if _tiles_ok(dy.dtype, n) and k % _L[4] == 0:
        scratch = np.empty((numba.get_num_threads(), n, _DENSE_TILE_ROWS), dtype=dy.dtype)
        xpack = np.empty((numba.get_num_threads(), m, _DENSE_TILE_ROWS), dtype=dy.dtype)
        nonfinite = np.zeros(-(-k // _DENSE_TILE_ROWS), dtype=np.int64)
        _dense_bwd_tiles(dy, x, kernel, bool(need_dx), _DENSE_TILE_ROWS, scratch, xpack,
                         np.zeros(max(n, _DENSE_TILE_ROWS), dy.dtype), dx, dw, nonfinite)
        dw_finite = not nonfinite.any()  # checked by the tiles
    else:
        blk = max(_DENSE_BLOCK, -(-k // _DENSE_MAX_BLOCKS))
        with _blas:
            _dense_bwd(dy, x, kernel, bool(need_dx), blk, dx, dw)
        dw_finite = None  # not checked yet
    grads = (dx if need_dx else None), dw, db
    if not check_finite:
        return grads
    return (*grads, (_ref.all_finite(dw) if dw_finite is None else dw_finite) and _ref.all_finite(db))


# fused optimizer updates (same names as numpy_backend)
from .numba_optim import adam_update  # noqa: E402,F401
from .numpy_pooling import avgpool2d_backward, avgpool2d_forward, global_avgpool2d_backward, global_avgpool2d_forward, global_maxpool2d_backward, global_maxpool2d_forward, zeropad2d_backward, zeropad2d_forward  # noqa: E402,F401  numba twins: phase 2 (numpy kernels until then)
from .numpy_batchnorm import batchnorm_backward, batchnorm_forward, batchnorm_train_forward, batchnorm_update_moving  # noqa: E402,F401  numba twins: phase 2 (numpy kernels until then)


# phase 2: dilation= in the numba conv kernels; until then a dilated conv runs numpy's kernels
def _numpy_if_dilated(fast, ref):
    return lambda *a, dilation=(1, 1), **k: fast(*a, **k) if tuple(dilation) == (1, 1) else ref(*a, dilation=dilation, **k)
conv2d_forward, conv2d_backward = _numpy_if_dilated(conv2d_forward, _ref.conv2d_forward), _numpy_if_dilated(conv2d_backward, _ref.conv2d_backward)
from .numpy_depthwise import depthwise_conv2d_backward, depthwise_conv2d_forward  # noqa: E402,F401  numba twins: phase 2 (numpy kernels until then)
from .numpy_activations import *  # noqa: E402,F401,F403  numba twins: phase 2 (numpy kernels until then)
