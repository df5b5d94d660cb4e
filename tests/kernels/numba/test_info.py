"""What the numba backend reports about itself (minicnn.kernels.numba.info): the codegen target,
the kernels an op ran (trace_kernels, path_of), and kernels really compiled for an AVX2 CPU."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("numba")

from minicnn.kernels import numba_backend as nb  # noqa: E402
from minicnn.kernels import numpy_backend as ref  # noqa: E402
from minicnn.kernels.numba import blas, conv, info  # noqa: E402
from tests.kernels.numba.kernelcheck import child_json, tiles  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
#: the environment of `make test-portable`'s AVX2 variant (kernels compiled for Haswell)
AVX2_ENV = {"NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": "+avx2,+fma,+f16c"}


def _conv_args(dtype, c=16, f=16):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((2, 6, 6, c)).astype(dtype), rng.standard_normal((3, 3, c, f)).astype(dtype))


def test_feature_flags_parse_llvm_strings():
    assert info._feature_flags("+avx2,-avx512f, +fma,junk") == {"avx2": True, "avx512f": False, "fma": True}


def test_codegen_isa_follows_the_host_without_overrides():
    import llvmlite.binding as llvm
    from numba.core import config as nconfig

    isa = info.codegen_isa()
    if nconfig.CPU_NAME is None and nconfig.CPU_FEATURES is None:
        host512 = bool(llvm.get_host_cpu_features().get("avx512f", False))
        assert isa["avx512f"] is host512 and isa["cpu_name"] == llvm.get_host_cpu_name()
        assert isa["vector_isa"] == ("AVX-512" if host512 else "AVX2" if isa["avx2"] else "SSE/other")
    assert info.threading_info()["codegen"] == isa


def test_path_of_names():
    assert info.path_of([]) == ""
    assert info.path_of(["numpy_backend.pad_nhwc", "conv._conv_tiles[0]"]) == "FMA tiles"
    assert info.path_of(["numpy_backend.dense_forward"]) == "numpy fallback"
    assert info.path_of(["conv._conv_tiles[2]", "elementwise.sum_groups", "conv._conv_bwd_gemm"]) == \
        "FMA tiles + numba loops + BLAS GEMM"


def test_kernel_kind_reads_what_a_kernel_calls():
    from minicnn.kernels.numba import avgpool, dense

    assert info.kernel_kind(dense._dense_fwd) == "BLAS GEMM"  # its name does not say: it calls blas.gemm
    assert info.kernel_kind(dense._dense_fwd_tiles) == "FMA tiles"
    assert info.kernel_kind(avgpool._avg_fwd) == "numba loops"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_trace_records_the_path_taken_and_restores_every_global(dtype):
    x, k = _conv_args(dtype)
    before = {name: obj for name, obj in vars(conv).items()}
    ref_before = dict(vars(ref))
    run = lambda: nb.conv2d_forward(x, k, None, (1, 1), (1, 1, 1, 1))  # noqa: E731
    expected = run()  # compiled before tracing (the test below compiles inside one)
    with info.trace_kernels() as names:
        y = run()
    np.testing.assert_array_equal(y, expected)
    assert all(vars(conv)[n] is o for n, o in before.items()) and all(vars(ref)[n] is o for n, o in ref_before.items())
    on_tiles = conv.conv_tiles_fit(np.dtype(dtype))
    if on_tiles:
        assert "conv._conv_tiles[0]" in names and info.path_of(names) == "FMA tiles"
    elif blas.FAST:
        assert names == ["conv._conv_fwd_gemm"] and info.path_of(names) == "BLAS GEMM"
    else:
        assert info.path_of(names) == "numpy fallback"


def test_trace_sees_the_tiles_switch():
    x, k = _conv_args(np.float32)
    nb.conv2d_forward(x, k, None, (1, 1), (1, 1, 1, 1))
    with tiles(False):
        nb.conv2d_forward(x, k, None, (1, 1), (1, 1, 1, 1))
        with info.trace_kernels() as names:
            nb.conv2d_forward(x, k, None, (1, 1), (1, 1, 1, 1))
    assert not any("tiles" in n for n in names)


#: a kernel compiled for the first time inside a trace (a cold cache): average pooling's forward,
#: whose kernel calls another kernel of its module (_avg_row, a traced global while it compiles)
FIRST_COMPILE_IN_TRACE = """
import json, sys
import numpy as np
from minicnn.kernels import numba_backend as nb
from minicnn.kernels import numpy_pooling as ref
from minicnn.kernels.numba import avgpool, info
x = np.random.default_rng(0).standard_normal((2, 6, 6, 3)).astype(np.float32)
args = ((2, 2), (2, 2), (0, 0, 0, 0))
names = []
if sys.argv[1] == "trace":
    with info.trace_kernels() as names:
        y = nb.avgpool2d_forward(x, *args)
else:
    y = nb.avgpool2d_forward(x, *args)
print(json.dumps({"names": names, "same": y.tobytes() == ref.avgpool2d_forward(x, *args).tobytes(),
                  "restored": type(avgpool._avg_row).__name__}))
"""


def test_a_kernel_first_compiled_inside_a_trace_compiles_and_caches(tmp_path):
    """The trace's wrappers type as the dispatchers they wrap: a kernel compiled while the trace is
    open (here with an empty cache) types its calls to them, runs, and loads from the cache in the
    next process."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "PYTHONPATH": ROOT}
    traced = child_json(FIRST_COMPILE_IN_TRACE, "trace", env=env)
    assert traced == {"names": ["avgpool._avg_fwd"], "same": True, "restored": "CPUDispatcher"}
    assert any(p.name.startswith("avgpool._avg_fwd") for p in tmp_path.rglob("*.nbi"))
    assert child_json(FIRST_COMPILE_IN_TRACE, "plain", env=env)["same"]


@pytest.mark.slow
def test_kernels_compiled_for_an_avx2_cpu(tmp_path):
    """The AVX2 variant of `make test-portable`: numba told the CPU is a Haswell compiles ymm code
    (no zmm register anywhere), codegen_isa says AVX2, the tiles (v16f32 in the IR, split into ymm
    halves by LLVM) and the GEMM path still equal the numpy reference. A fresh NUMBA_CACHE_DIR:
    kernels cached for the host must not be reused (numba's cache keys include the CPU anyway)."""
    code = "\n".join([
        "import json, re, numpy as np",
        "from minicnn.kernels import numba_backend as nb, numpy_backend as ref",
        "from minicnn.kernels.numba import config, conv, info",
        "rng = np.random.default_rng(0)",
        "x = rng.standard_normal((2, 6, 6, 16)).astype(np.float32)",
        "k = rng.standard_normal((3, 3, 16, 16)).astype(np.float32)",
        "want = ref.conv2d_forward(x, k, None, (1, 1), (1, 1, 1, 1))",
        "err = {}",
        "for on in (True, False):",
        "    config.TILES = on",
        "    y = nb.conv2d_forward(x, k, None, (1, 1), (1, 1, 1, 1))",
        "    err[str(on)] = float(np.max(np.abs(y - want)) / np.max(np.abs(want)))",
        "asm = ''.join(conv._conv_tiles.inspect_asm().values()) + ''.join(conv._conv_fwd_gemm.inspect_asm().values())",
        "print(json.dumps({'isa': info.codegen_isa(), 'err': err, 'zmm': len(re.findall('zmm', asm)),",
        "                  'ymm': len(re.findall('ymm', asm))}))",
    ])
    env = {**os.environ, **AVX2_ENV, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "MINICNN_NUMBA_TILES": "1",
           "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    res = child_json(code, env=env, timeout=900)
    assert res["isa"]["vector_isa"] == "AVX2" and res["isa"]["cpu_name"] == "haswell"
    assert res["zmm"] == 0 and res["ymm"] > 0
    assert res["err"]["True"] <= 1e-5 and res["err"]["False"] <= 1e-5
