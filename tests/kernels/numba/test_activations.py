"""The zoo's activations on numba (minicnn.kernels.numba.activations, .vmath) against the numpy
kernels: every forward and backward, float32 and float64, odd shapes, non-contiguous inputs,
both paths (one call on the calling thread, or blocks split over the threads by ``fanout.run``), thread counts, extreme
values (+-large, +-0, NaN, +-inf, denormals).

Bitwise where the op is arithmetic and selects only (both kernels round the same operations in
the same order): the backward of tanh, sigmoid and selu, leaky and capped relu, PReLU's forward
and dz, gelu's float64 forward (erfc is the same C function on both sides), tanh's forward
where it is numpy's (AVX-512 CPUs: ``activations.NUMPY_TANH``; elsewhere vmath's expm1, in the
error model). The float32 gelu's erfc is vmath's approximation (1.1e-7 relative: under 2 ulps
before rounding), inside the error model below.

**Error model** of the others (where numpy calls exp, expm1 or log1p and the twin calls
:mod:`minicnn.kernels.numba.vmath`): each side's transcendental is within 4 ulps of the exact
value (numpy documents 4 ulps for its SIMD/SVML float paths; vmath is within 2, tested below),
so the two differ by at most 8 ulps of that value, and the few roundings after it (at most 4 per
side, 1 ulp each relative to the terms involved) add up to 16 ulps of the *terms*: ``|got - want|
<= 16 * eps * S`` with ``S`` the op's sum of absolute terms (its condition: e.g. silu's gradient
``dy * s * (1 + z (1 - s))`` cancels near z = -1.28, so S is ``|dy| s (1 + 2|z|)``, not the
result), plus ``16 * smallest_subnormal * (1 + |z|) * (1 + |dy|)`` where a factor is denormal
(its ulp is absolute there) or is flushed by numpy's SIMD code. NaN positions must agree exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit

from minicnn.kernels import numpy_activations as ref

nb = pytest.importorskip("minicnn.kernels.numba_backend")

from minicnn.kernels.numba import activations, config, fanout  # noqa: E402
from minicnn.kernels.numba.vmath import erfc_for, vexp, vexpm1, vlog1p  # noqa: E402
from tests.kernels.numba.kernelcheck import Canary, layout, one_thread  # noqa: E402

DTYPES = [np.float32, np.float64]
K = 16  # ulps of the terms (module docstring)


def params(name, dt):
    """The scalars each kernel takes, in the dtype, as minicnn.activations passes them."""
    t = np.dtype(dt).type
    return {"gelu": (t(np.float32(0.7071067811865476)),), "elu": (t(1.3),), "leaky_relu": (t(np.float32(0.2)),),
            "capped_relu": (t(0.1), t(6.0), t(0.5), t(np.float32(0.5)))}.get(name, ())


#: name: (what the backward takes besides dy, forward bitwise, backward bitwise)
OPS = {"tanh": ("y", True, True), "sigmoid": ("y", False, True), "softplus": ("z", False, False),
       "silu": ("z", False, False), "gelu": ("z", True, False), "elu": ("z", False, False),
       "selu": ("y", False, True), "leaky_relu": ("y", True, True), "capped_relu": ("z", True, True)}


def values(rng, shape, dt, extremes=True):
    """Normal values (std 4) with, spread over the array, +-0, +-large (past every exp cut-off),
    +-inf, NaN, denormals, the float32/64 max, and values at capped relu's kinks."""
    z = (rng.standard_normal(shape) * 4).astype(dt)
    if extremes:
        fi = np.finfo(dt)
        special = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, fi.max, -fi.max, 1e4, -1e4, 88.0, -88.0, 104.0,
                            -104.0, 710.0, -710.0, 745.0, -745.0, 40.0, -40.0, 41.0, -41.0, 0.5, 6.0, -1.2785,
                            fi.smallest_subnormal, -fi.smallest_subnormal, fi.tiny / 3, -fi.tiny / 3, 1e-30, -1e-30,
                            2.0 ** -26, -(2.0 ** -26), 2.0 ** -55, -(2.0 ** -55)], dtype=np.float64)
        with np.errstate(over="ignore"):
            special = special.astype(dt)
        flat = z.reshape(-1)
        idx = rng.choice(flat.size, size=min(flat.size, 3 * special.size), replace=False)
        flat[idx] = np.resize(special, idx.size)
    return z


def scale(name, z, dy, dt, backward):
    """S of the error model (float64), from the reference formulas' terms."""
    z = z.astype(np.float64)
    dy = dy.astype(np.float64)
    with np.errstate(all="ignore"):
        if name == "tanh":  # -m / (2 + m), m = expm1(-2|z|): m's error at most doubled, relative
            return np.abs(np.tanh(z))
        s = 1 / (1 + np.exp(-z))
        if name == "sigmoid":
            return s
        if name == "softplus":
            return np.abs(dy) * s if backward else np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))
        if name == "silu":
            return np.abs(dy) * s * (1 + 2 * np.abs(z)) if backward else np.abs(z) * s
        if name == "gelu":  # float32 (float64 forward: bitwise): erfc within 1.1e-7 relative, 2 ulps
            c = float(params("gelu", dt)[0])
            if not backward:
                return np.abs(z) * np.vectorize(math.erfc)(-z * c)
            return np.abs(dy) * (1 + np.abs(z) * np.exp(-(np.clip(z, -40, 40) * c) ** 2))
        if name in ("elu", "selu"):
            return np.abs(dy) * (1.8 * np.exp(np.minimum(z, 0)) + 1.1 * (z > 0)) if backward else \
                1.8 * np.abs(np.expm1(np.minimum(z, 0))) + 1.1 * np.abs(z) * (z > 0)
    raise AssertionError(name)


def check(got, want, dt, what, exact, z=None, dy=None, name=None, backward=False):
    assert got.dtype == np.dtype(dt), f"{what}: dtype {got.dtype}"
    assert got.shape == want.shape and got.flags.c_contiguous, what
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan), f"{what}: NaN positions differ"
    if exact:
        assert got[~nan].tobytes() == want[~nan].tobytes(), f"{what}: not bitwise numpy's"
        return
    g, w = got[~nan].astype(np.float64), want[~nan].astype(np.float64)
    inf = np.isinf(w)
    assert np.array_equal(g[inf], w[inf]), f"{what}: infinities differ"
    dy = np.ones_like(z) if dy is None else dy
    fi = np.finfo(dt)
    with np.errstate(all="ignore"):
        az, ady = np.abs(z.astype(np.float64)), np.abs(dy.astype(np.float64))
        tol = K * fi.eps * scale(name, z, dy, dt, backward) + K * float(fi.smallest_subnormal) * (1 + az) * (1 + ady)
    tol = tol[~nan][~inf]
    err = np.abs(g[~inf] - w[~inf])
    bad = ~((err == 0) | (err <= tol))  # (tol is NaN where a term is infinite: only equality passes there)
    assert not bad.any(), (f"{what}: {bad.sum()} values beyond the error model, worst at z="
                           f"{z[~nan][~inf][bad][:3]}: got {g[~inf][bad][:3]}, numpy {w[~inf][bad][:3]}")


@pytest.fixture(params=["serial", "parallel"])
def path(request):
    """Both paths: the serial kernel for everything, or the parallel one with several blocks."""
    saved = config.FANOUT_MIN_FLOPS
    config.FANOUT_MIN_FLOPS = 1 << 62 if request.param == "serial" else 0
    yield request.param
    config.FANOUT_MIN_FLOPS = saved


def run_op(name, z, dy, dt, how):
    p = params(name, dt)
    saved_kind, fwd_exact, bwd_exact = OPS[name]
    with np.errstate(all="ignore"):
        y_ref = getattr(ref, name + "_forward")(z, *p)
        saved = y_ref if saved_kind == "y" else z
        if name == "capped_relu":
            dz_ref = ref.capped_relu_backward(dy, saved, *p, open_cap=how == "transpose")
        else:
            dz_ref = getattr(ref, name + "_backward")(dy, saved, *p)
    z_in, dy_in, saved_in = layout(z, how), layout(dy, how), layout(saved, how)
    kept = [a.copy() for a in (z_in, dy_in, saved_in)]
    y = getattr(nb, name + "_forward")(z_in, *p)
    if name == "capped_relu":
        dz = nb.capped_relu_backward(dy_in, saved_in, *p, open_cap=how == "transpose")
    else:
        dz = getattr(nb, name + "_backward")(dy_in, saved_in, *p)
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip((z_in, dy_in, saved_in), kept)), "input written"
    fwd_exact = fwd_exact and not (name == "gelu" and dt == np.float32)  # float32 gelu: vmath's erfc
    fwd_exact = fwd_exact and not (name == "tanh" and not activations.NUMPY_TANH)  # numba's tanh
    check(y, y_ref, dt, f"{name} forward", fwd_exact, z=z, name=name)
    check(dz, dz_ref, dt, f"{name} backward", bwd_exact, z=z, dy=dy, name=name, backward=True)
    return y, dz


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("name", sorted(OPS))
def test_every_activation_matches_numpy(name, dt, path):
    rng = np.random.default_rng(sum(map(ord, name)))
    z = values(rng, (3, 5, 7, 11), dt)
    dy = values(rng, z.shape, dt, extremes=False)
    for how in ("c", "slice", "transpose"):
        run_op(name, z, dy, dt, how)


@pytest.mark.parametrize("numpy_tanh", [True, False])
@pytest.mark.parametrize("dt", DTYPES)
def test_tanh_forward_on_either_side_of_the_cpu_switch(numpy_tanh, dt, path, monkeypatch):
    """numpy's tanh (bitwise) or the numba op (within the error model), whichever the CPU gets:
    both are checked on every machine; -0.0 keeps its sign, +-inf gives +-1."""
    monkeypatch.setattr(activations, "NUMPY_TANH", numpy_tanh)
    rng = np.random.default_rng(11)
    z = values(rng, (3, 5, 7, 11), dt)
    dy = values(rng, z.shape, dt, extremes=False)
    for how in ("c", "slice", "transpose"):
        run_op("tanh", z, dy, dt, how)
    y = nb.tanh_forward(np.array([0.0, -0.0, np.inf, -np.inf, np.nan], dt))
    assert np.array_equal(np.signbit(y[:4]), [False, True, False, True]) and np.isnan(y[4])
    assert y[2] == 1 and y[3] == -1


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("size", [config.EW_BLOCK - 1, config.EW_BLOCK + 1, 3 * config.EW_BLOCK + 5])
def test_one_block_two_and_several(dt, size):
    """One block of EW_BLOCK, two, and several split over the threads with a partial last one:
    NaN-margined inputs, results within the model, the margins untouched."""
    rng = np.random.default_rng(size)
    for name in ("sigmoid", "softplus", "silu", "elu", "capped_relu"):
        zc = Canary.holding(values(rng, (size,), dt))
        dyc = Canary.holding(values(rng, (size,), dt, extremes=False))
        run_op(name, zc.a, dyc.a, dt, "c")
        assert zc.intact() and dyc.intact()


@pytest.mark.parametrize("dt", DTYPES)
def test_the_same_bits_on_both_paths_and_any_thread_count(dt):
    rng = np.random.default_rng(7)
    z = values(rng, (5, 2 * config.EW_BLOCK // 5 + 3), dt)
    dy = values(rng, z.shape, dt, extremes=False)
    alpha = rng.uniform(-0.5, 0.5, z.shape[1:]).astype(dt)

    def run():
        out = []
        with np.errstate(all="ignore"):
            for name in OPS:
                p = params(name, dt)
                out += [getattr(nb, name + "_forward")(z, *p), getattr(nb, name + "_backward")(dy, z, *p)]
        return out + [nb.prelu_forward(z, alpha), *nb.prelu_backward(dy, z, alpha)]

    saved = config.FANOUT_MIN_FLOPS
    try:
        config.FANOUT_MIN_FLOPS = 0
        many = run()
        one = one_thread(run)
        config.FANOUT_MIN_FLOPS = 1 << 62
        serial = run()
    finally:
        config.FANOUT_MIN_FLOPS = saved
    for a, b, c in zip(many, one, serial):
        assert a.tobytes() == b.tobytes() == c.tobytes()


def test_every_op_has_a_work_estimate():
    """Every op code has a positive work per element for fanout.run (a missing one would raise
    KeyError on first use, a zero would never split), and float64 counts twice float32."""
    codes = [v for k, v in vars(activations).items() if k.endswith(("_F", "_B")) and k.isupper()
             and isinstance(v, int)]
    assert sorted(codes) == sorted(activations._WORK) == list(range(len(codes)))
    assert all(w > 0 for w in activations._WORK.values())
    z32, z64 = np.zeros(10, np.float32), np.zeros(10, np.float64)
    tanh = activations._WORK[activations.TANH_F]
    assert fanout.element_work(tanh, z64) == 2 * fanout.element_work(tanh, z32) == 2 * 10 * tanh


# ----------------------------------------------------------------------------- PReLU
def prelu_case(rng, shape, shared, dt):
    z = values(rng, shape, dt, extremes=False)
    z.reshape(-1)[::7] = 0  # exact zeros: dz = 0 there
    a_shape = tuple(1 if i + 1 in shared else n for i, n in enumerate(shape[1:]))
    return z, values(rng, shape, dt, extremes=False), rng.uniform(-1, 1, a_shape).astype(dt)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("shape,shared", [((4, 6, 5, 3), ()), ((4, 6, 5, 3), (1, 2)), ((7, 6, 5, 3), (3,)),
                                          ((3, 6, 5, 3), (1, 2, 3)), ((9, 13), ()), ((9, 13), (1,)),
                                          ((130, 5, 4), (2,))])
def test_prelu_matches_numpy(dt, shape, shared, path):
    """y and dz bitwise numpy's; dalpha within the summation error of either side: each sums
    the same products in float, numpy along the batch then over the shared axes, the twin in
    fixed groups of samples; |error| <= (terms added) * eps * sum|terms| for each, doubled."""
    rng = np.random.default_rng(len(shape) * 10 + len(shared))
    z, dy, alpha = prelu_case(rng, shape, shared, dt)
    for how in ("c", "slice", "transpose") if len(shape) == 4 else ("c",):
        z_in, dy_in = layout(z, how), layout(dy, how)
        kept = z_in.copy(), dy_in.copy(), alpha.copy()
        y = nb.prelu_forward(z_in, alpha)
        assert y.dtype == dt and y.tobytes() == ref.prelu_forward(z, alpha).tobytes()
        dz, da = nb.prelu_backward(dy_in, z_in, alpha)
        dz_r, da_r = ref.prelu_backward(dy, z, alpha)
        assert dz.dtype == da.dtype == dt and da.shape == alpha.shape
        assert dz.tobytes() == dz_r.tobytes()
        terms = np.abs(dy.astype(np.float64) * np.minimum(z, 0))
        mag = terms.sum(axis=0)
        for ax in sorted(shared, reverse=True):
            mag = mag.sum(axis=ax - 1, keepdims=True)
        count = z.size // alpha.size
        assert np.all(np.abs(da.astype(np.float64) - da_r) <= 2 * count * np.finfo(dt).eps * mag.reshape(alpha.shape)
                      + np.finfo(dt).smallest_subnormal)
        assert all(np.array_equal(a, b) for a, b in zip((z_in, dy_in, alpha), kept))


def test_prelu_alpha_of_another_dtype_and_broadcastable_shapes():
    rng = np.random.default_rng(3)
    z = rng.standard_normal((4, 3, 2, 5)).astype(np.float32)
    alpha64 = rng.uniform(-1, 1, (1, 1, 5))
    y = nb.prelu_forward(z, alpha64)  # cast to z's dtype, as the contract says
    assert y.dtype == np.float32
    assert y.tobytes() == ref.prelu_forward(z, alpha64.astype(np.float32)).tobytes()
    y5 = nb.prelu_forward(z, alpha64.reshape(5).astype(np.float32))  # fewer axes: broadcasts as numpy does
    assert y5.tobytes() == ref.prelu_forward(z, alpha64.reshape(5).astype(np.float32)).tobytes()
    with pytest.raises(ValueError, match="prelu_forward"):
        nb.prelu_forward(z, np.ones((3, 3), np.float32))


# ----------------------------------------------------------------------------- contract details
def test_other_dtypes_go_to_numpy_and_mismatched_shapes_fail():
    z = np.linspace(-3, 3, 24, dtype=np.float16).reshape(2, 3, 4)
    for name in OPS:
        p = tuple(np.float16(v) for v in params(name, np.float16))
        with np.errstate(all="ignore"):
            np.testing.assert_array_equal(getattr(nb, name + "_forward")(z, *p), getattr(ref, name + "_forward")(z, *p))
    with pytest.raises(ValueError, match="sigmoid_backward"):
        nb.sigmoid_backward(np.ones((2, 3)), np.ones((3, 2)))


def test_empty_inputs():
    for dt in DTYPES:
        z = np.zeros((0, 4), dt)
        assert nb.sigmoid_forward(z).shape == (0, 4) and nb.silu_backward(z, z).shape == (0, 4)
        assert nb.prelu_forward(z, np.ones(4, dt)).shape == (0, 4)
        dz, da = nb.prelu_backward(z, z, np.ones(4, dt))
        assert dz.shape == (0, 4) and da.shape == (4,)


def test_kinks_follow_tensorflow():
    """Gradients at exactly 0: elu alpha, leaky the slope, selu scale, PReLU 0; capped relu 0 at the
    threshold, 1 at a closed cap, 0 at an open one (relu6)."""
    z = np.array([0.0, -0.0, 6.0, 0.5], np.float32)
    one = np.ones_like(z)
    assert nb.elu_backward(one, z, np.float32(1.3))[:2].tolist() == [np.float32(1.3)] * 2
    assert nb.leaky_relu_backward(one, nb.leaky_relu_forward(z, np.float32(0.2)), np.float32(0.2))[0] == np.float32(0.2)
    assert nb.selu_backward(one, nb.selu_forward(z))[0] == np.float32(ref.SELU_SCALE)
    assert nb.prelu_backward(one[None], z[None], np.full(4, 0.3, np.float32))[0][0, :2].tolist() == [0.0, 0.0]
    t = np.float32
    g = nb.capped_relu_backward(one, z, t(0), t(6), t(0.5), t(0.5))
    assert g.tolist() == [0, 0, 1, 0]
    assert nb.capped_relu_backward(one, z, t(0), t(6), t(0), t(0), open_cap=True)[2] == 0


# ----------------------------------------------------------------------------- vmath
@njit(error_model="numpy")
def _apply(which, x, y):
    for i in range(x.size):
        y[i] = vexp(x[i]) if which == 0 else (vexpm1(x[i]) if which == 1 else vlog1p(x[i]))


@pytest.mark.parametrize("dt", DTYPES)
def test_vmath_accuracy_against_long_double(dt):
    """vexp, vexpm1 on x <= 0 and vlog1p on [0, 1] within the ulps the docstring states (1.5, 1.5,
    2.5; measured 1.0, 1.1, 2.0), denormal results in denormal ulps; NaN, -inf, -0 exact."""
    rng = np.random.default_rng(11)
    fi = np.finfo(dt)
    neg = -np.concatenate([rng.exponential(3, 20000), rng.uniform(0, 800, 20000), np.logspace(-320, 3, 4000),
                           [0.0, np.inf, 103.9, 87.3, 744.4, 708.4]])
    unit = np.concatenate([rng.uniform(0, 1, 20000), np.logspace(-320, 0, 4000), [0.0, 0.5, 1.0]])
    with np.errstate(all="ignore"):
        for which, x, fn, bound in ((0, neg, np.exp, 1.5), (1, neg, np.expm1, 1.5), (2, unit, np.log1p, 2.5)):
            x = x.astype(dt)
            y = np.empty_like(x)
            _apply(which, x, y)
            exact = fn(x.astype(np.longdouble))
            ulp = np.maximum(np.spacing(np.abs(exact.astype(dt))).astype(np.longdouble), fi.smallest_subnormal)
            err = np.abs(y.astype(np.longdouble) - exact) / ulp
            assert float(err.max()) <= bound, (which, float(err.max()))
            assert y.dtype == dt
    nan = np.array([np.nan, -0.0], dt)
    for which in (0, 1, 2):
        y = np.empty_like(nan)
        _apply(which, nan, y)
        assert np.isnan(y[0]) and (y[1] == (1 if which == 0 else 0))
    y = np.empty_like(nan)
    _apply(1, nan, y)
    assert np.signbit(y[1])  # expm1(-0) = -0


@njit(error_model="numpy")
def _erfc32(u, out):
    for i in range(u.size):
        out[i] = erfc_for(np.float32(0), u[i])


def test_the_float32_erfc_is_within_its_stated_error():
    """erfc_for(float32, u): relative error <= 1.2e-7 (Numerical Recipes' bound) against math.erfc
    over both signs, into the far tail (erfc(10) = 2e-45, float32's last denormals), +-inf, NaN."""
    u = np.concatenate([np.linspace(-6, 10.5, 40001), np.logspace(-12, 1, 2000), -np.logspace(-12, 1, 2000)])
    got = np.empty_like(u)
    _erfc32(u, got)
    want = np.array([math.erfc(v) for v in u])
    assert np.max(np.abs(got - want) / want) <= 1.2e-7
    special = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 30.0])
    out = np.empty_like(special)
    _erfc32(special, out)
    assert out[0] == 0 and out[1] == 2 and np.isnan(out[2]) and out[3] == out[4] and out[5] == 0
    assert abs(out[3] - 1) <= 1.2e-7
