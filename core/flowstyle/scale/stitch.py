"""The boundary stitch: make the seams between chunks as consistent as the inside of a chunk."""
from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Sequence

import numpy as np

from ..base.errors import FlowstyleError
from ..context import RunContext
from ..fast.run import FrameSolver
from ..io.images import read_image, write_png
from ..io.names import frame_name
from ..keyframes.timeline import Timeline
from ..motion.metrics import warping_error
from .chunks import Chunk

__all__ = ["stitch_boundary", "stitch_chunks", "check_chunks_written"]


def check_chunks_written(out: Path, length: int, chunks: int) -> None:
    """Before a stitch: every frame of the shot is in ``out``, so the chunk jobs have all run."""
    missing = [k for k in range(1, length + 1) if not (Path(out) / frame_name(k)).is_file()]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise FlowstyleError(f"flowstyle stitch: '{out}' has no {frame_name(missing[0])}{more}: run all {chunks} chunk "
                             f"jobs ('flowstyle stylize ... --chunk I/{chunks}') into this --out first, then stitch")


def _read_output(ctx: RunContext, k: int) -> np.ndarray:
    return read_image(ctx.out / frame_name(k + 1), "chunk output")[0]


def stitch_boundary(ctx: RunContext, timeline: Timeline, boundary: int, limit: int) -> int:
    """Re-solve frames ``boundary``, ``boundary + 1``, ... with the true history.

    The true history is the previous chunk's final frames, read from disk. Frames are rewritten
    until a re-solved frame equals the chunk's own (from there on the two chains agree) or
    ``limit`` frames are done.

    Returns:
        the number of frames rewritten.
    """
    solve = FrameSolver(ctx, timeline)
    j_max = max(ctx.settings.long_term)
    history: deque = deque(maxlen=j_max)
    for k in range(max(0, boundary - j_max), boundary):
        history.append((ctx.source.read(k), _read_output(ctx, k)))
    rewritten = 0
    for k in range(boundary, min(boundary + limit, len(ctx.source))):
        ctx.check_cancel()
        frame = ctx.source.read(k)
        old = _read_output(ctx, k)
        out = solve(frame, history, {})
        if np.abs(out - old).max() < 0.25 / 255:
            break
        path = ctx.out / frame_name(k + 1)
        write_png(path, out, frame.alpha, frame.bit_depth)
        ctx.on_event({"event": "frame", "index": k + 1, "path": str(path), "seconds": 0.0, "stitched": True})
        rewritten += 1
        history.append((frame, out))
    return rewritten


def stitch_chunks(ctx: RunContext, timeline: Timeline, plan: Sequence[Chunk], margin: int) -> None:
    """Stitch every boundary of a chunk plan, then re-measure the warping error around each."""
    limit = 2 * margin + 2
    for c in plan[1:]:
        rewritten = stitch_boundary(ctx, timeline, c.start, limit)
        for k in range(c.start, min(c.start + rewritten + 1, len(ctx.source))):
            a, b = ctx.source.read(k - 1), ctx.source.read(k)
            fw, bw = ctx.flows.pair(a, b)
            ctx.report.frame(k + 1)["warping_error"] = warping_error(_read_output(ctx, k - 1), _read_output(ctx, k), fw, bw)
        ctx.progress("stitch", c.index - 1, len(plan) - 1)
