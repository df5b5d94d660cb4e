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
* Bounds every reader shares: :data:`MAX_DATA_BYTES` (the hard cap on what one file may make a
  reader allocate, whatever its architecture), :data:`MAX_JSON_BYTES` and :data:`MAX_JSON_DEPTH`
  (:func:`parse_json`), and :func:`read_bounded` (a stream read that stops after ``limit + 1``
  bytes, so a zip header that understates a member's size cannot make it inflate further).
* A write that fails in the operating system (ENOSPC, EFBIG, EROFS, EACCES, ...) is a
  :class:`~minicnn.errors.FileWriteError` naming the destination and the cause.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import tempfile
import zipfile

import numpy as np

from .errors import FileWriteError, ModelFileError

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
#: the most bytes of data one model, weights or checkpoint file may make a reader allocate (a hard
#: cap on top of "what the file's architecture needs")
MAX_DATA_BYTES = 1 << 32
#: the largest JSON document (architecture, checkpoint record) a reader parses, and its deepest nesting
MAX_JSON_BYTES = 16 << 20
MAX_JSON_DEPTH = 64


# ----------------------------------------------------------------------------- writing
def _umask() -> int:
    # os.umask can only be read by setting it; set a restrictive value for the instant in between
    old = os.umask(0o077)
    os.umask(old)
    return old


class _GuardedFile(io.FileIO):
    """A file whose write errors name the destination (FileWriteError), not the temporary file."""

    def __init__(self, fd, dest):
        super().__init__(fd, "wb", closefd=True)
        self.dest = dest

    def write(self, b):
        try:
            return super().write(b)
        except OSError as e:
            raise FileWriteError(self.dest, e) from None


def atomic_write(path: str | os.PathLike, data, verify=None) -> None:
    """Write ``data`` (bytes, or a callable taking a binary file object) to ``path`` atomically.

    The temporary file lives in the destination's directory (so the rename cannot cross file
    systems), is fsynced before the rename, and gets the permissions a plain ``open(path, 'wb')``
    would give it; the directory is fsynced after the rename so the new name itself is durable.
    ``verify(tmp_path)``, if given, runs on the complete temporary file before the rename; if it
    raises, the temporary file is removed and ``path`` is left as it was.

    If the operating system refuses the write (disk full, file too large, read-only file system,
    permission denied, ...) the temporary file is removed, ``path`` is left as it was and
    :class:`~minicnn.errors.FileWriteError` names ``path`` and the cause.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix="-" + os.path.basename(path), dir=directory)
    except OSError as e:
        raise FileWriteError(path, e) from None
    try:
        with io.BufferedWriter(_GuardedFile(fd, path)) as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            _guarded(path, os.fsync, f.fileno())
        if verify is not None:
            verify(tmp)
        _guarded(path, os.chmod, tmp, 0o666 & ~_umask())  # mkstemp creates 0600
        _guarded(path, os.replace, tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _guarded(path, fn, *args):
    try:
        return fn(*args)
    except OSError as e:
        raise FileWriteError(path, e) from None


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


def read_bounded(f, limit: int, fail, what: str) -> bytes:
    """At most ``limit`` bytes from the binary stream ``f``: reads in chunks and stops after
    ``limit + 1`` bytes (``fail(message)`` then), whatever any header claimed."""
    parts, got = [], 0
    while True:
        chunk = f.read(min(CHUNK, limit + 1 - got))
        if not chunk:
            return b"".join(parts)
        got += len(chunk)
        if got > limit:
            fail(f"{what} holds more than {limit} bytes (the limit for it); refused unread")
        parts.append(chunk)


def json_nesting(text: str) -> int:
    """How deeply the arrays and objects of the JSON ``text`` nest (strings are skipped)."""
    stripped = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
    b = np.frombuffer(stripped.encode("utf-8", "replace"), dtype=np.uint8)
    step = np.isin(b, (91, 123)).astype(np.int64) - np.isin(b, (93, 125))
    return int(np.cumsum(step).max()) if step.size else 0


def parse_json(raw, fail, what: str):
    """The JSON value in ``raw`` (bytes or str), refusing documents over :data:`MAX_JSON_BYTES`
    or nested deeper than :data:`MAX_JSON_DEPTH` before parsing; ``fail(message)`` otherwise."""
    if len(raw) > MAX_JSON_BYTES:
        fail(f"{what} is {len(raw)} bytes, more than the {MAX_JSON_BYTES} a minicnn reader accepts")
    try:
        text = raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw
        if not isinstance(text, str):
            raise TypeError(f"expected text, got {type(text).__name__}")
        depth = json_nesting(text)
        if depth > MAX_JSON_DEPTH:
            fail(f"{what} nests {depth} levels deep, more than the {MAX_JSON_DEPTH} a minicnn reader accepts")
        return json.loads(text)
    except (UnicodeDecodeError, ValueError, TypeError, RecursionError) as e:
        fail(f"{what} is not valid JSON: {type(e).__name__}: {e}")


def read_npz(path: str | os.PathLike, what: str = "model file", budget=None) -> tuple[dict[str, np.ndarray], dict]:
    """Load (arrays, meta) from a file written by :func:`write_npz`, after verifying its checksum.

    Raises ModelFileError (naming the file) if it is missing, not an archive, truncated, tampered
    with, holds objects or anything else minicnn did not write.

    Nothing is read beyond the archive's directory until the sizes add up: the entries may not
    overlap (their sizes sum to at most the file's), the JSON record is read first (bounded by
    :data:`MAX_JSON_BYTES`), and the arrays together may not declare more than ``budget(meta)``
    bytes (what the record's architecture needs; None: :data:`MAX_DATA_BYTES`), so a doctored
    file cannot make the reader allocate more than its architecture needs.
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
            by_key = {}
            for info in infos:
                name = info.filename
                if not name.endswith(".npy") or name.startswith("/") or info.is_dir():
                    fail(f"unexpected entry {name!r}; it was not written by minicnn")
                key = name[:-len(".npy")]
                if key in by_key:
                    fail(f"entry {name!r} appears twice")
                by_key[key] = info
            declared = sum(i.compress_size for i in infos)
            if declared > size:
                fail(f"its entries declare {declared} bytes in all, more than the file's {size} "
                     "(overlapping entries)")
            if JSON_KEY not in by_key:
                fail(f"has no '{JSON_KEY}' entry; it was not written by minicnn")
            if by_key[JSON_KEY].file_size > MAX_JSON_BYTES + 4096:
                fail(f"entry '{JSON_KEY}' declares {by_key[JSON_KEY].file_size} bytes, more than the "
                     f"{MAX_JSON_BYTES} a minicnn reader accepts")
            raw = read_npy_member(zf, by_key.pop(JSON_KEY), fail, archive_size=size, stored_only=True)
            if raw.dtype != np.uint8 or raw.ndim != 1:
                fail(f"entry '{JSON_KEY}' is not a byte string; it was not written by minicnn")
            meta = parse_json(raw.tobytes(), fail, f"'{JSON_KEY}'")
            if not isinstance(meta, dict):
                fail(f"'{JSON_KEY}' must hold a JSON object")
            need = None if budget is None else budget(meta)
            limit = MAX_DATA_BYTES if need is None else min(MAX_DATA_BYTES, need)
            data = sum(i.file_size for i in by_key.values())
            if data > limit:
                fail(f"its arrays declare {data} bytes, more than the {limit} its architecture needs "
                     "(or the hard cap); refused before reading them")
            for key, info in by_key.items():
                arrays[key] = read_npy_member(zf, info, fail, archive_size=size, stored_only=True)
    except ModelFileError:
        raise
    except Exception as e:  # zipfile/zlib/struct/numpy header errors from damaged bytes
        raise ModelFileError(f"{what} {path!r} is damaged: {type(e).__name__}: {e}") from None
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
