"""Depthwise conv2d of the numba backend (minicnn.kernels.numba.depthwise) against the numpy
twin (minicnn.kernels.numpy_depthwise): shapes, multipliers, strides, dilation, padding, dtypes,
layouts, relu fused or not; inputs never written, reads within bounds, results independent of
the thread count."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from minicnn.kernels import numpy_depthwise as ref
from minicnn.kernels.shapes import window_output

nb = pytest.importorskip("minicnn.kernels.numba_backend")

from tests.kernels.numba.kernelcheck import SETTINGS, Canary, assert_close, layout, one_thread  # noqa: E402

pytestmark = pytest.mark.usefixtures("numba_kernels_even_for_small_inputs")


@st.composite
def depthwise_cases(draw):
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    strides = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.sampled_from(["valid", "same"]))
    out, pads = window_output((h, w), (kh, kw), strides, padding, dilation)
    return dict(n=draw(st.integers(1, 4)), h=h, w=w, c=draw(st.sampled_from([1, 2, 3, 5, 7, 16, 17])),
                m=draw(st.integers(1, 3)), kh=kh, kw=kw, strides=strides, pads=pads, dilation=dilation, out=out,
                relu=draw(st.booleans()), bias=draw(st.booleans()), need_dx=draw(st.booleans()),
                dtype=draw(st.sampled_from([np.float32, np.float64])),
                layout=draw(st.sampled_from(["c", "c", "slice", "transpose"])), seed=draw(st.integers(0, 2**31 - 1)))


def _arrays(case):
    rng = np.random.default_rng(case["seed"])
    dt = case["dtype"]
    x = rng.standard_normal((case["n"], case["h"], case["w"], case["c"])).astype(dt)
    k = rng.standard_normal((case["kh"], case["kw"], case["c"], case["m"])).astype(dt)
    b = rng.standard_normal(case["c"] * case["m"]).astype(dt) if case["bias"] else None
    return rng, x, k, b


@SETTINGS
@given(depthwise_cases())
def test_depthwise_matches_numpy(case):
    assume(min(case["out"]) >= 1)  # else the window does not fit: the layer rejects the shape first
    rng, x, k, b = _arrays(case)
    dt = case["dtype"]
    x_in, k_in = layout(x, case["layout"]), layout(k, case["layout"])
    x_copy, k_copy = x_in.copy(), k_in.copy()
    args = (case["strides"], case["pads"])
    opts = dict(relu=case["relu"], dilation=case["dilation"])

    y = nb.depthwise_conv2d_forward(x_in, k_in, b, *args, cache={}, **opts)
    y_ref = ref.depthwise_conv2d_forward(x, k, b, *args, **opts)
    assert y.shape == y_ref.shape == (case["n"], *case["out"], case["c"] * case["m"])
    assert_close(y, y_ref, dt, "forward")

    dy = layout(rng.standard_normal(y.shape).astype(dt), case["layout"])
    dy_copy = dy.copy()
    relu_y = y_ref if case["relu"] else None  # one mask for both
    got = nb.depthwise_conv2d_backward(dy, x_in, k_in, *args, need_dx=case["need_dx"], cache={}, relu_y=relu_y,
                                       dilation=case["dilation"])
    want = ref.depthwise_conv2d_backward(np.ascontiguousarray(dy), x, k, *args, need_dx=case["need_dx"],
                                         relu_y=relu_y, dilation=case["dilation"])
    for name, g, w in zip(("dx", "dkernel", "dbias"), got, want):
        assert (g is None) == (w is None) == (name == "dx" and not case["need_dx"]), name
        if w is not None:
            assert g.shape == w.shape, name
            assert_close(g, w, dt, name)
    for before, after in ((x_copy, x_in), (k_copy, k_in), (dy_copy, dy)):
        assert np.array_equal(before, after), "an input was modified"


def test_output_channel_order_is_c_times_m_plus_m():
    """Channel c * M + m comes from input channel c and kernel[:, :, c, m] (Keras's order)."""
    x = np.zeros((1, 1, 1, 3))
    x[..., 1] = 1.0
    k = np.arange(6, dtype=np.float64).reshape(1, 1, 3, 2) + 1  # k[0, 0, c, m] = 2c + m + 1
    y = nb.depthwise_conv2d_forward(x, k, None, (1, 1), (0, 0, 0, 0))
    np.testing.assert_array_equal(y.reshape(6), [0, 0, 3, 4, 0, 0])


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_depthwise_keeps_the_input_dtype_with_a_kernel_of_another(dt):
    other = np.float64 if dt == np.float32 else np.float32
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 5, 3)).astype(dt)
    k, b = rng.standard_normal((3, 3, 3, 2)).astype(other), rng.standard_normal(6).astype(other)
    y = nb.depthwise_conv2d_forward(x, k, b, (1, 1), (1, 1, 1, 1), relu=True)
    assert_close(y, ref.depthwise_conv2d_forward(x, k.astype(dt), b.astype(dt), (1, 1), (1, 1, 1, 1), relu=True),
                 dt, "forward")
    for g in nb.depthwise_conv2d_backward(np.ones_like(y), x, k, (1, 1), (1, 1, 1, 1), relu_y=y):
        assert g.dtype == dt


def _batch(n=9, seed=3, dt=np.float32, c=20, m=2):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 13, 12, c)).astype(dt), rng.standard_normal((3, 3, c, m)).astype(dt),
            rng.standard_normal(c * m).astype(dt))


@pytest.mark.parametrize("m", [1, 2])
def test_depthwise_results_do_not_depend_on_the_thread_count(m):
    import numba

    threads = numba.get_num_threads()
    if threads < 2:
        pytest.skip("one numba thread only")
    x, k, b = _batch(m=m)
    pads = window_output((13, 12), (3, 3), (2, 1), "same", (1, 2))[1]

    def run():
        y = nb.depthwise_conv2d_forward(x, k, b, (2, 1), pads, relu=True, dilation=(1, 2))
        dy = np.cos(np.arange(y.size, dtype=y.dtype)).reshape(y.shape)
        return (y, *nb.depthwise_conv2d_backward(dy, x, k, (2, 1), pads, relu_y=y, dilation=(1, 2)),
                *nb.depthwise_conv2d_backward(dy, x, k, (2, 1), pads, dilation=(1, 2)))

    many = run()
    one = one_thread(run)
    for a, b_ in zip(many, one):
        assert a.tobytes() == b_.tobytes()


@pytest.mark.parametrize(("dt", "m", "strides", "dilation"),
                         [(np.float32, 1, (1, 1), (1, 1)), (np.float64, 2, (2, 1), (1, 2)), (np.float32, 3, (1, 2), (2, 1))])
def test_depthwise_reads_and_writes_only_within_bounds(dt, m, strides, dilation):
    """Inputs (x, kernel, bias, dy, relu_y) as C-contiguous views into buffers with NaN margins: a
    read past either end would put a NaN into the results; 'same' padding, so the taps at the
    borders are clipped by the kernels themselves."""
    x, k, b = _batch(n=3, dt=dt, c=5, m=m)
    pads = window_output((13, 12), (3, 3), strides, "same", dilation)[1]
    y_ref = ref.depthwise_conv2d_forward(x, k, b, strides, pads, relu=True, dilation=dilation)
    dy = np.random.default_rng(4).standard_normal(y_ref.shape).astype(dt)
    xc, kc, bc, dyc, yc = (Canary.holding(a) for a in (x, k, b, dy, y_ref))
    y = nb.depthwise_conv2d_forward(xc.a, kc.a, bc.a, strides, pads, relu=True, dilation=dilation)
    assert_close(y, y_ref, dt, "forward")
    for need_dx in (True, False):
        got = nb.depthwise_conv2d_backward(dyc.a, xc.a, kc.a, strides, pads, need_dx=need_dx, relu_y=yc.a,
                                           dilation=dilation)
        want = ref.depthwise_conv2d_backward(dy, x, k, strides, pads, need_dx=need_dx, relu_y=y_ref,
                                             dilation=dilation)
        for name, g, w in zip(("dx", "dkernel", "dbias"), got, want):
            assert (g is None) == (w is None)
            if w is not None:
                assert np.isfinite(g).all(), f"{name}: a NaN from outside an input"
                assert_close(g, w, dt, name)
    assert all(c_.intact() for c_ in (xc, kc, bc, dyc, yc))


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_depthwise_empty_batch(dt):
    x, k = np.zeros((0, 5, 5, 3), dt), np.ones((3, 3, 3, 2), dt)
    y = nb.depthwise_conv2d_forward(x, k, np.ones(6, dt), (1, 1), (1, 1, 1, 1), relu=True)
    assert y.shape == (0, 5, 5, 6) and y.dtype == dt
    for need_dx in (True, False):
        dx, dk, db = nb.depthwise_conv2d_backward(y, x, k, (1, 1), (1, 1, 1, 1), need_dx=need_dx)
        assert (dx is None) == (not need_dx) and dk.shape == k.shape and db.shape == (6,)
        assert not dk.any() and not db.any()


def test_depthwise_checks_name_the_shapes():
    x, k = np.zeros((2, 6, 6, 3)), np.zeros((3, 3, 3, 2))
    with pytest.raises(ValueError, match=r"depthwise_conv2d_forward: bias must have shape \(6,\)"):
        nb.depthwise_conv2d_forward(x, k, np.zeros(2), (1, 1), (0, 0, 0, 0))
    with pytest.raises(ValueError, match=r"depthwise_conv2d_forward: x must be \(N, H, W, C\)"):
        nb.depthwise_conv2d_forward(x, np.zeros((3, 3, 4, 2)), None, (1, 1), (0, 0, 0, 0))
    with pytest.raises(ValueError, match="dilation must be 2 positive ints"):
        nb.depthwise_conv2d_forward(x, k, None, (1, 1), (0, 0, 0, 0), dilation=(0, 1))
    with pytest.raises(ValueError, match=r"dy has shape \(2, 4, 4, 3\), the forward's output has \(2, 2, 4, 6\)"):
        nb.depthwise_conv2d_backward(np.zeros((2, 4, 4, 3)), x, k, (1, 1), (0, 0, 0, 0), dilation=(2, 1))
    with pytest.raises(ValueError, match=r"relu_y has shape \(2, 4, 4, 5\), dy has \(2, 4, 4, 6\)"):
        nb.depthwise_conv2d_backward(np.zeros((2, 4, 4, 6)), x, k, (1, 1), (0, 0, 0, 0),
                                     relu_y=np.zeros((2, 4, 4, 5)))


@pytest.mark.slow
def test_depthwise_and_dilated_conv_boundscheck_smoke(tmp_path):
    """Random small shapes with NUMBA_BOUNDSCHECK=1 (own cache dir): the indexing of the
    depthwise kernels and of the dilated im2col/col2im."""
    script = textwrap.dedent("""
        import numpy as np
        from minicnn.kernels import numba_backend as nb, numpy_backend as ref
        from minicnn.kernels.numba import config
        from minicnn.kernels.shapes import window_output
        config.SMALL_GEMM, config.SMALL_ELEMENTWISE = -1, 0
        rng = np.random.default_rng(0)
        for t in range(40):
            n, h, w, c = (int(v) for v in rng.integers(1, [4, 9, 9, 6]))
            kh, kw, m = (int(v) for v in rng.integers(1, [5, 5, 4]))
            s = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
            d = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
            (oh, ow), pads = window_output((h, w), (kh, kw), s, ["valid", "same"][t % 2], d)
            if min(oh, ow) < 1:
                continue
            dt = [np.float32, np.float64][t % 2]
            x = rng.standard_normal((n, h, w, c)).astype(dt)
            k = rng.standard_normal((kh, kw, c, m)).astype(dt)
            for fwd, bwd in ((nb.depthwise_conv2d_forward, nb.depthwise_conv2d_backward),
                             (nb.conv2d_forward, nb.conv2d_backward)):
                y = fwd(x, k, None, s, pads, relu=True, dilation=d)
                dy = rng.standard_normal(y.shape).astype(dt)
                bwd(dy, x, k, s, pads, need_dx=bool(t % 3), relu_y=y if t % 2 else None, dilation=d)
        print("ok")
    """)
    env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path / "numba_cache")}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-4000:]
    assert out.stdout.strip().endswith("ok")


@pytest.mark.parametrize(("dt", "c", "relu"), [(np.float32, 16, True), (np.float64, 16, False), (np.float32, 64, True)])
def test_flat_path_matches_the_general_kernels_at_the_mobile_preset_shapes(dt, c, relu, monkeypatch):
    """Multiplier 1 and column stride 1 take the flat kernels (one long loop per tap): the forward
    and dx are bitwise the general kernels' (the same operations in the same order), dkernel and
    dbias (summed per column first) within the tolerance; both threads counts give the same bits."""
    from minicnn.kernels.numba import depthwise as dw

    rng = np.random.default_rng(5)
    x = rng.standard_normal((5, 14, 14, c)).astype(dt)
    k = rng.standard_normal((3, 3, c, 1)).astype(dt)
    b = rng.standard_normal(c).astype(dt)
    pads = (1, 1, 1, 1)
    dy = rng.standard_normal((5, 14, 14, c)).astype(dt)

    def run():
        y = nb.depthwise_conv2d_forward(x, k, b, (1, 1), pads, relu=relu)
        return (y, *nb.depthwise_conv2d_backward(dy, x, k, (1, 1), pads, relu_y=y if relu else None))

    assert dw._flat(1, (1, 1)) and dw._flat(1, (2, 1)) and not dw._flat(2, (1, 1)) and not dw._flat(1, (1, 2))
    flat = run()
    assert all(a.tobytes() == b_.tobytes() for a, b_ in zip(flat, one_thread(run)))
    monkeypatch.setattr(dw, "_flat", lambda m, strides: False)
    general = run()
    for name, got, want in zip(("y", "dx", "dkernel", "dbias"), flat, general):
        if name in ("y", "dx"):
            assert got.tobytes() == want.tobytes(), name
        else:
            assert_close(got, want, dt, name)
