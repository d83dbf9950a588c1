"""--compare-perframe: the shot once more, stylized frame by frame without the temporal step.

What flowstyle removes is the flicker of exactly this: the same network (the shipped one or the
``--stylizer`` file; a recurrent one without its previous output), the same style keys, no pull
towards the warped past. Measured the way the run measures its own output (the engine's
flow, the hard consistency mask, earlier frames warped as the engine warps), so the two warping
errors in report.json and report.png compare like for like. It costs one more network pass per
frame (flows come from the run's cache).
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from ..base.tensors import quantize
from ..context import RunContext
from ..io.frames import Frame
from ..keyframes.timeline import Timeline
from ..motion.metrics import warping_error
from ..motion.trace import trace
from .run import make_stylizer, perframe_target

__all__ = ["compare_perframe", "NOTE"]

NOTE = ("--compare-perframe: per-frame stylization (the same network without the temporal step) ran once more "
        "over the shot, one more network pass per frame")


def compare_perframe(ctx: RunContext, timeline: Timeline, on_frame: Callable[[Frame, np.ndarray], None]) -> None:
    """Stylize every frame on its own, measure its warping error, and hand each frame on.

    Records ``warping_error_perframe`` for frames 2.. in the report, the pass's seconds in
    ``extra_seconds["compare_perframe"]`` and :data:`NOTE` in its notes.

    Args:
        on_frame: receives (input frame, its per-frame stylization (H, W, 3) quantized as stored),
            in clip order; the stylization is not kept after that.
    """
    t0 = time.perf_counter()
    s, n = ctx.settings, len(ctx.source)
    stylizer = make_stylizer(ctx)  # the run's network: the shipped one, or the --stylizer file (no previous output)
    prev = None
    for frame in ctx.source:
        ctx.check_cancel()
        out = quantize(perframe_target(stylizer, timeline, frame), frame.bit_depth)
        if prev is not None:
            traced = trace(ctx.flows, frame, [(1, *prev)], device=ctx.device, warp_mode=s.warp_mode)
            ctx.report.frame(frame.index + 1)["warping_error_perframe"] = warping_error(prev[1], out, *traced.motion()[1])
        on_frame(frame, out)
        prev = (frame, out)
        ctx.progress("compare", frame.index + 1, n)
    seconds = time.perf_counter() - t0
    ctx.report.extra_seconds["compare_perframe"] = seconds
    ctx.report.notes.append(f"{NOTE} ({seconds / max(n, 1):.2f} s a frame)")
