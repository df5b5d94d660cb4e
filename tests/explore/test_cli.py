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
import threading
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


def _start(tmp_path, *extra, sigint_ignored=False):
    env = {**os.environ, "PYTHONPATH": REPO, "MINICNN_BACKEND": "numpy", "PYTHONUNBUFFERED": "1"}
    # a child of a shell's background job (nohup ... &) starts with SIGINT ignored: Ctrl-C must
    # still stop the server then, since uvicorn installs its own handler before the URL is printed
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
    return subprocess.Popen([sys.executable, "-m", "minicnn", "explore", "pooled", "--no-train", "--no-browser",
                             "--data-dir", str(tmp_path / "none"), *extra],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=ignore)


def _url(proc):
    """The URL the server prints (readline blocks until a line or EOF; the caller's _stop bounds
    the wait by killing the process, which ends the pipe)."""
    for line in proc.stdout:
        m = re.search(r"(http://[^ ]+/)", line)
        if m:
            return m.group(1)
    raise AssertionError(f"no URL printed; stderr: {proc.stderr.read()}")


def _stop(proc, timeout=120):
    """SIGINT, then wait for the exit; on a timeout kill it, and always read both pipes to the
    end (an unread pipe left open is a ResourceWarning in whichever test runs next). The timeout
    allows for a cold first import of the whole stack on a slow 2-core machine."""
    try:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"the server did not stop {timeout} s after SIGINT; stderr: {err}")


def _watchdog(proc, seconds=180):
    """Kill the server if the test has not finished with it in time, so a server that never prints
    its URL fails the test instead of hanging it."""
    timer = threading.Timer(seconds, proc.kill)
    timer.daemon = True
    timer.start()
    return timer


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT")
@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["sigint-default", "sigint-ignored"])
def test_server_binds_loopback_and_stops_on_ctrl_c(tmp_path, sigint_ignored):
    proc = _start(tmp_path, sigint_ignored=sigint_ignored)
    timer = _watchdog(proc)
    try:
        url = _url(proc)
        assert url.startswith("http://127.0.0.1:") and not url.startswith("http://127.0.0.1:0/")
        if sigint_ignored:  # at once, as a user who reads the URL and presses Ctrl-C would
            out, err = _stop(proc)
        else:
            with urllib.request.urlopen(url + "api/model", timeout=60) as r:
                assert json.loads(r.read())["name"] == "pooled"
            out, err = _stop(proc)
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "stopped" in out and "Traceback" not in err


def test_another_host_warns(tmp_path):
    proc = _start(tmp_path, "--host", "127.0.0.2")
    timer = _watchdog(proc)
    try:
        url = _url(proc)
        assert url.startswith("http://127.0.0.2:")
        _, err = _stop(proc)
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "warning" in err and "reachable from other machines" in err
