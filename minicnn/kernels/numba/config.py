"""Process settings and every tunable constant of the numba backend, each defined once.

Importing this module (the package imports it first) does two things to the process:

* **OpenMP wait policy.** numba's ``omp`` threading layer is GNU OpenMP, whose idle workers spin
  ~15 ms after every parallel region; here numba's and OpenBLAS's pools alternate on the same
  cores, and the spinning starves them. So ``OMP_WAIT_POLICY=PASSIVE`` is set unless the user set a
  policy, and only if libgomp is not loaded yet (it reads the variable when numba first loads it).
  Measured: 50 small GEMMs alternating with a numba pass took 12 ms with it, 330 ms without.
  :data:`OMP_POLICY_SET_HERE` records whether this module set it.
* **The FMA tiles switch** (:data:`TILES`), read once from the environment:

  ``MINICNN_NUMBA_TILES`` unset, empty or ``auto``
      the register-blocked FMA tiles serve the float32 shapes they fit when the CPU has AVX-512
      (they are sized for its 32 vector registers) and JIT compilation is on;
  ``0`` (or ``off``, ``false``, ``no``)
      the tiles are off: every op takes the im2col/BLAS path that a CPU without AVX-512 takes,
      so CI on an AVX-512 machine can exercise it;
  ``1`` (or ``on``, ``true``, ``yes``)
      the tiles are on even without AVX-512 (still exact, but slow there: their accumulators spill
      to memory); for testing them on other CPUs. With ``NUMBA_DISABLE_JIT`` they stay off.

  Any other value is refused with a :class:`ValueError` at import.

Every constant here is read at call time by the Python tier (``config.NAME``), so tests and
benchmarks may change it, except :data:`EW_BLOCK` and :data:`SUM_BLOCK`, which compiled kernels
freeze in (numba's on-disk cache with them). The runtime switches are :data:`TILES`,
:data:`SMALL_GEMM`, :data:`SMALL_ELEMENTWISE`, and ``blas.FAST`` (whether BLAS may be called from
numba code; it depends on the library found, so it lives in :mod:`.blas`).

The values were chosen by measurement on the seed model's shapes (batch 100, float32, 2 cores;
``benchmarks/README.md``). Chunk, group, block and slice boundaries depend on these constants and
the shapes only, never on the thread count: that is what makes every result bitwise
reproducible for any number of threads.
"""

from __future__ import annotations

import os

__all__ = [
    "OMP_POLICY_SET_HERE", "TILES_ENV", "TILES", "CHUNK_ROWS", "MAX_GROUPS", "SUM_BLOCK",
    "DENSE_KSPLIT", "DENSE_MIN_KSLICE", "DENSE_BLOCK", "DENSE_MAX_BLOCKS", "DENSE_TILE_ROWS",
    "DENSE_TILE_MAX_SAMPLES", "SMALL_GEMM", "SMALL_ELEMENTWISE", "EW_BLOCK", "BN_BLOCK", "BN_SMALL", "has_avx512",
    "FANOUT_MIN_FLOPS",
    "tiles_from_env",
]


def _libgomp_loaded() -> bool:
    try:
        with open("/proc/self/maps") as f:
            return "libgomp" in f.read()
    except OSError:
        return False


#: whether this module set ``OMP_WAIT_POLICY=PASSIVE`` (see above)
OMP_POLICY_SET_HERE = False
if "OMP_WAIT_POLICY" not in os.environ and not _libgomp_loaded():
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # read by libgomp when numba first loads it
    OMP_POLICY_SET_HERE = True

import llvmlite.binding as _llvm  # noqa: E402 - after the OpenMP policy
import numba  # noqa: E402

#: the environment variable of the tiles switch
TILES_ENV = "MINICNN_NUMBA_TILES"
_TILES_OFF = ("0", "off", "false", "no")
_TILES_ON = ("1", "on", "true", "yes")
_TILES_AUTO = ("", "auto")


def has_avx512() -> bool:
    """The tiles are sized for 32 512-bit registers; elsewhere they would spill (still correct)."""
    try:
        return bool(_llvm.get_host_cpu_features().get("avx512f", False))
    except Exception:  # noqa: BLE001 - feature query unsupported on this platform
        return False


def tiles_from_env(environ=os.environ) -> bool:
    """The initial value of :data:`TILES` for ``environ`` (see the module docstring)."""
    value = environ.get(TILES_ENV, "").strip().lower()
    if value in _TILES_OFF:
        return False
    if value not in _TILES_ON + _TILES_AUTO:
        choices = ", ".join(repr(v) for v in _TILES_OFF + _TILES_ON + _TILES_AUTO)
        raise ValueError(f"{TILES_ENV}={environ[TILES_ENV]!r}: use one of {choices}")
    if numba.config.DISABLE_JIT:  # the tiles are LLVM IR: they need compiled code
        return False
    return value in _TILES_ON or has_avx512()


#: use the register-blocked FMA tiles (:mod:`.tiles`) where the shapes allow; tests switch this
#: off and back to exercise both paths (True under ``NUMBA_DISABLE_JIT`` would break the tile paths)
TILES = tiles_from_env()

# ----------------------------------------------------------------------------- fan-out
#: a :func:`.fanout.run` call with less work than this (floating-point operations, or their
#: equivalent in memory traffic) runs on the calling thread: handing blocks to a worker thread
#: costs ~20 us (its wake-up; 40-90 us measured through a ThreadPoolExecutor), about the time
#: one thread takes for ~1 MFLOP of GEMM; the batch-1 A/Bs in benchmarks/README.md ("A parfor
#: compiles twice") chose 4 MFLOP
FANOUT_MIN_FLOPS = 4_000_000

# ----------------------------------------------------------------------------- conv2d
#: target number of output rows (N*OH*OW) per conv chunk: the chunk's im2col matrix stays in L2
CHUNK_ROWS = 1024
#: at most this many partial sums for a conv's dkernel/dbias (groups of consecutive chunks, or of
#: consecutive images on the tiles), added in group order
MAX_GROUPS = 64
#: the group sums are added in parallel over blocks of this many elements
SUM_BLOCK = 512

# ----------------------------------------------------------------------------- dense
#: dense forward: the inner dimension is split into this many GEMMs (slices of at least
#: DENSE_MIN_KSLICE), whose partial products are added in order
DENSE_KSPLIT = 4
DENSE_MIN_KSLICE = 1024
#: dense backward: dkernel rows / dx columns are split into blocks of at least this many
DENSE_BLOCK = 64
#: ... and into at most this many blocks
DENSE_MAX_BLOCKS = 16
#: dense on the tiles: rows of the kernel per block (backward: its transpose, out x this, stays in L1)
DENSE_TILE_ROWS = 64
#: dense forward on the tiles up to this many samples: every 64-row block adds into the (samples x
#: out) partial sums, which must stay in L2; measured (seed dense1): tiles 2.8 ms vs BLAS 3.2 at
#: 100 samples, 7.0 vs 7.6 at 256, 17.5 vs 15.3 at 512 (so inference batches of 1000 take BLAS)
DENSE_TILE_MAX_SAMPLES = 256
#: products with M*N*K at most this go to numpy's matmul: OpenBLAS runs them on the calling thread
#: anyway (its own multithreading threshold is 65536 * 4), and a parallel launch would cost more
SMALL_GEMM = 65536 * 4

# ----------------------------------------------------------------------------- elementwise
#: relu on fewer elements than this runs numpy's on the calling thread: waking the thread pool
#: costs more than the work (the Adam update decides by its ``fanout.run`` work estimate)
SMALL_ELEMENTWISE = 1 << 15
#: elementwise kernels: elements per parallel iteration (amortises scheduling). A block is taken
#: as slices, looped from index 0: numba cannot tell that ``range(t * B, ...)`` is non-negative, and
#: its negative-index handling stops LLVM from vectorising (measured: Adam 4.2 ms vs 1.4, relu
#: backward 1.0 vs 0.75)
EW_BLOCK = 16384

# ----------------------------------------------------------------------------- batch normalisation
#: batch normalisation: values per row block (``max(1, BN_BLOCK // C)`` rows), one parallel
#: iteration and one float64 partial of the statistics each; the statistics read a block twice, the
#: second time from L2. Measured on (100, 28, 28, 32), (100, 14, 14, 64|16): 1024 is 10-40% slower,
#: 8192 to 65536 are alike
BN_BLOCK = 16384
#: batch normalisation on fewer values than this runs on the calling thread (the same blocks: the
#: same bits). Training forward and backward wake the pool twice; measured (2 busy cores): serial
#: faster up to (100, 7, 7, 16) = 78400 values (68 vs 95 us), even at (100, 7, 7, 32) = 156800
BN_SMALL = 1 << 17
