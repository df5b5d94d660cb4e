"""The explorer's server as users start it (``minicnn explore``, a separate process), under load and
under hostile input: 200 concurrent requests all answered with bounded memory, 1,000 fuzzed
requests all answered 4xx with the server still up, and nothing listening beyond 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.parse
import zlib
import struct

import pytest

from tests.explore.conftest import png_bytes

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = [pytest.mark.mnist, pytest.mark.slow]
psutil = pytest.importorskip("psutil")


class ServerProcess:
    """``python -m minicnn explore pooled --no-train --no-browser``, its URL read from its output."""

    def __init__(self, cwd):
        from tests.helpers import mnist_dir
        env = {**os.environ, "PYTHONPATH": ROOT, "MINICNN_DATA_DIR": mnist_dir()}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "minicnn", "explore", "pooled", "--no-train", "--no-browser", "--no-tf"],
            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 120
        self.lines = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("minicnn explore ended before it listened:\n" + "".join(self.lines))
            self.lines.append(line)
            if " at http://" in line:
                self.url = line.split(" at ", 1)[1].split()[0]
                break
            if time.monotonic() > deadline:
                raise RuntimeError("minicnn explore did not listen within 120 s")
        parts = urllib.parse.urlsplit(self.url)
        self.host, self.port = parts.hostname, parts.port
        # keep draining its output so that the server never blocks on a full pipe
        self.drain = threading.Thread(target=lambda: [self.lines.append(x) for x in self.proc.stdout],
                                      daemon=True)
        self.drain.start()

    def request(self, method, path, body=None, headers=None, timeout=120):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def post_json(self, path, obj):
        return self.request("POST", path, json.dumps(obj).encode(), {"Content-Type": "application/json"})

    def rss(self) -> int:
        return psutil.Process(self.proc.pid).memory_info().rss

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.drain.join(10)  # the pipe is at EOF once the process is gone
        self.proc.stdout.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    pytest.importorskip("starlette")
    pytest.importorskip("uvicorn")
    s = ServerProcess(tmp_path_factory.mktemp("explore-load"))
    yield s
    s.stop()


def test_listens_on_loopback_only(server):
    listening = [c for c in psutil.Process(server.proc.pid).net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN]
    assert listening, "no listening socket found"
    assert {c.laddr.ip for c in listening} == {"127.0.0.1"}
    assert server.host == "127.0.0.1"


# ----------------------------------------------------------------------------- 200 at once
def test_200_concurrent_requests_hold_with_bounded_memory(server):
    """200 clients send at the same moment (a barrier): forward passes by test index, units,
    backward passes. Every one is answered 200 with the same numbers as when sent alone.

    Memory bound: the server computes one request at a time (a lock), so what can pile up is the
    200 requests' bodies (a few bytes each here) and the answers not yet sent. The bound allows
    every answer to be held at once, twice over (JSON text and its bytes), plus 200 MiB for the
    thread pool's stacks and the allocator's slack; a leak per request or a copy of the model
    per request would exceed it."""
    kinds = [("/api/forward", lambda i: {"index": i % 7}),
             ("/api/unit", lambda i: {"index": i % 7, "layer": 0, "unit": [i % 26, (i * 3) % 26, i % 32]}),
             ("/api/backward", lambda i: {"index": i % 7, "target": i % 10})]
    sizes = []
    for i in range(9):  # warm up every path (the kernels compile on first use)
        status, body = server.post_json(kinds[i % 3][0], kinds[i % 3][1](i))
        assert status == 200, body[:500]
        sizes.append(len(body))
    biggest = max(sizes)
    baseline = server.rss()

    peak = [baseline]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], server.rss())
            time.sleep(0.01)

    barrier = threading.Barrier(200)
    results, errors = {}, []

    def client(i):
        path, make = kinds[i % 3]
        try:
            barrier.wait(60)
            results[i] = server.post_json(path, make(i))
        except Exception as e:  # noqa: BLE001 - every failure is reported below
            errors.append(f"{i}: {type(e).__name__}: {e}")

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    stop.set()
    sampler.join(5)
    assert not errors, errors[:5]
    assert len(results) == 200 and {s for s, _ in results.values()} == {200}
    # the same request sent alone afterwards gets the same answer, number for number
    for i in range(0, 200, 5):
        path, make = kinds[i % 3]
        status, body = server.post_json(path, make(i))
        assert status == 200 and json.loads(body) == json.loads(results[i][1]), (i, path)
    bound = baseline + 2 * 200 * biggest + 200 * 2 ** 20
    print(f"200 concurrent: peak RSS {peak[0] / 2**20:.0f} MiB, baseline {baseline / 2**20:.0f} MiB, "
          f"bound {bound / 2**20:.0f} MiB")
    assert peak[0] <= bound, (f"peak RSS {peak[0] / 2**20:.0f} MiB > bound {bound / 2**20:.0f} MiB "
                              f"(baseline {baseline / 2**20:.0f} MiB, answers up to {biggest / 2**20:.2f} MiB)")
    assert server.post_json("/api/forward", {"index": 1})[0] == 200


# ----------------------------------------------------------------------------- 1,000 hostile
def _png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height but holds one tiny compressed row: a
    decompression bomb's shape, a few hundred bytes long."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


#: "LONG" stands for a 5,000-digit integer literal (more than Python converts to str by default)
HUGE_NUMBERS = [10 ** 30, -1, -(10 ** 30), 1e308, -1e308, 2 ** 63, 2 ** 64 + 1, "LONG"]
WRONG_TYPES = ["0", "", None, True, False, [], [0], {}, {"a": 1}, 0.5, "1e3"]
ENDPOINTS_NEEDING_INPUT = ["/api/forward", "/api/unit", "/api/backward", "/api/step"]


def hostile_request(rng: random.Random):
    """One request that a correct server must refuse with a 4xx: (method, path, body, headers,
    what it is)."""
    json_type = {"Content-Type": "application/json"}
    kind = rng.randrange(9)
    if kind == 0:  # malformed JSON
        good = json.dumps({"index": 0, "layer": 0, "unit": [1, 2, 3]})
        cut = good[:rng.randrange(1, len(good) - 1)]
        body = rng.choice([cut, good.replace(":", "=", 1), "{" * rng.randrange(1, 200_000),
                           "\xff\xfe" + good, '{"index": NaN}', '{"index": 0,}', "[1, 2"])
        return "POST", rng.choice(ENDPOINTS_NEEDING_INPUT), body.encode("utf-8", "surrogatepass"), json_type, "malformed JSON"
    if kind == 1:  # valid JSON of the wrong shape or types
        field = rng.choice(["index", "layer", "unit", "target", "learning_rate", "pixels"])
        body = {"index": 0, "layer": 0, "unit": [0, 0, 0], "target": 1}
        body[field] = rng.choice(WRONG_TYPES + [[[0]] * 3, "x" * 1000])
        if field == "learning_rate" and isinstance(body[field], (int, float)) and not isinstance(body[field], bool):
            body[field] = "fast"
        # a field goes only where it is read: an endpoint may ignore what it does not use
        path = {"index": rng.choice(ENDPOINTS_NEEDING_INPUT), "pixels": rng.choice(ENDPOINTS_NEEDING_INPUT),
                "layer": rng.choice(["/api/unit", "/api/step"]), "unit": rng.choice(["/api/unit", "/api/step"]),
                "target": rng.choice(["/api/backward", "/api/step"]), "learning_rate": "/api/step"}[field]
        if field == "pixels":
            body.pop("index")
        return "POST", path, json.dumps(body).encode(), json_type, f"wrong type for {field}"
    if kind == 2:  # huge or out-of-range numbers
        field = rng.choice(["index", "layer", "target", "learning_rate", "unit"])
        body = {"index": 0, "layer": 0, "unit": [0, 0, 0], "target": 1, "learning_rate": 0.001}
        value = rng.choice(HUGE_NUMBERS)
        body[field] = [value, 0, 0] if field == "unit" else value
        if field == "learning_rate":
            body[field] = rng.choice([-1, 0, 1e308, -1e308, 10 ** 30])
        path = {"index": rng.choice(ENDPOINTS_NEEDING_INPUT), "layer": rng.choice(["/api/unit", "/api/step"]),
                "target": "/api/backward", "learning_rate": "/api/step", "unit": "/api/unit"}[field]
        text = json.dumps(body).replace('"LONG"', "9" * 5000)
        return "POST", path, text.encode(), json_type, f"huge {field}"
    if kind == 3:  # oversized or broken images
        choice = rng.randrange(4)
        if choice == 0:
            data, what = _png_declaring(rng.choice([5000, 100_000, 2 ** 31 - 1]), rng.choice([5000, 65_535, 2 ** 31 - 1])), "PNG declaring a huge size"
        elif choice == 1:
            data, what = png_bytes()[:rng.randrange(8, 200)], "truncated PNG"
        elif choice == 2:
            data, what = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000))), "random bytes as PNG"
        else:
            data, what = b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "PNG signature then nothing"
        return "POST", "/api/forward", data, {"Content-Type": rng.choice(["image/png", "image/jpeg"])}, what
    if kind == 4:  # a body over the cap, declared
        return ("POST", "/api/forward", b"{}", {"Content-Type": "application/json",
                                                  "Content-Length": str(rng.choice([10 ** 9, 2 ** 40]))},
                "declared huge body")
    if kind == 5:  # path traversal and files outside the app
        path = rng.choice(["/static/../../etc/passwd", "/static/%2e%2e/%2e%2e/etc/passwd", "/static/..%2f..%2fserver.py",
                           "/static//etc/passwd", "/static/%252e%252e/compute.py", "/static/..\\..\\server.py",
                           "/../minicnn/explore/server.py", "/static/../compute.py", "/etc/passwd",
                           "/static/%00", "/static/" + "a/" * 200 + "x.js", "/api/../static/../../pyproject.toml"])
        return "GET", path, None, {}, "path traversal"
    if kind == 6:  # bad query parameters
        q = rng.choice(["label=99", "label=-1", "label=x", "start=" + "9" * 5000, "limit=0", "limit=100000",
                        "misclassified=maybe", "evil=1", "label=%C2%B2", "start=%EF%BC%91"])
        return "GET", "/api/test?" + q, None, {}, "bad query"
    if kind == 7:  # wrong content type or method
        return rng.choice([("POST", "/api/unit", b"index=0", {"Content-Type": "application/x-www-form-urlencoded"}, "form body"),
                           ("GET", "/api/forward", None, {}, "GET on a POST endpoint"),
                           ("DELETE", "/api/model", None, {}, "DELETE"),
                           ("POST", "/api/unit", json.dumps({"index": 0}).encode(), {"Content-Type": "text/plain"}, "text/plain"),
                           ("POST", "/api/nothing", b"{}", json_type, "unknown endpoint")])
    # kind 8: a foreign Host header (DNS rebinding)
    return "GET", "/api/model", None, {"Host": rng.choice(["attacker.example", "127.0.0.1.evil", "localhost.:80x"])}, "foreign Host"


def test_1000_hostile_requests_get_4xx_and_the_server_stays_up(server):
    status, before = server.post_json("/api/forward", {"index": 3})
    assert status == 200
    rng = random.Random(20261202)
    wrong, counts = [], {}
    for n in range(1000):
        method, path, body, headers, what = hostile_request(rng)
        try:
            status, answer = server.request(method, path, body, headers, timeout=60)
        except (ConnectionError, http.client.HTTPException) as e:
            # a server may close the connection on a request it refuses to read (the declared
            # huge body); it must still be up for the next one
            status, answer = None, repr(e).encode()
        counts[what, status] = counts.get((what, status), 0) + 1
        if status is not None and not 400 <= status < 500:
            wrong.append((n, what, method, path[:80], status, answer[:200]))
        if status is None and what != "declared huge body":
            wrong.append((n, what, method, path[:80], status, answer[:200]))
        if status is not None and status >= 400 and answer:
            message = json.loads(answer).get("error") if answer.startswith(b"{") else answer.decode("latin-1")
            assert message, (what, path)
    print("hostile requests:", sorted(counts.items(), key=str))
    assert not wrong, "\n".join(map(str, wrong[:10]))
    assert server.proc.poll() is None
    status, after = server.post_json("/api/forward", {"index": 3})
    assert status == 200 and json.loads(after)["probabilities"] == json.loads(before)["probabilities"]
