"""Flows on disk, keyed by (frame contents, resolution, backend), so reruns and --resume skip them."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Optional

import numpy as np

from ..base.errors import FlowstyleError
from ..io.frames import Frame

__all__ = ["FlowCache"]


class FlowCache:
    """Flows on disk, keyed by (frame contents, resolution, backend); float16 .npy files."""

    def __init__(self, folder: Optional[Path]):
        self.folder = Path(folder) if folder else None

    def _path(self, backend: str, a: Frame, b: Frame) -> Optional[Path]:
        if self.folder is None:
            return None
        h, w = a.rgb.shape[:2]
        key = hashlib.blake2b(f"{backend}|{w}x{h}|{a.key}|{b.key}".encode(), digest_size=16).hexdigest()
        return self.folder / key[:2] / f"{key}.npy"

    def get(self, backend: str, a: Frame, b: Frame) -> Optional[np.ndarray]:
        p = self._path(backend, a, b)
        if p is None or not p.is_file():
            return None
        try:
            return np.load(p).astype(np.float32)
        except (OSError, ValueError):
            return None  # a damaged cache entry is recomputed

    def put(self, backend: str, a: Frame, b: Frame, flow: np.ndarray) -> None:
        p = self._path(backend, a, b)
        if p is None:
            return
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                np.save(f, flow.astype(np.float16))
            os.replace(tmp, p)
        except OSError as exc:
            tmp.unlink(missing_ok=True) if tmp.parent.is_dir() else None
            raise FlowstyleError(f"cannot write the flow cache in '{self.folder}': {exc.strerror or exc}; "
                                 "free space there or give --cache another folder") from None
