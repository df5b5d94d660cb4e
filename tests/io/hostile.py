"""Builders of hostile model files for tests/io/test_hostile_files.py (each starts from a valid
file minicnn wrote and breaks one property), and the memory-limited subprocess that reads them."""

from __future__ import annotations

import io
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: the address-space limit the readers run under (no TensorFlow is imported: 1 GiB is ample)
MEMORY_LIMIT = 1 << 30
_GiB = 1 << 30

_READER = r"""
import sys
from minicnn.errors import ModelFileError
mode, path = sys.argv[1], sys.argv[2]
if mode == "cli":
    from minicnn.cli import main
    sys.exit(main(sys.argv[3:]))
from minicnn.io import checkpoint
try:
    checkpoint.model_from_checkpoint(path)
except ModelFileError as e:
    print(f"minicnn: error: {e}", file=sys.stderr)
    sys.exit(1)
"""


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_limited(mode, path, *args, timeout=300):
    """(exit status, stdout, stderr) of reading ``path`` in a subprocess limited to MEMORY_LIMIT
    of address space; ``mode`` 'cli' runs ``minicnn ARGS`` (ARGS include ``path``), 'checkpoint'
    rebuilds a model from the checkpoint ``path``."""
    env = {**os.environ, "MINICNN_OFFLINE": "1", "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": REPO}
    p = subprocess.run([sys.executable, "-c", _READER, mode, os.fspath(path), *map(str, args)],
                       capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO,
                       preexec_fn=_limit_memory)
    return p.returncode, p.stdout, p.stderr


# ----------------------------------------------------------------------------- zip
def raw_zip(members) -> bytes:
    """A zip of ``members`` [(name, method, payload, crc, declared uncompressed size, offset or
    None)] written byte by byte, so that sizes, CRCs and offsets can be whatever a test wants
    (an offset that names an earlier member reuses its local header: overlapping entries)."""
    out, central, offsets = bytearray(), bytearray(), {}
    for name, method, payload, crc, usize, offset in members:
        n = name.encode()
        if isinstance(offset, str):
            offset = offsets[offset]
        else:
            offset = len(out)
            out += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc,
                               len(payload), usize, len(n), 0) + n + payload
        offsets[name] = offset
        central += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, crc,
                               len(payload), usize, len(n), 0, 0, 0, 0, 0, offset) + n
    cd = len(out)
    out += central + struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(members), len(members),
                                 len(central), cd, 0)
    return bytes(out)


def zeros_bomb(size: int) -> tuple[bytes, int]:
    """(raw deflate stream, CRC-32) of ``size`` zero bytes (a multiple of 64 MiB), built from one
    fully flushed 64 MiB block repeated: a few MB that inflate to ``size``."""
    block = 64 << 20
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = c.compress(bytes(block)) + c.flush(zlib.Z_FULL_FLUSH)
    crc, zeros = 0, bytes(block)
    for _ in range(size // block):
        crc = zlib.crc32(zeros, crc)
    end = zlib.compressobj(9, zlib.DEFLATED, -15).flush()  # an empty final block
    return piece * (size // block) + end, crc


def zip_members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


def stored(name, body):
    return (name, 0, body, zlib.crc32(body), len(body), None)


def deflated(name, body):
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return (name, 8, c.compress(body) + c.flush(), zlib.crc32(body), len(body), None)


# ----------------------------------------------------------------------------- HDF5
def first_kernel(h5) -> str:
    """The path of the first kernel dataset in an HDF5 model or weights file."""
    import h5py
    found = []
    h5.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None)
    keras3 = "layers" in h5
    return sorted(n for n in found if (n.endswith("vars/0") if keras3 else "kernel" in n))[0]


H5_HOW = ("external_link", "soft_link", "virtual", "external_storage", "huge_empty", "filter")


def datasets_of(path) -> list[str]:
    import h5py
    found = []
    with h5py.File(path, "r") as h5:
        h5.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None)
    return sorted(found)


def h5_variant(base, out, how, other_dir, name=None, huge_shape=(1_000_000, 1_000_000)):
    """Copy the HDF5 file ``base`` to ``out`` and replace its dataset ``name`` (default: the first
    kernel) ``how`` (one of :data:`H5_HOW`)."""
    import h5py
    shutil.copyfile(base, out)
    with h5py.File(out, "r+") as h5:
        name = name or first_kernel(h5)
        ds = h5[name]
        shape, dtype, values = ds.shape, ds.dtype, ds[()]
        other = os.path.join(other_dir, "other-weights.h5")
        with h5py.File(other, "w") as o:
            o.create_dataset("k", data=np.full(shape, 0.5, dtype))
        raw = os.path.join(other_dir, "raw-weights.bin")
        np.full(shape, 0.5, dtype).tofile(raw)
        del h5[name]
        if how == "external_link":
            h5[name] = h5py.ExternalLink(other, "/k")
        elif how == "soft_link":
            h5["/elsewhere"] = values
            h5[name] = h5py.SoftLink("/elsewhere")
        elif how == "virtual":
            layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
            layout[...] = h5py.VirtualSource(other, "k", shape=shape)
            h5.create_virtual_dataset(name, layout)
        elif how == "external_storage":
            h5.create_dataset(name, shape=shape, dtype=dtype, external=[(raw, 0, values.nbytes)])
        elif how == "huge_empty":
            h5.create_dataset(name, shape=huge_shape, dtype=dtype, chunks=(100,) * len(huge_shape))
        elif how == "filter":
            h5.create_dataset(name, data=values, scaleoffset=3)
        else:
            raise ValueError(how)
    return out


def legacy_with_huge_architecture(base, out):
    """A legacy .h5 whose model_config asks its first Dense layer for 1,000,000 units and whose
    datasets declare exactly the shapes that architecture needs (that layer's kernel and bias,
    the next Dense layer's kernel), chunked, nothing stored: the architecture agrees with the
    declared shapes, so only the storage check stands between it and a 1.9 GB allocation."""
    import h5py
    shutil.copyfile(base, out)
    with h5py.File(out, "r+") as h5:
        cfg = json.loads(h5.attrs["model_config"])
        denses = [l for l in cfg["config"]["layers"] if l["class_name"] == "Dense"]
        denses[0]["config"]["units"] = 1_000_000
        h5.attrs["model_config"] = json.dumps(cfg)
        for k, layer in enumerate(denses[:2]):
            found = []
            h5["model_weights"][layer["config"]["name"]].visititems(
                lambda n, o: found.append(o.name) if isinstance(o, h5py.Dataset) else None)
            for ds_name in found:
                ds = h5[ds_name]
                if k == 0:
                    shape = (ds.shape[0], 1_000_000) if ds.ndim == 2 else (1_000_000,)
                elif ds.ndim == 2:
                    shape = (1_000_000, ds.shape[1])
                else:
                    continue
                del h5[ds_name]
                h5.create_dataset(ds_name, shape=shape, dtype="float32", chunks=True)
    return out


def keras_with_inner(base_keras, out, inner_path):
    """A .keras archive whose model.weights.h5 is the file ``inner_path``."""
    with open(base_keras, "rb") as f:
        members = zip_members(f.read())
    with open(inner_path, "rb") as f:
        members["model.weights.h5"] = f.read()
    with open(out, "wb") as f:
        f.write(raw_zip([stored(n, b) for n, b in members.items()]))
    return out
