"""numba's on-disk cache of this package, dropped whole when any of the package's sources changes.

numba keys a cached kernel on its own source file (its modification time and size), but the
object code it caches also holds every ``@njit`` helper the kernel calls from *other* files: a
kernel of ``dense.py`` cached before an edit of ``tiles.py`` still carries the old ``tile_grid``,
and a kernel compiled afresh after the edit may link against that stale copy (seen: wrong
results in three tests of a checkout whose cache predated a tiles change). A fresh clone is never
affected; a developer who pulls kernel changes is.

So at import (before any kernel can be loaded from the cache) :func:`drop_stale` compares a
SHA-256 of every source file of this package with the one stamped in the cache directory, and
when they differ, deletes the cached kernels there (``*.nbi`` index and ``*.nbc`` data files)
and stamps the new digest. The cache directory is the one numba itself picks for this package's
files (``NUMBA_CACHE_DIR``, else ``__pycache__`` beside the sources, else the user-wide cache),
found with numba's own locator, so the two always agree. The cost is one hash of ~230 kB of
source per import (about 1 ms with the locator); the first process after a change recompiles.

Deleting is safe while another process uses the cache: numba reads an index and its data file
each in one open, and a missing file is a cache miss (it recompiles and writes a new one).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .native import write_cache_file

__all__ = ["STAMP", "sources_digest", "cache_path", "drop_stale"]

#: the stamp file, in the cache directory: the hex SHA-256 of the sources its kernels came from
STAMP = "minicnn-kernels-sources.sha256"
_CACHED = (".nbi", ".nbc")
_HERE = Path(__file__).resolve().parent


def sources_digest(package_dir: Path = _HERE) -> str:
    """SHA-256 over the names and bytes of every ``*.py`` file of ``package_dir``, in name order."""
    h = hashlib.sha256()
    for path in sorted(package_dir.glob("*.py")):
        data = path.read_bytes()
        h.update(f"{path.name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def _a_package_function():
    """Stands for the package's kernels when asking numba's locator where they are cached."""


def cache_path() -> Path | None:
    """The directory numba caches this package's kernels in, or None if it has none (numba would
    then refuse ``cache=True``) or the query fails."""
    try:
        from numba.core.caching import FunctionCache
        return Path(FunctionCache(_a_package_function)._cache_path)
    except Exception:  # noqa: BLE001 - no locator (unwritable everywhere) or numba internals moved
        return None


def drop_stale(where: Path | None = None, digest: str | None = None) -> list[Path]:
    """Delete the cached kernels in ``where`` (default :func:`cache_path`) unless its stamp is
    ``digest`` (default :func:`sources_digest`), then stamp it; the deleted paths are returned.

    Never raises for file-system trouble: an unwritable cache is left as it is (numba itself then
    caches nothing there, or only reads it)."""
    where = cache_path() if where is None else Path(where)
    if where is None or not where.is_dir():
        return []
    digest = sources_digest() if digest is None else digest
    stamp = where / STAMP
    try:
        if stamp.read_text().strip() == digest:
            return []
    except (OSError, UnicodeDecodeError):
        pass  # no stamp (a cache from before this module, or none yet) or an unreadable one
    dropped = []
    for path in sorted(where.iterdir()):
        if path.suffix in _CACHED:
            try:
                path.unlink()
                dropped.append(path)
            except FileNotFoundError:
                pass  # another process dropped it first
            except OSError:
                return dropped  # read-only cache: leave it and its stamp alone
    write_cache_file(stamp, (digest + "\n").encode())  # whole or not at all
    return dropped
