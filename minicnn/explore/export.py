"""``minicnn explore MODEL --export DIR``: one input's page, self-contained, for slides and courses.

The page is the app's own ``index.html`` with its stylesheet and script inlined and the data
(model description, forward pass, backward pass for the predicted class or the true label) in
``window.EXPLORE_DATA``: it opens from the file system (``file://``) and makes no request.
"""

from __future__ import annotations

import json
import os
import pathlib

from .compute import Explorer

STATIC_DIR = pathlib.Path(__file__).resolve().parent / "static"


def page_data(explorer: Explorer, x, label=None, source="", steps=None) -> dict:
    forward = explorer.forward(x)
    if steps:
        forward["steps"] = steps
    target = label if label is not None else forward.get("predicted", 0)
    return {"model": explorer.describe_model(), "forward": {**forward, "label": label},
            "backward": explorer.backward(x, int(target)), "label": label, "source": source}


def render_page(data: dict) -> str:
    """The HTML of the static page for :func:`page_data`'s output."""
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    css = (STATIC_DIR / "style.css").read_text(encoding="utf-8")
    js = (STATIC_DIR / "app.js").read_text(encoding="utf-8")
    blob = json.dumps(data, separators=(",", ":")).replace("</", "<\\/").replace("<!--", "<\\!--")
    link = '<link rel="stylesheet" href="/static/style.css">'
    script = '<script src="/static/app.js"></script>'
    if link not in html or script not in html:
        raise RuntimeError("index.html no longer links style.css and app.js as export expects")
    html = html.replace(link, f"<style>\n{css}</style>")
    return html.replace(script, f"<script>window.EXPLORE_DATA = {blob};</script>\n<script>\n{js}</script>")


def export_page(explorer: Explorer, x, out_dir, label=None, source="", steps=None) -> str:
    """Write ``out_dir/index.html`` for input ``x``; returns its path."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "index.html")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(render_page(page_data(explorer, x, label=label, source=source, steps=steps)))
    os.replace(tmp, path)
    return path
