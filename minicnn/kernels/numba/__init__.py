"""The numba backend's implementation, one module per seam (the registry loads the facade
:mod:`minicnn.kernels.numba_backend`, which re-exports the public functions from here).

=============== =====================================================================
``config``      process settings (OpenMP wait policy) and every tunable constant, the
                tiles switch (``MINICNN_NUMBA_TILES``) included; imported first
``blas``        numpy's OpenBLAS called from numba kernels (``gemm``), its threads
``fpu``         denormals flushed to zero inside kernels (MXCSR FTZ/DAZ)
``tiles``       the register-blocked FMA micro-kernels in LLVM IR and their drivers
``native``      IR functions compiled once per machine, called by symbol (the tiles' bodies)
``conv``        conv2d: tiles, or im2col + GEMM
``dense``       dense: tiles, or GEMMs in fixed slices/blocks
``pool``        max pooling
``avgpool``     average pooling, global average/max pooling, zero padding (bitwise numpy's)
``batchnorm``   batch normalisation (float64 statistics in fixed row blocks)
``depthwise``   depthwise conv2d: direct loops over the taps
``elementwise`` relu, and the ordered sum of per-group partial results
``activations`` the zoo's activations, tanh ... PReLU, forward and backward (one fused pass each)
``vmath``       exp, expm1, log1p in plain arithmetic (vectorisable), an ``llvm.fma`` intrinsic
``optim``       the fused Adam update
``info``        ``threading_info()``: what is active in this process
``checks``      the public functions' shape checks (the kernels index raw memory)
``arrays``      dtype/contiguity coercions shared by the public functions
``cachestamp``  numba's on-disk cache of this package, dropped when any source changes
=============== =====================================================================

Every module follows the same tiers: ``@njit`` kernels (parallel ones over fixed, shape-only
partitions, serial ones for small inputs or per-chunk work) whose arguments are documented, then
the public functions, which check (``checks``) and coerce their inputs, pick a path and allocate
the outputs.

Contract (as :mod:`minicnn.kernels.numpy_backend`, which the tests compare every function with):
outputs have the input's dtype (float32 or float64; a kernel or bias of another dtype is cast to
the input's dtype; other dtypes are delegated to the numpy backend), inputs are never written,
and any input may be non-contiguous (it is copied to C order first).

**Determinism.** Chunk, group and block boundaries depend only on the shapes, never on the
thread count; every parallel iteration writes its own slice; reductions are per-group partials
added in group order. Results are therefore bitwise reproducible for *any* thread count. No
``fastmath`` anywhere: the tiles use LLVM's ``llvm.fma`` intrinsic explicitly (one exactly
rounded operation, like BLAS kernels), not contraction permission.

If numpy's BLAS is not the ILP64 ``scipy-openblas`` that numpy's wheels ship, the GEMM-based
paths fall back to the numpy backend; with JIT disabled, the tiles are off too.
``threading_info()`` says which paths are active.
"""

from . import config  # noqa: F401 - first: the OpenMP policy must be set before numba starts threads
from . import cachestamp as _cachestamp

# before any kernel can load from numba's cache: a cached kernel carries the helpers it calls from
# other files of this package, which numba does not check (see the module)
_cachestamp.drop_stale()
