"""What every Keras-file module shares: the formats' constants, h5py on demand, failures."""

from __future__ import annotations

import os

from ...errors import ModelFileError

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

ZIP_MAGIC = b"PK\x03\x04"

CONFIG_NAME = "config.json"

METADATA_NAME = "metadata.json"

WEIGHTS_NAME = "model.weights.h5"

#: the Keras version written into files' metadata (the format those files follow)
WRITTEN_KERAS_VERSION = "3.15.1"

#: weight values a file's architecture may ask for beyond what the file holds before it is refused
#: unallocated (a damaged config must not make minicnn allocate gigabytes); below it, mismatches
#: are reported weight by weight
ALLOCATION_ALLOWANCE = 1 << 25


def h5py_module():
    try:
        import h5py
    except ImportError:
        raise ModelFileError("reading or writing Keras files needs h5py: install the 'tf' or 'h5' "
                             "extra (pip install 'minicnn[h5]')") from None
    return h5py


def fail(path, message):
    raise ModelFileError(f"Keras file {os.fspath(path)!r}: {message}")
