"""Register-blocked FMA micro-kernels ("tiles") written directly in LLVM IR, and their drivers.

Why IR: numba cannot keep a 6 x 64 block of accumulators in vector registers from Python source,
and without fastmath LLVM never contracts ``a*b+c`` into an FMA; ``llvm.fma`` is an explicit,
exactly-rounded operation (like a BLAS kernel's), not a fastmath flag.

**What a tile computes.** A tile of R rows x V vectors (L = 16 float32 or 8 float64 lanes per
512-bit vector) makes R output *items* (pixels, samples, kernel rows) of V*L output *columns*
(channels, units). For item r < R and vector v < V::

    acc[r][v] = sum over k1 < n1, k2 < n2, k3 < n3 (that order, k3 innermost) of
                A[a + r*a_item + k1*a1 + k2*a2 + k3*a3]           (one scalar, broadcast)
              * B[b + k1*b1 + k2*b2 + k3*b3 + v*L : +L]            (one vector, every item)
    out[o + r*o_item + v*L : +L] = acc + bias[v*L : +L], then max(., 0) if relu (NaN stays NaN)
                                 | out[...] + acc                 if accumulate (no bias, no relu)
    if flag (an address): the int64 at flag |= 1 when a stored value is NaN or +-inf (a check of
                          the output while it is in registers; not done when accumulating)

``a``, ``b``, ``o``, ``bias`` and ``flag`` are raw byte addresses, every step and stride is in
*elements* (``A[a + i]``: the element i elements after address a). The
accumulators stay in registers for the whole k loop (allocas that LLVM promotes); R*V <= 26
fits them in the 32 zmm registers next to the V B-vectors and the broadcast A value.

**How a call reads.** The 18 integers of a tile are grouped into named tuples, built at the
call site by name (numba compiles them away; the IR function the tiles call keeps its 18 plain
int64 parameters, in the order :data:`_TILE_PARAMS` lists)::

    tile_grid(carrier, count, width,
              TileA(addr=a, item=a_item),                    # operand A, the broadcast scalars
              b,                                             # operand B's address, the vectors
              (Loop(n1, a1, b1), Loop(n2, a2, b2), Loop(n3, a3, b3)),   # the reduction, outer first
              TileOut(addr=o, item=o_item, bias=..., relu=..., accumulate=..., flag=...))

:func:`tile_grid` covers ``count`` items x ``width`` columns (any number) with tiles:
column blocks of 4 vectors, then 2, then 1, then, when ``width`` is not a multiple of L, one
vector masked to the last ``width % L`` columns (every vector access of the 1-vector tiles is
masked to a run-time lane count: LeNet's 6 filters, 3-channel inputs' dx); along the items the
widest tile first (:func:`_tile_run`). Each output element is one tile's sum in a fixed order.

:func:`transpose16` is a 16 x 16 float32 transpose in registers (the dense backward's kernel
blocks).

**Compiling and caching.** The 30 tile bodies (15 shapes, float32 and float64) and the transpose
are compiled once per machine into two native libraries (:mod:`.native`, :data:`NATIVE`: the
float32 bodies and the transpose, built when this module is imported, and the float64 bodies,
built the first time a float64 tile kernel is compiled or loaded, :func:`uses_tiles`; later
processes load their cached object files, ~4 ms of CPU) and called by symbol:
a kernel's IR holds a declaration and a call, not a copy of them. numba links a callee into its
caller as IR and optimises and generates all of it again, once for a parallel kernel's gufunc and
once for the kernel around it: with the bodies in every module, the seed model's first step
generated them up to seven times (tile_grid's library, then the gufunc and the kernel of
``_conv_tiles``, ``_dense_fwd_tiles`` and ``_dense_bwd_tiles``). Measured with
``benchmarks/compile_profile.py`` (cold cache, one run each on a loaded 2-core machine):
``_dense_fwd_tiles`` 5.1 -> 1.7 s, ``_dense_bwd_tiles`` 6.2 -> 2.4 s, time under LLVM's lock in
the first step 17.5 -> 7.6 s; the results are bitwise the same. :func:`tile_grid` (with :func:`_tile_run`
inlined into it) and the small helpers are ordinary ``@njit`` functions, not ``inline="always"``
into the kernels, so numba types the 15 tile calls once per dtype and the kernels' own compiles
run on a small body. numba's on-disk cache keys a kernel on its own source file only, and a
cached kernel carries the drivers' code with it: :mod:`.cachestamp` drops the package's cached
kernels at import whenever any of its sources changed (the library's own cache key covers this
file, and the kernels call the bodies by name).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from llvmlite import ir
import numba
from numba import njit, types
from numba.core import cgutils, sigutils
from numba.extending import intrinsic

from . import config
from .native import NativeLibrary

__all__ = ["LANES", "TileA", "Loop", "TileOut", "one_loop", "tile_grid", "transpose16", "tiles_fit", "uses_tiles",
           "need_float64"]

#: the tiles' and the transpose's machine code (:mod:`.native`), by dtype (False: float32, True:
#: float64). float32 is built at the end of this module; float64 only when something needs it
#: (:func:`need_float64`): a float32 user's first-ever import then compiles half the bodies (the
#: library took 1.2 s of the seed model's 6.0 s cold start, its float64 half ~0.6 s of it)
NATIVE = {False: NativeLibrary("tiles-f32"), True: NativeLibrary("tiles-f64")}


def need_float64() -> None:
    """Build (or load from the cache) the float64 tile library, once per process: before any
    code calling its functions is compiled or loaded (an unresolved symbol would abort the
    process in LLVM's linker)."""
    if not numba.config.DISABLE_JIT:
        NATIVE[True].build()


def _float64_in(sig) -> bool:
    args = sig if isinstance(sig, tuple) else sigutils.normalize_signature(sig)[0]
    return any(isinstance(a, types.Array) and a.dtype == types.float64 for a in args)


def uses_tiles(dispatcher):
    """Mark an ``@njit`` function whose code calls the tiles, directly or through :func:`tile_grid`:
    every compile of it (numba's path for a new signature, from Python or from another kernel's
    typing, and for loading a cached one, which is not typed again) with a float64 array argument
    builds the float64 library first (:func:`need_float64`). Returns ``dispatcher``."""
    compile_ = dispatcher.compile

    def compile(sig):
        if _float64_in(sig):
            need_float64()
        return compile_(sig)

    dispatcher.compile = compile
    return dispatcher

#: lanes per 512-bit vector, by itemsize
LANES = {4: 16, 8: 8}


def tiles_fit(dtype, width) -> bool:
    """The FMA tiles serve float32 (the speed dtype) when ``width`` fills whole 16-lane vectors and
    :data:`config.TILES` is on; float64 (the accuracy dtype) takes the im2col + GEMM path, which
    keeps compile time down."""
    return config.TILES and dtype == np.float32 and width % LANES[4] == 0


# ----------------------------------------------------------------------------- arguments
class TileA(NamedTuple):
    """Operand A of a tile: scalars, each broadcast across the lanes."""

    #: byte address of A's element for item 0 at k1 = k2 = k3 = 0
    addr: int
    #: elements from one item's A element to the next item's
    item: int


class Loop(NamedTuple):
    """One level of a tile's reduction loop nest."""

    #: iterations (0: the tile stores bias/relu of zero sums, or adds nothing)
    n: int
    #: elements A advances per iteration
    a: int
    #: elements B advances per iteration
    b: int


class TileOut(NamedTuple):
    """Where and how a tile stores its items x columns."""

    #: byte address of item 0's first output column
    addr: int
    #: elements from one item's output row to the next item's
    item: int
    #: byte address of the bias of column 0 (the caller passes zeros when there is none); read
    #: for every column of the grid, also when accumulating
    bias: int
    #: non-zero: max(., 0) after the bias (NaN stays NaN)
    relu: int
    #: non-zero: out += sums (no bias, no relu, no flag) instead of out = sums + bias
    accumulate: int
    #: byte address of an int64 that gets |= 1 if a stored value is NaN/inf, or 0: no check
    flag: int


@njit(inline="always", cache=True)
def one_loop(n, a, b):
    """A reduction of a single level (``n`` iterations, steps ``a`` and ``b``): the outer two
    levels of the nest run once."""
    return (Loop(1, 0, 0), Loop(1, 0, 0), Loop(n, a, b))


#: the IR tile function's parameters, in order (all int64); how the named tuples map onto them
_TILE_PARAMS = ("a.addr", "b", "out.addr", "out.bias", "loops[0].n", "loops[1].n", "loops[2].n",
                "loops[0].a", "loops[1].a", "loops[2].a", "a.item", "loops[0].b", "loops[1].b",
                "loops[2].b", "out.item", "out.relu", "out.accumulate", "out.flag")


# ----------------------------------------------------------------------------- the tile's IR
def _emit_tile_body(builder, R, V, double, args):
    """The tile's IR (see the module docstring) into ``builder``; ``args`` are the 18 int64
    values named by :data:`_TILE_PARAMS`, and for a 1-vector tile (V == 1) a 19th: ``lanes``, the
    columns it covers (1..L). Every vector access of such a tile (B, bias, out) is masked to its
    first ``lanes`` lanes, so a grid of any width reads and writes exactly its columns (the masked
    loads/stores cost what plain ones do on AVX-512)."""
    L = 8 if double else 16
    fty = ir.DoubleType() if double else ir.FloatType()
    vty = ir.VectorType(fty, L)
    i64, i32 = ir.IntType(64), ir.IntType(32)
    align = 8 if double else 4
    fptr, vptr = fty.as_pointer(), vty.as_pointer()
    # a, b: operand addresses; out, bias: output and bias addresses; n1..n3: trip counts; a1..a3,
    # b1..b3: A's and B's steps per loop level; ar: A's step per item; ldo: out's step per item
    (a, b, out, bias, n1, n2, n3, a1, a2, a3, ar, b1, b2, b3, ldo, relu, accumulate, flag) = args[:18]
    fma = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vty, [vty, vty, vty]), "llvm.fma.v%d%s" % (L, "f64" if double else "f32"))
    zero = ir.Constant(vty, [0.0] * L)
    if V == 1:  # lane k is on iff k < lanes
        mty = ir.VectorType(ir.IntType(1), L)
        lanes = builder.trunc(args[18], i32)
        lanes_v = builder.shuffle_vector(builder.insert_element(ir.Constant(ir.VectorType(i32, L), ir.Undefined),
                                                                lanes, ir.Constant(i32, 0)),
                                         ir.Constant(ir.VectorType(i32, L), ir.Undefined),
                                         ir.Constant(ir.VectorType(i32, L), [0] * L))
        mask = builder.icmp_signed("<", ir.Constant(ir.VectorType(i32, L), list(range(L))), lanes_v)
        suffix = "v%d%s.p0v%d%s" % (L, "f64" if double else "f32", L, "f64" if double else "f32")
        mload = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vty, [vptr, i32, mty, vty]), "llvm.masked.load." + suffix)
        mstore = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [vty, vptr, i32, mty]), "llvm.masked.store." + suffix)

        def vload(p):
            return builder.call(mload, [p, ir.Constant(i32, align), mask, zero])

        def vstore(val, p):
            builder.call(mstore, [val, p, ir.Constant(i32, align), mask])
    else:
        def vload(p):
            return builder.load(p, align=align)

        def vstore(val, p):
            builder.store(val, p, align=align)
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
                bv = [vload(builder.bitcast(builder.gep(bbase, [builder.add(bo, ir.Constant(i64, v * L))]), vptr))
                      for v in range(V)]
                for r in range(R):
                    sc = builder.load(builder.gep(abase, [builder.add(ao, roff[r])]))
                    sv = builder.shuffle_vector(builder.insert_element(undef, sc, ir.Constant(i32, 0)), undef, splat)
                    for v in range(V):
                        builder.store(builder.call(fma, [sv, bv[v], builder.load(acc[r][v])]), acc[r][v])
    obase, biasbase = builder.inttoptr(out, fptr), builder.inttoptr(bias, fptr)
    do_relu = builder.icmp_signed("!=", relu, ir.Constant(i64, 0))
    do_acc = builder.icmp_signed("!=", accumulate, ir.Constant(i64, 0))
    bias_v = [vload(builder.bitcast(builder.gep(biasbase, [ir.Constant(i64, v * L)]), vptr)) for v in range(V)]

    def out_ptr(r, v):
        return builder.bitcast(builder.gep(obase, [builder.add(builder.mul(ldo, ir.Constant(i64, r)),
                                                               ir.Constant(i64, v * L))]), vptr)

    with builder.if_else(do_acc) as (then, otherwise):
        with then:
            for r in range(R):
                for v in range(V):
                    p = out_ptr(r, v)
                    vstore(builder.fadd(vload(p), builder.load(acc[r][v])), p)
        with otherwise:
            for r in range(R):
                for v in range(V):
                    val = builder.fadd(builder.load(acc[r][v]), bias_v[v])
                    neg = builder.fcmp_ordered("<", val, zero)
                    val = builder.select(do_relu, builder.select(neg, zero, val), val)
                    vstore(val, out_ptr(r, v))
    # the finiteness flag (only for stored, not accumulated, outputs): v - v is NaN iff v is NaN/inf
    with builder.if_then(builder.and_(builder.icmp_signed("!=", flag, ir.Constant(i64, 0)),
                                      builder.not_(do_acc))):
        bad = None
        for r in range(R):
            for v in range(V):
                val = vload(out_ptr(r, v))  # (masked: the lanes off are 0)
                nan = builder.fcmp_unordered("uno", builder.fsub(val, val), zero)
                bad = nan if bad is None else builder.or_(bad, nan)
        anybad = builder.icmp_unsigned("!=", builder.bitcast(bad, ir.IntType(L)), ir.Constant(ir.IntType(L), 0))
        fptr64 = builder.inttoptr(flag, i64.as_pointer())
        builder.store(builder.or_(builder.load(fptr64), builder.zext(anybad, i64)), fptr64)


def _is_args(ty, cls):
    """``ty`` is the numba type of a ``cls`` named tuple of integers."""
    return (isinstance(ty, types.BaseNamedTuple) and ty.instance_class is cls
            and all(isinstance(t, (types.Integer, types.Boolean)) for t in ty))


def _flat_tile_args(context, builder, sig, args):
    """The 18 int64 IR values (:data:`_TILE_PARAMS`) from the tile's (a, b, loops, out) arguments."""
    _, aty, bty, lty, oty = sig.args[:5]
    _, a, b, loops, out = args[:5]

    def field(value, ty, i):
        return context.cast(builder, builder.extract_value(value, i), ty[i], types.int64)

    def level(i, j):  # field j of loop level i
        return field(builder.extract_value(loops, i), lty[i], j)

    a_addr, a_item = field(a, aty, 0), field(a, aty, 1)
    o_addr, o_item, o_bias, o_relu, o_acc, o_flag = (field(out, oty, i) for i in range(6))
    return [a_addr, context.cast(builder, b, bty, types.int64), o_addr, o_bias,
            level(0, 0), level(1, 0), level(2, 0), level(0, 1), level(1, 1), level(2, 1), a_item,
            level(0, 2), level(1, 2), level(2, 2), o_item, o_relu, o_acc, o_flag]


def _tile_symbol(R, V, double):
    """The native library's name of the R x V tile (``m``: the masked 1-vector tile)."""
    return "minicnn_fma_tile_%dx%d%s_%s" % (R, V, "m" if V == 1 else "", "f64" if double else "f32")


def _tile_types_ok(carrier, a, b, loops, out):
    """The tile's (carrier, a, b, loops, out) argument types are what :func:`_make_tile` takes."""
    return (isinstance(carrier, types.Array) and carrier.dtype in (types.float32, types.float64)
            and _is_args(a, TileA) and isinstance(b, types.Integer) and _is_args(out, TileOut)
            and isinstance(loops, types.BaseTuple) and len(loops) == 3
            and all(_is_args(t, Loop) for t in loops))


def _tile_codegen(R, V, double):
    """The intrinsic's codegen: a call of the tile's native function (plus ``lanes`` when V == 1)."""

    def codegen(context, builder, signature, args):
        # a call of the native library's function (:mod:`.native`): its body is compiled
        # once per machine, not linked into and optimised again in every kernel's module
        fn = NATIVE[double].declare(builder.module, _tile_symbol(R, V, double))
        flat = _flat_tile_args(context, builder, signature, args)
        if V == 1:
            flat.append(context.cast(builder, args[5], signature.args[5], types.int64))
        builder.call(fn, flat)
        return context.get_dummy_value()

    return codegen


def _make_tile(R, V):
    """The R x V tile as a numba intrinsic ``tile(carrier, a: TileA, b: int, loops, out: TileOut)``
    (``loops``: three :class:`Loop`, outer first); its float32 and float64 bodies are added to
    :data:`NATIVE`. A 1-vector tile (V == 1) takes one more argument, ``lanes``: the columns it
    covers, 1..L (its vector accesses are masked to them)."""
    nparams = len(_TILE_PARAMS) + (1 if V == 1 else 0)
    for double in (False, True):
        NATIVE[double].add(_tile_symbol(R, V, double), [ir.IntType(64)] * nparams,
                           lambda builder, args, double=double: _emit_tile_body(builder, R, V, double, args))
    if V == 1:
        @intrinsic
        def tile(typingctx, carrier, a, b, loops, out, lanes):
            """``carrier`` is any array of the working dtype (it picks float or double, nothing else)."""
            if not (_tile_types_ok(carrier, a, b, loops, out) and isinstance(lanes, types.Integer)):
                return None  # numba reports the mismatch
            if carrier.dtype == types.float64:  # (also for callers not marked with uses_tiles)
                need_float64()
            return (types.void(carrier, a, b, loops, out, lanes),
                    _tile_codegen(R, V, carrier.dtype == types.float64))
    else:
        @intrinsic
        def tile(typingctx, carrier, a, b, loops, out):
            """``carrier`` is any array of the working dtype (it picks float or double, nothing else)."""
            if not _tile_types_ok(carrier, a, b, loops, out):
                return None  # numba reports the mismatch
            if carrier.dtype == types.float64:  # (also for callers not marked with uses_tiles)
                need_float64()
            return types.void(carrier, a, b, loops, out), _tile_codegen(R, V, carrier.dtype == types.float64)

    return tile


_t6x4, _t4x4, _t2x4, _t1x4 = (_make_tile(r, 4) for r in (6, 4, 2, 1))
_t13x2, _t12x2, _t8x2, _t4x2, _t2x2, _t1x2 = (_make_tile(r, 2) for r in (13, 12, 8, 4, 2, 1))
_t16x1, _t8x1, _t4x1, _t2x1, _t1x1 = (_make_tile(r, 1) for r in (16, 8, 4, 2, 1))


# ----------------------------------------------------------------------------- drivers
@njit(cache=True)
def _a_at(a, j, isz):
    """Operand A from item ``j`` on (``isz``: bytes per element)."""
    return TileA(a.addr + j * a.item * isz, a.item)


@njit(cache=True)
def _out_at(out, j, isz):
    """The output from item ``j`` on."""
    return TileOut(out.addr + j * out.item * isz, out.item, out.bias, out.relu, out.accumulate, out.flag)


@njit(cache=True)
def _out_cols(out, offset):
    """The output and bias from column byte offset ``offset`` on."""
    return TileOut(out.addr + offset, out.item, out.bias + offset, out.relu, out.accumulate, out.flag)


@uses_tiles
@njit(cache=True)
def _tile_run1(carrier, count, a, b, loops, out, lanes):
    """``count`` items of one vector masked to ``lanes`` columns (16, 8, 4, 2, 1 rows per tile);
    a function of its own, called from the two places that need it, so that its tiles are typed
    and lowered once."""
    isz = carrier.itemsize
    j = np.int64(0)  # (a literal 0 would type the first _a_at/_out_at call apart: a second compile)
    while count - j >= 16:
        _t16x1(carrier, _a_at(a, j, isz), b, loops, _out_at(out, j, isz), lanes)
        j += 16
    if count - j >= 8:
        _t8x1(carrier, _a_at(a, j, isz), b, loops, _out_at(out, j, isz), lanes)
        j += 8
    if count - j >= 4:
        _t4x1(carrier, _a_at(a, j, isz), b, loops, _out_at(out, j, isz), lanes)
        j += 4
    if count - j >= 2:
        _t2x1(carrier, _a_at(a, j, isz), b, loops, _out_at(out, j, isz), lanes)
        j += 2
    if count - j >= 1:
        _t1x1(carrier, _a_at(a, j, isz), b, loops, _out_at(out, j, isz), lanes)


@njit(inline="always", cache=True)
def _tile_run(carrier, v, count, a, b, loops, out, lanes):
    """``count`` items of ``v`` vectors (4, 2 or 1): the widest tile first, then 4, 2, 1 for the
    rest (arguments as in :func:`tile_grid`; ``lanes``: the columns of a 1-vector run, 1..L)."""
    isz = carrier.itemsize
    j = np.int64(0)  # (as in _tile_run1)
    if v == 4:
        while count - j >= 6:
            _t6x4(carrier, _a_at(a, j, isz), b, loops, _out_at(out, j, isz))
            j += 6
        if count - j >= 4:
            _t4x4(carrier, _a_at(a, j, isz), b, loops, _out_at(out, j, isz))
            j += 4
        if count - j >= 2:
            _t2x4(carrier, _a_at(a, j, isz), b, loops, _out_at(out, j, isz))
            j += 2
        if count - j >= 1:
            _t1x4(carrier, _a_at(a, j, isz), b, loops, _out_at(out, j, isz))
    elif v == 2:
        if count % 13 == 0:  # 26 (the seed model's conv2 dx rows): two 13-pixel tiles, no tail
            while count - j >= 13:
                _t13x2(carrier, _a_at(a, j, isz), b, loops, _out_at(out, j, isz))
                j += 13
        while count - j >= 12:
            _t12x2(carrier, _a_at(a, j, isz), b, loops, _out_at(out, j, isz))
            j += 12
        if count - j >= 8:
            _t8x2(carrier, _a_at(a, j, isz), b, loops, _out_at(out, j, isz))
            j += 8
        if count - j >= 4:
            _t4x2(carrier, _a_at(a, j, isz), b, loops, _out_at(out, j, isz))
            j += 4
        if count - j >= 2:
            _t2x2(carrier, _a_at(a, j, isz), b, loops, _out_at(out, j, isz))
            j += 2
        if count - j >= 1:
            _t1x2(carrier, _a_at(a, j, isz), b, loops, _out_at(out, j, isz))
    else:
        _tile_run1(carrier, count, a, b, loops, out, lanes)


@uses_tiles
@njit(cache=True)
def tile_grid(carrier, count, width, a, b, loops, out):
    """``count`` items x ``width`` output columns on the tiles: column blocks of 4 vectors, then 2,
    then 1, each a run of tiles along the items.

    Parameters
    ----------
    carrier : array
        Any array of the working dtype (float32 or float64): it only picks the tiles' type.
    count : int
        Output items (the R direction of the tiles).
    width : int
        Output columns, any number: whole vectors of L lanes (16 float32, 8 float64) first, then
        the last ``width % L`` columns on 1-vector tiles masked to them (B, the bias and the
        output are accessed only at the ``width`` columns).
    a : TileA
        Operand A, the broadcast scalars: its address and step per item.
    b : int
        Byte address of operand B's vector for column 0 (columns are consecutive in B).
    loops : tuple of three Loop
        The reduction nest, outer level first: trip counts and A's and B's steps.
    out : TileOut
        Output address and step per item, bias, relu, accumulate and the finiteness flag.
    """
    isz = carrier.itemsize
    lanes = 16 if isz == 4 else 8
    nvec = width // lanes
    c0 = 0
    while c0 < nvec:
        v = 4 if nvec - c0 >= 4 else 2 if nvec - c0 >= 2 else 1
        _tile_run(carrier, v, count, a, b + c0 * lanes * isz, loops, _out_cols(out, c0 * lanes * isz), lanes)
        c0 += v
    rest = width - nvec * lanes
    if rest > 0:  # the last columns: a run of 1-vector tiles masked to them
        _tile_run1(carrier, count, a, b + nvec * lanes * isz, loops, _out_cols(out, nvec * lanes * isz), rest)


# ----------------------------------------------------------------------------- transpose
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
def transpose16(typingctx, src, lds, dst, ldd):
    """float32 ``dst[j * ldd + i] = src[i * lds + j]`` for i, j < 16: ``src``, ``dst`` byte
    addresses, ``lds``, ``ldd`` row strides in elements."""
    sig = types.void(types.int64, types.int64, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        builder.call(NATIVE[False].declare(builder.module, "minicnn_transpose16_f32"), list(args))
        return context.get_dummy_value()

    return sig, codegen


NATIVE[False].add("minicnn_transpose16_f32", [ir.IntType(64)] * 4, _emit_transpose16)
if not numba.config.DISABLE_JIT:  # before any kernel that calls the tiles is compiled or loaded
    NATIVE[False].build()
