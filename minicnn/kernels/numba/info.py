"""What the numba backend does in this process: threading layer, threads, BLAS, tiles, the
instruction set its kernels are compiled for, and which kernels an operation actually ran.

* :func:`threading_info` - the process-wide settings (threads, OpenMP policy, BLAS, tiles switch).
* :func:`codegen_isa` - the CPU numba compiles for (``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES``, else
  the host) and so the widest vectors the kernels may use: "AVX-512", "AVX2" or narrower.
* :func:`trace_kernels` - a context manager that records every kernel of this package called from
  Python while it is open (the Python tier picks each op's path, so that is where a path shows):
  a benchmark runs one forward/backward inside it and reports what ran, measured rather than
  re-derived from the selection rules.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading

import llvmlite.binding as _llvm
import numba
import numpy as np
from numba.core import config as _numba_config
from numba.core import types as numba_types
from numba.core.registry import CPUDispatcher

from .. import numpy_backend as _ref
from . import blas, config
from .elementwise import _relu_fwd
from .fpu import X86

__all__ = ["threading_info", "codegen_isa", "trace_kernels", "path_of", "kernel_kind"]

#: the package whose modules :func:`trace_kernels` instruments
_PACKAGE = __name__.rsplit(".", 1)[0]


def threading_info() -> dict:
    """numba's threading layer and thread count, and how BLAS is used (runs a tiny parallel kernel
    first if none has run yet, because numba picks its layer lazily)."""
    try:
        layer = numba.threading_layer()
    except ValueError:
        z = np.zeros(4, dtype=np.float32)
        _relu_fwd(z, z.copy())
        layer = numba.threading_layer()
    return {
        "layer": layer,
        "num_threads": int(numba.get_num_threads()),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "omp_wait_policy_set_by_minicnn": config.OMP_POLICY_SET_HERE,
        "fma_tiles": bool(config.TILES),
        "denormals_flushed_in_kernels": bool(X86),
        "blas_in_numba": bool(blas.FAST),
        "blas_library": blas.openblas.path,
        "blas_corename": blas.openblas.corename,
        "blas_huge_pages": blas.openblas.huge_pages,
        "blas_threads_outside_calls": blas.openblas.threads(),
        "codegen": codegen_isa(),
    }


def _feature_flags(features: str) -> dict:
    """{"avx2": True, "avx512f": False, ...} from an LLVM feature string "+avx2,-avx512f,..."."""
    out = {}
    for tok in (features or "").split(","):
        tok = tok.strip()
        if len(tok) > 1 and tok[0] in "+-":
            out[tok[1:]] = tok[0] == "+"
    return out


def codegen_isa() -> dict:
    """The CPU and features numba generates code for, as numba itself decides them (numba's
    ``_get_host_cpu_name``/``_get_host_cpu_features``: ``NUMBA_CPU_NAME`` else the host's name;
    ``NUMBA_CPU_FEATURES`` else the host's features, even when only the name is overridden).

    Returns {"cpu_name", "cpu_name_source", "features_source", "avx512f", "avx2", "fma",
    "vector_isa", "host_cpu", "host_avx512f"}; ``vector_isa`` is "AVX-512" when the target has
    avx512f, "AVX2" with avx2 (and FMA), else "SSE/other". A named CPU without explicit features
    gets LLVM's defaults for that CPU *plus* the host features, so "haswell" alone still allows
    AVX-512 on an AVX-512 host: this reports that as AVX-512 too.
    """
    host = _llvm.get_host_cpu_name()
    try:
        host_features = _llvm.get_host_cpu_features().flatten()
    except Exception:  # noqa: BLE001 - feature query unsupported on this platform
        host_features = ""
    name = _numba_config.CPU_NAME or host
    feats = _numba_config.CPU_FEATURES if _numba_config.CPU_FEATURES is not None else host_features
    flags = _feature_flags(feats)
    host_flags = _feature_flags(host_features)
    if _numba_config.CPU_FEATURES is not None and name != host:
        # explicit features are added to the named CPU's own: haswell implies avx2/fma, not avx512f
        implied = {"haswell", "broadwell", "skylake", "znver1", "znver2", "znver3", "alderlake"}
        for k in ("avx2", "fma"):
            flags.setdefault(k, name in implied)
    avx512 = bool(flags.get("avx512f", False))
    avx2 = bool(flags.get("avx2", False))
    return {"cpu_name": name, "cpu_name_source": "NUMBA_CPU_NAME" if _numba_config.CPU_NAME else "host",
            "features_source": "NUMBA_CPU_FEATURES" if _numba_config.CPU_FEATURES is not None else "host",
            "avx512f": avx512, "avx2": avx2, "fma": bool(flags.get("fma", False)),
            "vector_isa": "AVX-512" if avx512 else "AVX2" if avx2 else "SSE/other",
            "host_cpu": host, "host_avx512f": bool(host_flags.get("avx512f", False))}


#: numpy-backend helpers the numba paths use for layout or bookkeeping (not a fallback to numpy maths)
NUMPY_HELPERS = frozenset({"pad_nhwc", "windows", "im2col", "col2im", "all_finite", "avgpool2d_counts"})


#: the kind of each kernel :func:`trace_kernels` has seen ("module.function" -> kind)
_KINDS: dict[str, str] = {}


def kernel_kind(dispatcher, depth: int = 2) -> str:
    """"FMA tiles" if the kernel (or a jitted function it calls, ``depth`` levels down) uses the
    tiles, else "BLAS GEMM" if it calls BLAS, else "numba loops"; read from the names its Python
    source refers to (``co_names``), since its name need not say (``dense._dense_fwd`` calls
    ``blas.gemm``)."""
    seen, kinds = set(), set()

    def visit(d, level):
        py = getattr(d, "py_func", None)
        if py is None or id(py) in seen:
            return
        seen.add(id(py))
        refs = set(py.__code__.co_names) | {py.__name__}
        for c in py.__code__.co_consts:  # nested code objects (closures, comprehensions)
            if hasattr(c, "co_names"):
                refs |= set(c.co_names)
        if any("tile" in r.lower() for r in refs):
            kinds.add("FMA tiles")
        if any("gemm" in r.lower() for r in refs):
            kinds.add("BLAS GEMM")
        if level < depth:
            for r in refs:
                g = py.__globals__.get(r)
                if isinstance(g, CPUDispatcher):
                    visit(g, level + 1)

    visit(dispatcher, 0)
    return "FMA tiles" if "FMA tiles" in kinds else "BLAS GEMM" if kinds else "numba loops"


def path_of(names) -> str:
    """The kind of code a list of traced kernel names (:func:`trace_kernels`) ran: "FMA tiles",
    "BLAS GEMM" (im2col + GEMM, or GEMMs in slices, called from numba), "numpy fallback" (the
    numpy backend's maths, e.g. products below ``config.SMALL_GEMM``), "numba loops" (every other
    jitted kernel), joined with " + " in first-use order when an op used several (e.g. a conv
    backward with dkernel on the tiles and dx by GEMM); "" when nothing ran."""
    kinds = []
    for n in names:
        mod, _, func = n.partition(".")
        if mod == "numpy_backend":
            if func in NUMPY_HELPERS:
                continue
            kind = "numpy fallback"
        else:
            low = n.split("[")[0]
            kind = _KINDS.get(low) or ("FMA tiles" if "tile" in func.lower() else "BLAS GEMM" if "gemm" in func.lower()
                                       else "numba loops")
        if kind not in kinds:
            kinds.append(kind)
    return " + ".join(kinds)


@contextlib.contextmanager
def trace_kernels():
    """Record the kernels called from Python while open: yields a list that fills with
    "module.function" names in first-call order, each once, e.g. ["numpy_backend.pad_nhwc",
    "conv._conv_tiles[0]"] for a float32 conv forward on the tiles (``[m]``: the int first
    argument, the mode of a multi-mode kernel).

    Instruments, for the duration, every global of this package's modules that is one of its
    jitted kernels (a numba dispatcher), and the numpy backend's public functions (recorded as
    "numpy_backend.NAME", without what they call in turn). Calls from compiled code to compiled
    code are not seen (resolved when compiled); the Python tier, which picks each op's path, is.
    A kernel compiled while the trace is open still compiles (its callees' wrappers type as the
    dispatchers they wrap); the first call's compile time lands inside the traced code. Kernels
    that :func:`.fanout.run` calls on its pool threads are recorded (once, like the others); open
    it from one thread at a time.
    """
    names: list[str] = []
    lock = threading.Lock()
    depth = {"numpy": 0}
    wrappers: dict[int, object] = {}
    patched: list[tuple[object, str, object]] = []

    def wrap(obj, name, numpy_side):
        if id(obj) in wrappers:
            return wrappers[id(obj)]

        def call(*args, **kwargs):
            if not depth["numpy"]:
                mode = args[0] if args and isinstance(args[0], int) and not isinstance(args[0], bool) else None
                key = name if mode is None or numpy_side else f"{name}[{mode}]"
                with lock:  # (fanout.run calls kernels from its pool threads too)
                    if key not in names:
                        names.append(key)
            depth["numpy"] += numpy_side
            try:
                return obj(*args, **kwargs)
            finally:
                depth["numpy"] -= numpy_side

        wrapper = functools.wraps(getattr(obj, "py_func", obj))(call)
        if isinstance(obj, CPUDispatcher):
            # a kernel compiled while the trace is open looks its callees up in its module's
            # globals and finds this wrapper: numba's typeof reads ``_numba_type_``, so it types
            # (and lowers) the call as one to the dispatcher itself, not seen by the trace
            wrapper._numba_type_ = numba_types.Dispatcher(obj)
        wrappers[id(obj)] = wrapper
        return wrapper

    try:
        for modname, mod in sorted(sys.modules.items()):
            if mod is None or not modname.startswith(_PACKAGE + "."):
                continue
            for key, obj in list(vars(mod).items()):
                home = getattr(getattr(obj, "py_func", None), "__module__", "") or ""
                if isinstance(obj, CPUDispatcher) and home.startswith(_PACKAGE + "."):
                    name = f"{home.rsplit('.', 1)[-1]}.{obj.__name__}"
                    if name not in _KINDS:
                        _KINDS[name] = kernel_kind(obj)
                    patched.append((mod, key, obj))
                    setattr(mod, key, wrap(obj, name, 0))
        for key, obj in list(vars(_ref).items()):
            if (not key.startswith("_") and type(obj).__name__ == "function"
                    and getattr(obj, "__module__", None) == _ref.__name__):
                patched.append((_ref, key, obj))
                setattr(_ref, key, wrap(obj, f"numpy_backend.{key}", 1))
        yield names
    finally:
        for mod, key, obj in reversed(patched):
            setattr(mod, key, obj)
