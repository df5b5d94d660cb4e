"""Options every computing command shares: the kernel backend and the thread count."""

from __future__ import annotations

import argparse
import os

from .. import kernels


def add_runtime_options(p: argparse.ArgumentParser) -> None:
    """--backend and --threads, shared by every command that computes."""
    p.add_argument("--backend", choices=("numba", "numpy"), default=None,
                   help="kernel backend (default: $MINICNN_BACKEND or numba)")
    p.add_argument("--threads", type=int, default=None, help="numba threads (default: $NUMBA_NUM_THREADS or all cores)")


def apply_runtime_options(args) -> None:
    if not hasattr(args, "backend"):  # the command computes nothing
        return
    if getattr(args, "threads", None) is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        os.environ["NUMBA_NUM_THREADS"] = str(args.threads)
    if getattr(args, "backend", None):
        kernels.use_backend(args.backend)
    backend = kernels.get_backend()
    if getattr(args, "threads", None) is not None and backend.NAME == "numba":
        import numba  # only when the numba backend is in use
        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
