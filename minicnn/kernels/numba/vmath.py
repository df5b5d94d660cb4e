"""Vectorisable exp, expm1 and log1p for the numba activation kernels (float32 and float64).

numba lowers ``np.exp`` & co. to scalar libm calls, which LLVM cannot vectorise (no vector math
library without Intel's SVML): measured on (100, 28, 28, 32) float32, ``np.tanh`` in a parallel
numba loop took 65 ms, ``np.exp`` 8 ms, numpy's SIMD ufuncs 0.8 and 2.5 ms; the ``vexp`` below
1.0 ms. These are written in plain arithmetic instead (Cody-Waite range reduction, Taylor
polynomials, the power of two built from its bits), so the element loops that call them
vectorise, in the argument's own dtype (float32 stays float32: every constant is a scalar of
that dtype).

Domains are what the activations need, as the numpy kernels arrange it: exponentials only ever
see non-positive arguments (``vexp(x)``, ``vexpm1(x)`` for x <= 0, NaN passing through), and
``vlog1p(x)`` takes x in [0, 1] (the softplus's ``exp(-|z|)``). Arguments
outside the domain give wrong values, silently (the kernels never pass one).

Accuracy (error bounds by construction, checked in tests/kernels/numba/test_activations.py):
the Taylor remainders are below 0.2 ulp; the range reduction is exact (the high part of ln 2 has
enough trailing zero bits that ``k * LN2_HI`` is exact for every k reached); every further
operation rounds once (the polynomials through ``llvm.fma``). Measured against long double:
``vexp`` and ``vexpm1`` within 1.0 ulp, ``vlog1p`` within 2.0 (numpy's float32 SIMD exp: 2.2),
denormal results included (the final power-of-two scaling rounds once, into the denormal range).
(A tanh built on vexpm1, within 3 ulps, is 3x slower than numpy's AVX-512 tanh but 5-9x faster
than numpy's scalar one elsewhere: the activations use numpy's on AVX-512 CPUs only.)
Results never depend on anything but the argument: bitwise the same on every path.

No ``fastmath`` (it would let LLVM re-associate the polynomials): the rounding steps are exactly
the ones written.

numba's on-disk cache keys a kernel on its own source file only: after editing this module,
delete the cached ``activations`` kernels (``minicnn/kernels/numba/__pycache__/activations.*.nb*``),
or they keep the old code.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload, register_jitable

__all__ = ["fma", "scale2", "vexp", "vexpm1", "vlog1p", "erfc_for"]


@intrinsic
def scale2(typingctx, p, k):
    """``p * 2**k`` for ``p`` float32/float64 and ``k`` an integer-valued float of p's type with
    ``|k| <= 2 * 125`` (float32) or ``2 * 1021`` (float64), as two exact power-of-two factors
    ``2**(k // 2)`` and ``2**(k - k // 2)`` built from their exponent bits (vectorises: integer
    shifts and a bitcast). Only the second product rounds, so a denormal result is rounded once."""
    if not (isinstance(p, types.Float) and p == k):
        return None

    def codegen(context, builder, signature, args):
        pv, kv = args
        if p.bitwidth == 32:
            it, bias, mant, ft = ir.IntType(32), 127, 23, ir.FloatType()
        else:
            it, bias, mant, ft = ir.IntType(64), 1023, 52, ir.DoubleType()
        ki = builder.fptosi(kv, it)
        k1 = builder.ashr(ki, ir.Constant(it, 1))
        k2 = builder.sub(ki, k1)

        def pow2(kk):
            bits = builder.shl(builder.add(kk, ir.Constant(it, bias)), ir.Constant(it, mant))
            return builder.bitcast(bits, ft)

        return builder.fmul(builder.fmul(pv, pow2(k1)), pow2(k2))

    return p(p, k), codegen


@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (``llvm.fma``: one instruction with FMA, vectorised like any
    arithmetic), for three floats of one type."""
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, signature, args):
        ft = ir.FloatType() if a.bitwidth == 32 else ir.DoubleType()
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ft, [ft, ft, ft]),
                                            "llvm.fma.f32" if a.bitwidth == 32 else "llvm.fma.f64")
        return builder.call(fn, list(args))

    return a(a, b, c), codegen


def vexp(x):  # pragma: no cover - typed by the overload below
    """exp(x) for x <= 0 (NaN -> NaN), in x's dtype."""
    raise NotImplementedError("vexp is for numba code")


def vexpm1(x):  # pragma: no cover
    """expm1(x) for x <= 0 (NaN -> NaN), in x's dtype."""
    raise NotImplementedError("vexpm1 is for numba code")


def vlog1p(x):  # pragma: no cover
    """log1p(x) for 0 <= x <= 1 (NaN -> NaN), in x's dtype."""
    raise NotImplementedError("vlog1p is for numba code")


def _constants(dt):
    """The constants of one dtype, each a numpy scalar of it (numba freezes them as typed constants).

    ``em_poly``: 1/2!, 1/3!, ... for expm1(r) = r + r^2 (1/2! + r/3! + ...) on |r| <= ln2/2: up to
    r^8/8! (float32; remainder r^9/9! < 1e-9 relative) or r^14/14! (float64; remainder 4e-18).
    ``at_poly``: 2/3, 2/5, ... for log1p(v) = 2 atanh(s) = 2s + s^3 (2/3 + s^2 2/5 + ...) with
    s = v / (2 + v), |s| <= 0.2: up to s^11 (float32; remainder 0.04^6/13 < 4e-10 relative) or
    s^23 (float64; remainder 0.04^12/25 < 1e-18).
    """
    t = dt.type
    f32 = dt == np.float32
    n_em, n_at = (8, 5) if f32 else (14, 11)
    return dict(
        zero=t(0), one=t(1), two=t(2), half=t(0.5),
        log2e=t(1 / math.log(2)),
        # round-to-nearest integer of |y| < 2**22 (2**51) by adding and subtracting 1.5 * 2**23 (2**52)
        shifter=t(1.5 * 2.0 ** (23 if f32 else 52)),
        # ln 2 = hi + lo, hi with trailing zeros: k * hi exact for |k| <= 2**8 (float32: 9 bits of
        # hi) or 2**21 (float64: fdlibm's 32-bit hi)
        ln2_hi=t(0.693359375) if f32 else t(6.93147180369123816490e-01),
        ln2_lo=t(-2.12194440e-4) if f32 else t(1.90821492927058770002e-10),
        # exp(x) below this is 0 after rounding (float32: exp(-104) < 2**-150; float64: exp(-746) < 2**-1075);
        # clamping keeps k within scale2's range
        exp_lo=t(-110.0) if f32 else t(-760.0),
        # expm1(x) below this is -1 after rounding (e**-20 < 2**-25, e**-40 < 2**-54)
        expm1_lo=t(-20.0) if f32 else t(-40.0),
        # expm1(x) = x (rounded) for |x| below this (x^2/2 under half an ulp of x)
        expm1_tiny=t(2.0 ** -25) if f32 else t(2.0 ** -54),
        em_poly=tuple(t(1 / math.factorial(i)) for i in range(n_em, 1, -1)),  # highest degree first
        at_poly=tuple(t(2 / (2 * i + 1)) for i in range(n_at, 0, -1)),
    )


def _make(dt):
    """The three functions for one dtype (plain Python, compiled where the overloads are used)."""
    c = _constants(np.dtype(dt))
    zero, one, two, half = c["zero"], c["one"], c["two"], c["half"]
    log2e, shifter, ln2_hi, ln2_lo = c["log2e"], c["shifter"], c["ln2_hi"], c["ln2_lo"]
    nln2_hi, nln2_lo = -ln2_hi, -ln2_lo
    exp_lo, expm1_lo, expm1_tiny = c["exp_lo"], c["expm1_lo"], c["expm1_tiny"]
    em, at = c["em_poly"], c["at_poly"]
    # Horner, unrolled on separate constants (numba freezes scalars, not tuples of them, cheaply)
    if len(em) == 7:
        e0, e1, e2, e3, e4, e5, e6 = em

        @register_jitable
        def em_q(r):
            return fma(fma(fma(fma(fma(fma(e0, r, e1), r, e2), r, e3), r, e4), r, e5), r, e6)
    else:
        e0, e1, e2, e3, e4, e5, e6, e7, e8, e9, e10, e11, e12 = em

        @register_jitable
        def em_q(r):
            q = fma(fma(fma(fma(fma(fma(e0, r, e1), r, e2), r, e3), r, e4), r, e5), r, e6)
            return fma(fma(fma(fma(fma(fma(q, r, e7), r, e8), r, e9), r, e10), r, e11), r, e12)
    if len(at) == 5:
        a0, a1, a2, a3, a4 = at

        @register_jitable
        def at_q(s2):
            return fma(fma(fma(fma(a0, s2, a1), s2, a2), s2, a3), s2, a4)
    else:
        a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10 = at

        @register_jitable
        def at_q(s2):
            q = fma(fma(fma(fma(fma(fma(a0, s2, a1), s2, a2), s2, a3), s2, a4), s2, a5), s2, a6)
            return fma(fma(fma(fma(q, s2, a7), s2, a8), s2, a9), s2, a10)

    @register_jitable
    def reduce(x):
        """(k, r): x = k ln2 + r, |r| <= ln2/2, k integer-valued (0 where x is NaN)."""
        k = fma(x, log2e, shifter) - shifter
        r = fma(k, nln2_lo, fma(k, nln2_hi, x))
        return (k if k == k else zero), r

    def exp_(x):
        x = exp_lo if x < exp_lo else x  # NaN passes
        k, r = reduce(x)
        return scale2(one + fma(r * r, em_q(r), r), k)

    @register_jitable
    def expm1_(x):
        xc = expm1_lo if x < expm1_lo else x
        k, r = reduce(xc)
        e = fma(r * r, em_q(r), r)  # expm1(r)
        p = scale2(one, k)
        res = fma(p, e, p - one)  # 2^k (expm1(r) + 1) - 1; k = 0: e exactly
        return x if x > -expm1_tiny else res  # x <= 0: tiny x and -0 as they are

    def log1p_(x):
        big = x > half
        v = (x - one) * half if big else x  # log1p(x) = ln2 + log1p((x - 1) / 2): v in (-1/4, 1/2]
        s = v / (two + v)
        s2 = s * s
        lp = fma(s * s2, at_q(s2), two * s)
        return (ln2_hi + (ln2_lo + lp)) if big else lp

    return exp_, expm1_, log1p_


_IMPL = {types.float32: _make(np.float32), types.float64: _make(np.float64)}


def _pick(i):
    def typer(x):
        fns = _IMPL.get(x)
        return None if fns is None else fns[i]
    return typer


for _i, _stub in enumerate((vexp, vexpm1, vlog1p)):
    overload(_stub)(_pick(_i))


# ----------------------------------------------------------------------------- erfc for float32 results
def erfc_for(like, u):  # pragma: no cover - typed by the overload below
    """erfc(u) of a float64 ``u``, as a float64, for a result to be rounded to ``like``'s dtype."""
    raise NotImplementedError("erfc_for is for numba code")


#: Numerical Recipes' ``erfcc`` (Chebyshev fit, Press et al. 1992, 6.2): erfc(x) = t exp(-x^2 +
#: P(t)), t = 1 / (1 + x/2), x >= 0, relative error below 1.2e-7 everywhere (measured against
#: ``math.erfc``: 1.04e-7): 1.75 float32 ulps at most before the final rounding
_NR_ERFC = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398,
            1.48851587, -0.82215223, 0.17087277)


@register_jitable
def _erfc_nr(u):
    """erfc(u) in float64 arithmetic to ~1e-7 relative (vectorises: one division, vexp)."""
    c0, c1, c2, c3, c4, c5, c6, c7, c8, c9 = _NR_ERFC
    x = -u if u < 0.0 else u
    t = 1.0 / (1.0 + 0.5 * x)
    p = fma(fma(fma(fma(fma(fma(fma(fma(fma(c9, t, c8), t, c7), t, c6), t, c5), t, c4), t, c3), t, c2), t, c1),
            t, c0)
    e = t * vexp(p - x * x)
    return 2.0 - e if u < 0.0 else e


@overload(erfc_for)
def _erfc_for(like, u):
    """float32 results: :func:`_erfc_nr` (vectorised, within 2.3 float32 ulps after rounding; the
    C library's erfc, scalar, costs 20 ns an element); float64 results: ``math.erfc`` (the C
    library's, CPython's too: the numpy kernel's bits)."""
    if like == types.float32:
        return lambda like, u: _erfc_nr(u)
    if like == types.float64:
        return lambda like, u: math.erfc(u)
    return None
