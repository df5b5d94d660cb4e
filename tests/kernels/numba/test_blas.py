"""OpenBLAS called from numba (minicnn.kernels.numba.blas): its thread count is restored."""

from __future__ import annotations

import numpy as np
import pytest

nb = pytest.importorskip("minicnn.kernels.numba_backend")

from minicnn.kernels.numba import blas  # noqa: E402
from tests.kernels.numba.kernelcheck import model_like_case  # noqa: E402

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
