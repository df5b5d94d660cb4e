"""relu and the ordered group sums of the numba backend (minicnn.kernels.numba.elementwise)."""

from __future__ import annotations

import numpy as np
import pytest

from minicnn.kernels import numpy_backend as ref

nb = pytest.importorskip("minicnn.kernels.numba_backend")

from minicnn.kernels.numba import config, elementwise  # noqa: E402
from tests.kernels.numba.kernelcheck import Canary, layout  # noqa: E402

pytestmark = pytest.mark.usefixtures("numba_kernels_even_for_small_inputs")


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_relu_exact(dt):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 4, 2)).astype(dt)
    x[0, 0, 0] = 0.0
    x[0, 0, 1, 0] = np.nan
    for x_in in (x, layout(x, "slice"), layout(x, "transpose")):
        y = nb.relu_forward(x_in)
        assert y.dtype == dt
        np.testing.assert_array_equal(y, ref.relu_forward(x))
        dy = rng.standard_normal(x.shape).astype(dt)
        dx = nb.relu_backward(layout(dy, "transpose"), y)
        assert dx.dtype == dt
        np.testing.assert_array_equal(dx, ref.relu_backward(dy, y))
        assert (dx[y == 0] == 0).all()  # the gradient at exactly 0 is 0
        assert np.array_equal(x_in, x, equal_nan=True)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_relu_over_several_blocks_reads_and_writes_only_its_arrays(dt):
    """More than one parallel block (EW_BLOCK elements) and a partial last one, inputs in
    NaN-margined buffers: results exact, margins untouched."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(2 * config.EW_BLOCK + 77).astype(dt)
    xc = Canary.holding(x)
    y = nb.relu_forward(xc.a)
    np.testing.assert_array_equal(y, ref.relu_forward(x))
    dyc, yc = Canary.holding(rng.standard_normal(x.shape).astype(dt)), Canary.holding(y)
    np.testing.assert_array_equal(nb.relu_backward(dyc.a, yc.a), ref.relu_backward(dyc.a.copy(), y))
    assert xc.intact() and dyc.intact() and yc.intact()


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 7), (5, 3 * config.SUM_BLOCK + 1), (64, 1000)])
def test_sum_groups_adds_the_groups_in_order(dt, shape):
    """out = p[0] + p[1] + ... in that order: bitwise the sequential sum; out's margins untouched."""
    p = np.random.default_rng(2).standard_normal(shape).astype(dt) * np.logspace(0, 8, shape[0])[:, None].astype(dt)
    want = p[0].copy()
    for row in p[1:]:
        want += row
    pc, out = Canary.holding(p), Canary(shape[1:], dt)
    elementwise.sum_groups(pc.a, out.a)
    assert out.a.tobytes() == want.tobytes()
    assert pc.intact() and out.intact()
