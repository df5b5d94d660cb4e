"""Fixtures for ``minicnn explore``: a small model with a max-pool, a few test images, the API
client and a live uvicorn server on 127.0.0.1 (a free port) in a thread."""

from __future__ import annotations

import io
import os
import threading
import time

import numpy as np
import pytest

import minicnn
import minicnn.kernels as kernels

pytest.importorskip("starlette", reason="the explore extra (starlette) is not installed")
pytest.importorskip("uvicorn", reason="the explore extra (uvicorn) is not installed")

from minicnn.explore import Explorer, create_app  # noqa: E402
from minicnn.explore.server import bind, url_of  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def numpy_backend():
    previous = kernels._current
    kernels.use_backend("numpy")
    yield
    kernels._current = previous


def _test_images(n=40):
    d = os.environ.get("MINICNN_DATA_DIR")
    if d:
        try:
            (_, _), (x, y) = minicnn.datasets.load("mnist", path=d, download=False)
            return minicnn.datasets.to_float_nhwc(x[:n]), np.asarray(y[:n]).astype(np.int64)
        except Exception:  # noqa: BLE001 - fall back to synthetic digits
            pass
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, n)
    x = np.zeros((n, 28, 28, 1), np.float32)
    for i, c in enumerate(y):
        x[i, 4 + 2 * c:7 + 2 * c, 6:22] = 1.0
    return x, y


#: a trained model file of the 'pooled' architecture to run the explorer tests on instead (the
#: README's screenshots: MINICNN_UPDATE_SCREENSHOTS=1 MINICNN_EXPLORE_MODEL=models/pooled-mnist.npz)
EXPLORE_MODEL = os.environ.get("MINICNN_EXPLORE_MODEL")


@pytest.fixture(scope="session")
def model():
    """The 'pooled' preset (conv, conv, max-pool, dropout, dense, softmax), seed 0, a few steps of
    training so that its maps look like something (or the model in $MINICNN_EXPLORE_MODEL)."""
    if EXPLORE_MODEL:
        return minicnn.load_model(EXPLORE_MODEL)
    m = minicnn.build_preset("pooled", seed=0)
    x, y = _test_images(40)
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    m.fit(x, y, batch_size=20, epochs=1, verbose=0, seed=0)
    return m


@pytest.fixture(scope="session")
def explorer(model):
    x, y = _test_images(40)
    name = os.path.basename(EXPLORE_MODEL) if EXPLORE_MODEL else "pooled-test"
    return Explorer(model, x, y, dataset="mnist", name=name)


@pytest.fixture(scope="session")
def client(explorer):
    from starlette.testclient import TestClient
    with TestClient(create_app(explorer), base_url="http://127.0.0.1") as c:
        yield c


def png_bytes(draw=True, size=(280, 280), mode="L"):
    from PIL import Image, ImageDraw
    im = Image.new(mode, size, 255 if mode == "L" else (255, 255, 255))
    if draw:
        ImageDraw.Draw(im).line([(size[0] * 0.4, size[1] * 0.2), (size[0] * 0.55, size[1] * 0.8)],
                                fill=0 if mode == "L" else (0, 0, 0), width=max(2, size[0] // 14))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


class LiveServer:
    """uvicorn serving the app from a thread (what ``minicnn explore`` runs, minus the signals)."""

    def __init__(self, explorer):
        import uvicorn
        self.sock = bind("127.0.0.1", 0)
        self.url = url_of(self.sock)
        self.server = uvicorn.Server(uvicorn.Config(create_app(explorer), log_level="warning",
                                                    log_config=None, lifespan="off", ws="none"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture(scope="session")
def live_server(explorer):
    s = LiveServer(explorer)
    yield s
    s.stop()
