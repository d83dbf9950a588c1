"""Flows on disk, keyed by (frame contents, resolution, backend), so reruns and --resume skip them.

Each entry is ``KEY.flow``: the CRC-32 of what follows (4 bytes, little-endian), then the flow as a
float16 ``.npy``. An entry whose bytes changed (a bad disk, a copy gone wrong, a hand edit of the
right size) fails its checksum and is recomputed, never used. CRC-32 is the check PNG and zip use
against damage, not against tampering; it costs 0.4 ms a 1024 x 436 flow where BLAKE2b, the check
before, cost 1.9 ms (entries with the BLAKE2b digest fail the new check and are rewritten once).

Writes go through ``.KEY.flow.HOST.PID.tmp`` and a rename. A killed run's temp files are removed by
the next run on the same host as soon as their writer is gone (its PID names no live process), and
any temp file once it is old enough that no live writer, this host's or another's on a shared cache,
can still own it. Entries of the earlier format (``KEY.npy``, no digest), never read, are removed too.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import socket
import time
import zlib
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..base.errors import FlowstyleError
from ..io.frames import Frame

__all__ = ["FlowCache", "STALE_TEMP_SECONDS"]

STALE_TEMP_SECONDS = 600  # a flow is written in well under a second: a temp file this old was orphaned
_DIGEST = 4
_OLD_ENTRY = re.compile(r"[0-9a-f]{32}\.npy")  # KEY.npy: the format before the digest
_TEMP = re.compile(r"\.[0-9a-f]{32}\.flow\.(?:(?P<host>.+)\.)?(?P<pid>\d+)\.tmp")  # HOST. absent: written before it was
_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"


def _writer_gone(name: str) -> bool:
    """Whether the temp file ``name`` was written on this host by a process that no longer exists."""
    m = _TEMP.fullmatch(name)
    if not m or m["host"] != _HOST or os.name == "nt":  # Windows: signal 0 would be a Ctrl+C, so age decides
        return False
    try:
        os.kill(int(m["pid"]), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):
        return False  # exists but is not ours, or no such check here (then age decides)
    return False


def _digest(data: bytes) -> bytes:
    return zlib.crc32(data).to_bytes(_DIGEST, "little")


class FlowCache:
    """Flows on disk, keyed by (frame contents, resolution, backend); checksummed float16 entries."""

    def __init__(self, folder: Optional[Path]):
        self.folder = Path(folder) if folder else None

    def _path(self, backend: str, a: Frame, b: Frame) -> Optional[Path]:
        if self.folder is None:
            return None
        h, w = a.rgb.shape[:2]
        key = hashlib.blake2b(f"{backend}|{w}x{h}|{a.key}|{b.key}".encode(), digest_size=16).hexdigest()
        return self.folder / key[:2] / f"{key}.flow"

    def get(self, backend: str, a: Frame, b: Frame) -> Optional[np.ndarray]:
        p = self._path(backend, a, b)
        if p is None or not p.is_file():
            return None
        try:
            data = p.read_bytes()
            if len(data) <= _DIGEST or _digest(data[_DIGEST:]) != data[:_DIGEST]:
                return None  # changed on disk: recomputed (and rewritten) by the caller
            return torch.from_numpy(np.load(io.BytesIO(data[_DIGEST:]))).float().numpy()
        except (OSError, ValueError):
            return None  # a damaged cache entry is recomputed

    def put(self, backend: str, a: Frame, b: Frame, flow: np.ndarray) -> None:
        p = self._path(backend, a, b)
        if p is None:
            return
        buf = io.BytesIO()
        np.save(buf, flow if flow.dtype == np.float16 else flow.astype(np.float16))
        body = buf.getvalue()
        tmp = p.with_name(f".{p.name}.{_HOST}.{os.getpid()}.tmp")
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(_digest(body) + body)
            os.replace(tmp, p)
        except OSError as exc:
            tmp.unlink(missing_ok=True) if tmp.parent.is_dir() else None
            raise FlowstyleError(f"cannot write the flow cache in '{self.folder}': {exc.strerror or exc}; "
                                 "free space there or give --cache another folder") from None

    def remove_stale_temps(self, max_age: float = STALE_TEMP_SECONDS) -> int:
        """Delete the cache's own temp files whose writer on this host is gone or that are older than
        ``max_age`` seconds, and its entries of the earlier format (``KEY.npy`` under the key's
        two-letter folder); returns how many."""
        if self.folder is None or not self.folder.is_dir():
            return 0
        removed, now = 0, time.time()
        for p in [*self.folder.glob("??/.*.flow.*.tmp"), *self.folder.glob("??/*.npy")]:
            try:
                if p.suffix == ".npy":
                    if not (_OLD_ENTRY.fullmatch(p.name) and p.name.startswith(p.parent.name)):
                        continue  # not an entry of ours
                elif not _writer_gone(p.name) and now - p.stat().st_mtime <= max_age:
                    continue  # a live writer's, maybe another host's
                p.unlink()
                removed += 1
            except OSError:
                pass  # gone already, or not ours to remove
        return removed
