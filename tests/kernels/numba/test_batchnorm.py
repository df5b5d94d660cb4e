"""Batch normalisation of the numba backend (minicnn.kernels.numba.batchnorm) against the numpy
kernels: training and inference forward, backward through the batch statistics and through fixed
ones, the moving statistics, a ReLU fused into both; dtypes, layouts, blocks, paths and thread counts.

Tolerances (kernelcheck.TOL): 1e-12 in float64, 1e-5 in float32, relative to the largest
reference value. The inference forward and the moving statistics are bitwise numpy's (the same
roundings); the statistics and the channel sums differ from numpy by summation order (and, in
float32, by numpy's rounding of ``x - mean``, which the numba statistics do in float64).
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from minicnn.kernels import numpy_backend as ref_backend
from minicnn.kernels import numpy_batchnorm as ref

nb = pytest.importorskip("minicnn.kernels.numba_backend")

from minicnn.kernels.numba import batchnorm as bn  # noqa: E402
from minicnn.kernels.numba import config  # noqa: E402
from tests.kernels.numba.kernelcheck import SETTINGS, Canary, assert_close, layout, one_thread  # noqa: E402

DTYPES = [np.float32, np.float64]


@contextlib.contextmanager
def bn_config(path, block):
    """Inside the block: the serial kernels (as for inputs below ``BN_SMALL``) or the parallel
    ones, with blocks of ``block`` values (small: the tests' shapes span several blocks)."""
    saved = config.BN_SMALL, config.BN_BLOCK
    config.BN_SMALL = 1 << 62 if path == "serial" else 0
    config.BN_BLOCK = block
    try:
        yield
    finally:
        config.BN_SMALL, config.BN_BLOCK = saved


@pytest.fixture(params=["serial", "parallel"])
def bn_path(request):
    """Both paths, blocks of 100 values."""
    with bn_config(request.param, 100):
        yield request.param


def values(rng, shape, style, dt):
    """Inputs: 'normal' (mean 1, std 2), 'offset' (a mean of 5 times the std: the variance must
    not cancel), 'relu' (mostly exact zeros), 'constant' (a channel of one value: variance 0)."""
    if style == "offset":
        x = 5 + rng.standard_normal(shape) * rng.uniform(0.5, 2)
    elif style == "relu":
        x = np.maximum(rng.standard_normal(shape) - 0.8, 0)
    else:
        x = rng.standard_normal(shape) * 2 + 1
        if style == "constant":
            x[..., 0] = 0.75
    return x.astype(dt)


@st.composite
def bn_cases(draw):
    rank = draw(st.sampled_from([2, 4]))
    n = draw(st.integers(1, 64))
    hw = (draw(st.integers(1, 5)), draw(st.integers(1, 5))) if rank == 4 else ()
    c = draw(st.integers(1, 40))
    return dict(shape=(n, *hw, c), dtype=draw(st.sampled_from(DTYPES)),
                scale=draw(st.booleans()), center=draw(st.booleans()),
                layout=draw(st.sampled_from(["c", "slice", "transpose"])),
                style=draw(st.sampled_from(["normal", "offset", "relu", "constant"])),
                epsilon=draw(st.sampled_from([1e-3, 1e-5, 0.1])), seed=draw(st.integers(0, 2**31 - 1)),
                path=draw(st.sampled_from(["serial", "parallel"])),
                block=draw(st.sampled_from([1, 37, 100, 16384])))  # 1: one row per block


def setup(case):
    """x, dy, gamma, beta (None when off) and moving statistics of a case, and the layouts."""
    shape, dt = case["shape"], case["dtype"]
    rng = np.random.default_rng(case["seed"])
    x = values(rng, shape, case["style"], dt)
    dy = rng.uniform(-1, 1, shape).astype(dt)
    c = shape[-1]
    gamma = rng.uniform(0.25, 1.5, c).astype(dt) if case["scale"] else None
    beta = rng.uniform(-1, 1, c).astype(dt) if case["center"] else None
    moving = rng.uniform(-1, 1, c).astype(dt), rng.uniform(0.25, 1.5, c).astype(dt)
    return x, dy, gamma, beta, moving


@SETTINGS
@given(bn_cases())
def test_every_kernel_matches_numpy(case):
    assume(case["layout"] != "slice" or len(case["shape"]) == 4)  # 'slice' takes every other W
    with bn_config(case["path"], case["block"]):
        check_case(case)


def check_case(case):
    x, dy, gamma, beta, (mm, mv) = setup(case)
    dt, eps = case["dtype"], case["epsilon"]
    x_in, dy_in = layout(x, case["layout"]), layout(dy, case["layout"])
    kept = [a.copy() for a in (x_in, dy_in, mm, mv) + tuple(v for v in (gamma, beta) if v is not None)]

    y, mean, var = nb.batchnorm_train_forward(x_in, gamma, beta, eps)
    y_r, mean_r, var_r = ref.batchnorm_train_forward(x, gamma, beta, eps)
    assert_close(mean, mean_r, dt, "mean")
    assert_close(var, var_r, dt, "var")
    assert_close(y, y_r, dt, "train forward")

    # inference with the moving statistics (and with the batch's): numpy's roundings, bit for bit
    for stats in ((mm, mv), (mean_r, var_r)):
        y_inf = nb.batchnorm_forward(x_in, gamma, beta, *stats, eps)
        assert y_inf.dtype == dt
        np.testing.assert_array_equal(y_inf, ref.batchnorm_forward(x, gamma, beta, *stats, eps))

    for batch_stats, stats in ((True, (mean_r, var_r)), (False, (mm, mv))):
        got = nb.batchnorm_backward(dy_in, x_in, gamma, *stats, eps, batch_stats=batch_stats)
        want = ref.batchnorm_backward(dy, x, gamma, *stats, eps, batch_stats=batch_stats)
        for g, w, what in zip(got, want, ("dx", "dgamma", "dbeta")):
            assert_close(g, w, dt, f"{what} (batch_stats={batch_stats})")

    check_fused_relu(case, x, x_in, dy, dy_in, gamma, beta, (mm, mv), y)

    now = [x_in, dy_in, mm, mv] + [v for v in (gamma, beta) if v is not None]
    assert all(np.array_equal(a, b) for a, b in zip(now, kept)), "an input was written"


def check_fused_relu(case, x, x_in, dy, dy_in, gamma, beta, moving, y):
    """A ReLU fused into the forwards is the relu kernel applied to the unfused output, bit for
    bit; the backward with ``relu_y`` is the numpy twin's (relu's gradient, then batch norm)."""
    dt, eps = case["dtype"], case["epsilon"]
    y_relu, mean, var = nb.batchnorm_train_forward(x_in, gamma, beta, eps, relu=True)
    assert y_relu.tobytes() == nb.relu_forward(y).tobytes(), "fused train forward"
    y_relu_r, mean_r, var_r = ref.batchnorm_train_forward(x, gamma, beta, eps, relu=True)
    assert_close(y_relu, y_relu_r, dt, "train forward + relu")
    np.testing.assert_array_equal(nb.batchnorm_forward(x_in, gamma, beta, *moving, eps, relu=True),
                                  ref.batchnorm_forward(x, gamma, beta, *moving, eps, relu=True))
    for batch_stats, stats in ((True, (mean_r, var_r)), (False, moving)):
        got = nb.batchnorm_backward(dy_in, x_in, gamma, *stats, eps, batch_stats=batch_stats, relu_y=y_relu_r)
        want = ref.batchnorm_backward(dy, x, gamma, *stats, eps, batch_stats=batch_stats, relu_y=y_relu_r)
        unfused = ref.batchnorm_backward(ref_backend.relu_backward(dy, y_relu_r), x, gamma, *stats, eps,
                                         batch_stats=batch_stats)
        for g, w, u, what in zip(got, want, unfused, ("dx", "dgamma", "dbeta")):
            assert_close(g, w, dt, f"{what} with relu (batch_stats={batch_stats})")
            np.testing.assert_array_equal(w, u)


@pytest.mark.parametrize("dt", DTYPES)
def test_the_moving_statistics_are_updated_in_place_bit_for_bit(dt):
    rng = np.random.default_rng(0)
    for c, momentum in ((1, 0.99), (37, 0.9), (300, 0.0)):
        mm, mv = rng.uniform(-1, 1, c).astype(dt), rng.uniform(0.1, 2, c).astype(dt)
        mean, var = rng.standard_normal(c).astype(dt), rng.uniform(0, 3, c).astype(dt)
        want_m, want_v = mm.copy(), mv.copy()
        ids = id(mm), id(mv)
        for _ in range(3):
            ref.batchnorm_update_moving(want_m, want_v, mean, var, momentum)
            assert nb.batchnorm_update_moving(mm, mv, mean, var, momentum) is None
        assert (id(mm), id(mv)) == ids and mm.dtype == mv.dtype == dt
        assert mm.tobytes() == want_m.tobytes() and mv.tobytes() == want_v.tobytes()


def test_the_moving_statistics_may_be_strided_views():
    rng = np.random.default_rng(1)
    store = rng.uniform(0.1, 2, (2, 10))
    mean, var = rng.standard_normal(5), rng.uniform(0, 3, 5)
    want = store.copy()
    ref.batchnorm_update_moving(want[0, ::2], want[1, ::2], mean, var, 0.99)
    nb.batchnorm_update_moving(store[0, ::2], store[1, ::2], mean, var, 0.99)
    assert store.tobytes() == want.tobytes()  # the other elements untouched too


def test_mixed_dtypes_and_read_only_moving_statistics_behave_as_numpys():
    """float64 batch statistics into float32 moving ones: numpy computes in float64 and casts on
    the store; the twin hands such calls to it (the same bits). Read-only weights: numpy's error."""
    rng = np.random.default_rng(9)
    mm, mv = rng.uniform(-1, 1, 6).astype(np.float32), rng.uniform(0.1, 2, 6).astype(np.float32)
    mean, var = rng.standard_normal(6), rng.uniform(0, 3, 6)
    want_m, want_v = mm.copy(), mv.copy()
    ref.batchnorm_update_moving(want_m, want_v, mean, var, 0.99)
    nb.batchnorm_update_moving(mm, mv, mean, var, 0.99)
    assert mm.tobytes() == want_m.tobytes() and mv.tobytes() == want_v.tobytes()
    mm.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        nb.batchnorm_update_moving(mm, mv, mean.astype(np.float32), var.astype(np.float32), 0.99)


@pytest.mark.parametrize("dt", DTYPES)
def test_results_do_not_depend_on_threads_or_path(dt):
    """Fixed blocks, partials added in block order: the parallel kernels give the same bits with
    1 and 2 threads, and the serial kernels (small inputs) the same bits again."""
    import numba

    threads = numba.get_num_threads()
    if threads < 2:
        pytest.skip("one numba thread only")
    rng = np.random.default_rng(2)
    x = values(rng, (20, 7, 5, 19), "normal", dt)
    dy = rng.uniform(-1, 1, x.shape).astype(dt)
    gamma, beta = rng.uniform(0.5, 1.5, 19).astype(dt), rng.uniform(-1, 1, 19).astype(dt)

    def run():
        y, mean, var = nb.batchnorm_train_forward(x, gamma, beta, 1e-3)
        y_relu = nb.batchnorm_train_forward(x, gamma, beta, 1e-3, relu=True)[0]
        return (y, mean, var, nb.batchnorm_forward(x, gamma, beta, mean, var, 1e-3),
                *nb.batchnorm_backward(dy, x, gamma, mean, var, 1e-3),
                *nb.batchnorm_backward(dy, x, None, mean, var, 1e-3, batch_stats=False),
                y_relu, nb.batchnorm_forward(x, gamma, beta, mean, var, 1e-3, relu=True),
                *nb.batchnorm_backward(dy, x, gamma, mean, var, 1e-3, relu_y=y_relu),
                *nb.batchnorm_backward(dy, x, None, mean, var, 1e-3, batch_stats=False, relu_y=y_relu))

    saved = config.BN_SMALL, config.BN_BLOCK
    config.BN_BLOCK = 64  # 3 rows of 19 channels per block: 234 blocks, the last of 2 rows
    try:
        config.BN_SMALL = 0
        many = run()
        one = one_thread(run)
        config.BN_SMALL = 1 << 62
        serial = run()
    finally:
        config.BN_SMALL, config.BN_BLOCK = saved
    for a, b, s in zip(many, one, serial):
        assert a.tobytes() == b.tobytes() == s.tobytes()


@pytest.mark.parametrize("dt", DTYPES)
def test_the_default_blocks_on_a_preset_shape(dt):
    """The shipped BN_BLOCK / BN_SMALL on (N, 14, 14, 64) and (N, 128), where BN follows a conv
    and a Dense layer (batch 16: quick): the same values as numpy."""
    rng = np.random.default_rng(3)
    for shape in ((16, 14, 14, 64), (16, 128)):
        x, dy = values(rng, shape, "relu", dt), rng.uniform(-1, 1, shape).astype(dt)
        gamma, beta = rng.uniform(0.5, 1.5, shape[-1]).astype(dt), rng.uniform(-1, 1, shape[-1]).astype(dt)
        for got, want in zip(nb.batchnorm_train_forward(x, gamma, beta, 1e-3),
                             ref.batchnorm_train_forward(x, gamma, beta, 1e-3)):
            assert_close(got, want, dt, f"train forward {shape}")
        _, mean, var = ref.batchnorm_train_forward(x, gamma, beta, 1e-3)
        for got, want in zip(nb.batchnorm_backward(dy, x, gamma, mean, var, 1e-3),
                             ref.batchnorm_backward(dy, x, gamma, mean, var, 1e-3)):
            assert_close(got, want, dt, f"backward {shape}")


def test_a_large_mean_does_not_cancel_the_variance(bn_path):
    """|mean| = 1e4 std: the blocks' centred sums keep the variance (E[x^2] - mean^2 would lose
    8 digits in float64 and everything in float32's float64 accumulation of 1e8-sized squares)."""
    rng = np.random.default_rng(4)
    x = 1e4 + rng.standard_normal((50, 3, 3, 7))
    exact = np.var(x, axis=(0, 1, 2))  # numpy's two passes
    _, _, var = nb.batchnorm_train_forward(x, None, None, 1e-3)
    assert np.max(np.abs(var - exact) / exact) <= 1e-10
    x32 = x.astype(np.float32)
    exact32 = np.var(x32.astype(np.float64), axis=(0, 1, 2))
    _, _, var32 = nb.batchnorm_train_forward(x32, None, None, 1e-3)
    assert np.max(np.abs(var32 - exact32) / exact32) <= 1e-6


@pytest.mark.parametrize("dt", DTYPES)
def test_batch_of_one_and_zero_variance_follow_numpy(bn_path, dt):
    """One sample: variance exactly 0, y = beta, dx exactly 0; epsilon 0 on top: 1/0 = inf, then
    NaN, as numpy (no ZeroDivisionError)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 1, 1, 6)).astype(dt)
    gamma, beta = rng.uniform(0.5, 1.5, 6).astype(dt), rng.uniform(-1, 1, 6).astype(dt)
    y, mean, var = nb.batchnorm_train_forward(x, gamma, beta, 1e-3)
    assert np.array_equal(var, np.zeros(6)) and np.array_equal(mean, x.reshape(-1))
    np.testing.assert_array_equal(y, ref.batchnorm_train_forward(x, gamma, beta, 1e-3)[0])
    dy = rng.uniform(-1, 1, x.shape).astype(dt)
    dx, dgamma, dbeta = nb.batchnorm_backward(dy, x, gamma, mean, var, 1e-3)
    assert np.array_equal(dx, np.zeros_like(x)) and np.array_equal(dgamma, np.zeros(6))
    assert np.array_equal(dbeta, dy.reshape(-1))
    with np.errstate(divide="ignore", invalid="ignore"):
        for got, want in zip(nb.batchnorm_train_forward(x, gamma, beta, 0.0),
                             ref.batchnorm_train_forward(x, gamma, beta, 0.0)):
            np.testing.assert_array_equal(got, want)  # NaN where numpy has NaN
        for got, want in zip(nb.batchnorm_backward(dy, x, gamma, mean, var, 0.0, batch_stats=False),
                             ref.batchnorm_backward(dy, x, gamma, mean, var, 0.0, batch_stats=False)):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dt", DTYPES)
def test_reads_and_writes_only_its_arrays(dt):
    """Inputs in NaN-margined buffers, several blocks (parallel kernels): results as numpy's,
    margins untouched."""
    rng = np.random.default_rng(6)
    shape = (9, 4, 3, 21)
    x, dy = values(rng, shape, "normal", dt), rng.uniform(-1, 1, shape).astype(dt)
    gamma, beta = rng.uniform(0.5, 1.5, 21).astype(dt), rng.uniform(-1, 1, 21).astype(dt)
    _, mean, var = ref.batchnorm_train_forward(x, gamma, beta, 1e-3)
    bufs = [Canary.holding(a) for a in (x, dy, gamma, beta, mean, var)]
    cx, cdy, cg, cb, cm, cv = (c.a for c in bufs)
    saved = config.BN_SMALL, config.BN_BLOCK
    config.BN_SMALL, config.BN_BLOCK = 0, 50
    try:
        got = (*nb.batchnorm_train_forward(cx, cg, cb, 1e-3), nb.batchnorm_forward(cx, cg, cb, cm, cv, 1e-3),
               *nb.batchnorm_backward(cdy, cx, cg, cm, cv, 1e-3),
               *nb.batchnorm_backward(cdy, cx, cg, cm, cv, 1e-3, batch_stats=False))
    finally:
        config.BN_SMALL, config.BN_BLOCK = saved
    want = (*ref.batchnorm_train_forward(x, gamma, beta, 1e-3), ref.batchnorm_forward(x, gamma, beta, mean, var, 1e-3),
            *ref.batchnorm_backward(dy, x, gamma, mean, var, 1e-3),
            *ref.batchnorm_backward(dy, x, gamma, mean, var, 1e-3, batch_stats=False))
    for g, w in zip(got, want):
        assert_close(g, w, dt, "canaried")
    assert all(c.intact() for c in bufs)


def test_other_dtypes_and_empty_batches_go_to_numpy():
    x16 = np.random.default_rng(7).standard_normal((4, 3)).astype(np.float16)
    for got, want in zip(nb.batchnorm_train_forward(x16, None, None, 1e-3), ref.batchnorm_train_forward(x16, None, None, 1e-3)):
        assert got.dtype == want.dtype and np.array_equal(got, want)
    x0 = np.zeros((0, 5, 5, 3), np.float32)
    y = nb.batchnorm_forward(x0, None, None, np.zeros(3, np.float32), np.ones(3, np.float32), 1e-3)
    assert y.shape == x0.shape and y.dtype == np.float32
    with np.errstate(invalid="ignore"):  # numpy's dbeta / 0
        dx, dgamma, dbeta = nb.batchnorm_backward(x0, x0, None, np.zeros(3, np.float32), np.ones(3, np.float32), 1e-3)
    assert dx.shape == x0.shape and np.array_equal(dgamma, np.zeros(3)) and np.array_equal(dbeta, np.zeros(3))


def test_parameters_of_another_dtype_are_cast_to_xs():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((6, 5)).astype(np.float32)
    gamma, beta = rng.uniform(0.5, 1.5, 5), rng.uniform(-1, 1, 5)  # float64
    y, mean, var = nb.batchnorm_train_forward(x, gamma, beta, 1e-3)
    assert y.dtype == mean.dtype == var.dtype == np.float32
    want = ref.batchnorm_train_forward(x, gamma.astype(np.float32), beta.astype(np.float32), 1e-3)
    for got, w in zip((y, mean, var), want):
        assert_close(got, w, np.float32, "cast")
    dx, dgamma, dbeta = nb.batchnorm_backward(x, x, gamma, mean.astype(np.float64), var, 1e-3)
    assert dx.dtype == dgamma.dtype == dbeta.dtype == np.float32


@pytest.mark.parametrize("call, message", [
    (lambda: nb.batchnorm_train_forward(np.ones(4), None, None, 1e-3), r"at least 2 axes"),
    (lambda: nb.batchnorm_train_forward(np.ones((2, 4)), np.ones(3), None, 1e-3), r"gamma must have shape \(4,\)"),
    (lambda: nb.batchnorm_forward(np.ones((2, 4)), None, None, np.ones(4), np.ones(5), 1e-3), r"var must"),
    (lambda: nb.batchnorm_backward(np.ones((2, 4)), np.ones((3, 4)), None, np.ones(4), np.ones(4), 1e-3), r"shapes differ"),
    (lambda: nb.batchnorm_update_moving(np.ones(4), np.ones(4), np.ones(3), np.ones(4), 0.9), r"shapes differ"),
])
def test_shapes_that_do_not_fit_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_blocks_depend_on_the_shape_only():
    saved = config.BN_BLOCK
    try:
        config.BN_BLOCK = 16384
        assert bn.block_rows(78400, 32) == 512 and bn.block_rows(100, 128) == 100
        assert bn.block_rows(5, 100000) == 1 and bn.block_rows(3, 7) == 3
    finally:
        config.BN_BLOCK = saved
