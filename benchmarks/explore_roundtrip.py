"""The live round trip of ``minicnn explore`` for the seed model: a drawing event to updated maps.

    python -m benchmarks.explore_roundtrip [--model FILE|PRESET] [-n 60] [--backend numba|numpy]
                                           [--no-browser] [--json OUT]

Two measurements, each reported as median and p95 in milliseconds (after warm-up):

* **http**: the canvas's PNG (280x280, a random stroke) POSTed to ``/api/forward`` of a uvicorn
  server on 127.0.0.1 (in this process, its own thread), from a client thread (urllib), until
  the whole JSON (every layer's maps, base64 float32) is read: decode, preprocessing, the forward
  pass, encoding and transport.
* **browser** (headless chromium via chromium-driver, when installed): pointer events dispatched
  on the page's drawing canvas, to the moment the page has drawn every map and the probabilities
  for that drawing (the next animation frame after the response is rendered). This is what a
  user waits for: toBlob (PNG encoding), the request, the server, decoding and painting every
  feature map.

The machine is shared (2 cores): the figures vary with its load. This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import threading
import time
import urllib.request

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import minicnn  # noqa: E402
from minicnn import kernels  # noqa: E402
from minicnn.explore import Explorer, create_app  # noqa: E402
from minicnn.explore.server import bind, url_of  # noqa: E402


def stroke_png(rng) -> bytes:
    from PIL import Image, ImageDraw
    im = Image.new("L", (280, 280), 255)
    pts = [tuple(int(v) for v in rng.integers(60, 220, 2)) for _ in range(4)]
    ImageDraw.Draw(im).line(pts, fill=0, width=20, joint="curve")
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def summary(ms) -> dict:
    a = np.asarray(ms, dtype=np.float64)
    return {"n": int(a.size), "median_ms": round(float(np.median(a)), 1), "p95_ms": round(float(np.percentile(a, 95)), 1),
            "min_ms": round(float(a.min()), 1), "max_ms": round(float(a.max()), 1)}


def start_server(explorer):
    import uvicorn
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(explorer), log_level="warning", log_config=None,
                                           lifespan="off", ws="none"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return server, thread, url_of(sock)


def bench_http(url, n, rng) -> dict:
    bodies = [stroke_png(rng) for _ in range(n + 5)]
    times = []
    for i, body in enumerate(bodies):
        req = urllib.request.Request(url + "api/forward", data=body, headers={"Content-Type": "image/png"}, method="POST")
        t0 = time.perf_counter()
        with urllib.request.urlopen(req, timeout=60) as r:
            payload = r.read()
        dt = (time.perf_counter() - t0) * 1000
        if i >= 5:  # warm-up
            times.append(dt)
    return {**summary(times), "response_bytes": len(payload)}


JS_ROUND_TRIP = """
const done = arguments[arguments.length - 1];
const [x0, y0, x1, y1] = arguments[0];
const s = window.explore.state, cv = document.getElementById('draw'), r = cv.getBoundingClientRect();
const n0 = s.roundTrips.length;
const ev = (type, x, y) => cv.dispatchEvent(new PointerEvent(type, {bubbles: true, pointerId: 1, isPrimary: true,
  clientX: r.left + x * r.width, clientY: r.top + y * r.height, buttons: type === 'pointerup' ? 0 : 1}));
const t0 = performance.now();
ev('pointerdown', x0, y0); ev('pointermove', (x0 + x1) / 2, (y0 + y1) / 2); ev('pointermove', x1, y1); ev('pointerup', x1, y1);
(function poll() {
  if (s.roundTrips.length > n0 && !s.inflight && !s.dirty) requestAnimationFrame(() => done(performance.now() - t0));
  else setTimeout(poll, 1);
})();
"""


def bench_browser(url, n, rng) -> dict | None:
    chromium, driver_path = "/usr/bin/chromium", "/usr/bin/chromedriver"
    if not (os.path.exists(chromium) and os.path.exists(driver_path)):
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1500,1000"):
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        d.set_script_timeout(60)
        d.get(url)
        WebDriverWait(d, 60).until(lambda d: d.execute_script("return window.explore.state.fwd !== null && !window.explore.state.inflight"))
        times = []
        for i in range(n + 5):
            d.execute_script("document.getElementById('clear').click()")
            WebDriverWait(d, 60).until(lambda d: d.execute_script("return !window.explore.state.inflight && !window.explore.state.dirty"))
            pts = [float(v) for v in rng.uniform(0.2, 0.8, 4)]
            dt = d.execute_async_script(JS_ROUND_TRIP, pts)
            if i >= 5:
                times.append(dt)
        return summary(times)
    finally:
        d.quit()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="seed", help="a model file or a preset (default: the seed preset)")
    p.add_argument("-n", type=int, default=60, help="measured round trips per method (after 5 warm-ups)")
    p.add_argument("--backend", choices=("numba", "numpy"), default="numba")
    p.add_argument("--no-browser", action="store_true")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    kernels.use_backend(args.backend)
    if os.path.exists(args.model):
        model = minicnn.load_model(args.model)
    else:
        model = minicnn.build_preset(args.model, seed=0)
    explorer = Explorer(model, name=os.path.basename(args.model))
    explorer.forward(np.zeros(model.input_shape, np.float32))  # compile / warm the kernels
    server, thread, url = start_server(explorer)
    rng = np.random.default_rng(0)
    try:
        res = {"model": args.model, "params": model.count_params(), "backend": args.backend, "cores": os.cpu_count(),
               "loadavg_before": os.getloadavg(), "http": bench_http(url, args.n, rng)}
        if not args.no_browser:
            res["browser"] = bench_browser(url, args.n, rng)
        res["loadavg_after"] = os.getloadavg()
    finally:
        server.should_exit = True
        thread.join(10)
    print(json.dumps(res, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
