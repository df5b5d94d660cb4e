"""benchmarks.blas_buffers: one real round (slow) — both settings measured, the advice on in one
child and off in the other, ratios written."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("minicnn.kernels.numba_backend")

from benchmarks import blas_buffers  # noqa: E402


@pytest.mark.slow
def test_one_round_measures_both_settings(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert blas_buffers.main(["--preset", "seed", "--batch", "8", "--rounds", "1", "--steps", "2",
                              "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    (rnd,) = r["rounds"]
    assert rnd["off"]["huge_pages"] == "off (MINICNN_BLAS_HUGEPAGES=0)"
    assert not rnd["on"]["huge_pages"].startswith("off")
    assert rnd["on"]["dense shape"] == [8, 36864, 128]
    for m in blas_buffers.MEASURES:
        assert rnd["on"][m] > 0 and rnd["off"][m] > 0
        assert r["summary"][m]["median_ratio_off_over_on"] == pytest.approx(rnd["off"][m] / rnd["on"][m])
    assert "off/on median" in capsys.readouterr().out
