"""What machine the numbers come from: CPU, microarchitecture, ISA, BLAS, threads, versions.

Everything here is read, never changed. :func:`parse_cpuinfo` and :func:`microarchitecture` are
pure functions of their text/numbers so they can be tested on any machine's ``/proc/cpuinfo``.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

#: environment variables that change what the benchmark measures
ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
            "OMP_WAIT_POLICY", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER",
            "MINICNN_BACKEND", "TF_ENABLE_ONEDNN_OPTS", "TF_NUM_INTRAOP_THREADS")
#: ISA extensions worth naming in a benchmark report (in this order)
ISA_FLAGS = ("sse4_2", "avx", "fma", "avx2", "avx512f", "avx512dq", "avx512bw", "avx512vl",
             "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8",
             "asimd", "sve")

# (family, first model, last model) -> name; Intel family 6 by model, AMD by family and model range
_INTEL6 = {
    0x3C: "Haswell", 0x3F: "Haswell-E/EP", 0x45: "Haswell", 0x46: "Haswell",
    0x3D: "Broadwell", 0x47: "Broadwell", 0x4F: "Broadwell-E/EP", 0x56: "Broadwell-DE",
    0x4E: "Skylake", 0x5E: "Skylake", 0x55: "Skylake-SP", 0x8E: "Kaby/Coffee/Whiskey Lake",
    0x9E: "Kaby/Coffee Lake", 0xA5: "Comet Lake", 0xA6: "Comet Lake", 0x66: "Cannon Lake",
    0x7D: "Ice Lake", 0x7E: "Ice Lake", 0x6A: "Ice Lake-SP", 0x6C: "Ice Lake-D",
    0x8C: "Tiger Lake", 0x8D: "Tiger Lake", 0xA7: "Rocket Lake", 0x97: "Alder Lake",
    0x9A: "Alder Lake", 0xB7: "Raptor Lake", 0xBA: "Raptor Lake", 0xBF: "Raptor Lake",
    0xAA: "Meteor Lake", 0xAC: "Meteor Lake", 0xBD: "Lunar Lake", 0xC5: "Arrow Lake",
    0xC6: "Arrow Lake", 0x8F: "Sapphire Rapids", 0xCF: "Emerald Rapids", 0xAD: "Granite Rapids",
    0xAE: "Granite Rapids-D", 0xAF: "Sierra Forest", 0xDD: "Clearwater Forest",
}
_AMD = [  # (family, first model, last model, name)
    (0x17, 0x00, 0x2F, "Zen / Zen+"), (0x17, 0x30, 0xFF, "Zen 2"),
    (0x19, 0x00, 0x0F, "Zen 3"), (0x19, 0x10, 0x1F, "Zen 4"), (0x19, 0x20, 0x5F, "Zen 3"),
    (0x19, 0x60, 0xAF, "Zen 4"), (0x1A, 0x00, 0xFF, "Zen 5"),
]


def parse_cpuinfo(text: str) -> dict:
    """Vendor, family/model/stepping, model name, flags, MHz and core counts from cpuinfo text."""
    procs, cur = [], {}
    for line in text.splitlines():
        if not line.strip():
            if cur:
                procs.append(cur)
                cur = {}
            continue
        if ":" in line:
            k, v = line.split(":", 1)
            cur[k.strip()] = v.strip()
    if cur:
        procs.append(cur)
    if not procs:
        return {}
    p = procs[0]

    def num(key):
        try:
            return int(p[key], 0)
        except (KeyError, ValueError):
            return None

    cores = {(q.get("physical id"), q.get("core id")) for q in procs if "core id" in q}
    flags = (p.get("flags") or p.get("Features") or "").split()
    try:
        mhz = float(p["cpu MHz"])
    except (KeyError, ValueError):
        mhz = None
    return {"vendor": p.get("vendor_id") or p.get("CPU implementer"), "family": num("cpu family"),
            "model": num("model"), "stepping": num("stepping"),
            "model_name": p.get("model name") or p.get("Processor") or p.get("CPU part"),
            "flags": flags, "mhz": mhz, "cache": p.get("cache size"),
            "logical_cpus": sum(1 for q in procs if "processor" in q),
            "physical_cores": len(cores) or None}


def microarchitecture(vendor, family, model, stepping=None) -> str | None:
    """The microarchitecture's name from CPUID vendor/family/model (None if unknown)."""
    if family is None or model is None:
        return None
    if vendor == "GenuineIntel" and family == 6:
        name = _INTEL6.get(model)
        if model == 0x55 and stepping is not None:  # one model number, three generations
            name = "Cooper Lake" if stepping >= 10 else "Cascade Lake" if stepping >= 5 else "Skylake-SP"
        return name
    if vendor in ("AuthenticAMD", "HygonGenuine"):
        for fam, lo, hi, name in _AMD:
            if family == fam and lo <= model <= hi:
                return name
    return None


def isa(flags) -> list[str]:
    fl = set(flags or ())
    return [f for f in ISA_FLAGS if f in fl]


def _openblas_lib():
    """numpy's OpenBLAS (the scipy_openblas build numpy wheels bundle), found in this process's
    memory map once numpy is imported; (ctypes library, path, symbol suffix) or None."""
    import numpy  # noqa: F401 - loads the BLAS

    try:
        with open("/proc/self/maps") as f:
            paths = sorted({ln.split()[-1] for ln in f if "openblas" in ln.lower() and ".so" in ln})
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas_", "64_"), ("scipy_openblas_", ""), ("openblas_", "64_"),
                               ("openblas_", "")):
            if hasattr(lib, f"{prefix}get_corename{suffix}"):
                return lib, path, prefix, suffix
    return None


def blas_info() -> dict:
    """numpy's BLAS: library, version, core type (the kernels OpenBLAS picked), threads."""
    out = {}
    try:
        import numpy as np

        deps = np.show_config(mode="dicts").get("Build Dependencies", {})
        b = deps.get("blas", {})
        out.update({"name": b.get("name"), "version": b.get("version")})
    except Exception as exc:  # noqa: BLE001 - informational only
        out["show_config_error"] = f"{type(exc).__name__}: {exc}"
    try:
        import threadpoolctl

        for pool in threadpoolctl.threadpool_info():
            if pool.get("user_api") == "blas":
                out.update({"library": pool.get("filepath"), "internal_api": pool.get("internal_api"),
                            "core_type": pool.get("architecture"), "threads": pool.get("num_threads"),
                            "version": pool.get("version") or out.get("version"), "via": "threadpoolctl"})
                return out
    except ImportError:
        pass
    found = _openblas_lib()
    if found is None:
        out["via"] = "numpy.show_config (no OpenBLAS symbols found)"
        return out
    lib, path, prefix, suffix = found
    get = lambda name, restype: _call(lib, f"{prefix}{name}{suffix}", restype)  # noqa: E731
    core = get("get_corename", ctypes.c_char_p)
    config = get("get_config", ctypes.c_char_p)
    out.update({"library": path, "internal_api": "openblas", "threads": get("get_num_threads", ctypes.c_int),
                "core_type": core.decode() if core else None,
                "config": config.decode() if config else None, "via": "ctypes (OpenBLAS API)"})
    return out


def _call(lib, name, restype):
    fn = getattr(lib, name, None)
    if fn is None:
        return None
    fn.restype = restype
    return fn()


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for mod, dists in (("numpy", ["numpy"]), ("numba", ["numba"]), ("llvmlite", ["llvmlite"]),
                       ("tensorflow", ["tensorflow", "tensorflow-cpu", "tensorflow-intel"]),
                       ("keras", ["keras"]), ("torch", ["torch"]), ("matplotlib", ["matplotlib"]),
                       ("psutil", ["psutil"]), ("threadpoolctl", ["threadpoolctl"])):
        out[mod] = None
        for dist in dists:
            try:
                out[mod] = version(dist) if dist == mod else f"{version(dist)} ({dist})"
                break
            except PackageNotFoundError:
                continue
    return out


def machine_info(cpuinfo_path="/proc/cpuinfo") -> dict:
    """Everything above, for this process (numpy's BLAS is loaded to ask it)."""
    try:
        with open(cpuinfo_path) as f:
            cpu = parse_cpuinfo(f.read())
    except OSError:
        cpu = {}
    info = {"cpu_model": cpu.get("model_name") or platform.processor() or None,
            "vendor": cpu.get("vendor"), "family": cpu.get("family"), "model": cpu.get("model"),
            "stepping": cpu.get("stepping"),
            "microarchitecture": microarchitecture(cpu.get("vendor"), cpu.get("family"), cpu.get("model"),
                                                   cpu.get("stepping")),
            "isa": isa(cpu.get("flags")), "flags": cpu.get("flags", []), "nominal_mhz": cpu.get("mhz"),
            "cache": cpu.get("cache"), "logical_cpus": os.cpu_count(),
            "physical_cores": cpu.get("physical_cores"),
            "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "platform": platform.platform(), "machine": platform.machine(),
            "env": {k: os.environ.get(k) for k in ENV_VARS}, "versions": versions(), "blas": blas_info()}
    try:
        import psutil

        info["ram_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    return info
