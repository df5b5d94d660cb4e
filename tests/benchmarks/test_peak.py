"""The FMA peak probe (benchmarks.peak): assembly evidence and a short real run."""

from __future__ import annotations

import platform

import pytest

from benchmarks import peak

LOOP = """
\tvbroadcastss\t(%rcx), %zmm1
.LBB0_1:
\tvfmadd213ps\t%zmm2, %zmm1, %zmm0
\tvfmadd213ps\t%zmm2, %zmm1, %zmm3
\tdecq\t%rax
\tjne\t.LBB0_1
\tvaddps\t%zmm3, %zmm0, %zmm0
\tretq
"""


def test_asm_evidence_finds_the_loop():
    ev = peak.asm_evidence(LOOP, "float32", 512)
    assert ev["ok"] and ev["fma_instructions_in_loop"] == 2 and ev["by_register"]["zmm"] == 2
    assert ev["other_instructions_in_loop"] == ["decq\t%rax", "jne\t.LBB0_1"]
    assert not peak.asm_evidence(LOOP, "float32", 256)["ok"]  # zmm where ymm was asked
    assert not peak.asm_evidence(LOOP, "float64", 512)["ok"]  # no ...pd FMA at all


def test_asm_evidence_sees_spills():
    spilled = LOOP.replace("\tdecq", "\tvmovups\t-64(%rsp), %zmm5\n\tdecq")
    ev = peak.asm_evidence(spilled, "float32", 512)
    assert ev["stack_refs_in_loop"] == 1 and not ev["ok"]


def test_vector_bits():
    assert peak.vector_bits(["avx", "fma", "avx2", "avx512f"]) == 512
    assert peak.vector_bits(["avx", "fma", "avx2"]) == 256
    assert peak.vector_bits(["sse2"]) == 128


def test_plausibility():
    p = peak.plausibility(170.0, 16, 2.7, 2, 340.0)
    assert p["fma_units_estimate"] == 2 and not p["disturbed"]
    assert p["expected_gflops_per_core"] == pytest.approx(2 * 16 * 2 * 2.7)
    assert peak.plausibility(170.0, 16, 2.7, 2, 110.0)["disturbed"]
    assert peak.plausibility(130.0, 16, 2.7, 2, 260.0)["fma_units_estimate"] is None  # 1.5 per cycle
    assert peak.plausibility(250.0, 16, 2.7, 2, 500.0)["fma_units_estimate"] is None  # 3: a slow clock


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86 vector FMA")
def test_probe_emits_vector_fmas_and_runs():
    from benchmarks.machine import parse_cpuinfo

    with open("/proc/cpuinfo") as f:
        flags = parse_cpuinfo(f.read()).get("flags", [])
    r = peak.fma_probe("float32", flags, seconds=0.01, repeats=2)
    assert r["asm"]["ok"], r["asm"]
    assert r["asm"]["fma_instructions_in_loop"] == peak.UNROLL * r["chains"]
    assert r["per_core_gflops"] > 1 and r["all_cores_gflops"] > 1
    assert peak.clock_probe(seconds=0.01, repeats=2)["ghz"] > 0.3


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86 inline assembly")
def test_clock_probe_ends_when_compiled_for_zen(tmp_path):
    """The clock's inline ``add`` chain declares that it clobbers the flags. Without that, LLVM
    tuning for Zen (``znver3``/``znver4``, the host CPU on AMD EPYC) put the loop counter's ``decq``
    before the asm and its ``jne`` after it, so the branch read the flags the adds had set and the
    loop never ended: seen as a hung test suite on an EPYC. Compiled for znver4 on any x86 machine (the
    loop is integer code only), the probe must end and read a plausible clock."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(peak.__file__).resolve().parents[1]
    env = {**os.environ, "NUMBA_CPU_NAME": "znver4", "NUMBA_CACHE_DIR": str(tmp_path),
           "PYTHONPATH": str(root)}
    code = "from benchmarks import peak; print(peak.clock_probe(seconds=0.01, repeats=1)['ghz'])"
    try:
        out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True,
                             timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("the clock probe compiled for znver4 did not end within 120 s (its loop never exits)")
    assert out.returncode == 0, out.stderr
    assert 0.3 < float(out.stdout.strip().splitlines()[-1]) < 8
