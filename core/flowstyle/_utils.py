"""Private helpers: device choice, tensor <-> array, the output-folder lock."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import FlowstyleError

__all__ = ["pick_device", "OutputLock", "quantize"]


def pick_device(name: str = "auto") -> str:
    """'auto' -> cuda, then mps, then cpu; an explicit name is checked to exist."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise FlowstyleError("--device cuda was asked for but no CUDA GPU is visible to torch: use --device auto or cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise FlowstyleError("--device mps was asked for but Metal is not available: use --device auto or cpu")
    return name


def quantize(rgb: np.ndarray, bit_depth: int) -> np.ndarray:
    """Round to what a PNG of ``bit_depth`` stores, so the carried-forward result equals the file."""
    scale = 65535.0 if bit_depth == 16 else 255.0
    return (np.floor(np.clip(rgb, 0.0, 1.0) * scale + 0.5) / scale).astype(np.float32)


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
    """One job per output folder: ``.flowstyle/lock`` made with O_EXCL; a dead owner's lock is taken over."""

    def __init__(self, folder: Path, name: str = "lock"):
        self.path = Path(folder) / ".flowstyle" / name
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
