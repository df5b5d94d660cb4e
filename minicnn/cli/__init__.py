"""The ``minicnn`` command.

Each sub-command lives in a module of this package that defines ``register(subparsers)``;
``main`` turns user mistakes (bad arguments, missing or damaged files) into one clear line on
stderr and a non-zero exit status instead of a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..errors import MiniCNNError

#: modules that add sub-commands, in the order ``minicnn --help`` lists them
COMMAND_MODULES = ("train", "study", "crosscheck")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minicnn", description="A from-scratch CNN cross-checked against Keras.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"minicnn.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"minicnn.cli.{name}":
                raise
            continue
        module.register(sub)
    return parser


def add_runtime_options(p: argparse.ArgumentParser) -> None:
    """--backend and --threads, shared by every command that computes."""
    p.add_argument("--backend", choices=("numba", "numpy"), default=None,
                   help="kernel backend (default: $MINICNN_BACKEND or numba)")
    p.add_argument("--threads", type=int, default=None, help="numba threads (default: $NUMBA_NUM_THREADS or all cores)")


def apply_runtime_options(args) -> None:
    from .. import kernels
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
        import numba
        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        apply_runtime_options(args)
        return int(args.func(args) or 0)
    except KeyboardInterrupt as e:  # TrainingInterrupted carries the resume instructions
        msg = str(e) or "interrupted"
        print(f"minicnn: {msg}", file=sys.stderr)
        return 130
    except (MiniCNNError, ValueError, FileNotFoundError, IsADirectoryError, PermissionError) as e:
        print(f"minicnn {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
