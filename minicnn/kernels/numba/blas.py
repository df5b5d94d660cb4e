"""numpy's OpenBLAS called from inside numba kernels: the ``cblas_?gemm`` (and, for one-row
products, ``cblas_?gemv``) symbols and the library's thread-count switch.

Every GEMM of the numba backend is a call to OpenBLAS's ``cblas_?gemm`` made from *inside* a
numba ``prange`` loop, with OpenBLAS switched to one thread for the duration of the call (the
``with openblas:`` block; restored afterwards): numba's and OpenBLAS's thread pools alternating on
the same cores starve each other (an idle OpenBLAS worker spins ~0.1 s in ``sched_yield`` after
each call).

The symbols are those of the ILP64 ``scipy-openblas`` that numpy's wheels ship. If numpy's BLAS
is another one, :data:`FAST` is False and the GEMM-based paths fall back to the numpy backend;
with ``NUMBA_DISABLE_JIT`` too (external functions need compiled code).

**Huge pages for OpenBLAS's packing buffers.** A GEMM packs panels of A and B into a scratch
buffer, one 32 MiB anonymous ``mmap`` per concurrent caller, taken from a process-wide table by
``blas_memory_alloc``. Where transparent huge pages are opt-in (``/sys/kernel/mm/
transparent_hugepage/enabled`` says ``[madvise]``, the default of many distributions and of the
machines we run on), that buffer sits on 4 KiB pages, while numpy advises its own large arrays
onto 2 MiB pages. On a 2-core Zen 1 EPYC a single-threaded sgemm at the seed's dense1 shapes
(100 x 9216 @ 9216 x 128) took 23 ms in a fresh process and 7.7 ms once its buffer was advised
(``MADV_HUGEPAGE``); on a Zen 4 EPYC it made no measurable difference (0.99-1.00x, ``python -m
benchmarks.blas_buffers``). So at import the buffers that numba threads will use (one per
possible thread, and one more) are taken from the table, their mappings advised, and handed
back: :meth:`OpenBlas.advise_huge_pages`, its outcome in :attr:`OpenBlas.huge_pages`. The advice changes where memory comes from, never what
is computed; it is skipped where THP is ``always`` (nothing to do) or ``never``, off Linux, and
with ``MINICNN_BLAS_HUGEPAGES=0``.

Tiers: :class:`OpenBlas` (Python: loading, threads, buffers), :func:`gemm` (an ``@njit`` kernel on
raw addresses, for other kernels to call).
"""

from __future__ import annotations

import ctypes
import glob
import os
import re
import sys
import threading

import llvmlite.binding as _llvm
import numba
import numpy as np
from numba import njit, types

__all__ = ["OpenBlas", "openblas", "FAST", "gemm", "HUGEPAGES_ENV", "thp_mode"]

#: the environment variable that turns the buffers' huge-page advice off (``0``, ``off``, ...)
HUGEPAGES_ENV = "MINICNN_BLAS_HUGEPAGES"
_THP_ENABLED = "/sys/kernel/mm/transparent_hugepage/enabled"
_MADV_HUGEPAGE = 14  # <linux/mman.h>


def thp_mode(path: str = _THP_ENABLED) -> str | None:
    """The kernel's transparent-huge-page mode (``always``, ``madvise``, ``never``), or None where
    it cannot be read (not Linux, no THP support)."""
    try:
        with open(path) as f:
            m = re.search(r"\[(\w+)\]", f.read())
    except OSError:
        return None
    return m.group(1) if m else None


def _mappings_of(addrs, maps: str = "/proc/self/maps") -> set[tuple[int, int]]:
    """The (start, end) of each private anonymous writable mapping holding one of ``addrs`` (one
    read of the process's map; addresses in any other kind of mapping, or none, are left out)."""
    found = set()
    with open(maps) as f:
        for line in f:
            fields = line.split()
            lo, hi = (int(v, 16) for v in fields[0].split("-"))
            anonymous = len(fields) == 5 or fields[5] == ""
            if (anonymous and fields[1].startswith("rw") and fields[1][3] == "p"
                    and any(lo <= a < hi for a in addrs)):
                found.add((lo, hi))
    return found


class OpenBlas:
    """numpy's OpenBLAS: cblas ?gemm symbols for numba, and its thread-count switch.

    Use as a context manager around the launch of a kernel that calls :func:`gemm`: OpenBLAS runs
    single-threaded inside (nesting and concurrent callers are counted), and gets its thread
    count back when the last one leaves.
    """

    def __init__(self):
        self.lib = None
        self.path = None
        self.corename = None
        #: what :meth:`advise_huge_pages` did (a sentence, for reports)
        self.huge_pages = "not tried"
        self._lock = threading.Lock()
        self._depth = 0
        self._saved = None
        for path in self._candidates():
            try:
                lib = ctypes.CDLL(path)
                sgemm, dgemm = lib.scipy_cblas_sgemm64_, lib.scipy_cblas_dgemm64_
                sgemv, dgemv = lib.scipy_cblas_sgemv64_, lib.scipy_cblas_dgemv64_
                self._get, self._set = lib.scipy_openblas_get_num_threads64_, lib.scipy_openblas_set_num_threads64_
            except (OSError, AttributeError):
                continue
            self._get.restype = ctypes.c_int
            self._set.argtypes = [ctypes.c_int]
            _llvm.add_symbol("minicnn_cblas_sgemm64", ctypes.cast(sgemm, ctypes.c_void_p).value)
            _llvm.add_symbol("minicnn_cblas_dgemm64", ctypes.cast(dgemm, ctypes.c_void_p).value)
            _llvm.add_symbol("minicnn_cblas_sgemv64", ctypes.cast(sgemv, ctypes.c_void_p).value)
            _llvm.add_symbol("minicnn_cblas_dgemv64", ctypes.cast(dgemv, ctypes.c_void_p).value)
            self.lib, self.path = lib, path
            try:
                lib.scipy_openblas_get_corename64_.restype = ctypes.c_char_p
                self.corename = lib.scipy_openblas_get_corename64_().decode()
            except AttributeError:
                pass
            break

    @staticmethod
    def _candidates():
        """Loaded libraries whose name says scipy_openblas64 (numpy has imported its BLAS by now)."""
        try:
            with open("/proc/self/maps") as f:
                paths = {line.split()[-1] for line in f if "scipy_openblas64" in line}
        except OSError:
            paths = set()
        if not paths:
            libdir = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
            paths = set(glob.glob(os.path.join(libdir, "libscipy_openblas64*.so*")))
        return sorted(paths)

    @property
    def available(self) -> bool:
        return self.lib is not None

    def advise_huge_pages(self, buffers: int, environ=os.environ) -> int:
        """Advise ``buffers`` of OpenBLAS's packing buffers onto transparent huge pages (see the
        module docstring); returns how many mappings were advised and sets :attr:`huge_pages`.

        The buffers are taken with ``blas_memory_alloc`` (so none is in use by a GEMM meanwhile),
        each one's whole anonymous mapping gets ``madvise(MADV_HUGEPAGE)``, and all are handed back
        with ``blas_memory_free``. The advice only makes memory eligible for 2 MiB pages (pages
        already touched keep their contents; the kernel may collapse them, as it did at once on the
        machines tried), so it is safe for any neighbour the kernel merged into the same mapping.
        """
        value = environ.get(HUGEPAGES_ENV, "").strip().lower()
        if value not in ("", "auto", "1", "on", "true", "yes", "0", "off", "false", "no"):
            raise ValueError(f"{HUGEPAGES_ENV}={environ[HUGEPAGES_ENV]!r}: use 0/off to turn the advice off, "
                             "or leave it unset (auto)")
        mode = thp_mode()
        if value in ("0", "off", "false", "no"):
            self.huge_pages = f"off ({HUGEPAGES_ENV}={environ[HUGEPAGES_ENV]})"
            return 0
        if not sys.platform.startswith("linux") or mode is None:
            self.huge_pages = "not available (no transparent huge pages)"
            return 0
        if mode != "madvise":
            self.huge_pages = f"not needed (transparent huge pages: {mode})"
            return 0
        try:
            alloc, free = self.lib.blas_memory_alloc, self.lib.blas_memory_free
            libc = ctypes.CDLL(None, use_errno=True)
            madvise = libc.madvise
        except (AttributeError, OSError):
            self.huge_pages = "not available (this OpenBLAS exports no blas_memory_alloc)"
            return 0
        alloc.restype, alloc.argtypes = ctypes.c_void_p, [ctypes.c_int]
        free.restype, free.argtypes = None, [ctypes.c_void_p]
        madvise.restype, madvise.argtypes = ctypes.c_int, [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        held = [alloc(0) for _ in range(buffers)]
        advised, failed = set(), []
        try:
            for span in sorted(_mappings_of([a for a in held if a])):
                if madvise(span[0], span[1] - span[0], _MADV_HUGEPAGE) == 0:
                    advised.add(span)
                else:
                    failed.append(os.strerror(ctypes.get_errno()))
        finally:
            for addr in held:
                if addr:
                    free(addr)
        mib = sum(hi - lo for lo, hi in advised) >> 20
        self.huge_pages = (f"MADV_HUGEPAGE on {len(advised)} mapping(s), {mib} MiB, holding {buffers} buffers"
                           + (f"; failed: {', '.join(sorted(set(failed)))}" if failed else ""))
        return len(advised)

    def threads(self) -> int:
        """OpenBLAS's current thread count (0 without the library)."""
        return int(self._get()) if self.available else 0

    def __enter__(self):
        """OpenBLAS single-threaded while numba threads call it (nesting and threads are counted)."""
        with self._lock:
            if self._depth == 0:
                self._saved = int(self._get())
                if self._saved != 1:
                    self._set(1)
            self._depth += 1
        return self

    def __exit__(self, *exc):
        with self._lock:
            self._depth -= 1
            if self._depth == 0 and self._saved not in (None, 1):
                self._set(self._saved)
        return False


#: the process's one :class:`OpenBlas`
openblas = OpenBlas()
#: BLAS calls from numba code are possible (compiled code and the library found); a runtime
#: switch: tests turn it off to exercise the fallback paths
FAST = openblas.available and not numba.config.DISABLE_JIT

_i32, _i64, _f32, _f64 = types.int32, types.int64, types.float32, types.float64
# cblas_?gemm(order, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc), ILP64; the
# pointers are passed as int64 (same calling convention on LP64 platforms)
_sgemm = types.ExternalFunction(
    "minicnn_cblas_sgemm64",
    types.void(_i32, _i32, _i32, _i64, _i64, _i64, _f32, _i64, _i64, _i64, _i64, _f32, _i64, _i64))
_dgemm = types.ExternalFunction(
    "minicnn_cblas_dgemm64",
    types.void(_i32, _i32, _i32, _i64, _i64, _i64, _f64, _i64, _i64, _i64, _i64, _f64, _i64, _i64))
# cblas_?gemv(order, trans, m, n, alpha, a, lda, x, incx, beta, y, incy), ILP64
_sgemv = types.ExternalFunction(
    "minicnn_cblas_sgemv64", types.void(_i32, _i32, _i64, _i64, _f32, _i64, _i64, _i64, _i64, _f32, _i64, _i64))
_dgemv = types.ExternalFunction(
    "minicnn_cblas_dgemv64", types.void(_i32, _i32, _i64, _i64, _f64, _i64, _i64, _i64, _i64, _f64, _i64, _i64))


@njit(cache=True)
def gemm(single, ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc):
    """Row-major ``C = op(A) @ op(B) + beta * C`` on raw addresses (BLAS's own argument order).

    Parameters
    ----------
    single : bool
        float32 (``sgemm``) if true, else float64 (``dgemm``).
    ta, tb : bool
        ``op(A) = A.T`` / ``op(B) = B.T`` if true.
    m, n, k : int
        ``op(A)`` is m x k, ``op(B)`` is k x n, C is m x n; nothing happens if m or n is 0.
    a, b, c : int
        Addresses of the first elements of A, B, C.
    lda, ldb, ldc : int
        Row strides (in elements) of A, B, C as stored.
    beta : float
        0 overwrites C, 1 adds to it.
    """
    if m == 0 or n == 0:
        return
    tra = 112 if ta else 111  # CblasTrans / CblasNoTrans
    trb = 112 if tb else 111
    if m == 1 and not ta:
        # one row of A (a batch of one: the explorer's and predict's case): C's row is
        # op(B)^T @ A's row, a GEMV, which reads B once without packing it (OpenBLAS's GEMM
        # copies B into panels first: seed dense1 at batch 1, 1.1 -> 0.6 ms on one thread)
        trv = 111 if tb else 112  # B as stored: n x k (tb) or k x n
        rows, cols = (n, k) if tb else (k, n)
        if single:
            _sgemv(101, trv, rows, cols, np.float32(1.0), b, ldb, a, 1, np.float32(beta), c, 1)
        else:
            _dgemv(101, trv, rows, cols, 1.0, b, ldb, a, 1, np.float64(beta), c, 1)
        return
    if single:
        _sgemm(101, tra, trb, m, n, k, np.float32(1.0), a, lda, b, ldb, np.float32(beta), c, ldc)
    else:
        _dgemm(101, tra, trb, m, n, k, 1.0, a, lda, b, ldb, np.float64(beta), c, ldc)


#: gemm's one signature. Left to itself, numba compiles gemm once per *literal* combination its
#: callers pass (``ta``/``tb`` are constants at every call site, ``m`` sometimes 1): four
#: specialisations for the seed model, each a full compile (cold-cache profile, seed, batch 100:
#: ``blas.gemm`` 4 signatures, 10% of the first step's compile time; ``python -m
#: benchmarks.compile_profile --preset seed --batch 100``). Compiled here, once, and closed to more:
#: the callers' literals convert to it. Only when BLAS is callable (the symbols exist to link).
GEMM_SIGNATURE = types.void(types.boolean, types.boolean, types.boolean, _i64, _i64, _i64, _i64, _i64, _i64, _i64,
                            _f64, _i64, _i64)
if FAST:
    gemm.compile(GEMM_SIGNATURE.args)
    gemm.disable_compile()
    # one buffer per thread a kernel can fan out to, and one for numpy's calls beside them
    openblas.advise_huge_pages(numba.config.NUMBA_NUM_THREADS + 1)
