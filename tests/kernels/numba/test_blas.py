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
