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


def _small_model_file(path, input_shape=(28, 28, 1), seed=3):
    from minicnn import Sequential
    from minicnn.layers import Conv2D, Dense, Flatten, MaxPool2D
    model = Sequential([Conv2D(4, 3, activation="relu"), MaxPool2D(2), Flatten(), Dense(10, activation="softmax")],
                       input_shape=input_shape, seed=seed, name="small")
    model.build()
    model.save(path)
    return model


@pytest.mark.parametrize("suffix", [".npz", ".keras", ".h5"])
def test_train_the_architecture_of_a_model_file(fake_mnist, tmp_path, capsys, suffix):
    if suffix != ".npz":
        pytest.importorskip("h5py")
    from minicnn import load_model
    src = _small_model_file(tmp_path / f"arch{suffix}")
    out = tmp_path / f"trained{suffix}"
    argv = ["train", "--model", str(tmp_path / f"arch{suffix}"), "--data-dir", str(fake_mnist), "--epochs", "1",
            "--batch-size", "50", "--out", str(out), "--verbose", "0", "--backend", "numpy"]
    assert main(argv) == 0
    assert "training 'arch' on mnist (200 images)" in capsys.readouterr().out
    trained = load_model(out)
    assert trained.get_config()["layers"] == src.get_config()["layers"]
    # fresh weights (seeded), not the file's: the first kernel differs from the source's
    assert not (trained.get_weights()[0] == src.get_weights()[0]).all()


def test_keep_weights_starts_from_the_files_weights(fake_mnist, tmp_path):
    from minicnn import load_model
    src = _small_model_file(tmp_path / "arch.npz")
    out = tmp_path / "kept.npz"
    assert main(["train", "--model", str(tmp_path / "arch.npz"), "--keep-weights", "--data-dir", str(fake_mnist),
                 "--epochs", "0", "--out", str(out), "--verbose", "0", "--backend", "numpy"]) == 0
    assert all((a == b).all() for a, b in zip(load_model(out).get_weights(), src.get_weights()))


@pytest.mark.parametrize("argv, message", [
    (["--keep-weights"], "--keep-weights needs --model FILE"),
    (["--model", "{wrong_shape}"], "takes inputs of shape (12, 12, 1), but mnist images are (28, 28, 1)"),
])
def test_train_model_mistakes(fake_mnist, tmp_path, capsys, argv, message):
    _small_model_file(tmp_path / "wrong.npz", input_shape=(12, 12, 1))
    argv = [a.format(wrong_shape=tmp_path / "wrong.npz") for a in argv]
    assert main(["train", *argv, "--data-dir", str(fake_mnist), "--epochs", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
