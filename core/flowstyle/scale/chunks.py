"""Chunking a shot for parallel runs (Ray, render farms) with overlapping lead-in margins."""
from __future__ import annotations

from dataclasses import dataclass

from ..base.errors import FlowstyleError

__all__ = ["Chunk", "plan_chunks"]


@dataclass(frozen=True)
class Chunk:
    """Frames ``start``..``end`` (0-based, inclusive) are written; ``lead`` frames before ``start``
    are run first, unwritten, to warm the temporal state."""

    index: int  # 1-based
    count: int
    start: int
    end: int
    lead: int


def plan_chunks(length: int, count: int, margin: int = 8) -> list[Chunk]:
    """Split ``length`` frames into ``count`` near-equal chunks, each with a lead-in of ``margin``."""
    if count < 1:
        raise FlowstyleError(f"the number of chunks must be 1 or more, got {count}")
    count = min(count, length)
    bounds = [round(i * length / count) for i in range(count + 1)]
    return [Chunk(i + 1, count, bounds[i], bounds[i + 1] - 1, min(margin, bounds[i])) for i in range(count)]
