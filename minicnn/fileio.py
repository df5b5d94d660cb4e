"""Safe file primitives shared by model files, checkpoints and caches.

* :func:`atomic_write` writes to a temporary file in the destination's directory, fsyncs it and
  renames it into place, so a crash leaves either the old file or the new one, never half of one.
* :func:`read_npz` loads an ``.npz`` with ``allow_pickle=False`` (no code from files, ever) and
  turns every way it can fail into a :class:`~minicnn.errors.ModelFileError` naming the file.
* :func:`arrays_digest` is the SHA-256 over names, dtypes, shapes and bytes of a set of arrays.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile

import numpy as np

from .errors import ModelFileError

JSON_KEY = "config.json"


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def npz_bytes(arrays: dict[str, np.ndarray], meta: dict) -> bytes:
    """An uncompressed .npz holding ``arrays`` plus ``meta`` as UTF-8 JSON under ``config.json``."""
    buf = io.BytesIO()
    payload = dict(arrays)
    payload[JSON_KEY] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    np.savez(buf, **payload)
    return buf.getvalue()


def read_npz(path: str | os.PathLike, what: str = "model file") -> tuple[dict[str, np.ndarray], dict]:
    """Load (arrays, meta) from a file written by :func:`npz_bytes`; ModelFileError on any damage."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelFileError(f"{what} {path!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError, zipfile.LargeZipFile) as e:
        raise ModelFileError(f"{what} {path!r} is not a readable .npz archive: {e}") from None
    except Exception as e:  # zlib/struct errors from a tampered archive
        raise ModelFileError(f"{what} {path!r} is damaged: {type(e).__name__}: {e}") from None
    raw = arrays.pop(JSON_KEY, None)
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        raise ModelFileError(f"{what} {path!r} has no '{JSON_KEY}' entry; it was not written by minicnn")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{what} {path!r} has a corrupt '{JSON_KEY}': {e}") from None
    if not isinstance(meta, dict):
        raise ModelFileError(f"{what} {path!r}: '{JSON_KEY}' must hold a JSON object")
    return arrays, meta


def arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()
