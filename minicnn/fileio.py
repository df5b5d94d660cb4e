"""Safe file primitives shared by model files, checkpoints and caches.

* :func:`atomic_write` writes to a temporary file in the destination's directory, fsyncs it and
  renames it into place, so a crash leaves either the old file or the new one, never half of one.
* :func:`write_npz` / :func:`read_npz`: minicnn's container, an uncompressed ``.npz`` (a zip of
  ``.npy`` entries) holding named arrays plus a JSON object under ``config.json``. The JSON carries
  ``sha256``, a digest over every array (name, dtype, shape, bytes) *and* the rest of the JSON, so
  any change to a weight, a shape or a setting is detected.
* The reader never unpickles and never runs code: it walks the zip itself, parses each ``.npy``
  header with NumPy's header parser (a literal parser, no ``eval``), refuses object, string and
  structured dtypes before reading any data, checks every entry's declared size against what the
  archive really holds (so a forged header cannot make it allocate gigabytes), and turns every way
  the bytes can be wrong into a :class:`~minicnn.errors.ModelFileError` naming the file.
* :func:`read_npy_member` is that per-entry reader on its own (the Keras ``.npz`` datasets use it
  too) and :func:`read_into` the chunked fill of an array from a possibly compressed file under it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
import zipfile

import numpy as np

from .errors import ModelFileError

JSON_KEY = "config.json"
#: more entries than any minicnn file has (a model has 2 per layer, a checkpoint 4 per layer + 2)
MAX_ENTRIES = 10_000
#: the only array element kinds minicnn files hold: bool, signed/unsigned int, float
_ARRAY_KINDS = "biuf"
_TMP_PREFIX = ".tmp-"
#: bytes per read when filling an array from a (possibly compressed) file
CHUNK = 1 << 20
#: deflate cannot expand data more than this: bounds what a deflated stream can decompress to
DEFLATE_MAX_RATIO = 1032


# ----------------------------------------------------------------------------- writing
def _umask() -> int:
    # os.umask can only be read by setting it; set a restrictive value for the instant in between
    old = os.umask(0o077)
    os.umask(old)
    return old


def atomic_write(path: str | os.PathLike, data, verify=None) -> None:
    """Write ``data`` (bytes, or a callable taking a binary file object) to ``path`` atomically.

    The temporary file lives in the destination's directory (so the rename cannot cross file
    systems), is fsynced before the rename, and gets the permissions a plain ``open(path, 'wb')``
    would give it; the directory is fsynced after the rename so the new name itself is durable.
    ``verify(tmp_path)``, if given, runs on the complete temporary file before the rename; if it
    raises, the temporary file is removed and ``path`` is left as it was.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix="-" + os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if verify is not None:
            verify(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600
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


def stale_temp_files(directory, name_pattern: re.Pattern) -> list[str]:
    """Temporary files :func:`atomic_write` left behind in ``directory`` (a process killed while
    writing) for destinations whose names match ``name_pattern``."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    out = []
    for name in names:
        if name.startswith(_TMP_PREFIX) and "-" in name[len(_TMP_PREFIX):]:
            target = name[len(_TMP_PREFIX):].split("-", 1)[1]
            if name_pattern.fullmatch(target):
                out.append(os.path.join(directory, name))
    return sorted(out)


def _canonical_json(meta: dict) -> str:
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), allow_nan=True)


def digest(arrays: dict[str, np.ndarray], meta: dict | None = None) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of ``arrays`` and the canonical JSON of
    ``meta`` (without its ``sha256`` key)."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{len(name)}:{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.reshape(-1).view(np.uint8))
    if meta is not None:
        rest = {k: v for k, v in meta.items() if k != "sha256"}
        h.update(b"|meta|" + _canonical_json(rest).encode())
    return h.hexdigest()


def _signed_meta(arrays, meta) -> dict:
    # round-trip through JSON first so the digest is taken over exactly what a reader will parse
    # (tuples become lists, int dict keys become strings)
    meta = json.loads(_canonical_json({k: v for k, v in meta.items() if k != "sha256"}))
    meta["sha256"] = digest(arrays, meta)
    return meta


def _write_npz_to(f, arrays: dict[str, np.ndarray], meta: dict) -> None:
    for name in arrays:
        if name == JSON_KEY or not name or name.endswith(".npy"):
            raise ValueError(f"invalid array name {name!r}")
    payload = dict(arrays)
    payload[JSON_KEY] = np.frombuffer(_canonical_json(_signed_meta(arrays, meta)).encode(), dtype=np.uint8)
    np.savez(f, **payload)


def write_npz(path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Atomically write ``arrays`` and ``meta`` (JSON-serialisable; gets a ``sha256``) to ``path``."""
    atomic_write(path, lambda f: _write_npz_to(f, arrays, meta))


def npz_bytes(arrays: dict[str, np.ndarray], meta: dict) -> bytes:
    """The bytes :func:`write_npz` would write."""
    import io
    buf = io.BytesIO()
    _write_npz_to(buf, arrays, meta)
    return buf.getvalue()


# ----------------------------------------------------------------------------- reading
def read_into(f, out: np.ndarray) -> int:
    """Fill the C-contiguous ``out`` from the binary file ``f``; return the number of bytes read.

    Reads at most :data:`CHUNK` bytes at a time: GzipFile and ZipExtFile implement ``readinto`` as
    ``read()`` plus a copy, so one call for a whole array would briefly hold it twice.
    """
    if not out.flags.c_contiguous:
        raise ValueError("read_into needs a C-contiguous array")
    if out.nbytes == 0:
        return 0
    view = memoryview(out.reshape(-1).view(np.uint8))
    got = 0
    while got < len(view):
        n = f.readinto(view[got:got + CHUNK])
        if not n:
            break
        got += n
    return got


def _size_is_possible(info: zipfile.ZipInfo, archive_size: int | None) -> bool:
    """Whether the sizes the zip directory declares for ``info`` can be true of this archive."""
    if archive_size is not None and info.compress_size > archive_size:
        return False
    if info.compress_type == zipfile.ZIP_STORED:
        return info.file_size == info.compress_size
    if info.compress_type == zipfile.ZIP_DEFLATED:
        return info.file_size <= info.compress_size * DEFLATE_MAX_RATIO + (1 << 16)
    return True  # bzip2/lzma: no cheap bound on the expansion


def read_npy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, fail, *,
                    archive_size: int | None = None, stored_only: bool = False,
                    check_header=None) -> np.ndarray:
    """Read the ``.npy`` member ``info`` of ``zf`` into a new array, refusing anything unsafe.

    Only plain numeric arrays (bool, int, uint, float; C or Fortran order) are accepted, and
    nothing is ever unpickled. The sizes in the zip directory must be possible for an archive of
    ``archive_size`` bytes (a deflated member cannot expand more than deflate allows) and the
    ``.npy`` header must account for exactly the member's size, all before anything is allocated;
    the data are then read in chunks straight into the array, so a forged header can neither make
    it allocate more than the file can hold nor double the memory an honest array needs.

    Parameters
    ----------
    zf, info
        The open archive and the member to read.
    fail : callable
        ``fail(message)`` raises the caller's error; every message starts with
        ``entry '<member name>'``.
    archive_size : int, optional
        The archive's size in bytes, which bounds every member.
    stored_only : bool, default False
        Refuse compressed members.
    check_header : callable, optional
        ``check_header(shape, fortran_order, dtype)`` runs on the parsed header before any other
        check of it: the caller's own expectations (a dtype, a shape), raising its own error.
    """
    fmt = np.lib.format
    name = info.filename
    if info.flag_bits & 0x1:
        fail(f"entry {name!r} is encrypted")
    if stored_only and info.compress_type != zipfile.ZIP_STORED:
        fail(f"entry {name!r} is compressed (method {info.compress_type}); minicnn writes stored entries only")
    if not _size_is_possible(info, archive_size):
        fail(f"entry {name!r} declares {info.file_size} bytes, more than the file holds")
    with zf.open(info) as f:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(f)
        else:
            fail(f"entry {name!r} has unsupported .npy version {version}")
        if check_header is not None:
            check_header(shape, fortran, dtype)
        if dtype.hasobject:
            fail(f"entry {name!r} holds Python objects (dtype {dtype}); minicnn never "
                 "unpickles file contents")
        if dtype.kind not in _ARRAY_KINDS or dtype.fields is not None or dtype.subdtype is not None:
            fail(f"entry {name!r} has unsupported dtype {dtype}")
        nbytes = math.prod(shape) * dtype.itemsize
        header = f.tell()
        if header + nbytes != info.file_size:
            fail(f"entry {name!r} declares shape {shape} {dtype} ({nbytes} bytes) but holds "
                 f"{info.file_size - header} bytes of data")
        out = np.empty(shape[::-1] if fortran else shape, dtype)
        got = read_into(f, out)
        if got != nbytes or f.read(1):  # reading to the end also makes zipfile check the CRC
            fail(f"entry {name!r} is truncated")
    return out.T if fortran else out


def read_npz(path: str | os.PathLike, what: str = "model file") -> tuple[dict[str, np.ndarray], dict]:
    """Load (arrays, meta) from a file written by :func:`write_npz`, after verifying its checksum.

    Raises ModelFileError (naming the file) if it is missing, not an archive, truncated, tampered
    with, holds objects or anything else minicnn did not write.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelFileError(f"{what} {path!r} does not exist")
    if not os.path.isfile(path):
        raise ModelFileError(f"{what} {path!r} is not a file")

    def fail(msg):
        raise ModelFileError(f"{what} {path!r}: {msg}")

    try:
        size = os.path.getsize(path)
        zf = zipfile.ZipFile(path)
    except Exception as e:  # BadZipFile, OSError, EOFError, ValueError, struct errors, ...
        raise ModelFileError(f"{what} {path!r} is not a readable .npz archive: {e}") from None
    arrays: dict[str, np.ndarray] = {}
    try:
        with zf:
            infos = zf.infolist()
            if len(infos) > MAX_ENTRIES:
                fail(f"has {len(infos)} entries, more than any minicnn file")
            for info in infos:
                name = info.filename
                if not name.endswith(".npy") or name.startswith("/") or info.is_dir():
                    fail(f"unexpected entry {name!r}; it was not written by minicnn")
                key = name[:-len(".npy")]
                if key in arrays:
                    fail(f"entry {name!r} appears twice")
                arrays[key] = read_npy_member(zf, info, fail, archive_size=size, stored_only=True)
    except ModelFileError:
        raise
    except Exception as e:  # zipfile/zlib/struct/numpy header errors from damaged bytes
        raise ModelFileError(f"{what} {path!r} is damaged: {type(e).__name__}: {e}") from None
    raw = arrays.pop(JSON_KEY, None)
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        fail(f"has no '{JSON_KEY}' entry; it was not written by minicnn")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ModelFileError(f"{what} {path!r} has a corrupt '{JSON_KEY}': {type(e).__name__}: {e}") from None
    if not isinstance(meta, dict):
        fail(f"'{JSON_KEY}' must hold a JSON object")
    if not isinstance(meta.get("sha256"), str):
        fail("has no checksum; it was not written by this version of minicnn")
    try:
        ok = digest(arrays, meta) == meta["sha256"]
    except (ValueError, TypeError, RecursionError) as e:  # e.g. a JSON too deeply nested to re-encode
        raise ModelFileError(f"{what} {path!r} has a corrupt '{JSON_KEY}': {type(e).__name__}: {e}") from None
    if not ok:
        fail("fails its checksum (damaged or tampered with)")
    return arrays, meta


# ----------------------------------------------------------------------------- validation helpers
def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
