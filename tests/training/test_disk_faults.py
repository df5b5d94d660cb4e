"""Full disks, files too large, read-only and forbidden places, for real where the machine allows.

Whenever a model save, a checkpoint or a history file cannot be written, the previous file is
intact, no temporary file is left, and the user gets one line naming the path and the cause;
``minicnn train`` that cannot checkpoint stops at that checkpoint with exit status 1.

Real failures: EFBIG from RLIMIT_FSIZE (Python ignores SIGXFSZ, so the write fails instead of the
process dying), ENOSPC from a small tmpfs and EROFS from a read-only remount (both in a private
mount namespace, ``unshare -m``, when the machine allows it), EACCES from a directory the process
may not write (as an unprivileged user when the tests run as root). ENOSPC at fsync is injected.
"""

from __future__ import annotations

import errno
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

from minicnn.errors import FileWriteError
from minicnn.fileio import atomic_write
from minicnn.io import checkpoint as ckpt

from tests.helpers import write_fake_mnist

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).resolve().with_name("_train_worker.py")


def _env(**extra):
    env = dict(os.environ, MINICNN_OFFLINE="1", MINICNN_BACKEND="numpy", PYTHONUNBUFFERED="1",
               PYTHONPATH=str(ROOT))
    env.pop("MINICNN_TEST_STEP_SLEEP", None)
    env.update(extra)
    return env


def _train_argv(data, ckpt_dir, out, *extra):
    return ["train", "--preset", "lenet5", "--data-dir", str(data), "--limit", "40", "--batch-size", "20",
            "--backend", "numpy", "--verbose", "0", "--out", str(out),
            *(["--checkpoint-dir", str(ckpt_dir)] if ckpt_dir else []), *extra]


def _cli(argv, preexec_fn=None, env=None, timeout=300):
    return subprocess.run([sys.executable, str(WORKER), "cli", *map(str, argv)], capture_output=True,
                          text=True, env=env or _env(), timeout=timeout, preexec_fn=preexec_fn, cwd=ROOT)


def _one_error_line(stderr):
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def _temp_files(directory):
    return [n for n in os.listdir(directory) if n.startswith(".tmp-")]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_fake_mnist(tmp_path_factory.mktemp("faults") / "data", n_train=40, n_test=20)


# ----------------------------------------------------------------------------- atomic_write
def test_disk_full_at_fsync_keeps_the_old_file_and_names_path_and_cause(tmp_path, monkeypatch):
    target = tmp_path / "model.npz"
    target.write_bytes(b"old contents")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(FileWriteError) as exc:
        atomic_write(target, b"x" * 10_000)
    assert str(exc.value).startswith(f"cannot write {str(target)!r}: No space left on device (ENOSPC)")
    assert "\n" not in str(exc.value) and exc.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"old contents" and os.listdir(tmp_path) == ["model.npz"]


def _with_file_size_limit(limit, fn):
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        return fn()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_file_too_large_for_real_keeps_the_old_file(tmp_path):
    target = tmp_path / "model.npz"
    target.write_bytes(b"old contents")
    with pytest.raises(FileWriteError) as exc:
        _with_file_size_limit(4096, lambda: atomic_write(target, b"x" * (1 << 20)))
    assert exc.value.errno == errno.EFBIG
    assert f"cannot write {str(target)!r}: File too large (EFBIG)" in str(exc.value)
    assert target.read_bytes() == b"old contents" and os.listdir(tmp_path) == ["model.npz"]


# ----------------------------------------------------------------------------- training, for real
def test_training_that_cannot_checkpoint_stops_there_with_one_line_and_status_1(data, tmp_path):
    d, out = tmp_path / "ck", tmp_path / "m.npz"
    assert _cli(_train_argv(data, d, out, "--epochs", "1")).returncode == 0
    first = ckpt.list_checkpoints(d)
    assert len(first) == 1
    before = Path(first[0]).read_bytes()
    size = len(before)

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, size // 2))

    out2 = tmp_path / "m2.npz"
    p = _cli(_train_argv(data, d, out2, "--epochs", "2", "--resume"), preexec_fn=limit)
    assert p.returncode == 1, p.stderr
    line = _one_error_line(p.stderr)
    assert line.startswith(f"minicnn train: error: cannot write {os.path.join(str(d), 'ckpt-000000004.npz')!r}: "
                           "File too large (EFBIG)"), line
    assert "training stopped at the end of epoch 2 because it cannot checkpoint" in line
    assert f"newest intact checkpoint: {first[0]}" in line
    assert ckpt.list_checkpoints(d) == first and Path(first[0]).read_bytes() == before
    ckpt.read_checkpoint(first[0])
    assert _temp_files(d) == [] and not out2.exists()


def _namespace_available():
    if not shutil.which("unshare") or sys.platform != "linux":
        return "no unshare(1)"
    with tempfile.TemporaryDirectory() as d:
        p = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {d}"],
                           capture_output=True, text=True)
    return None if p.returncode == 0 else f"cannot mount a tmpfs in a private mount namespace: {p.stderr.strip()}"


NO_NAMESPACE = _namespace_available()
needs_namespace = pytest.mark.skipif(NO_NAMESPACE is not None, reason=str(NO_NAMESPACE))

_CHECK = textwrap.dedent("""
    import json, os, sys
    from minicnn.io import checkpoint as ckpt
    d = sys.argv[1]
    names = sorted(os.listdir(d))
    ok = [p for p in ckpt.list_checkpoints(d) if ckpt.read_checkpoint(p)]
    print(json.dumps({"names": names, "valid": ok}))
""")


def _in_namespace(tmp_path, script):
    """Run the shell ``script`` in a private mount namespace; (status, stdout, stderr)."""
    p = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                       env=_env(), timeout=600, cwd=ROOT)
    return p.returncode, p.stdout, p.stderr


@needs_namespace
def test_disk_full_for_real_on_a_small_tmpfs(data, tmp_path):
    import json
    d = tmp_path / "small"
    d.mkdir()
    check = tmp_path / "check.py"
    check.write_text(_CHECK)
    cmd = " ".join([sys.executable, str(WORKER), "cli", *map(str, _train_argv(data, d, tmp_path / "m.npz",
                                                                                "--epochs", "2"))])
    # one lenet5 checkpoint (weights + Adam's two slots) is about 750 kB: the second does not fit
    rc, out, err = _in_namespace(tmp_path, f"mount -t tmpfs -o size=1200k tmpfs {d} || exit 99; {cmd}; "
                                           f"rc=$?; {sys.executable} {check} {d}; exit $rc")
    assert rc == 1, err
    line = _one_error_line(err)
    assert f"cannot write {os.path.join(str(d), 'ckpt-000000004.npz')!r}: No space left on device (ENOSPC)" in line
    assert "training stopped at the end of epoch 2" in line
    state = json.loads(out.strip().splitlines()[-1])
    assert state["names"] == [".minicnn.lock", "ckpt-000000002.npz"]  # nothing partial left
    assert state["valid"] == [os.path.join(str(d), "ckpt-000000002.npz")]


@needs_namespace
def test_read_only_place_for_real(data, tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    model_cmd = " ".join([sys.executable, str(WORKER), "cli",
                          *map(str, _train_argv(data, None, d / "m.npz", "--epochs", "1"))])
    ckpt_cmd = " ".join([sys.executable, str(WORKER), "cli",
                         *map(str, _train_argv(data, d / "ck", tmp_path / "m.npz", "--epochs", "1"))])
    rc, out, err = _in_namespace(tmp_path, f"mount -t tmpfs -o size=4m tmpfs {d} || exit 99; echo old > {d}/m.npz; "
                                           f"mkdir {d}/ck; mount -o remount,ro {d} || exit 98; "
                                           f"{model_cmd} 2>&1 >/dev/null; echo rc=$?; cat {d}/m.npz; "
                                           f"{ckpt_cmd} 2>&1 >/dev/null; echo rc=$?")
    lines = out.strip().splitlines()
    assert rc == 0, (out, err)
    # the model save at the end of training: refused with one line, the old file intact
    assert lines[0].startswith(f"minicnn train: error: cannot write {str(d / 'm.npz')!r}: Read-only file system "
                               "(EROFS)"), lines
    assert lines[1:3] == ["rc=1", "old"]
    # a checkpoint directory that cannot be written: refused before training, when taking its lock
    assert lines[3].startswith(f"minicnn train: error: cannot write {str(d / 'ck' / '.minicnn.lock')!r}: "
                               "Read-only file system (EROFS)"), lines
    assert "training did not start" in lines[3] and lines[4] == "rc=1"


def _without_dac_override():
    """A command prefix under which permission bits bind (root drops CAP_DAC_OVERRIDE), or None."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        return None
    probe = Path(tempfile.mkdtemp(prefix="minicnn-eacces-probe-"))
    try:
        os.chmod(probe, 0o555)
        p = subprocess.run(["setpriv", "--bounding-set", "-dac_override,-dac_read_search",
                            sys.executable, "-c", f"open({str(probe / 'x')!r}, 'w')"], capture_output=True)
        return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"] if p.returncode != 0 else None
    finally:
        os.chmod(probe, 0o755)
        shutil.rmtree(probe, ignore_errors=True)


PERMISSION_PREFIX = _without_dac_override() if hasattr(os, "geteuid") else None


@pytest.mark.skipif(PERMISSION_PREFIX is None, reason="running as root and cannot drop CAP_DAC_OVERRIDE "
                    "(no setpriv), so permission bits do not bind")
def test_permission_denied_for_real(data, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "m.npz").write_bytes(b"old")
    os.chmod(locked, 0o555)
    try:
        p = subprocess.run([*PERMISSION_PREFIX, sys.executable, str(WORKER), "cli",
                            *map(str, _train_argv(data, None, locked / "m.npz", "--epochs", "1"))],
                           capture_output=True, text=True, env=_env(), timeout=300, cwd=ROOT)
        assert p.returncode == 1, p.stderr
        line = _one_error_line(p.stderr)
        assert line.startswith(f"minicnn train: error: cannot write {str(locked / 'm.npz')!r}: Permission denied "
                               "(EACCES)"), line
        assert (locked / "m.npz").read_bytes() == b"old" and os.listdir(locked) == ["m.npz"]
    finally:
        os.chmod(locked, 0o755)


def test_a_history_file_that_cannot_be_written_is_one_line_too(data, tmp_path):
    out = tmp_path / "m.npz"
    (tmp_path / "m.history.json").mkdir()  # a directory where the history file should go
    p = _cli(_train_argv(data, None, out, "--epochs", "1"))
    assert p.returncode == 1
    line = _one_error_line(p.stderr)
    assert f"cannot write {str(tmp_path / 'm.history.json')!r}" in line
    assert out.exists()  # the model itself was saved before
