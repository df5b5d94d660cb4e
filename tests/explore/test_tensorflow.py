"""``minicnn explore`` beside TensorFlow: /api/compare serves Keras's value of every shown tensor
for the same input and weights (reference/explore_tf.py), and the differences are float32 noise."""

from __future__ import annotations

import numpy as np
import pytest

from minicnn.explore import Explorer, create_app, unpack

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def tf_client(model, explorer):
    pytest.importorskip("tensorflow")
    from starlette.testclient import TestClient
    from reference.explore_tf import make_twin
    twin_explorer = Explorer(model, explorer.test_x, explorer.test_y, name="pooled-tf", twin_factory=make_twin)
    with TestClient(create_app(twin_explorer), base_url="http://127.0.0.1") as c:
        yield c


def test_compare_with_keras(tf_client, model, explorer):
    assert tf_client.get("/api/model").json()["tensorflow"] is True
    r = tf_client.post("/api/compare", json={"index": 6, "target": "label"})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["target"] == int(explorer.test_y[6])
    _, outs = model.forward(explorer.test_x[6][None], training=False, record=True)
    assert len(d["layers"]) == len(model.layers)
    for entry, out in zip(d["layers"], outs):
        tf_out = unpack(entry["output"])
        assert tf_out.shape == out.shape[1:]
        assert entry["output_max_abs_diff"] == pytest.approx(float(np.max(np.abs(tf_out - out[0]))), abs=1e-12)
        assert entry["output_max_abs_diff"] < 1e-5
    grads = [e["grad_max_abs_diff"] for e in d["layers"] if "grad_max_abs_diff" in e]
    assert len(grads) == len(model.layers) - 1 and max(grads) < 1e-5
    assert d["input_grad_max_abs_diff"] < 1e-6


def test_compare_without_tensorflow_is_409(client):
    assert client.get("/api/model").json()["tensorflow"] is False
    r = client.post("/api/compare", json={"index": 0, "target": 1})
    assert r.status_code == 409 and "TensorFlow is not available" in r.json()["error"]
    assert client.post("/api/compare", json={"index": 0, "target": 11}).status_code == 400
