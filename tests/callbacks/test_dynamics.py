"""TrainingDynamics: per-layer gradient norms, update ratios, dead ReLUs, max-pool ties and
activation statistics, saved with the history and plotted by the report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from minicnn import Sequential
from minicnn.callbacks import History, TrainingDynamics
from minicnn.callbacks.dynamics import maxpool_tie_share
from minicnn.layers import Conv2D, Dense, Flatten, MaxPool2D


def model():
    m = Sequential([Conv2D(3, 3, activation="relu"), MaxPool2D(), Flatten(), Dense(3, activation="softmax")],
                   input_shape=(8, 8, 1), seed=0)
    m.compile(metrics=["accuracy"])
    return m


def data(n=48):
    rng = np.random.default_rng(0)
    return rng.random((n, 8, 8, 1), dtype=np.float32), np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]


def test_records_every_quantity_per_layer_and_epoch():
    m = model()
    x, y = data()
    h = m.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[TrainingDynamics(every=1, probe_samples=32)])
    d = h.dynamics
    assert set(d["grad_norm"]) == set(d["update_ratio"]) == {"conv2d", "dense"}
    assert set(d["dead_relu"]) == {"conv2d"} and set(d["maxpool_ties"]) == {"max_pooling2d"}
    assert set(d["act_mean"]) == set(d["act_std"]) == {"conv2d", "max_pooling2d", "flatten", "dense"}
    assert all(len(v) == 2 for per in d.values() for v in per.values())
    assert all(v > 0 for v in d["grad_norm"]["dense"]) and 0 < d["update_ratio"]["dense"][0] < 1
    assert all(0 <= v <= 1 for v in d["dead_relu"]["conv2d"] + d["maxpool_ties"]["max_pooling2d"])
    back = History.from_dict(json.loads(json.dumps(h.to_dict())))
    assert back.dynamics == d


def test_update_ratio_is_one_step_s():
    m = model()
    x, y = data(16)
    m.build()
    before = [w.copy() for w in m.get_layer("dense").get_weights()]
    h = m.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False, callbacks=[TrainingDynamics(every=1)])
    after = m.get_layer("dense").get_weights()
    num = np.sqrt(sum(((a - b).astype(np.float64) ** 2).sum() for a, b in zip(after, before)))
    den = np.sqrt(sum((b.astype(np.float64) ** 2).sum() for b in before))
    assert h.dynamics["update_ratio"]["dense"][0] == pytest.approx(num / den, rel=1e-6)


def test_dead_relu_and_tie_share_by_hand():
    m = model()
    m.build()
    m.get_layer("conv2d").params["bias"][...] = [-100.0, 0.0, 0.0]  # filter 0 is dead on [0, 1) inputs
    x, y = data(16)
    h = m.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[TrainingDynamics()])
    assert h.dynamics["dead_relu"]["conv2d"][0] == pytest.approx(1 / 3)  # one filter of three
    pool = m.get_layer("max_pooling2d")
    z = np.zeros((1, 6, 6, 3), dtype=np.float32)
    z[0, 0, 0, 0] = 1.0  # one window of 27 has a unique maximum
    assert maxpool_tie_share(pool, z) == pytest.approx(26 / 27)


def test_report_draws_one_figure_per_quantity(tmp_path):
    pytest.importorskip("matplotlib")
    from minicnn.study.report import write_report
    m = model()
    x, y = data()
    h = m.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[TrainingDynamics(every=1)])
    res = write_report(m, x, y.argmax(1), tmp_path, history=h.to_dict())
    names = {p.split("/")[-1] for p in res["figures"]}
    assert {f"dynamics-{q}.png" for q in ("grad_norm", "update_ratio", "dead_relu", "maxpool_ties",
                                          "act_mean", "act_std")} <= names
    assert "## Training dynamics" in (tmp_path / "report.md").read_text()
