"""The explorer's web server: a Starlette app (JSON API + the app's own static files) under uvicorn.

Safe by default: it binds 127.0.0.1 on a free port (another host only when asked, with a
warning), accepts only Host headers naming the loopback address when bound there (no DNS
rebinding), caps every body at :data:`MAX_BODY` bytes, validates every field (a 4xx with a
readable ``{"error": ...}`` otherwise), serves files only from :data:`STATIC_DIR`, and sends a
Content-Security-Policy that lets the page talk to nothing but this server. The computations run
in Starlette's thread pool; the model is shared, so :class:`~minicnn.explore.compute.Explorer`
serialises them with a lock. Starlette and uvicorn are imported only when an app is made (they are
the optional ``explore`` extra).
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import sys
import threading
import webbrowser

import numpy as np

from ..errors import MiniCNNError
from .compute import Explorer, unpack
from .inputs import prepare_bytes

STATIC_DIR = pathlib.Path(__file__).resolve().parent / "static"
#: the largest request body accepted (an uploaded photo fits; anything larger gets 413)
MAX_BODY = 4 * 1024 * 1024
INSTALL_HINT = "pip install minicnn[explore]"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
       "connect-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/bmp", "image/webp")


class RequestError(Exception):
    """A request the API refuses: ``status`` (4xx) and a readable message."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def require_server_libraries():
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise MiniCNNError(f"minicnn explore needs Starlette and uvicorn, which are not installed ({e}); "
                           f"install them with: {INSTALL_HINT}") from None


# ----------------------------------------------------------------------------- validation
def _int(body: dict, key: str, required=True, default=None):
    v = body.get(key, default)
    if v is None and not required:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise RequestError(f"'{key}' must be an integer, received {v!r}" if key in body else f"'{key}' is missing")
    return v


def input_from(explorer: Explorer, body: dict) -> tuple[np.ndarray, int | None]:
    """The input array a JSON body names: {"index": N} (a test image) or {"pixels": packed array}."""
    if "index" in body:
        try:
            x, label = explorer.test_image(_int(body, "index"))
        except LookupError as e:
            raise RequestError(str(e), 409) from None
        except ValueError as e:
            raise RequestError(str(e)) from None
        return x.astype(explorer.model.dtype), label
    px = body.get("pixels")
    if not isinstance(px, dict):
        raise RequestError("give the input as 'index' (a test image) or 'pixels' ({shape, dtype, b64})")
    shape = tuple(explorer.input_shape)
    if px.get("dtype") not in ("float32", "float64") or px.get("shape") != list(shape) or not isinstance(px.get("b64"), str):
        raise RequestError(f"'pixels' must be {{shape: {list(shape)}, dtype: 'float32', b64: '...'}}")
    try:
        x = unpack(px)
    except (ValueError, TypeError) as e:
        raise RequestError(f"'pixels' does not decode to {list(shape)} values: {e}") from None
    try:
        x = explorer.check_input(x)
    except ValueError as e:
        raise RequestError(str(e)) from None
    return x, None


def _target(explorer: Explorer, body: dict, label):
    t = body.get("target", "label")
    if t == "label":
        if label is None:
            raise RequestError("target 'label' needs a test image ('index'); give a class number instead")
        return label
    return _int(body, "target")


# ----------------------------------------------------------------------------- the app
def create_app(explorer: Explorer, allowed_hosts=("127.0.0.1", "localhost", "[::1]")):
    """The Starlette application for one :class:`Explorer`; ``allowed_hosts`` None accepts any
    Host header (when the server is bound to another interface on purpose)."""
    require_server_libraries()
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import ClientDisconnect
    from starlette.responses import FileResponse, JSONResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    async def read_body(request, limit=MAX_BODY) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise RequestError("invalid Content-Length")
            if int(declared) > limit:
                raise RequestError(f"the body is {int(declared):,} bytes; at most {limit:,} are accepted", 413)
        chunks, size = [], 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise RequestError(f"the body exceeds {limit:,} bytes", 413)
                chunks.append(chunk)
        except ClientDisconnect:
            raise RequestError("the client went away", 400) from None
        return b"".join(chunks)

    async def json_body(request) -> dict:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise RequestError(f"send JSON (Content-Type: application/json), not {ctype or 'nothing'!r}", 415)
        raw = await read_body(request)
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise RequestError(f"the body is not valid JSON ({e})") from None
        except RecursionError:
            raise RequestError("the JSON body is nested too deeply") from None
        if not isinstance(body, dict):
            raise RequestError("the JSON body must be an object")
        return body

    async def compute(fn, *args, **kwargs):
        try:
            return await run_in_threadpool(fn, *args, **kwargs)
        except LookupError as e:
            raise RequestError(str(e), 409) from None
        except (ValueError, MiniCNNError) as e:
            raise RequestError(str(e)) from None

    async def index(request):
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    async def model_info(request):
        return JSONResponse(explorer.describe_model())

    async def forward(request):
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        extra = {}
        if ctype in IMAGE_TYPES or ctype == "application/octet-stream":
            invert = request.query_params.get("invert", "auto")
            if invert not in ("auto", "yes", "no"):
                raise RequestError("invert must be auto, yes or no")
            data = await read_body(request)
            x, steps, facts = await compute(prepare_bytes, data, explorer.input_shape,
                                            {"auto": "auto", "yes": True, "no": False}[invert])
            extra = {"steps": steps, "preprocessing": facts}
            label = None
        else:
            body = await json_body(request)
            x, label = input_from(explorer, body)
            if "index" in body:
                extra = {"index": body["index"]}
        out = await compute(explorer.forward, x)
        return JSONResponse({**out, **extra, "label": label})

    async def unit(request):
        body = await json_body(request)
        x, _ = input_from(explorer, body)
        return JSONResponse(await compute(explorer.unit, x, _int(body, "layer"), body.get("unit")))

    async def backward(request):
        body = await json_body(request)
        x, label = input_from(explorer, body)
        target = _target(explorer, body, label)
        layer = _int(body, "layer", required=False)
        return JSONResponse({**await compute(explorer.backward, x, target, layer, body.get("unit") if layer is not None else None),
                             "label": label})

    async def step(request):
        body = await json_body(request)
        x, label = input_from(explorer, body)
        target = _target(explorer, body, label)
        lr = body.get("learning_rate", 0.001)
        if isinstance(lr, bool) or not isinstance(lr, (int, float)):
            raise RequestError(f"'learning_rate' must be a number, received {lr!r}")
        return JSONResponse(await compute(explorer.optimizer_step, x, target, _int(body, "layer"), body.get("unit"), lr))

    async def compare(request):
        body = await json_body(request)
        x, label = input_from(explorer, body)
        return JSONResponse(await compute(explorer.compare, x, _target(explorer, body, label)))

    async def test_images(request):
        q = request.query_params
        allowed = {"label", "misclassified", "start", "limit"}
        unknown = sorted(set(q) - allowed)
        if unknown:
            raise RequestError(f"unknown parameter(s) {', '.join(unknown)}; use {', '.join(sorted(allowed))}")

        def num(key, default, lo, hi):
            v = q.get(key)
            if v is None or v == "":
                return default
            # ASCII digits only (str.isdigit also admits '²' and fullwidth digits), and few enough
            # that int() never meets Python's limit on long literals
            if not (0 < len(v.lstrip("-")) <= 12 and v.lstrip("-").isascii() and v.lstrip("-").isdigit()):
                raise RequestError(f"{key} must be an integer, received {v[:40]!r}")
            v = int(v)
            if not lo <= v <= hi:
                raise RequestError(f"{key} must be in {lo}..{hi}, received {v}")
            return v

        label = num("label", None, 0, len(explorer.labels) - 1)
        mis = q.get("misclassified", "0")
        if mis not in ("0", "1", "true", "false"):
            raise RequestError("misclassified must be 0 or 1")
        found = await compute(explorer.find_test_images, label=label, misclassified=mis in ("1", "true"),
                              start=num("start", 0, 0, 10 ** 9), limit=num("limit", 20, 1, 200))
        return JSONResponse({"images": found})

    async def request_error(request, exc: RequestError):
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    async def http_error(request, exc: HTTPException):
        return JSONResponse({"error": exc.detail or "error"}, status_code=exc.status_code)

    async def server_error(request, exc: Exception):
        return JSONResponse({"error": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)

    routes = [Route("/", index), Route("/api/model", model_info), Route("/api/forward", forward, methods=["POST"]),
              Route("/api/unit", unit, methods=["POST"]), Route("/api/backward", backward, methods=["POST"]),
              Route("/api/step", step, methods=["POST"]), Route("/api/test", test_images),
              Route("/api/compare", compare, methods=["POST"]),
              Mount("/static", StaticFiles(directory=STATIC_DIR, follow_symlink=False), name="static")]
    middleware = [Middleware(SecurityHeaders)]
    if allowed_hosts is not None:
        middleware.insert(0, Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)))
    return Starlette(routes=routes, middleware=middleware,
                     exception_handlers={RequestError: request_error, HTTPException: http_error, Exception: server_error})


class SecurityHeaders:
    """ASGI middleware: CSP (only this server), no sniffing, no framing, no caching of the API."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def wrapped(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                            (b"referrer-policy", b"no-referrer"), (b"cache-control", b"no-store")]
                message = {**message, "headers": headers}
            await send(message)

        return await self.app(scope, receive, wrapped)


# ----------------------------------------------------------------------------- running it
def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening socket (port 0: a free port chosen by the system)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


def _announcing_server(config, announce):
    """A uvicorn server that calls ``announce()`` once it is accepting connections.

    The URL is printed only then, not before ``server.run``: by that time uvicorn has installed its
    SIGINT/SIGTERM handlers, so a Ctrl-C sent by someone who has just read the URL always stops the
    server. (Printed earlier, a SIGINT could land in the gap before the handlers: in a process started
    with SIGINT ignored, as under ``nohup ... &``, it was then lost and the server kept running.)
    """
    import uvicorn

    class AnnouncingServer(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets=sockets)
            if self.started and not self.should_exit:
                announce()

    return AnnouncingServer(config)


def serve(explorer: Explorer, host="127.0.0.1", port=0, open_browser=True, print_fn=print) -> int:
    """Run the app until Ctrl-C (uvicorn shuts down cleanly on SIGINT/SIGTERM)."""
    require_server_libraries()
    import uvicorn

    loopback = host in LOOPBACK
    if not loopback:
        print(f"minicnn explore: warning: listening on {host}, reachable from other machines; the app "
              "has no authentication", file=sys.stderr)
    sock = bind(host, port)
    url = url_of(sock)
    app = create_app(explorer) if loopback else create_app(explorer, allowed_hosts=None)
    # log_config=None: uvicorn must not run logging.config.dictConfig, which closes every handler
    # in the process (absl's, installed by an imported TensorFlow, then closes the stream it holds)
    config = uvicorn.Config(app, log_level=os.environ.get("MINICNN_EXPLORE_LOG", "warning"),
                            log_config=None, lifespan="off", ws="none", timeout_graceful_shutdown=2)

    def announce():
        print_fn(f"minicnn explore: {explorer.name} at {url}  (Ctrl-C stops it)")
        if open_browser:
            threading.Timer(0.5, webbrowser.open, args=(url,)).start()

    server = _announcing_server(config, announce)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the SIGINT it shut down on
        pass
    finally:
        sock.close()
    print_fn("minicnn explore: stopped")
    return 0
