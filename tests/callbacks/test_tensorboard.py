"""TensorBoard event files from a one-epoch run, read back with TensorBoard's own reader."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing import event_accumulator  # noqa: E402

import minicnn.keras as keras  # noqa: E402
from minicnn.callbacks.tensorboard import filter_grid, png_bytes  # noqa: E402
from minicnn.keras import layers  # noqa: E402


def read(path):
    acc = event_accumulator.EventAccumulator(str(path), size_guidance={"histograms": 0, "images": 0, "scalars": 0})
    acc.Reload()
    return acc


def test_one_epoch_writes_scalars_histograms_and_filters(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((64, 10, 10, 1), dtype=np.float32)
    y = keras.utils.to_categorical(rng.integers(0, 3, 64), 3)
    model = keras.Sequential([keras.Input(shape=(10, 10, 1)), layers.Conv2D(4, 3, activation="relu"),
                              layers.MaxPooling2D(), layers.Flatten(), layers.Dense(3, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, validation_split=0.25,
              callbacks=[keras.callbacks.TensorBoard(tmp_path, histogram_freq=1, write_images=True)])
    train = read(tmp_path / "train")
    tags = train.Tags()
    assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"} <= set(tags["scalars"])
    assert train.Scalars("epoch_loss")[0].step == 0
    expected = {"conv2d/kernel/histogram", "conv2d/bias/histogram", "conv2d/kernel/gradient",
                "conv2d/bias/gradient", "dense/kernel/histogram", "dense/bias/histogram",
                "dense/kernel/gradient", "dense/bias/gradient"}
    expected |= {f"{name}/activation" for name in ("conv2d", "max_pooling2d", "flatten", "dense")}
    assert set(tags["histograms"]) == expected
    h = train.Histograms("conv2d/kernel/histogram")[0].histogram_value
    assert h.num == 3 * 3 * 1 * 4
    np.testing.assert_allclose(h.sum, model.get_layer("conv2d").params["kernel"].sum(), rtol=1e-5, atol=1e-6)
    assert train.Histograms("dense/activation")[0].histogram_value.num == 48 * 3
    assert tags["images"] == ["conv2d/kernel/image"]
    img = train.Images("conv2d/kernel/image")[0]
    assert img.encoded_image_string.startswith(b"\x89PNG") and img.width > 0
    val = read(tmp_path / "validation")
    assert {"epoch_loss", "epoch_accuracy"} <= set(val.Tags()["scalars"])
    np.testing.assert_allclose(val.Scalars("epoch_loss")[0].value, model.history.history["val_loss"][0], rtol=1e-6)


def test_png_opens_in_pillow():
    pil = pytest.importorskip("PIL.Image")
    import io
    grid = filter_grid(np.random.default_rng(0).standard_normal((3, 3, 2, 5)))
    img = pil.open(io.BytesIO(png_bytes(grid)))
    assert img.size == (grid.shape[1], grid.shape[0]) and np.array_equal(np.asarray(img), grid)
