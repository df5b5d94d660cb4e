"""benchmarks.config_sweep: its arguments are checked, a real sweep times every value against the
shipped one and puts the shipped value back."""

from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("minicnn.kernels.numba_backend")

from benchmarks import config_sweep  # noqa: E402
from minicnn import kernels  # noqa: E402
from minicnn.kernels.numba import config  # noqa: E402


@pytest.mark.parametrize("text, message", [
    ("NOPE=1,2", "expected NAME=v1"),
    ("DENSE_TILE_ROWS", "expected NAME=v1"),
    ("DENSE_TILE_ROWS=32,x", "'x' is not an integer"),
    ("DENSE_TILE_ROWS=8", "must be >= 16"),
    ("DENSE_TILE_ROWS=40", "a multiple of 16"),
    ("CHUNK_ROWS=0", "must be >= 1"),
    ("BN_BLOCK=64,64", "given twice"),
])
def test_bad_params_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        config_sweep.parse_param(text)


def test_params_and_cases_parse():
    assert config_sweep.parse_param("DENSE_TILE_MAX_SAMPLES=0,512") == ("DENSE_TILE_MAX_SAMPLES", [0, 512])
    assert config_sweep.parse_case("step:seed:100") == ("step", "seed", 100)
    assert config_sweep.parse_case("latency:lenet5") == ("latency", "lenet5", 1)


@pytest.mark.parametrize("text, message", [
    ("train:seed:100", "expected step:PRESET:BATCH"),
    ("latency:seed:1", "expected step:PRESET:BATCH"),
    ("step:resnet:100", "unknown preset 'resnet'"),
    ("step:seed:lots", "'lots' is not an integer"),
    ("predict:seed:100000", "outside 1..4096"),
])
def test_bad_cases_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        config_sweep.parse_case(text)


def test_a_sweep_times_every_value_and_restores_the_shipped_one(tmp_path, capsys, monkeypatch, request):
    monkeypatch.setenv("MINICNN_THREAD_PICK", "1")
    request.addfinalizer(lambda before=kernels.backend_name(): kernels.use_backend(before))
    kernels.use_backend("numpy")  # the sweep runs on numba and gives the caller's backend back
    shipped = config.DENSE_TILE_MAX_SAMPLES
    out = tmp_path / "sweep.json"
    assert config_sweep.main(["--param", "DENSE_TILE_MAX_SAMPLES=0", "--case", "step:seed:8", "--rounds", "2",
                              "--calls", "1", "--json", str(out)]) == 0
    assert config.DENSE_TILE_MAX_SAMPLES == shipped
    assert os.environ["MINICNN_THREAD_PICK"] == "1"  # picking was off during the sweep only
    assert kernels.backend_name() == "numpy"
    (res,) = json.loads(out.read_text())["results"]
    assert res["case"] == "step seed batch 8" and res["param"] == "DENSE_TILE_MAX_SAMPLES"
    got = res["values"]
    assert set(got) == {"0", str(shipped)} and got[str(shipped)]["shipped"] and not got["0"]["shipped"]
    assert got[str(shipped)]["ratio_to_shipped"] == 1.0
    for g in got.values():
        assert len(g["ms"]) == 2 and all(t > 0 for t in g["ms"])
    ratios = [a / b for a, b in zip(got["0"]["ms"], got[str(shipped)]["ms"])]
    assert got["0"]["ratio_to_shipped"] == pytest.approx(sum(ratios) / 2)  # the median of two
    assert (got["0"]["min"], got["0"]["max"]) == (min(ratios), max(ratios))
    assert "| 0 |" in capsys.readouterr().out


def test_bad_arguments_exit_with_a_message(capsys):
    with pytest.raises(SystemExit):
        config_sweep.main(["--param", "NOPE=1", "--case", "step:seed:8"])
    assert "expected NAME=v1" in capsys.readouterr().err
