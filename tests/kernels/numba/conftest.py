"""Fixtures of the numba kernel tests (helpers: kernelcheck.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("numba")

from minicnn.kernels.numba import config  # noqa: E402
from tests.kernels.numba.kernelcheck import tiles  # noqa: E402


@pytest.fixture(autouse=True)
def fan_out_even_small_calls():
    """The test shapes are small: split every fanout.run call over the threads anyway (a call under
    config.FANOUT_MIN_FLOPS would run on one), so the thread-count tests see the split."""
    saved = config.FANOUT_MIN_FLOPS
    config.FANOUT_MIN_FLOPS = 0
    yield
    config.FANOUT_MIN_FLOPS = saved


@pytest.fixture(scope="module")
def numba_kernels_even_for_small_inputs():
    """Tiny dense/relu inputs normally go to numpy (no parallel launch): force the numba kernels
    so that the small shapes of these tests exercise them (modules opt in with ``pytestmark``)."""
    saved = config.SMALL_GEMM, config.SMALL_ELEMENTWISE
    config.SMALL_GEMM, config.SMALL_ELEMENTWISE = -1, 0
    yield
    config.SMALL_GEMM, config.SMALL_ELEMENTWISE = saved


@pytest.fixture(params=["tiles", "im2col+gemm"])
def conv_path(request):
    """Run once with the FMA tiles (where the CPU has them) and once with im2col + GEMM."""
    with tiles(request.param == "tiles"):
        yield request.param
