"""`minicnn predict` and the image preprocessing, on synthetic images written by the tests."""

from __future__ import annotations

import re

import numpy as np
import pytest

Image = pytest.importorskip("PIL.Image")

import minicnn  # noqa: E402
from minicnn.cli import main  # noqa: E402
from minicnn.study import ImageError, load_image, prepare_array  # noqa: E402
from minicnn.study.images import border_mean  # noqa: E402


def save(a, path, mode=None):
    Image.fromarray(a, mode=mode).save(path) if mode else Image.fromarray(a).save(path)
    return str(path)


def dark_bar_on_white(h=56, w=40):
    a = np.full((h, w), 255, np.uint8)
    a[h // 7:h - h // 7, w // 2 - 2:w // 2 + 2] = 0     # a black vertical stroke, 4 pixels wide
    return a


def test_light_background_is_inverted_resized_padded_and_scaled(tmp_path):
    p = load_image(save(dark_bar_on_white(), tmp_path / "bar.png"))
    assert p.original_size == (40, 56)
    assert p.border_mean == 255.0 and p.inverted and p.background == 0
    assert p.resized_size == (20, 28)        # scale min(28/56, 28/40) = 0.5, aspect kept
    x = p.array
    assert x.shape == (28, 28, 1) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() <= 1.0
    # the paper became black, the ink white; padding (4 columns each side) is background
    assert x[:, :4].max() == 0.0 and x[:, 24:].max() == 0.0
    assert x[0].max() == 0.0
    col = x[14, :, 0]
    assert col[13:15].min() > 0.9            # the 4-pixel stroke is now 2 pixels wide, bright
    assert x[4:24, 13:15].mean() > 0.9 and x[14, 4:10].max() < 0.05


def test_dark_background_is_kept(tmp_path):
    a = 255 - dark_bar_on_white(28, 28)      # already MNIST-like: white on black
    p = load_image(save(a, tmp_path / "mnistlike.png"))
    assert not p.inverted and p.border_mean == 0.0 and p.resized_size == (28, 28)
    np.testing.assert_allclose(p.array[:, :, 0], a / 255.0, atol=1e-6)


def test_border_mean_decides_at_127():
    a = np.full((10, 10), 127, np.uint8)
    assert not prepare_array(a).inverted
    a[:] = 128
    assert prepare_array(a).inverted
    a[1:-1, 1:-1] = 0                        # only the border counts
    assert border_mean(a) == 128.0 and prepare_array(a).inverted


def test_wide_image_is_padded_top_and_bottom_with_the_background(tmp_path):
    a = np.full((20, 80), 200, np.uint8)     # light gray paper -> inverted to 55
    a[5:15, 30:50] = 0
    p = load_image(save(a, tmp_path / "wide.png"))
    assert p.inverted and p.background == 55 and p.resized_size == (28, 7)
    x = np.rint(p.array[:, :, 0] * 255)
    assert (x[:10] == 55).all() and (x[17:] == 55).all()      # 21 rows of padding: 10 above, 11 below
    assert x[13, 14] > 240                                    # the ink, inverted


def test_transparent_png_rgb_jpeg_and_16_bit(tmp_path):
    rgba = np.zeros((30, 30, 4), np.uint8)   # transparent background, opaque black stroke
    rgba[5:25, 13:17] = (0, 0, 0, 255)
    p = load_image(save(rgba, tmp_path / "t.png"))
    assert p.inverted and p.array[14, 14, 0] > 0.9 and p.array[0, 0, 0] == 0.0
    rgb = np.full((28, 28, 3), 250, np.uint8)
    rgb[4:24, 12:16] = (10, 20, 200)         # blue ink on white
    Image.fromarray(rgb).save(tmp_path / "c.jpg", quality=95)
    p = load_image(tmp_path / "c.jpg")
    assert p.inverted and p.array[14, 13, 0] > 0.6 and p.array[14, 2, 0] < 0.05
    a16 = (255 - dark_bar_on_white(28, 28)).astype(np.uint16) * 257
    p = load_image(save(a16, tmp_path / "g16.png"))
    assert not p.inverted
    np.testing.assert_allclose(p.array[:, :, 0], (255 - dark_bar_on_white(28, 28)) / 255.0, atol=1e-6)


@pytest.mark.parametrize("content, message", [
    (None, "image file '{p}' does not exist"),
    (b"this is not an image", "cannot read '{p}': not an image format Pillow knows (use PNG or JPEG)"),
    ("truncated", "cannot read '{p}': damaged or truncated image"),
    ("dir", "'{p}' is a directory, not an image file"),
])
def test_unreadable_images_are_one_clear_error(tmp_path, content, message):
    path = tmp_path / "x.png"
    if content == "truncated":
        save(dark_bar_on_white(), path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert str(info.value).startswith(message.format(p=path))


@pytest.fixture
def model_file(tmp_path):
    model = minicnn.build_preset("seed", seed=3)
    path = tmp_path / "m.npz"
    model.save(path)
    return str(path), model


def test_predict_prints_top3_per_image(tmp_path, model_file, capsys):
    path, model = model_file
    a = save(dark_bar_on_white(), tmp_path / "a.png")
    b = save(255 - dark_bar_on_white(28, 28), tmp_path / "b.png")
    code = main(["predict", path, a, b, "--backend", "numpy"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0 and len(out) == 2
    pattern = re.compile(r"^(.+): (\d) \((\d\.\d{4})\), (\d) \((\d\.\d{4})\), (\d) \((\d\.\d{4})\)$")
    for line, img in zip(out, (a, b)):
        m = pattern.match(line)
        assert m, line
        assert m.group(1) == img
        probs = [float(m.group(i)) for i in (3, 5, 7)]
        assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0001
        # the same numbers as the API gives for the prepared image
        expected = model.predict(load_image(img).array[None])[0]
        top = np.argsort(-expected, kind="stable")[:3]
        assert [int(m.group(i)) for i in (2, 4, 6)] == top.tolist()
        np.testing.assert_allclose(probs, expected[top], atol=6e-5)


def test_predict_show_and_top(tmp_path, model_file, capsys):
    path, _ = model_file
    a = save(dark_bar_on_white(), tmp_path / "a.png")
    assert main(["predict", path, a, "--top", "1", "--show", "--backend", "numpy"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert re.match(r"^.+a\.png: \d \(\d\.\d{4}\)$", out[0])
    assert len(out) == 1 + 28 and "@@" in "".join(out[1:])


def test_predict_bad_image_is_one_line_and_exit_1(tmp_path, model_file, capsys):
    path, _ = model_file
    good = save(dark_bar_on_white(), tmp_path / "a.png")
    (tmp_path / "notes.png").write_text("hello")
    for bad, msg in ((str(tmp_path / "nope.png"), "does not exist"),
                     (str(tmp_path / "notes.png"), "not an image format Pillow knows")):
        code = main(["predict", path, good, bad, "--backend", "numpy"])
        cap = capsys.readouterr()
        assert code == 1
        assert cap.out == ""                              # nothing printed before the error
        lines = cap.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("minicnn predict: error: ") and msg in lines[0]
        assert "Traceback" not in cap.err


def test_predict_help_documents_the_steps(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for step in ("grayscale", "border pixels is above 127", "aspect ratio", "padded", "[0, 1]"):
        assert step in text
