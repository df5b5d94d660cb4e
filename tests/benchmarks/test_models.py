"""FLOPs and shapes come from the model itself (benchmarks.models)."""

from __future__ import annotations

import pytest

from benchmarks import models
from minicnn.layers import Conv2D, Dense, Flatten, MaxPool2D
from minicnn import Sequential


def _tiny():
    m = Sequential([Conv2D(4, 3, activation="relu"), MaxPool2D(2), Flatten(), Dense(3, activation="softmax")],
                   input_shape=(8, 8, 2), seed=0)
    m.build()
    return m


def test_layer_flops_conv_dense_and_pool():
    m = _tiny()
    conv, pool, flat, dense = m.layers
    macs = 6 * 6 * 4 * 3 * 3 * 2  # output pixels x filters x kernel taps x input channels
    assert models.layer_flops(conv, False) == (2 * macs, "layer.flops")
    assert models.layer_flops(conv, True)[0] == 4 * macs
    assert models.layer_flops(conv, True, need_dx=False)[0] == 2 * macs
    assert conv.need_dx  # put back
    assert models.layer_flops(dense, False)[0] == 2 * 36 * 3
    assert models.layer_flops(dense, True)[0] == 4 * 36 * 3
    assert models.layer_flops(pool, False)[0] == 3 * 3 * 4 * 3  # comparisons: 3 a 2x2 window
    assert models.layer_flops(flat, False)[0] == 0


def test_describe_shapes_and_train_flops():
    m = _tiny()
    d = models.describe(m)
    assert [l["name"] for l in d["layers"]] == [l.name for l in m.layers]
    assert [l["type"] for l in d["layers"]] == ["Conv2D", "MaxPool2D", "Flatten", "Dense"]
    assert d["layers"][0]["input_shape"] == [8, 8, 2] and d["layers"][0]["output_shape"] == [6, 6, 4]
    assert d["layers"][2]["output_shape"] == [36]
    conv_fwd = 2 * 6 * 6 * 4 * 3 * 3 * 2
    first = d["layers"][0]
    assert first["flops_fwd"] == conv_fwd and first["flops_bwd"] == 2 * conv_fwd
    assert first["flops_bwd_in_step"] == conv_fwd  # the first layer's input gradient is skipped
    assert m.layers[0].need_dx  # describe() put it back
    assert d["infer_flops_per_sample"] == sum(l["flops_fwd"] for l in d["layers"])
    assert d["train_flops_per_sample"] == (d["infer_flops_per_sample"]
                                           + sum(l["flops_bwd"] for l in d["layers"]) - conv_fwd)
    assert d["params"] == m.count_params()


def test_describe_prefers_the_layer_contract(monkeypatch):
    m = _tiny()
    for layer in m.layers:
        monkeypatch.setattr(layer, "flops", lambda backward=False: 7 if backward else 5, raising=False)
    d = models.describe(m)
    assert {l["flops_fwd"] for l in d["layers"]} == {5} and {l["flops_bwd"] for l in d["layers"]} == {7}
    assert d["flops_source"] == ["layer.flops"]


def test_seed_preset_matches_the_analytic_count():
    from minicnn.presets import build_preset

    d = models.describe(build_preset("seed", seed=0))
    conv1, conv2 = 26 * 26 * 32 * 9, 24 * 24 * 64 * 9 * 32
    dense1, dense2 = 36864 * 128, 128 * 10
    macs = conv1 + conv2 + dense1 + dense2
    # forward 2 x macs; backward 4 x macs less conv1's input gradient
    assert d["infer_flops_per_sample"] == 2 * macs
    assert d["train_flops_per_sample"] == 6 * macs - 2 * conv1


def test_specs_from_args(tmp_path):
    cfg = _tiny().get_config()
    p = tmp_path / "tiny.json"
    import json

    p.write_text(json.dumps(cfg))
    specs = models.specs_from_args("all", str(p))
    assert [s["label"] for s in specs][: len(models.preset_names())] == list(models.preset_names())
    m = models.build(specs[-1], "float64", (28, 28, 1), 10)
    assert m.dtype == "float64" and tuple(m.input_shape) == (8, 8, 2)
    with pytest.raises(SystemExit):
        models.specs_from_args("nope", None)
