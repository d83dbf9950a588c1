"""One job per output folder, held with the operating system's file lock.

The lock is taken on ``OUT/.flowstyle/lock`` with ``fcntl.flock`` (``msvcrt.locking`` on Windows): the
OS releases it when the holder exits or dies, so a crashed job never locks a folder forever and a PID
reused by another program means nothing. Each holder opens the file itself, so two jobs in one
process (two threads) exclude each other too. A plain job holds the folder's lock exclusively; a
render-farm chunk job holds it shared plus its own chunk's lock exclusively, so the chunk jobs of one
shot run side by side, but never beside a plain job or a second copy of the same chunk. The lock
files stay in place (removing a lock file that another job may be opening would let two jobs in).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

from ..base.errors import FlowstyleError
from . import names

__all__ = ["OutputLock"]


def _try_lock(path: Path, shared: bool) -> Optional[int]:
    """An open descriptor holding ``path`` locked, or None when another job holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        if path.is_dir():  # IsADirectoryError on POSIX, PermissionError on Windows
            raise FlowstyleError(f"the lock file '{path}' is a folder: remove it (no flowstyle job makes it) "
                                 "and run again") from None
        raise FlowstyleError(f"cannot create the lock file '{path}': {exc.strerror or exc}; "
                             "check the output folder is writable") from None
    try:
        if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # exclusive only: chunk jobs share nothing there
        else:
            import fcntl

            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


class OutputLock:
    """Hold the output folder ``out`` for one job (a plain job, or chunk (I, N) of a farm job)."""

    def __init__(self, out: Path, chunk: Optional[tuple[int, int]] = None):
        self.out, self.chunk = Path(out), chunk
        self._fds: list[int] = []

    def __enter__(self) -> "OutputLock":
        wanted = [(names.lock_path(self.out), self.chunk is not None and sys.platform != "win32")]
        if self.chunk is not None:
            wanted.append((names.lock_path(self.out, self.chunk), False))
        for path, shared in wanted:
            fd = _try_lock(path, shared)
            if fd is None:
                self.__exit__()
                what = f"chunk {self.chunk[0]}/{self.chunk[1]}" if self.chunk and path != names.lock_path(self.out) \
                    else "this folder"
                raise FlowstyleError(f"another flowstyle job is writing {what} in '{self.out}': wait for it to finish "
                                     "or choose another --out")
            self._fds.append(fd)
        return self

    def __exit__(self, *exc) -> None:
        for fd in self._fds:
            os.close(fd)  # closing releases the lock
        self._fds = []
