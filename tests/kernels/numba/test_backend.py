"""The facade minicnn.kernels.numba_backend: the numpy backend's names and signatures, and the
properties that span its modules (thread-count independence, the small-input path,
threading_info, a bounds-checked run)."""

from __future__ import annotations

import inspect
import os
import platform
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest

from minicnn.kernels import numpy_backend as ref

nb = pytest.importorskip("minicnn.kernels.numba_backend")

from minicnn.kernels.numba import config  # noqa: E402
from minicnn.kernels.numba import optim as numba_optim  # noqa: E402
from tests.kernels.numba.kernelcheck import assert_close, model_like_case, one_thread  # noqa: E402

pytestmark = pytest.mark.usefixtures("numba_kernels_even_for_small_inputs")


def _public(module):
    """The module's public attributes, imported modules and ``annotations`` aside."""
    return {name for name in dir(module) if not name.startswith("_")
            and not isinstance(getattr(module, name), types.ModuleType) and name != "annotations"}


def _contract(module):
    """The numpy backend's API: NAME and the functions it or its family modules
    (``minicnn.kernels.numpy_<family>``) define, not what it imports from elsewhere."""
    return {"NAME"} | {name for name in _public(module)
                       if str(getattr(getattr(module, name), "__module__", "")).startswith("minicnn.kernels.numpy_")}


def test_the_facade_has_the_numpy_backends_names_and_signatures():
    assert _public(nb) == set(nb.__all__) == _contract(ref) | {"threading_info", "get_num_threads",
                                                                "set_num_threads"}
    for name in _contract(ref) - {"NAME"}:
        assert inspect.signature(getattr(nb, name)) == inspect.signature(getattr(ref, name)), name
    assert nb.NAME == "numba" and ref.NAME == "numpy"


def test_the_private_tiles_alias_is_the_config_switch():
    """benchmarks/run.py sets numba_backend._TILES = False: it must reach config.TILES."""
    saved = config.TILES
    try:
        nb._TILES = False
        assert config.TILES is False and nb._TILES is False
        config.TILES = saved
        assert nb._TILES is saved
    finally:
        config.TILES = saved


def test_results_do_not_depend_on_the_thread_count(conv_path):
    import numba

    x, k, dy = model_like_case(n=9)
    threads = numba.get_num_threads()
    if threads < 2:
        pytest.skip("one numba thread only")

    y = nb.conv2d_forward(x, k, None, (1, 1), (0, 0, 0, 0), relu=True)
    xf = x.reshape(9, -1)  # 3136 features: the dense tiles with 16 units, BLAS with 5
    w16, w5 = (np.random.default_rng(1).standard_normal((xf.shape[1], u)).astype(np.float32) for u in (16, 5))
    dy16 = np.random.default_rng(2).standard_normal((9, 16)).astype(np.float32)

    def run():
        p, m, v = w16.copy(), np.zeros_like(w16), np.zeros_like(w16)  # 50k weights: Adam's parallel loop
        numba_optim.adam_update(p, w16 * 1e-3, m, v, *(np.float32(s) for s in (0.1, 0.001, 1e-3, 1e-7)))
        return (*nb.conv2d_backward(dy, x, k, (1, 1), (0, 0, 0, 0)),
                *nb.conv2d_backward(dy, x, k, (1, 1), (0, 0, 0, 0), relu_y=y),
                nb.conv2d_forward(x, k, None, (1, 1), (0, 0, 0, 0)),
                *nb.dense_backward(dy.reshape(9, -1)[:, :5], xf, w5), nb.dense_forward(xf, w5, None),
                *nb.dense_backward(dy16, xf, w16, check_finite=True)[:3], nb.dense_forward(xf, w16, None), p, m, v)

    many = run()
    one = one_thread(run)
    for a, b in zip(many, one):
        assert a.tobytes() == b.tobytes()


def test_small_inputs_take_the_numpy_path_with_the_same_results():
    rng = np.random.default_rng(5)
    x, k, b = rng.standard_normal((4, 30)), rng.standard_normal((30, 5)), rng.standard_normal(5)
    y = rng.standard_normal((3, 7))
    fast = (nb.dense_forward(x, k, b, relu=True), *nb.dense_backward(np.ones((4, 5)), x, k),
            nb.relu_forward(y), nb.relu_backward(y, np.maximum(y, 0)))
    saved = config.SMALL_GEMM, config.SMALL_ELEMENTWISE
    config.SMALL_GEMM, config.SMALL_ELEMENTWISE = 1 << 30, 1 << 30
    try:
        small = (nb.dense_forward(x, k, b, relu=True), *nb.dense_backward(np.ones((4, 5)), x, k),
                 nb.relu_forward(y), nb.relu_backward(y, np.maximum(y, 0)))
    finally:
        config.SMALL_GEMM, config.SMALL_ELEMENTWISE = saved
    for a, c in zip(fast, small):
        assert_close(a, c, np.float64, "small path")


def test_threading_info():
    info = nb.threading_info()
    assert info["layer"] in ("omp", "tbb", "workqueue")
    assert info["num_threads"] >= 1
    assert info["denormals_flushed_in_kernels"] == (platform.machine().lower() in ("x86_64", "amd64", "i386", "i686"))
    assert info["fma_tiles"] == config.TILES
    assert nb.NAME == "numba"


@pytest.mark.slow
def test_boundscheck_smoke(tmp_path):
    """Random small shapes with NUMBA_BOUNDSCHECK=1 (own cache dir: bounds-checked code must not
    end up in the normal cache). This checks the indexing of the kernels written in numba Python
    (im2col/col2im, pooling, relu, the buffer filling around the tiles); it cannot see the FMA
    tiles and the transposes, which address raw pointers in LLVM IR: test_tiles.py checks those
    with canary buffers."""
    script = textwrap.dedent("""
        import numpy as np
        from minicnn.kernels import numba_backend as nb, numpy_backend as ref
        from minicnn.kernels.numba import config
        from minicnn.kernels.shapes import window_output
        config.SMALL_GEMM, config.SMALL_ELEMENTWISE = -1, 0  # the numba kernels even for tiny shapes
        rng = np.random.default_rng(0)
        for t in range(40):
            n, h, w = rng.integers(1, 4), rng.integers(1, 8), rng.integers(1, 8)
            c, f = [1, 3, 16][t % 3], [2, 16, 32, 5][t % 4]  # tiles (multiples of 16) and the other paths
            kh, kw = rng.integers(1, h + 1), rng.integers(1, w + 1)
            s = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
            (oh, ow), pads = window_output((int(h), int(w)), (int(kh), int(kw)), s, ["valid", "same"][t % 2])
            if min(oh, ow) < 1:
                continue
            dt = [np.float32, np.float64][t % 2]
            x = rng.standard_normal((n, h, w, c)).astype(dt)
            k = rng.standard_normal((kh, kw, c, f)).astype(dt)
            y = nb.conv2d_forward(x, k, None, s, pads, relu=True)
            dy = rng.standard_normal(y.shape).astype(dt)
            ry = y if t % 2 else None  # relu's gradient fused or not
            got = nb.conv2d_backward(dy, x, k, s, pads, need_dx=bool(t % 3), relu_y=ry)
            want = ref.conv2d_backward(dy, x, k, s, pads, need_dx=bool(t % 3), relu_y=ry)
            assert all(g is None or np.allclose(g, w_, rtol=1e-4, atol=1e-4) for g, w_ in zip(got, want))
            p, a = nb.maxpool2d_forward(x, (kh, kw), s, pads)
            nb.maxpool2d_backward(p, a, x.shape, (kh, kw), s, pads)
            nb.relu_backward(dy, nb.relu_forward(y))
            w3 = rng.standard_normal((x[0].size, 16 if t % 4 == 0 else 3)).astype(dt)  # 16: dense tiles (float32)
            nb.dense_backward(nb.dense_forward(x.reshape(n, -1), w3, None), x.reshape(n, -1), w3, check_finite=True)
            # the zoo (activations, average/global pooling, zero padding), serial and parallel kernels
            from minicnn.kernels.numba import config as cfg
            cfg.FANOUT_MIN_FLOPS = [0, 1 << 40][t % 2]
            a = nb.avgpool2d_forward(x, (kh, kw), s, pads)
            nb.avgpool2d_backward(a, x.shape, (kh, kw), s, pads)
            g = nb.global_maxpool2d_forward(x)
            nb.global_maxpool2d_backward(g, x, g)
            nb.global_avgpool2d_backward(nb.global_avgpool2d_forward(x), x.shape)
            nb.zeropad2d_backward(nb.zeropad2d_forward(x, (1, 0, 2, 1)), (1, 0, 2, 1))
            nb.silu_backward(x, nb.softplus_forward(x))
            nb.gelu_backward(x, nb.gelu_forward(x, dt(0.7)), dt(0.7))
            nb.prelu_backward(x, x, nb.prelu_forward(x, x[0] * 0 + dt(0.25))[0])
        print("ok")
    """)
    env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path / "numba_cache")}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-4000:]
    assert out.stdout.strip().endswith("ok")
