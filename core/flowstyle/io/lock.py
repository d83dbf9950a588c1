"""One job per output folder: a lock file made with O_EXCL; a dead owner's lock is taken over."""
from __future__ import annotations

import os
from pathlib import Path

from ..base.errors import FlowstyleError

__all__ = ["OutputLock"]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


class OutputLock:
    """Hold ``path`` (``OUT/.flowstyle/lock``, see :mod:`flowstyle.io.names`) while a job writes to OUT."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._held = False

    def __enter__(self) -> "OutputLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    pid = int(self.path.read_text().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if pid and pid != os.getpid() and _pid_alive(pid):
                    raise FlowstyleError(
                        f"another flowstyle job (pid {pid}) is writing to '{self.path.parent.parent}': "
                        "wait for it to finish or choose another --out"
                    ) from None
                self.path.unlink(missing_ok=True)  # stale: its owner died
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            self._held = True
            return self
        raise FlowstyleError(f"cannot lock '{self.path}': remove it if no flowstyle job is running")

    def __exit__(self, *exc) -> None:
        if self._held:
            self.path.unlink(missing_ok=True)
            self._held = False
