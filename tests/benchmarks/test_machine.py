"""Machine description parsing (benchmarks.machine) on sample /proc/cpuinfo texts."""

from __future__ import annotations

from benchmarks import machine

INTEL = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 207
model name\t: Intel(R) Xeon(R) Processor
stepping\t: 2
cpu MHz\t\t: 2100.000
cache size\t: 307200 KB
physical id\t: 0
core id\t\t: 0
flags\t\t: fpu sse sse2 sse4_2 avx fma avx2 avx512f avx512bw avx512vl avx512_vnni amx_tile

processor\t: 1
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 207
physical id\t: 0
core id\t\t: 1
flags\t\t: fpu sse sse2 sse4_2 avx fma avx2 avx512f avx512bw avx512vl avx512_vnni amx_tile
"""

AMD = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC 9R14 96-Core Processor
stepping\t: 1
physical id\t: 0
core id\t\t: 0
flags\t\t: fpu sse4_2 avx fma avx2 avx512f

processor\t: 1
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
physical id\t: 0
core id\t\t: 0
flags\t\t: fpu sse4_2 avx fma avx2 avx512f
"""


def test_parse_intel():
    c = machine.parse_cpuinfo(INTEL)
    assert (c["vendor"], c["family"], c["model"], c["stepping"]) == ("GenuineIntel", 6, 207, 2)
    assert c["model_name"] == "Intel(R) Xeon(R) Processor" and c["mhz"] == 2100.0
    assert c["logical_cpus"] == 2 and c["physical_cores"] == 2
    assert "avx512f" in c["flags"]
    assert machine.microarchitecture(c["vendor"], c["family"], c["model"], c["stepping"]) == "Emerald Rapids"
    assert machine.isa(c["flags"]) == ["sse4_2", "avx", "fma", "avx2", "avx512f", "avx512bw", "avx512vl",
                                       "avx512_vnni", "amx_tile"]


def test_parse_amd_smt_siblings_share_a_core():
    c = machine.parse_cpuinfo(AMD)
    assert c["logical_cpus"] == 2 and c["physical_cores"] == 1
    assert machine.microarchitecture(c["vendor"], c["family"], c["model"]) == "Zen 4"


def test_microarchitecture_table():
    assert machine.microarchitecture("GenuineIntel", 6, 0x55, 7) == "Cascade Lake"
    assert machine.microarchitecture("GenuineIntel", 6, 0x55, 4) == "Skylake-SP"
    assert machine.microarchitecture("GenuineIntel", 6, 0x8F) == "Sapphire Rapids"
    assert machine.microarchitecture("AuthenticAMD", 0x17, 0x31) == "Zen 2"
    assert machine.microarchitecture("AuthenticAMD", 0x1A, 0x02) == "Zen 5"
    assert machine.microarchitecture("GenuineIntel", 6, 0x01) is None
    assert machine.microarchitecture(None, None, None) is None
    assert machine.parse_cpuinfo("") == {}


def test_machine_info_here():
    m = machine.machine_info()
    assert m["logical_cpus"] >= 1
    assert "OPENBLAS_CORETYPE" in m["env"] and "OPENBLAS_L2_SIZE" in m["env"]
    assert m["versions"]["numpy"]
    assert "blas" in m
