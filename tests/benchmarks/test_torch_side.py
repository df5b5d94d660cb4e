"""The PyTorch side's translation of the zoo (benchmarks/sides/torch_side.py): same outputs as
minicnn's where the layout allows a comparison (models without Flatten: NCHW flattens in
another order, which changes no time but the Dense weights' meaning). Skipped without torch."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from benchmarks import models, ops  # noqa: E402
from benchmarks.sides.torch_side import TorchSide, _nchw  # noqa: E402


@pytest.mark.parametrize("preset", ["allconv", "mobile"])  # strided 'same' convs, depthwise, separable, BN, GAP
def test_translation_matches_minicnn_in_float64(preset):
    side = TorchSide()
    m = models.compiled({"preset": preset}, "float64", (28, 28, 1), 10)
    net, _ = side._net(m, False)
    net.eval()
    x, _ = ops.batch_data(m, 3, seed=2)
    with torch.no_grad():
        out = net(torch.from_numpy(np.ascontiguousarray(_nchw(x)))).numpy()
    # float64 sums of a few thousand terms in another order: ~1e-15 relative; 1e-12 is the kernels' bound
    np.testing.assert_allclose(out, m.predict(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("preset", ["lenet5", "vgg_bn"])  # average pooling + tanh; BN after Dense (1-D)
def test_every_layer_translates(preset):
    side = TorchSide()
    m = models.compiled({"preset": preset}, "float32", (28, 28, 1), 10)
    net, _ = side._net(m, True)
    x, _ = ops.batch_data(m, 2)
    assert tuple(net(torch.from_numpy(np.ascontiguousarray(_nchw(x)))).shape) == (2, 10)
