"""Text renderings, the matplotlib-free fallback of `minicnn inspect`, and the inspect/report CLI."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import minicnn
from minicnn.cli import main
from minicnn.study import ascii_shades, pixel_matrix, probability_bars, require_matplotlib
from minicnn.study.inspect import MissingDependency

from tests.study.studyhelpers import write_fake_mnist


@pytest.fixture
def fake_mnist(tmp_path):
    return write_fake_mnist(tmp_path / "mnist.npz")


def test_pixel_matrix_has_one_line_per_row(seven):
    text = pixel_matrix(seven)
    lines = text.splitlines()
    assert len(lines) == 28
    assert all(len(line.split()) == 28 for line in lines)
    assert lines[7].split()[6:22] == ["255"] * 16       # the top bar of the 7
    assert lines[0].split() == ["0"] * 28
    assert lines[10].split()[21] == "204"                # 0.8 * 255


def test_ascii_shades(seven):
    lines = ascii_shades(seven).splitlines()
    assert len(lines) == 28
    assert all(len(line) == 56 for line in lines)       # two characters per pixel
    assert lines[7] == " " * 12 + "@" * 32 + " " * 12   # the top bar: 16 bright pixels
    assert lines[0] == " " * 56


def test_probability_bars():
    out = probability_bars([0.1, 0.7, 0.2], ["a", "b", "c"], width=10)
    assert out.splitlines() == ["a  0.1000  #", "b  0.7000  #######  <- top", "c  0.2000  ##"]


def test_require_matplotlib_without_matplotlib(no_matplotlib):
    with pytest.raises(MissingDependency, match=r"pip install minicnn\[viz\]"):
        require_matplotlib()


def test_inspect_falls_back_to_text_without_matplotlib(no_matplotlib, fake_mnist, tmp_path, capsys):
    out_dir = tmp_path / "figs"
    code = main(["inspect", "seed", "--index", "3", "--data-dir", fake_mnist, "--out", str(out_dir),
                 "--backend", "numpy"])
    out = capsys.readouterr().out
    assert code == 0
    assert not out_dir.exists()                          # no figures
    lines = out.splitlines()
    start = lines.index("input (pixel values 0..255):") + 1
    matrix = lines[start:start + 28]
    assert all(len(r.split()) == 28 for r in matrix)     # the digit as 28 rows of numbers
    x = np.load(fake_mnist)["x_test"][3]
    assert [int(v) for v in matrix[0].split()] == x[0].tolist()
    assert "conv2d_1" in out and "(24, 24, 64)" in out   # the statistics table
    assert "figures were skipped: matplotlib is not installed" in out
    assert "pip install minicnn[viz]" in out
    assert "class probabilities:" in out


def test_inspect_text_ascii_with_no_figures(fake_mnist, tmp_path, capsys):
    code = main(["inspect", "seed", "--index", "0", "--data-dir", fake_mnist, "--out", str(tmp_path / "o"),
                 "--no-figures", "--text", "ascii", "--backend", "numpy"])
    out = capsys.readouterr().out
    assert code == 0 and "input (ASCII shades):" in out and "@@" in out
    assert "skipped" not in out and not (tmp_path / "o").exists()


def small_model_file(tmp_path):
    from minicnn.layers import Conv2D, Dense, Flatten, MaxPool2D
    model = minicnn.Sequential([Conv2D(4, 3, activation="relu"), MaxPool2D(2), Flatten(),
                                Dense(10, activation="softmax")], input_shape=(28, 28, 1), seed=0, name="small")
    model.build()
    path = tmp_path / "small.npz"
    model.save(path)
    return str(path)


def test_inspect_writes_figures(fake_mnist, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out_dir = tmp_path / "figs"
    code = main(["inspect", small_model_file(tmp_path), "--index", "1", "--data-dir", fake_mnist,
                 "--out", str(out_dir), "--backend", "numpy"])
    out = capsys.readouterr().out
    assert code == 0
    label = int(np.load(fake_mnist)["y_test"][1])
    assert f"input: mnist test image 1 (class {label})" in out
    assert out.count("prediction: ") == 1 and "figures written to" in out
    assert "max_pooling2d  MaxPool2D  (13, 13, 4)" in out
    assert sorted(os.listdir(out_dir)) == [
        "input.png", "layer0_conv2d_filters.png", "layer0_conv2d_maps.png", "layer1_max_pooling2d_maps.png",
        "layer2_flatten_activations.png", "layer3_dense_probabilities.png", "overview.png"]


def test_inspect_image_file(tmp_path, capsys):
    Image = pytest.importorskip("PIL.Image")
    a = np.full((50, 40), 255, np.uint8)
    a[10:40, 18:22] = 0                                    # a dark "1" on white paper
    Image.fromarray(a).save(tmp_path / "one.png")
    code = main(["inspect", "seed", "--image", str(tmp_path / "one.png"), "--no-figures", "--backend", "numpy"])
    out = capsys.readouterr().out
    assert code == 0
    assert "(40x50 pixels, inverted, resized to 22x28 and padded)" in out


@pytest.mark.parametrize("argv, message", [
    (["inspect", "seed", "--index", "99"], "--index 99 is out of range: the mnist test set has 40 images (0..39)"),
    (["inspect", "nope.npz", "--index", "0"], "model 'nope.npz' is neither a preset (lenet5, seed, pooled, cifar_cnn, vgg_bn, "
                                                  "allconv, mobile) nor an existing file"),
    (["inspect", "seed", "--image", "missing.png"], "image file 'missing.png' does not exist"),
])
def test_inspect_errors_are_one_line(fake_mnist, tmp_path, capsys, argv, message):
    code = main(argv + ["--data-dir", fake_mnist, "--out", str(tmp_path / "o"), "--backend", "numpy"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip() == f"minicnn inspect: error: {message}"


def test_report_cli(fake_mnist, tmp_path, capsys):
    model = minicnn.build_preset("seed", seed=0)
    model.compile("adam", "categorical_crossentropy", ["accuracy"])
    path = tmp_path / "m.npz"
    model.save(path)
    history = {"epoch": [0, 1], "history": {"loss": [0.5, 0.3], "accuracy": [0.8, 0.9],
                                            "val_loss": [0.4, 0.35], "val_accuracy": [0.85, 0.88]},
               "test_loss": 0.33, "test_accuracy": 0.89}
    (tmp_path / "m.history.json").write_text(json.dumps(history))
    out_dir = tmp_path / "rep"
    code = main(["report", str(path), "--data-dir", fake_mnist, "--out", str(out_dir), "--errors", "8",
                 "--backend", "numpy"])
    out = capsys.readouterr().out
    assert code == 0
    assert "on 40 mnist test images" in out
    report = (out_dir / "report.md").read_text()
    assert "# Report: m.npz" in report and "Training: 2 epochs" in report
    try:
        require_matplotlib()
    except MissingDependency:
        return
    assert {"curves.png", "confusion.png", "errors.png"} <= set(os.listdir(out_dir))
    for name in ("curves.png", "confusion.png", "errors.png"):
        assert f"]({name})" in report                    # relative links


def test_report_without_history_or_matplotlib(no_matplotlib, fake_mnist, tmp_path, capsys):
    code = main(["report", "seed", "--data-dir", fake_mnist, "--out", str(tmp_path / "r"), "--backend", "numpy"])
    out = capsys.readouterr().out
    assert code == 0
    assert "no history file found" in out and "figures were skipped" in out
    report = (tmp_path / "r" / "report.md").read_text()
    assert "| true \\ pred |" in report and "pip install minicnn[viz]" in report
    assert not list((tmp_path / "r").glob("*.png"))


def test_report_with_missing_history_file_is_an_error(fake_mnist, tmp_path, capsys):
    code = main(["report", "seed", "--history", str(tmp_path / "h.json"), "--data-dir", fake_mnist,
                 "--out", str(tmp_path / "r")])
    assert code == 1
    assert capsys.readouterr().err.strip().startswith("minicnn report: error: history file")
