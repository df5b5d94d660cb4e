"""Report computations and figures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from minicnn.errors import MiniCNNError
from minicnn.study import confusion_matrix, load_history, most_confident_errors


def test_confusion_matrix_rows_are_true_classes():
    cm = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert cm.sum() == 6


def test_most_confident_errors():
    probs = np.array([[0.9, 0.1],    # right
                      [0.2, 0.8],    # wrong (true 0), p=0.8
                      [0.4, 0.6],    # wrong, p=0.6
                      [0.05, 0.95],  # right
                      [0.99, 0.01],  # wrong (true 1), p=0.99
                      [0.2, 0.8]])   # wrong, p=0.8, later index
    y = np.array([0, 0, 0, 1, 1, 0])
    np.testing.assert_array_equal(most_confident_errors(probs, y, 3), [4, 1, 5])
    assert most_confident_errors(probs[[0, 3]], y[[0, 3]]).size == 0


def test_load_history_checks_the_file(tmp_path):
    good = tmp_path / "h.json"
    good.write_text(json.dumps({"epoch": [0], "history": {"loss": [0.3]}}))
    assert load_history(good)["history"]["loss"] == [0.3]
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(MiniCNNError, match="cannot read history file"):
        load_history(bad)
    bad.write_text(json.dumps({"loss": 1}))
    with pytest.raises(MiniCNNError, match="no 'history' mapping"):
        load_history(bad)


def test_report_figures_content():
    pytest.importorskip("matplotlib")
    from minicnn.study import figure_axes_with_images, plot_confusion, plot_errors, plot_history
    hist = {"epoch": [0, 1, 2], "history": {"loss": [0.5, 0.3, 0.2], "accuracy": [0.8, 0.9, 0.95],
                                            "val_loss": [0.4, 0.3, 0.3], "val_accuracy": [0.85, 0.9, 0.91]},
            "test_accuracy": 0.9}
    fig = plot_history(hist)
    loss_ax, acc_ax = fig.axes
    assert [list(line.get_ydata()) for line in loss_ax.lines[:2]] == [[0.5, 0.3, 0.2], [0.4, 0.3, 0.3]]
    assert list(loss_ax.lines[0].get_xdata()) == [1, 2, 3]
    assert [t.get_text() for t in acc_ax.get_legend().get_texts()] == ["training", "validation", "test (0.9000)"]

    cm = confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], 3)
    fig = plot_confusion(cm)
    (ax,) = figure_axes_with_images(fig)
    assert sorted(t.get_text() for t in ax.texts) == ["1", "1", "1", "1"]

    x = np.random.default_rng(0).random((5, 28, 28, 1))
    probs = np.full((5, 3), 0.1)
    probs[:, 0] = 0.8
    fig = plot_errors(x, np.array([1, 2, 0, 1, 2]), probs, [0, 1, 3], labels=["a", "b", "c"])
    panels = figure_axes_with_images(fig)
    assert len(panels) == 3
    assert panels[0].get_title() == "true b / pred a\np=0.800  #0"
    np.testing.assert_array_equal(panels[2].images[0].get_array(), x[3, :, :, 0])
