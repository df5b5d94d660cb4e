"""``minicnn explore``: a local web app that shows a model's forward and backward passes.

:mod:`~minicnn.explore.compute` computes everything with the library (NumPy only);
:mod:`~minicnn.explore.inputs` prepares images as ``minicnn predict`` does, keeping each step;
:mod:`~minicnn.explore.server` serves the JSON API and the app's files (Starlette + uvicorn, the
``explore`` extra, imported only when a server starts); :mod:`~minicnn.explore.export` writes a
self-contained static page. The frontend (``static/``) is plain HTML, CSS and JavaScript: no
build step, no CDN, no external fonts.
"""

from .compute import Explorer, pack, unpack
from .export import export_page, page_data, render_page
from .inputs import prepare_bytes
from .server import MAX_BODY, STATIC_DIR, RequestError, create_app, serve

__all__ = ["Explorer", "pack", "unpack", "export_page", "page_data", "render_page", "prepare_bytes",
           "MAX_BODY", "STATIC_DIR", "RequestError", "create_app", "serve"]
