"""Figures are rendered headless and checked for content: panel counts, non-blank panels,
saved pixel sizes."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")
PIL_Image = pytest.importorskip("PIL.Image")

import minicnn  # noqa: E402
from minicnn.layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D  # noqa: E402
from minicnn.study import (DPI, figure_axes_with_images, inspect_model, plot_feature_maps,  # noqa: E402
                           plot_filters, plot_input, plot_layer, plot_overview, plot_probabilities,
                           plot_vector, save_figures)


@pytest.fixture
def records(seed_model, seven):
    return inspect_model(seed_model, seven)


def image_arrays(fig):
    return [np.asarray(ax.images[0].get_array(), dtype=np.float64) for ax in figure_axes_with_images(fig)]


@pytest.mark.parametrize("index, channels", [(0, 32), (1, 64)])
def test_one_panel_per_channel(records, index, channels):
    rec = records[index]
    fig = plot_feature_maps(rec)
    panels = figure_axes_with_images(fig)
    assert len(panels) == channels
    assert [ax.get_title() for ax in panels] == [f"ch {c}" for c in range(channels)]
    for c, data in enumerate(image_arrays(fig)):
        fmap = rec.output[:, :, c]
        np.testing.assert_array_equal(data, fmap)            # the panel shows channel c itself
        if fmap.std() > 0:
            assert data.std() > 0
    # the untrained model still responds to the digit in most channels
    assert sum(d.std() > 0 for d in image_arrays(fig)) > channels // 2


def test_filters_grid(records):
    fig = plot_filters(records[0])
    panels = figure_axes_with_images(fig)
    assert len(panels) == 32
    kernel = records[0].layer.params["kernel"]
    for f, data in enumerate(image_arrays(fig)):
        np.testing.assert_array_equal(data, kernel[:, :, 0, f])
        assert data.std() > 0
    # 32 input channels: one mosaic, a row of 3x3 tiles per input channel, a column per filter
    fig2 = plot_filters(records[1])
    (mosaic,) = image_arrays(fig2)
    assert mosaic.shape == (32 * 4 - 1, 64 * 4 - 1)
    k2 = records[1].layer.params["kernel"]
    np.testing.assert_array_equal(mosaic[4:7, 8:11], k2[:, :, 1, 2])


def test_overview_rows(records, seven):
    fig = plot_overview(records, seven, labels=[str(i) for i in range(10)], true_label=7, title="t")
    panels = figure_axes_with_images(fig)
    # input + 32 filters + 32 maps + 64 maps
    assert len(panels) == 1 + 32 + 32 + 64
    data = image_arrays(fig)
    np.testing.assert_array_equal(data[0], seven[:, :, 0])
    np.testing.assert_array_equal(data[1 + 32 + 5], records[0].output[:, :, 5])
    np.testing.assert_array_equal(data[1 + 64 + 63], records[1].output[:, :, 63])
    bar_axes = [ax for ax in fig.axes if len(ax.patches) > 0]
    assert sorted(len(ax.patches) for ax in bar_axes) == [10, 128]   # dense units, probabilities
    w, h = fig.get_size_inches()
    assert (round(w * DPI), round(h * DPI))[0] == 900
    texts = " ".join(t.get_text() for t in fig.texts)
    assert "true class: 7" in texts and "32 feature maps of 26x26" in texts
    assert "64 feature maps of 24x24" in texts and "128 dense units" in texts


def test_overview_of_a_pooled_model(seven):
    # the 'pooled' preset's layer kinds, with fewer filters to keep the test fast
    model = minicnn.Sequential([Conv2D(4, 3, activation="relu"), Conv2D(8, 3, activation="relu"), MaxPool2D(2),
                                Dropout(0.25), Flatten(), Dense(16, activation="relu"), Dropout(0.5),
                                Dense(10, activation="softmax")], input_shape=(28, 28, 1), seed=0)
    model.build()
    recs = inspect_model(model, seven)
    fig = plot_overview(recs, seven)
    # input + 4 filters + 4 + 8 conv maps + 8 pooled maps; dropout is skipped
    assert len(figure_axes_with_images(fig)) == 1 + 4 + 4 + 8 + 8
    pool = next(r for r in recs if r.kind == "MaxPool2D")
    assert pool.output_shape == (12, 12, 8)
    assert 0.0 < pool.tie_share < 1.0           # all-zero windows after ReLU tie, others do not
    texts = " ".join(t.get_text() for t in fig.texts)
    assert "8 feature maps of 12x12 (after 2x2 max pooling)" in texts
    assert plot_layer(next(r for r in recs if r.kind == "Dropout")) is None


def test_vector_and_probability_figures(records):
    fig = plot_vector(records[3])
    (ax,) = [a for a in fig.axes if a.patches]
    heights = [p.get_height() for p in ax.patches]
    np.testing.assert_allclose(heights, records[3].output)
    strip = plot_vector(records[2])                # Flatten: 36864 values, 24 rows of 24 * 64
    (data,) = image_arrays(strip)
    assert data.shape == (24, 24 * 64)
    np.testing.assert_array_equal(data.reshape(-1), records[2].output)
    fig = plot_probabilities(records[4].output, labels=list("abcdefghij"), true_label=3)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == list("abcdefghij")
    np.testing.assert_allclose([p.get_height() for p in ax.patches], records[4].output, rtol=1e-6)


def saved_size(fig, path):
    fig.savefig(path, dpi=DPI)
    with PIL_Image.open(path) as im:
        return im.size, np.asarray(im.convert("L"), dtype=np.float64)


def test_saved_png_pixel_size_is_the_figure_size(records, seven, tmp_path):
    fig = plot_feature_maps(records[1])
    w, h = fig.get_size_inches()
    size, pixels = saved_size(fig, tmp_path / "maps.png")
    assert size == (round(w * DPI), round(h * DPI))
    assert pixels.std() > 10                            # not a blank page
    fig = plot_input(seven)
    size, pixels = saved_size(fig, tmp_path / "input.png")
    assert size == (300, 340)
    # the digit is drawn: the bright stroke of the 7 shows up as white pixels in the middle
    assert pixels[120:200, 100:250].max() > 200


def test_save_figures_writes_every_layer(records, seven, tmp_path):
    paths = save_figures(records, seven, tmp_path, labels=[str(i) for i in range(10)], true_label=7)
    names = [p.split("/")[-1] for p in paths]
    assert names == ["overview.png", "input.png", "layer0_conv2d_filters.png", "layer0_conv2d_maps.png",
                     "layer1_conv2d_1_filters.png", "layer1_conv2d_1_maps.png",
                     "layer2_flatten_activations.png", "layer3_dense_activations.png",
                     "layer4_dense_1_probabilities.png"]
    with PIL_Image.open(tmp_path / "overview.png") as im:
        assert im.size[0] == 900                        # README width at 100 dpi
        assert 900 < im.size[1] < 1400
    for name in names:
        assert (tmp_path / name).stat().st_size < 300_000


def test_layer_figures_for_every_kind(seven):
    model = minicnn.Sequential([Conv2D(3, 3, activation="relu"), MaxPool2D(2), Dropout(0.5), Flatten(),
                                Dense(5, activation="relu"), Dense(4, activation="softmax")],
                               input_shape=(8, 8, 1), seed=0)
    model.build()
    recs = inspect_model(model, np.random.default_rng(0).random((8, 8, 1)))
    kinds = [(r.kind, type(plot_layer(r)).__name__ if plot_layer(r) else None) for r in recs]
    assert kinds == [("Conv2D", "Figure"), ("MaxPool2D", "Figure"), ("Dropout", None),
                     ("Flatten", "Figure"), ("Dense", "Figure"), ("Dense", "Figure")]
    assert len(figure_axes_with_images(plot_layer(recs[1]))) == 3
