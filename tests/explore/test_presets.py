"""Every preset (BatchNormalization, depthwise and separable convolutions, average and global
pooling, tanh, a final Activation('softmax')) goes through every explorer computation."""

from __future__ import annotations

import numpy as np
import pytest

import minicnn
from minicnn.explore import Explorer, unpack
from minicnn.layers import Conv2D, Dense
from minicnn.presets import PRESETS


@pytest.mark.parametrize("name", PRESETS)
def test_preset_through_every_view(name):
    shape = (32, 32, 3) if name in ("cifar_cnn", "vgg_bn", "allconv", "mobile") else (28, 28, 1)
    model = minicnn.build_preset(name, input_shape=shape, seed=0)
    e = Explorer(model, dataset="cifar10" if shape[-1] == 3 else "mnist")
    x = np.random.default_rng(1).random(shape).astype(np.float32)
    f = e.forward(x)
    assert len(f["layers"]) == len(model.layers) and abs(sum(f["probabilities"]) - 1) < 1e-5
    for i, layer in enumerate(model.layers):
        unit = [s // 2 for s in layer.output_shape]
        u = e.unit(x, i, unit)
        assert u["value"] == float(unpack(f["layers"][i]["output"])[tuple(unit)])
        if "z" in u and layer.activation in (None, "relu", "tanh"):
            assert u["activated"] == pytest.approx(u["value"], rel=1e-4, abs=1e-5)
        rf = u["receptive_field"]
        if rf is not None:
            assert 0 <= rf["rows"][0] <= rf["rows"][1] < shape[0]
            # a receptive field is where the unit's value depends on the input: outside it, nothing changes
            y = x.copy()
            outside = np.ones(shape[:2], bool)
            outside[rf["rows"][0]:rf["rows"][1] + 1, rf["cols"][0]:rf["cols"][1] + 1] = False
            y[outside] = np.random.default_rng(2).random((int(outside.sum()), shape[2]))
            _, outs = model.forward(y[None], training=False, record=True)
            assert float(outs[i][0][tuple(unit)]) == u["value"]
    kernels = [i for i, l in enumerate(model.layers) if isinstance(l, (Conv2D, Dense))]
    for i in (kernels[0], kernels[-1]):
        unit = [s // 2 for s in model.layers[i].output_shape]
        b = e.backward(x, 1, layer=i, unit=unit)
        assert np.isfinite(unpack(b["input_grad"])).all()
        w = b["weight_grad"]
        assert w["terms_sum"] == pytest.approx(w["entry_value"], rel=1e-3, abs=1e-7)
        s = e.optimizer_step(x, 1, i, unit)
        assert s["iterations"] == 1
    assert b["gradcam"] is not None
