"""Every preset: builds on MNIST, Fashion-MNIST and CIFAR-10 shapes, states its source, trains."""

from __future__ import annotations

import numpy as np
import pytest

from minicnn import presets
from minicnn.cli import main
from minicnn.layers import planned_params


@pytest.mark.parametrize("name", presets.PRESETS)
@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
def test_builds_on_every_dataset_shape_and_outputs_probabilities(name, shape):
    model = presets.build_preset(name, input_shape=shape, seed=0)
    assert model.name == name and model.output_shape == (10,)
    assert model.count_params() == planned_params(model.layers, shape)
    p = model.predict(np.random.default_rng(0).random((3, *shape), dtype=np.float32))
    assert p.shape == (3, 10) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("name", presets.PRESETS)
def test_states_its_source(name):
    doc = presets.BUILDERS[name].__doc__
    assert doc and any(ch.isdigit() for ch in doc)  # a year or an example's file name
    assert presets.describe(name)


@pytest.mark.parametrize("name", presets.PRESETS)
def test_one_training_step_in_float64_lowers_nothing_silently(name):
    model = presets.build_preset(name, input_shape=(28, 28, 1), dtype="float64", seed=1)
    model.compile("adam", "categorical_crossentropy", ["accuracy"])
    rng = np.random.default_rng(2)
    x, y = rng.random((8, 28, 28, 1)), np.eye(10)[rng.integers(0, 10, 8)]
    before = [w.copy() for w in model.get_weights()]
    loss, acc = model.train_on_batch(x, y)
    assert np.isfinite(loss) and 0.0 <= acc <= 1.0
    changed = [not np.array_equal(a, b) for a, b in zip(before, model.get_weights())]
    assert any(changed)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match="choose one of lenet5, seed, pooled"):
        presets.build_preset("resnet")


def test_summary_of_every_preset(capsys):
    for name in presets.PRESETS:
        assert main(["summary", name]) == 0
        out = capsys.readouterr().out
        assert f'Model: "{name}"' in out and "Total params" in out


def test_seed_has_the_notebooks_parameter_count():
    assert presets.build_preset("seed").count_params() == 4_738_826
