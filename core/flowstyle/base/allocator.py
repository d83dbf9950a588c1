"""Keep large freed blocks in the process heap (glibc), so big tensors are not page-faulted anew.

glibc hands every allocation above its mmap threshold (at most 32 MB) straight back to the system
when it is freed, so the next tensor of that size is mapped and page-faulted again, one 4 KB page at a
time. At 1024x436 the stylizers' 32-channel activations are 57 MB: each such allocation cost
about 20 ms, a third of the 26-style network's time on a 2-core CPU. Raising the mmap and trim
thresholds to 1 GB keeps those blocks in the heap for reuse.

What it trades: freed memory under 1 GB is kept by the process instead of returned to the system
(the render's peak memory is unchanged; its resident size does not shrink between frames). A
process-wide setting, applied by the two owners of big activations when they run on the CPU (the
Magenta stylizer and quality mode's VGG), so Ray workers get it too; a no-op on other C libraries.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["keep_large_blocks"]

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
THRESHOLD = 1 << 30

_done = False


def keep_large_blocks() -> bool:
    """Set glibc's mmap and trim thresholds to 1 GB (once per process). True where it applied."""
    global _done
    if _done or not sys.platform.startswith("linux"):
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    _done = bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, THRESHOLD))
    return _done
