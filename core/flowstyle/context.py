"""What a mode needs from the pipeline, and the one per-frame loop both modes run.

:class:`RunContext` holds the clip, the settings and the sinks: modes read frames from
``source`` and flows from ``flows``, and hand every finished frame to :meth:`RunContext.emit_frame`,
which writes it atomically, records it for ``--resume`` and reports it. :func:`run_frames` streams
the clip front to back through a mode's :data:`SolveFrame`.
"""
from __future__ import annotations

import functools
import hashlib
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
import torch

from .base.errors import Cancelled, FlowstyleError
from .io import names
from .io.frames import Frame, FrameSource
from .io.images import atomic_write_bytes, read_image, write_png
from .io.report import Report
from .io.report_image import SeenFrames
from .motion.flow import FlowEstimator
from .motion.metrics import warping_error
from .settings import Settings

__all__ = ["RunContext", "EventFn", "History", "SolveFrame", "run_frames"]

EventFn = Callable[[dict], None]
History = Sequence[tuple[Frame, np.ndarray]]  # (input frame, its output), oldest first
# solve(frame, history, motion) -> the frame's output (H, W, 3), quantized as stored; ``motion``
# receives j -> (flow i-j -> i, flow i -> i-j, consistency mask, ω_j) for the offsets it traced
# (Traced.motion()), so measuring the result need not compute them again.
SolveFrame = Callable[[Frame, History, dict], np.ndarray]
# a SolveFrame may have ``keep(frame, history, stored)``, called for a frame --resume keeps (to step the state it
# carries from frame to frame), and say ``decode_ahead`` (read the next frame in a thread while it works) and ``flow_ahead``
# (the flow to the next frame too): for a solve whose network runs off the CPU, leaving cores idle


@dataclass
class RunContext:
    """The clip, the settings and the sinks of one run."""

    source: FrameSource
    settings: Settings
    out: Path
    device: str
    flows: FlowEstimator
    report: Report
    on_event: EventFn
    cancel: Callable[[], bool]
    resume: bool = False
    debug: bool = False
    settings_key: str = ""
    seen: Optional[SeenFrames] = None  # what report.png takes of each frame written, as read and as written

    def check_cancel(self) -> None:
        if self.cancel():
            raise Cancelled()

    def progress(self, stage: str, done: int, total: int) -> None:
        self.on_event({"event": "progress", "stage": stage, "done": done, "total": total})

    def chain_key(self, frame: Frame, previous_key: str) -> str:
        """Resume key of a frame: settings + its input + the key of the frame before (temporal dependency)."""
        return hashlib.blake2b(f"{self.settings_key}|{frame.key}|{previous_key}".encode(), digest_size=16).hexdigest()

    def reusable(self, index: int, key: str) -> Optional[np.ndarray]:
        """The finished output of frame ``index`` (1-based) if ``--resume`` may keep it, else None."""
        path = self.out / names.frame_name(index)
        try:
            stored = names.key_path(self.out, index).read_text()
        except OSError:
            return None
        if not self.resume or stored != key or not path.is_file():
            return None
        try:
            rgb, _, _ = read_image(path, "earlier output")
        except FlowstyleError:
            return None
        return rgb if rgb.shape[:2] == (self.source.height, self.source.width) else None

    def emit_frame(self, frame: Frame, rgb: np.ndarray, key: str, seconds: float, reused: bool = False) -> None:
        index = frame.index + 1
        path = self.out / names.frame_name(index)
        if not reused:
            t = time.perf_counter()
            write_png(path, rgb, frame.alpha, frame.bit_depth)
            self.report.add_time(index, "write", time.perf_counter() - t)
            atomic_write_bytes(names.key_path(self.out, index), key.encode())  # after the frame: a key never vouches for a missing frame
        else:
            self.report.frame(index)["reused"] = True
        if self.seen is not None:
            self.seen.add(frame.index, frame.rgb, rgb)
        self.on_event({"event": "frame", "index": index, "path": str(path), "seconds": round(seconds, 4),
                       "reused": reused})

    def measure(self, prev: Optional[tuple[Frame, np.ndarray]], frame: Frame, out: np.ndarray,
                motion: Optional[tuple] = None) -> None:
        """Warping error of ``out`` against the previous output, with the engine's flow (report.json).

        ``motion``: (flow fw, flow bw, consistency mask, ``prev``'s output warped) where the solve
        traced them (:meth:`~flowstyle.motion.trace.Traced.motion`).
        """
        if prev is None:
            return
        t = time.perf_counter()
        fw, bw, mask, warped = motion or (*self.flows.pair(prev[0], frame), None, None)
        self.report.frame(frame.index + 1)["warping_error"] = warping_error(prev[1], out, fw, bw, mask, warped)
        self.report.add_time(frame.index + 1, "measure", time.perf_counter() - t)

    def write_debug_masks(self, frame: Frame, masks: Mapping[int, torch.Tensor]) -> None:
        """With ``--debug``: each (1, 1, H, W) mask tying ``frame`` to frame ``index - j``, as a gray PNG."""
        if not self.debug:
            return
        folder = self.out / "debug"
        folder.mkdir(exist_ok=True)
        for j, m in masks.items():
            gray = m[0, 0].cpu().numpy()
            write_png(folder / names.mask_name(frame.index + 1, j), np.repeat(gray[..., None], 3, axis=2))


def run_frames(ctx: RunContext, solve: SolveFrame, *, first: int = 0, last: Optional[int] = None,
               lead: int = 0) -> None:
    """Stream the clip front to back through ``solve``; memory holds max(J) earlier frames.

    Each frame is read, keyed for ``--resume`` (kept if unchanged), solved, written, measured. Where
    ``solve`` asks (``decode_ahead``, ``flow_ahead``), the next frame is decoded and its flow from this
    frame computed in background threads meanwhile.

    Args:
        first, last: 0-based range of frames to write (default: all), for chunked runs.
        lead: frames before ``first`` run (not written) to warm the temporal state, so a
            chunk's first frames look like the inside of a single run. A chunk never reads
            another chunk's output, so its result does not depend on which chunk ran first.
    """
    rep, n = ctx.report, len(ctx.source)
    history: deque = deque(maxlen=max(ctx.settings.long_term))
    key = ""
    last = n - 1 if last is None else last
    decode_ahead, flow_ahead = getattr(solve, "decode_ahead", False), getattr(solve, "flow_ahead", False)
    try:
        for k in range(max(0, first - lead), last + 1):
            ctx.check_cancel()
            index = k + 1
            t0 = time.perf_counter()
            frame = ctx.source.read(k)
            if decode_ahead and k < last:
                ctx.source.read_ahead(k + 1)
            rep.add_time(index, "decode", time.perf_counter() - t0)
            key = ctx.chain_key(frame, key)
            motion: dict = {}
            if k < first:  # lead-in: state only
                history.append((frame, solve(frame, history, motion)))
                rep.frames.pop(index, None)
            else:
                out = ctx.reusable(index, key)
                reused = out is not None
                if not reused:
                    out = solve(frame, history, motion)
                elif hasattr(solve, "keep"):  # what the solve carries from frame to frame, stepped past it
                    solve.keep(frame, history, out)
                ctx.emit_frame(frame, out, key, time.perf_counter() - t0, reused=reused)
                ctx.measure(history[-1] if history else None, frame, out, motion.get(1))
                history.append((frame, out))
                ctx.progress("stylize", index, n)
            if flow_ahead and k < last:  # the next step's flow, while this frame is written and the next stylized
                ctx.flows.prefetch(frame, functools.partial(ctx.source.read, k + 1))
    finally:
        ctx.flows.settle()  # nothing of this run is left running
