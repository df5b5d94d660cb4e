"""``minicnn explore`` on the command line: --export writes a page that needs no server; the
server binds 127.0.0.1 on a free port, prints its URL, warns for another --host, and Ctrl-C
(SIGINT) stops it cleanly."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from minicnn.cli import main

from tests.explore.conftest import png_bytes

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_export_index_and_image(tmp_path, capsys):
    data_dir = os.environ.get("MINICNN_DATA_DIR")
    if data_dir:
        assert main(["explore", "pooled", "--no-train", "--export", str(tmp_path / "a"), "--index", "3",
                     "--data-dir", data_dir, "--backend", "numpy"]) == 0
        html = (tmp_path / "a" / "index.html").read_text()
        assert "window.EXPLORE_DATA" in html and "test image 3" in html
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    img = tmp_path / "digit.png"
    img.write_bytes(png_bytes())
    assert main(["explore", "pooled", "--no-train", "--export", str(tmp_path / "b"), "--image", str(img),
                 "--data-dir", str(tmp_path / "nothing"), "--backend", "numpy"]) == 0
    html = (tmp_path / "b" / "index.html").read_text()
    assert "digit.png" in html and '"steps"' in html
    assert "wrote" in capsys.readouterr().out


def test_image_without_export_is_an_error(tmp_path, capsys):
    assert main(["explore", "pooled", "--no-train", "--image", "x.png", "--data-dir", str(tmp_path)]) == 1
    assert "--image and --index go with --export" in capsys.readouterr().err


def test_unknown_model(tmp_path, capsys):
    assert main(["explore", "nonsense", "--data-dir", str(tmp_path)]) == 1
    assert "neither a preset" in capsys.readouterr().err


def _start(tmp_path, *extra):
    env = {**os.environ, "PYTHONPATH": REPO, "MINICNN_BACKEND": "numpy", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "minicnn", "explore", "pooled", "--no-train", "--no-browser",
                             "--data-dir", str(tmp_path / "none"), *extra],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _url(proc, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(r"(http://[^ ]+/)", line)
        if m:
            return m.group(1)
    proc.kill()
    raise AssertionError(f"no URL printed; stderr: {proc.stderr.read()}")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT")
def test_server_binds_loopback_and_stops_on_ctrl_c(tmp_path):
    proc = _start(tmp_path)
    try:
        url = _url(proc)
        assert url.startswith("http://127.0.0.1:") and not url.startswith("http://127.0.0.1:0/")
        with urllib.request.urlopen(url + "api/model", timeout=30) as r:
            assert json.loads(r.read())["name"] == "pooled"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped" in out and "Traceback" not in err


def test_another_host_warns(tmp_path):
    proc = _start(tmp_path, "--host", "127.0.0.2")
    try:
        url = _url(proc)
        assert url.startswith("http://127.0.0.2:")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "warning" in err and "reachable from other machines" in err
