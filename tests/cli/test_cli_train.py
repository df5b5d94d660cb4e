"""`minicnn train | evaluate | summary`: end to end on a tiny fake MNIST, and clear user errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from minicnn.cli import main

from tests.helpers import write_fake_mnist


@pytest.fixture
def fake_mnist(tmp_path, monkeypatch):
    monkeypatch.setenv("MINICNN_OFFLINE", "1")
    return write_fake_mnist(tmp_path / "data")


def test_train_evaluate_summary(fake_mnist, tmp_path, capsys):
    out = tmp_path / "m.npz"
    rc = main(["train", "--data-dir", str(fake_mnist), "--epochs", "2", "--batch-size", "20",
               "--out", str(out), "--verbose", "2", "--backend", "numpy", "--validation-split", "0.1"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "training 'seed' on mnist (200 images), backend numpy" in text
    assert "Epoch 2/2" in text and "val_accuracy" in text
    record = json.loads((tmp_path / "m.history.json").read_text())
    assert record["epoch"] == [0, 1] and len(record["history"]["loss"]) == 2
    assert 0.0 <= record["test_accuracy"] <= 1.0

    assert main(["evaluate", str(out), "--data-dir", str(fake_mnist), "--backend", "numpy"]) == 0
    text = capsys.readouterr().out
    assert f"test accuracy {record['test_accuracy']:.4f}" in text

    assert main(["summary", str(out)]) == 0
    assert "Total params: 4,738,826" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "missing.npz"], "model file 'missing.npz' does not exist"),
    (["summary", "nope"], "model file 'nope' does not exist"),
    (["train", "--epochs", "-1"], "--epochs must be >= 0"),
])
def test_user_mistakes_give_one_line_and_nonzero_exit(argv, message, capsys, fake_mnist):
    assert main(argv + (["--data-dir", str(fake_mnist)] if argv[0] != "summary" else [])) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]


def test_damaged_model_file(tmp_path, capsys, fake_mnist):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip at all")
    assert main(["evaluate", str(bad), "--data-dir", str(fake_mnist)]) == 1
    assert "is not a readable .npz archive" in capsys.readouterr().err


def test_bad_arguments_exit_2_via_argparse():
    proc = subprocess.run([sys.executable, "-m", "minicnn", "train", "--preset", "resnet"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "invalid choice: 'resnet'" in proc.stderr


def test_help_lists_commands():
    proc = subprocess.run([sys.executable, "-m", "minicnn", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for cmd in ("train", "evaluate", "summary"):
        assert cmd in proc.stdout
