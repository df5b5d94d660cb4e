"""OpenBLAS called from numba (minicnn.kernels.numba.blas): its thread count is restored."""

from __future__ import annotations

import numpy as np
import pytest

nb = pytest.importorskip("minicnn.kernels.numba_backend")

from minicnn.kernels.numba import blas  # noqa: E402
from tests.kernels.numba.kernelcheck import child_json, model_like_case  # noqa: E402

pytestmark = pytest.mark.usefixtures("numba_kernels_even_for_small_inputs")


def test_blas_thread_count_is_restored():
    if not blas.FAST:
        pytest.skip("BLAS-in-numba path not available")
    before = blas.openblas.threads()
    x, k, dy = model_like_case(n=2)
    nb.conv2d_backward(dy, x, k, (1, 1), (0, 0, 0, 0))
    nb.dense_forward(x.reshape(2, -1), np.ones((x[0].size, 3), np.float32), None)
    assert blas.openblas.threads() == before


def test_nested_and_repeated_single_threaded_blocks_restore_the_count():
    if not blas.openblas.available:
        pytest.skip("no scipy-openblas found")
    before = blas.openblas.threads()
    with blas.openblas:
        assert blas.openblas.threads() == 1
        with blas.openblas:
            assert blas.openblas.threads() == 1
        assert blas.openblas.threads() == 1
    assert blas.openblas.threads() == before


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("m", [1, 2, 5])
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_gemm_on_raw_addresses_matches_numpy(dt, m, ta, tb, beta):
    """Row-major C = op(A) @ op(B) + beta * C with row strides wider than the rows (sub-blocks of
    bigger arrays, as the kernels pass them); m = 1 without op(A) takes cblas_?gemv."""
    if not blas.FAST:
        pytest.skip("BLAS-in-numba path not available")
    from numba import njit

    @njit
    def call(single, ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc):
        blas.gemm(single, ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc)

    rng = np.random.default_rng(m * 8 + ta * 4 + tb * 2 + int(beta))
    n, k = 7, 300
    a_store = rng.standard_normal((k, m + 3) if ta else (m, k + 3)).astype(dt)  # op(A) is m x k
    b_store = rng.standard_normal((n, k + 2) if tb else (k, n + 2)).astype(dt)  # op(B) is k x n
    c_store = rng.standard_normal((m, n + 4)).astype(dt)
    a = a_store[:, :m] if ta else a_store[:, :k]
    b = b_store[:, :k] if tb else b_store[:, :n]
    want = (a.T if ta else a) @ (b.T if tb else b) + beta * c_store[:, :n]
    untouched = c_store[:, n:].copy()
    call(dt == np.float32, ta, tb, m, n, k, a_store.ctypes.data, a_store.shape[1], b_store.ctypes.data,
         b_store.shape[1], beta, c_store.ctypes.data, c_store.shape[1])
    tol = 1e-5 if dt == np.float32 else 1e-12
    np.testing.assert_allclose(c_store[:, :n], want, rtol=tol, atol=tol * np.abs(want).max())
    assert np.array_equal(c_store[:, n:], untouched)  # only C's n columns of each row are written


def test_gemm_has_one_signature_whatever_its_callers_pass():
    """The kernels call gemm with constant transposes (and sometimes m = 1); numba would compile
    one specialisation per literal combination (four for the seed model), each a full compile.
    gemm is compiled once for :data:`blas.GEMM_SIGNATURE` and closed to more."""
    if not blas.FAST:
        pytest.skip("BLAS-in-numba path not available")
    x, k, dy = model_like_case(n=2)
    nb.conv2d_forward(x, k, None, (1, 1), (0, 0, 0, 0))
    nb.conv2d_backward(dy, x, k, (1, 1), (0, 0, 0, 0))  # dkernel (A^T) and dx (B^T)
    nb.dense_forward(x.reshape(2, -1), np.ones((x[0].size, 3), np.float32), None)
    nb.dense_forward(x[:1].reshape(1, -1), np.ones((x[0].size, 3), np.float32), None)  # m = 1
    assert blas.gemm.signatures == [blas.GEMM_SIGNATURE.args]


def test_thp_mode_reads_the_bracketed_choice(tmp_path):
    f = tmp_path / "enabled"
    f.write_text("always [madvise] never\n")
    assert blas.thp_mode(str(f)) == "madvise"
    f.write_text("[always] madvise never\n")
    assert blas.thp_mode(str(f)) == "always"
    assert blas.thp_mode(str(tmp_path / "missing")) is None


def test_a_misspelled_huge_pages_switch_is_refused_by_name():
    with pytest.raises(ValueError, match="MINICNN_BLAS_HUGEPAGES='maybe'"):
        blas.openblas.advise_huge_pages(1, environ={"MINICNN_BLAS_HUGEPAGES": "maybe"})


def _buffer_vm_flags(env_extra: dict | None = None) -> tuple[str, list[str]]:
    """In a fresh process: minicnn's numba backend imported, a dense layer run (its GEMM slices on
    the fanout threads), then (what the advice said, the VmFlags of the mapping of each buffer
    OpenBLAS hands out while holding three)."""
    import os

    code = r"""
import ctypes, json
import numpy as np
from minicnn.kernels import numba_backend as nb
from minicnn.kernels.numba import blas, config
config.FANOUT_MIN_FLOPS = 0
x = np.ones((64, 4096), np.float32); w = np.ones((4096, 64), np.float32)
y = nb.dense_forward(x, w, None)
assert np.all(y == 4096)
lib = blas.openblas.lib
lib.blas_memory_alloc.restype, lib.blas_memory_alloc.argtypes = ctypes.c_void_p, [ctypes.c_int]
lib.blas_memory_free.argtypes = [ctypes.c_void_p]
held = [lib.blas_memory_alloc(0) for _ in range(3)]
flags = []
for addr in held:
    lo_hi, mine = None, False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and ":" not in head[0]:
                lo, hi = (int(v, 16) for v in head[0].split("-"))
                mine = lo <= addr < hi
            elif mine and head[0] == "VmFlags:":
                flags.append(" ".join(head[1:]))
for addr in held:
    lib.blas_memory_free(addr)
print(json.dumps([blas.openblas.huge_pages, flags]))
"""
    env = dict(os.environ, NUMBA_NUM_THREADS="2", **(env_extra or {}))
    said, flags = child_json(code, env=env)
    return said, flags


needs_madvise_thp = pytest.mark.skipif(
    not blas.FAST or blas.thp_mode() != "madvise" or not hasattr(blas.openblas.lib, "blas_memory_alloc"),
    reason="needs BLAS from numba, THP in madvise mode and OpenBLAS's blas_memory_alloc")


@needs_madvise_thp
def test_openblas_buffers_are_advised_onto_huge_pages():
    """Every buffer a numba thread (or numpy beside them) can get is in a mapping flagged ``hg``
    (MADV_HUGEPAGE), also after the fanout threads' GEMMs."""
    said, flags = _buffer_vm_flags()
    assert said.startswith("MADV_HUGEPAGE on "), said
    assert len(flags) == 3 and all("hg" in f.split() for f in flags), flags


@needs_madvise_thp
def test_the_huge_page_advice_can_be_turned_off():
    said, flags = _buffer_vm_flags(env_extra={"MINICNN_BLAS_HUGEPAGES": "0"})
    assert said == "off (MINICNN_BLAS_HUGEPAGES=0)"
    assert len(flags) == 3 and not any("hg" in f.split() for f in flags), flags
