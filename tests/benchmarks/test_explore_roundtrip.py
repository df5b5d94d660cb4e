"""The explore round-trip benchmark runs (a smoke test with two requests; the figures are the
README's, measured with the full run)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from benchmarks import explore_roundtrip  # noqa: E402


@pytest.fixture
def keep_backend():
    import minicnn.kernels as kernels
    previous = kernels._current
    yield
    kernels._current = previous


def test_explore_roundtrip_smoke(tmp_path, capsys, keep_backend):
    out = tmp_path / "rt.json"
    assert explore_roundtrip.main(["-n", "2", "--no-browser", "--backend", "numpy", "--model", "pooled",
                                   "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["http"]["n"] == 2 and res["http"]["median_ms"] > 0 and res["http"]["response_bytes"] > 10_000
