"""The ``minicnn`` command.

Each sub-command lives in a module of this package that defines ``register(subparsers)``;
``main`` turns user mistakes (bad arguments, missing or damaged files) into one clear line on
stderr and a non-zero exit status instead of a traceback.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import MiniCNNError
from . import crosscheck, explore, study, train
from .runtime import apply_runtime_options

#: modules that add sub-commands, in the order ``minicnn --help`` lists them
COMMAND_MODULES = (train, study, explore, crosscheck)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minicnn", description="A from-scratch CNN cross-checked against Keras.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


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
