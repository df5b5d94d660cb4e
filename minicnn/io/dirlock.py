"""An advisory lock on a checkpoint directory, so that two runs never write the same one.

The lock is ``fcntl.flock`` on the file :data:`LOCK_NAME` in the directory, which holds the
owner's pid. A second run on the directory is refused with a message naming that pid. The
operating system releases a flock when its process dies, however it dies, so a run killed with
SIGKILL leaves no lock behind, only its pid in the file: the next run takes the lock over and
says so ("stale lock from pid N, taken over"). The file itself stays (emptied on release):
deleting a lock file races with a process that has just opened it.
"""

from __future__ import annotations

import fcntl
import os
import sys

from ..errors import FileWriteError, LockedError

LOCK_NAME = ".minicnn.lock"


def _pid_in(fd) -> int | None:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class DirectoryLock:
    """Hold the lock on ``directory`` (which must exist) until :meth:`release`."""

    def __init__(self, directory, stream=None):
        directory = os.fspath(directory)
        self.path = os.path.join(directory, LOCK_NAME)
        self.fd = None
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as e:
            raise FileWriteError(self.path, e, context="; cannot lock the checkpoint directory, so "
                                 "training did not start") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _pid_in(fd)
            os.close(fd)
            if isinstance(e, BlockingIOError):
                raise LockedError(f"checkpoint directory {directory!r} is in use by another run (pid "
                                  f"{holder if holder is not None else 'unknown'}; lock file {self.path}): "
                                  "wait for it to finish, or use another checkpoint directory") from None
            raise LockedError(f"cannot lock checkpoint directory {directory!r} ({self.path}): "
                              f"{e.strerror or e}") from None
        stale = _pid_in(fd)
        if stale is not None and stale != os.getpid():
            out = stream if stream is not None else sys.stderr
            out.write(f"minicnn: warning: stale lock from pid {stale} in {directory!r} (that run ended "
                      "without releasing it, e.g. it was killed); taken over\n")
            out.flush()
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as e:
            os.close(fd)
            raise FileWriteError(self.path, e, context="; cannot lock the checkpoint directory, so "
                                 "training did not start") from None
        self.fd = fd
        self.stale_pid = stale if stale != os.getpid() else None

    def release(self) -> None:
        """Empty the lock file and release the lock (idempotent)."""
        fd, self.fd = self.fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        os.close(fd)  # closing the last descriptor releases the flock

    def __del__(self):
        self.release()
