"""The explorer's JSON API: every endpoint with good and bad input; the numbers it serves are
the library's own (``Network.forward(record=True)``, ``Network.backward``, ``train_on_batch``)."""

from __future__ import annotations

import base64
import copy
import json
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

from minicnn.explore import MAX_BODY, pack, unpack
from minicnn.layers import Dropout
from minicnn.optimizers import Adam
from minicnn.study import images, inspect_model

from tests.explore.conftest import png_bytes


def _outputs(model, x):
    _, outs = model.forward(x[None], training=False, record=True)
    return [np.asarray(o[0]) for o in outs]


def _library_gradients(model, x, target, from_logits=True, onehot_only=False):
    """The library's backward on a copy whose dropout is off (as the explorer runs it)."""
    twin = copy.deepcopy(model)
    for layer in twin.layers:
        if isinstance(layer, Dropout):
            layer.rate = 0.0
    out = twin.forward(x[None], training=True)
    g = np.zeros_like(out)
    g[0, target] = 1
    if not onehot_only:
        g = out - g
    dx, grads = twin.backward(g, need_input_grad=True, from_logits=from_logits, record=True, penalties=False)
    return twin, dx, grads


# ----------------------------------------------------------------------------- good input
def test_model_description(client, model):
    r = client.get("/api/model")
    assert r.status_code == 200
    d = r.json()
    assert d["input_shape"] == [28, 28, 1] and d["params"] == model.count_params()
    assert [l["output_shape"] for l in d["layers"]] == [list(l.output_shape) for l in model.layers]
    assert d["test_images"] == 40 and d["labels"] == [str(i) for i in range(10)]


def test_forward_of_a_test_image_is_the_library_forward(client, explorer, model):
    r = client.post("/api/forward", json={"index": 5})
    assert r.status_code == 200
    d = r.json()
    x = explorer.test_x[5]
    assert d["label"] == int(explorer.test_y[5])
    np.testing.assert_array_equal(unpack(d["input"]), x)
    outs = _outputs(model, x)
    records = inspect_model(model, x)
    for served, out, rec in zip(d["layers"], outs, records):
        np.testing.assert_array_equal(unpack(served["output"]), out)  # bit for bit
        assert served["shape"] == list(out.shape)
        assert (served["min"], served["max"], served["mean"]) == (rec.minimum, rec.maximum, rec.mean)
        assert served["zero_share"] == rec.zero_share and served["tie_share"] == rec.tie_share
    assert d["layers"][2]["tie_share"] is not None  # the max-pool's ties
    np.testing.assert_allclose(d["probabilities"], outs[-1], rtol=1e-6)
    assert d["predicted"] == int(np.argmax(outs[-1]))


def test_forward_of_a_png_applies_predicts_preprocessing(client, explorer, model, tmp_path):
    data = png_bytes()
    r = client.post("/api/forward", content=data, headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    d = r.json()
    path = tmp_path / "digit.png"
    path.write_bytes(data)
    expected = images.load_image(path, (28, 28, 1)).array
    np.testing.assert_array_equal(unpack(d["input"]), expected)
    assert [s["name"] for s in d["steps"]] == ["read", "grayscale", "inverted", "resized and padded", "scaled"]
    assert all(s["image"].startswith("data:image/png;base64,") for s in d["steps"])
    assert d["preprocessing"]["inverted"] is True
    for served, out in zip(d["layers"], _outputs(model, expected)):
        np.testing.assert_array_equal(unpack(served["output"]), out)
    # the same input sent back as pixels gives the same answer
    again = client.post("/api/forward", json={"pixels": d["input"]}).json()
    assert again["probabilities"] == d["probabilities"]


def test_conv_unit_numbers(client, explorer, model):
    x = explorer.test_x[2]
    outs = _outputs(model, x)
    r, c, f = np.argwhere(outs[0] > 0)[0]
    u = client.post("/api/unit", json={"index": 2, "layer": 0, "unit": [int(r), int(c), int(f)]}).json()
    assert u["value"] == float(outs[0][r, c, f])
    np.testing.assert_array_equal(unpack(u["patch"]), x[r:r + 3, c:c + 3, :])
    np.testing.assert_array_equal(unpack(u["kernel"]), model.layers[0].params["kernel"][:, :, :, f])
    np.testing.assert_allclose(unpack(u["products"]), x[r:r + 3, c:c + 3, :] * model.layers[0].params["kernel"][:, :, :, f],
                               rtol=1e-6)
    assert u["bias"] == float(model.layers[0].params["bias"][f])
    assert u["z"] == pytest.approx(u["sum"] + u["bias"])
    assert u["activated"] == pytest.approx(u["value"], rel=1e-5, abs=1e-6)
    assert u["receptive_field"] == {"rows": [int(r), int(r) + 2], "cols": [int(c), int(c) + 2]}
    # the second conv sees 5x5 input pixels
    u2 = client.post("/api/unit", json={"index": 2, "layer": 1, "unit": [4, 6, 3]}).json()
    assert u2["receptive_field"] == {"rows": [4, 8], "cols": [6, 10]}
    assert max(u2["z"], 0) == pytest.approx(u2["value"], rel=1e-5, abs=1e-6)


def test_pool_dense_softmax_and_flatten_units(client, explorer, model):
    x = explorer.test_x[1]
    outs = _outputs(model, x)
    p = client.post("/api/unit", json={"index": 1, "layer": 2, "unit": [3, 4, 7]}).json()
    win = np.array(p["window"])
    assert p["value"] == float(outs[2][3, 4, 7]) == win.max()
    assert win[tuple(p["winner"])] == win.max() and p["tied"] == int((win == win.max()).sum())
    assert p["receptive_field"] == {"rows": [6, 11], "cols": [8, 13]}
    d = client.post("/api/unit", json={"index": 1, "layer": 5, "unit": [3]}).json()
    assert d["value"] == float(outs[5][3])
    assert max(d["z"], 0) == pytest.approx(d["value"], rel=1e-4, abs=1e-6)
    assert len(d["contributions"]) == 12 and d["inputs"] == 128 * 0 + 9216
    s = client.post("/api/unit", json={"index": 1, "layer": 7, "unit": [4]}).json()
    assert s["softmax"]["probability"] == pytest.approx(float(outs[7][4]), rel=1e-5)
    e = np.array(s["softmax"]["exponentials"])
    assert e.max() == 1.0 and s["softmax"]["sum"] == pytest.approx(e.sum())
    fl = client.post("/api/unit", json={"index": 1, "layer": 4, "unit": [100]}).json()
    assert fl["source"] == list(np.unravel_index(100, (12, 12, 64)))
    assert fl["value"] == float(outs[4][100])


def test_backward_is_the_library_backward(client, explorer, model):
    x, label = explorer.test_x[3], int(explorer.test_y[3])
    d = client.post("/api/backward", json={"index": 3, "target": "label", "layer": 1, "unit": [2, 2, 5]}).json()
    assert d["target"] == label and d["label"] == label
    twin, dx, grads = _library_gradients(model, x, label)
    np.testing.assert_array_equal(unpack(d["input_grad"]), dx[0])
    for i, served in enumerate(d["layers"][:-1]):
        np.testing.assert_array_equal(unpack(served["grad"]), grads[i + 1][0])
    assert "relu_mask" in d["layers"][0] and "routing" in d["layers"][2]
    p = _outputs(model, x)[-1]
    assert d["loss"] == pytest.approx(-np.log(p[label]), rel=1e-5)
    np.testing.assert_allclose(unpack(d["layers"][-1]["grad_logits"]), p - np.eye(10)[label], atol=1e-6)
    w = d["weight_grad"]
    np.testing.assert_array_equal(unpack(w["grad"]), twin.layers[1].grads["kernel"][:, :, :, 5])
    assert w["terms_sum"] == pytest.approx(w["entry_value"], rel=1e-4, abs=1e-9)
    # saliency: the gradient of the class score (logit) at the input
    _, sdx, sgrads = _library_gradients(model, x, label, onehot_only=True)
    np.testing.assert_array_equal(unpack(d["saliency"]["map"]), np.abs(sdx[0]).max(axis=-1))
    cam = d["gradcam"]
    assert cam["layer"] == 1 and cam["name"] == model.layers[1].name and "Grad-CAM" in cam["what"]
    a = _outputs(model, x)[1].astype(np.float64)
    alpha = sgrads[2][0].astype(np.float64).mean(axis=(0, 1))
    np.testing.assert_allclose(unpack(cam["map"]), np.maximum((a * alpha).sum(-1), 0), rtol=1e-6, atol=1e-12)


def test_dense_weight_gradient(client, explorer, model):
    d = client.post("/api/backward", json={"index": 0, "target": 3, "layer": 7, "unit": [3]}).json()
    twin, _, _ = _library_gradients(model, explorer.test_x[0], 3)
    np.testing.assert_array_equal(unpack(d["weight_grad"]["grad"]), twin.layers[7].grads["kernel"][:, 3])
    assert d["weight_grad"]["terms_sum"] == pytest.approx(d["weight_grad"]["entry_value"], rel=1e-5)


def test_optimizer_step_is_one_adam_step(client, explorer, model):
    d = client.post("/api/step", json={"index": 4, "target": "label", "layer": 0, "unit": [0, 0, 6]}).json()
    twin = copy.deepcopy(model)
    twin.compile(optimizer=Adam(0.001), loss="categorical_crossentropy")
    before = twin.layers[0].params["kernel"][..., 6].copy()
    twin.train_on_batch(explorer.test_x[4][None], np.eye(10, dtype=np.float32)[[int(explorer.test_y[4])]])
    np.testing.assert_array_equal(unpack(d["before"]), before)
    np.testing.assert_array_equal(unpack(d["after"]), twin.layers[0].params["kernel"][..., 6])
    np.testing.assert_array_equal(unpack(d["grad"]), twin.layers[0].grads["kernel"][..., 6])
    g = unpack(d["grad"]).astype(np.float64)
    np.testing.assert_allclose(unpack(d["m"]), 0.1 * g, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(unpack(d["v"]), 0.001 * g * g, rtol=1e-4, atol=1e-15)
    np.testing.assert_allclose(unpack(d["step"]), unpack(d["step_formula"]), rtol=1e-3, atol=1e-8)
    assert d["iterations"] == 1
    np.testing.assert_array_equal(model.layers[0].params["kernel"][..., 6], before)  # the model is untouched


def test_test_image_search(client, explorer, model):
    r = client.get("/api/test?label=3&limit=5").json()["images"]
    assert [i["index"] for i in r] == list(np.flatnonzero(explorer.test_y == 3)[:5])
    pred = model.predict(explorer.test_x).argmax(1)
    wrong = client.get("/api/test?misclassified=1&limit=200").json()["images"]
    assert [i["index"] for i in wrong] == list(np.flatnonzero(pred != explorer.test_y))
    assert all(i["predicted"] == pred[i["index"]] for i in wrong)


def test_static_files_and_headers(client):
    r = client.get("/")
    assert r.status_code == 200 and "minicnn explore" in r.text
    assert "default-src 'self'" in r.headers["content-security-policy"]
    for name in ("app.js", "style.css", "index.html"):
        assert client.get(f"/static/{name}").status_code == 200
    assert "http://" not in client.get("/static/app.js").text and "https://" not in client.get("/static/style.css").text


# ----------------------------------------------------------------------------- bad input
BAD_JSON = [
    ("/api/unit", {"index": 0, "layer": 99, "unit": [0]}, "layer must be an integer in 0..7"),
    ("/api/unit", {"index": 0, "layer": -1, "unit": [0]}, "layer must be"),
    ("/api/unit", {"index": 0, "layer": "0", "unit": [0, 0, 0]}, "'layer' must be an integer"),
    ("/api/unit", {"index": 0, "layer": 0, "unit": [26, 0, 0]}, "outside layer 0's output shape"),
    ("/api/unit", {"index": 0, "layer": 0, "unit": [0, 0]}, "unit must be a list of 3 integers"),
    ("/api/unit", {"index": 0, "layer": 0, "unit": [0, 0, True]}, "unit must be a list of 3 integers"),
    ("/api/unit", {"index": 0, "layer": 0, "unit": "0,0,0"}, "unit must be a list"),
    ("/api/unit", {"index": 0, "layer": 5, "unit": [-1]}, "outside"),
    ("/api/unit", {"layer": 0, "unit": [0, 0, 0]}, "give the input as 'index'"),
    ("/api/forward", {"index": 40}, "out of range 0..39"),
    ("/api/forward", {"index": -1}, "out of range"),
    ("/api/forward", {"index": 1.5}, "'index' must be an integer"),
    ("/api/forward", {"pixels": {"shape": [28, 28], "dtype": "float32", "b64": ""}}, "'pixels' must be"),
    ("/api/forward", {"pixels": {"shape": [28, 28, 1], "dtype": "int8", "b64": ""}}, "'pixels' must be"),
    ("/api/forward", {"pixels": {"shape": [28, 28, 1], "dtype": "float32", "b64": "AAAA"}}, "does not decode"),
    ("/api/forward", {"pixels": {"shape": [28, 28, 1], "dtype": "float32", "b64": "!!!"}}, "does not decode"),
    ("/api/forward", {"pixels": pack(np.full((28, 28, 1), 2.0, np.float32))}, "must lie in [0, 1]"),
    ("/api/forward", {"pixels": pack(np.full((28, 28, 1), np.nan, np.float32))}, "NaN"),
    ("/api/backward", {"index": 0, "target": 10}, "target must be a class number in 0..9"),
    ("/api/backward", {"pixels": pack(np.zeros((28, 28, 1), np.float32)), "target": "label"}, "needs a test image"),
    ("/api/backward", {"index": 0, "target": 1, "layer": 0, "unit": [99, 0, 0]}, "outside"),
    ("/api/step", {"index": 0, "target": 1, "layer": 2, "unit": [0, 0, 0]}, "has no kernel"),
    ("/api/step", {"index": 0, "target": 1, "layer": 0, "unit": [0, 0, 0], "learning_rate": -1}, "learning_rate"),
    ("/api/step", {"index": 0, "target": 1, "layer": 0, "unit": [0, 0, 0], "learning_rate": "x"}, "learning_rate"),
]


@pytest.mark.parametrize("path,body,message", BAD_JSON, ids=[f"{p}-{m[:24]}" for p, _, m in BAD_JSON])
def test_bad_fields_get_400_with_a_message(client, path, body, message):
    r = client.post(path, json=body)
    assert r.status_code == 400, r.text
    assert message in r.json()["error"]


@pytest.mark.parametrize("data", [b"", b"not an image", png_bytes()[:60], b"\x89PNG\r\n\x1a\n" + b"\0" * 100,
                                  b"GIF89a" + b"\xff" * 50], ids=["empty", "text", "truncated", "header-only", "bad-gif"])
def test_malformed_images(client, data):
    r = client.post("/api/forward", content=data, headers={"content-type": "image/png"})
    assert r.status_code == 400
    assert r.json()["error"]


def test_too_many_pixels(client):
    from PIL import Image
    import io
    buf = io.BytesIO()
    Image.new("L", (5000, 4000), 0).save(buf, format="PNG")  # small file, 20 megapixels
    r = client.post("/api/forward", content=buf.getvalue(), headers={"content-type": "image/png"})
    assert r.status_code == 400 and "pixels" in r.json()["error"]


def test_huge_bodies_are_refused(client):
    big = b"\0" * (MAX_BODY + 1)
    r = client.post("/api/forward", content=big, headers={"content-type": "image/png"})
    assert r.status_code == 413 and "at most" in r.json()["error"]

    def chunks():  # no Content-Length: the cap applies while reading
        for _ in range(MAX_BODY // 65536 + 2):
            yield b"\0" * 65536
    r = client.post("/api/unit", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert client.get("/api/model").status_code == 200


def test_wrong_content_type_json_and_methods(client):
    assert client.post("/api/unit", content=b"{}", headers={"content-type": "text/plain"}).status_code == 415
    r = client.post("/api/unit", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
    r = client.post("/api/unit", content=b"[" * 200_000 + b"]" * 200_000, headers={"content-type": "application/json"})
    assert r.status_code == 400 and "nested" in r.json()["error"]
    r = client.post("/api/unit", content=b"[1, 2]", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "object" in r.json()["error"]
    assert client.get("/api/forward").status_code == 405
    assert client.post("/api/forward?invert=maybe", content=png_bytes(), headers={"content-type": "image/png"}).status_code == 400
    r = client.get("/api/test?label=10")
    assert r.status_code == 400 and "label must be in 0..9" in r.json()["error"]
    assert client.get("/api/test?limit=abc").status_code == 400
    assert client.get("/api/test?evil=1").status_code == 400
    assert client.get("/api/nothing").status_code == 404


@pytest.mark.parametrize("path", ["/static/../server.py", "/static/%2e%2e/server.py", "/static/..%2fserver.py",
                                  "/static/%2e%2e%2f%2e%2e%2fpyproject.toml", "/static//etc/passwd",
                                  "/static/%2fetc%2fpasswd", "/../../pyproject.toml", "/static/..\\server.py",
                                  "/static/.%2e/compute.py"])
def test_path_traversal_is_refused(client, path):
    r = client.get(path)
    assert r.status_code in (400, 404)
    assert "import" not in r.text and "root:" not in r.text


def test_foreign_host_header_is_refused(client):
    assert client.get("/api/model", headers={"host": "attacker.example"}).status_code == 400


# ----------------------------------------------------------------------------- a real server
def _post(url, body, ctype="application/json"):
    data = json.dumps(body).encode() if ctype == "application/json" else body
    req = urllib.request.Request(url, data=data, headers={"Content-Type": ctype}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_live_server_concurrent_requests_and_stays_up(live_server, explorer):
    url = live_server.url
    results, errors = {}, []

    def worker(i):
        try:
            results[i] = _post(url + "api/forward", {"index": i % 5})
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    bad = [_post(url + "api/forward", b"garbage", "image/png"), _post(url + "api/unit", {"index": 0, "layer": 42, "unit": [0]})]
    for t in threads:
        t.join(120)
    assert not errors
    assert all(status == 200 for status, _ in results.values())
    for i, (_, d) in results.items():
        assert d["probabilities"] == results[i % 5][1]["probabilities"]
    assert [s for s, _ in bad] == [400, 400]
    with urllib.request.urlopen(url + "api/model", timeout=30) as r:
        assert r.status == 200
    assert base64  # noqa: B018 - imported for symmetry with the client


def test_colour_image_for_a_three_channel_model(tmp_path):
    from PIL import Image, ImageDraw
    import io
    import minicnn
    from starlette.testclient import TestClient
    from minicnn.explore import Explorer, create_app
    model = minicnn.build_preset("cifar_cnn", input_shape=(32, 32, 3), seed=0)
    im = Image.new("RGB", (200, 100), (255, 255, 255))
    ImageDraw.Draw(im).ellipse((60, 20, 140, 90), fill=(200, 30, 40))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    with TestClient(create_app(Explorer(model, dataset="cifar10")), base_url="http://127.0.0.1") as c:
        assert c.get("/api/model").json()["labels"][0] == "airplane"
        d = c.post("/api/forward", content=buf.getvalue(), headers={"content-type": "image/png"}).json()
    path = tmp_path / "red.png"
    path.write_bytes(buf.getvalue())
    expected = images.load_image(path, (32, 32, 3)).array
    np.testing.assert_array_equal(unpack(d["input"]), expected)
    assert [s["name"] for s in d["steps"]] == ["read", "not inverted", "resized and padded", "scaled"]
    assert expected[16, 16, 0] > 0.7 and expected[16, 16, 1] < 0.2  # red stays red
