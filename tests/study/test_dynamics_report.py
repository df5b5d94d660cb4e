"""`minicnn train` records the training dynamics into its history by default and `minicnn report`
draws one figure per quantity (a 3-epoch run on a tiny MNIST)."""

from __future__ import annotations

import json

import pytest

from minicnn.cli import main
from tests.helpers import write_fake_mnist


def test_three_epoch_run_report_shows_dynamics(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("MINICNN_OFFLINE", "1")
    data = write_fake_mnist(tmp_path / "data", n_train=100, n_test=20)
    out = tmp_path / "m.npz"
    assert main(["train", "--preset", "pooled", "--data-dir", str(data), "--epochs", "3", "--batch-size", "25",
                 "--out", str(out), "--verbose", "0", "--backend", "numpy"]) == 0
    hist = json.loads((tmp_path / "m.history.json").read_text())
    assert set(hist["dynamics"]) == {"grad_norm", "update_ratio", "dead_relu", "maxpool_ties", "act_mean", "act_std"}
    assert all(len(v) == 3 for per in hist["dynamics"].values() for v in per.values())
    assert set(hist["dynamics"]["maxpool_ties"]) == {"max_pooling2d"}
    assert main(["report", str(out), "--data-dir", str(data), "--out", str(tmp_path / "rep"),
                 "--backend", "numpy"]) == 0
    report = (tmp_path / "rep" / "report.md").read_text()
    for q in hist["dynamics"]:
        assert (tmp_path / "rep" / f"dynamics-{q}.png").exists()
        assert f"](dynamics-{q}.png)" in report
    assert main(["train", "--preset", "pooled", "--data-dir", str(data), "--epochs", "1", "--no-dynamics",
                 "--out", str(tmp_path / "n.npz"), "--verbose", "0", "--backend", "numpy"]) == 0
    assert "dynamics" not in json.loads((tmp_path / "n.history.json").read_text())
