"""The example notebooks executed as a user would (nbclient, a Python 3 kernel), their outputs
checked: the summary table, the accuracy after one epoch, the saved files opening in Keras."""

from __future__ import annotations

import os
import pathlib
import re

import numpy as np
import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

pytestmark = [pytest.mark.slow, pytest.mark.mnist]

#: keras.io's mnist_convnet summary as Keras 3 prints it (tests/keras/test_two_imports.py checks
#: minicnn.keras prints exactly what tensorflow.keras does)
CONVNET_SUMMARY = """\
Model: "sequential"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
│ conv2d (Conv2D)                 │ (None, 26, 26, 32)     │           320 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ max_pooling2d (MaxPooling2D)    │ (None, 13, 13, 32)     │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ conv2d_1 (Conv2D)               │ (None, 11, 11, 64)     │        18,496 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ max_pooling2d_1 (MaxPooling2D)  │ (None, 5, 5, 64)       │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ flatten (Flatten)               │ (None, 1600)           │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dropout (Dropout)               │ (None, 1600)           │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense (Dense)                   │ (None, 10)             │        16,010 │
└─────────────────────────────────┴────────────────────────┴───────────────┘
 Total params: 34,826 (136.04 KB)
 Trainable params: 34,826 (136.04 KB)
 Non-trainable params: 0 (0.00 B)"""


def execute(name, workdir, monkeypatch):
    if not os.environ.get("MINICNN_DATA_DIR"):
        pytest.skip("needs the real MNIST files (MINICNN_DATA_DIR)")
    # the kernel imports this checkout's minicnn, whatever the venv has installed
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.read(EXAMPLES / name, as_version=4)
    nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(workdir)}}).execute()
    return nb


def stdout_lines(cell) -> list[str]:
    """What the cell printed, as a front end shows it: each line as left by its last "\\r"."""
    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")
    return [line.rsplit("\r", 1)[-1] for line in text.split("\n")]


def metric(line, name) -> float:
    return float(re.search(rf" - {name}: ([0-9.]+)", line).group(1))


def test_mnist_convnet_notebook(tmp_path, monkeypatch):
    nb = execute("mnist_convnet.ipynb", tmp_path, monkeypatch)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert stdout_lines(code[1])[:3] == ["x_train shape: (60000, 28, 28, 1)", "60000 train samples",
                                         "10000 test samples"]
    assert "\n".join(stdout_lines(code[2])).strip() == CONVNET_SUMMARY
    fit = stdout_lines(code[3])
    assert fit[0] == "Epoch 1/1"
    last = fit[1]
    assert re.match(r"422/422 ━{20} \S+ \d+ms/step - accuracy: [0-9.]+ - loss: [0-9.]+ - "
                    r"val_accuracy: [0-9.]+ - val_loss: [0-9.]+$", last), last
    assert metric(last, "val_accuracy") > 0.95
    test_acc = float(stdout_lines(code[4])[1].split(":")[1])
    assert test_acc > 0.95


def test_seed_notebook(tmp_path, monkeypatch):
    nb = execute("seed_notebook.ipynb", tmp_path, monkeypatch)
    code = [c for c in nb.cells if c.cell_type == "code"]
    fit = stdout_lines(code[3])
    assert fit[0] == "Epoch 1/1"
    assert re.match(r"600/600 ━{20} \S+ \d+ms/step - accuracy: [0-9.]+ - loss: [0-9.]+ - "
                    r"val_accuracy: [0-9.]+ - val_loss: [0-9.]+$", fit[1]), fit[1]
    assert metric(fit[1], "val_accuracy") > 0.97
    assert float(stdout_lines(code[4])[1].split(":")[1]) > 0.97
    full, weights = tmp_path / "cnn_mnist.h5", tmp_path / "cnn_mnist_weights.h5"
    assert full.exists() and weights.exists()
    pytest.importorskip("tensorflow")
    import keras
    model = keras.saving.load_model(full, compile=False)
    again = keras.Sequential.from_config(model.get_config())
    again.load_weights(weights)  # Keras 2's save_weights layout, read by Keras 3
    x = np.random.default_rng(0).random((2, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
