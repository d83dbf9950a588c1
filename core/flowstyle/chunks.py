"""Chunking a shot for parallel runs (Ray, render farms) with overlapping lead-in margins."""
from __future__ import annotations

from dataclasses import dataclass

from .errors import FlowstyleError

__all__ = ["Chunk", "plan_chunks", "parse_chunk"]


@dataclass(frozen=True)
class Chunk:
    """Frames ``start``..``end`` (0-based, inclusive) are written; ``lead`` frames before ``start``
    are run first, unwritten, to warm the temporal state."""

    index: int  # 1-based
    count: int
    start: int
    end: int
    lead: int

    @property
    def name(self) -> str:
        return f"chunk {self.index}/{self.count} (frames {self.start + 1}-{self.end + 1})"


def plan_chunks(length: int, count: int, margin: int = 8) -> list[Chunk]:
    """Split ``length`` frames into ``count`` near-equal chunks, each with a lead-in of ``margin``."""
    if count < 1:
        raise FlowstyleError(f"the number of chunks must be 1 or more, got {count}")
    count = min(count, length)
    bounds = [round(i * length / count) for i in range(count + 1)]
    return [Chunk(i + 1, count, bounds[i], bounds[i + 1] - 1, min(margin, bounds[i])) for i in range(count)]


def parse_chunk(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N), 1-based."""
    a, sep, b = text.partition("/")
    try:
        i, n = int(a), int(b)
    except ValueError:
        i = n = 0
    if not sep or not 1 <= i <= n:
        raise FlowstyleError(f"--chunk '{text}' must be I/N with 1 <= I <= N, like 2/8")
    return i, n
