"""Fast mode (DESIGN 4.6): per-frame Magenta stylization, then the masked output-space
temporal optimization, warm-started from the warped previous result."""
from __future__ import annotations

import time
from collections import deque
from typing import Optional, Sequence

import numpy as np
import torch

from ._utils import quantize
from .guides import OverrideGuides
from .keyframes import Timeline
from .masks import consistency_mask, long_term_masks
from .metrics import to_tensor
from .stylize import MagentaStylizer, StyleRef
from .temporal import band_solve, cg_solve
from .warp import warp

__all__ = ["run_fast", "stitch_boundary", "stitch_chunks", "FrameSolver", "build_stylizer", "temporal_step"]


def build_stylizer(ctx, styles: Sequence[StyleRef]) -> MagentaStylizer:
    return MagentaStylizer(styles, device=ctx.device)


def _to_array(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).clamp(0.0, 1.0).float().cpu().numpy()


def temporal_step(ctx, frame, target: np.ndarray, history: Sequence, flows_out: dict, *,
                  temporal_weight: float, extra: Sequence = ()) -> np.ndarray:
    """Pull the per-frame stylization ``target`` of ``frame`` towards the warped earlier outputs.

    Args:
        history: (frame, output) pairs of the previous frames, oldest first.
        flows_out: receives j -> (flow_fw, flow_bw) for the offsets used (for measuring).
        temporal_weight: γ at this frame (style keys may change it).
        extra: more (image, weight) pulls as tensors, weights absolute (not scaled by γ), e.g.
            painted overrides carried here.
    """
    s, dev = ctx.settings, ctx.device
    masks, warped = {}, {}
    for j in s.long_term:
        if j > len(history):
            continue
        prev_frame, prev_out = history[-j]
        fw, bw = ctx.flows.pair(prev_frame, frame)
        flows_out[j] = (fw, bw)
        bw_t = to_tensor(bw, dev)
        masks[j] = consistency_mask(to_tensor(fw, dev), bw_t, soft=s.mask == "soft")
        warped[j] = warp(to_tensor(prev_out, dev), bw_t, mode=s.warp_mode)
    if ctx.debug:
        _write_masks(ctx, frame, masks)
    c_long = long_term_masks(masks, s.long_term)
    order = sorted(c_long)
    images = [warped[j] for j in order] + [img for img, _ in extra]
    weights = [temporal_weight * c_long[j] for j in order] + [m for _, m in extra]
    p = to_tensor(target, dev)
    kw = dict(temporal_weight=1.0, fidelity_weight=s.fidelity_weight)
    if s.solver == "cg":
        x = cg_solve(p, images, weights, **kw)
    else:
        x = band_solve(p, images, weights, detail=s.detail, cell=s.band, **kw)
    return _to_array(x)


def _write_masks(ctx, frame, masks: dict) -> None:
    from .frames import write_png

    folder = ctx.out / "debug"
    folder.mkdir(exist_ok=True)
    for j, m in masks.items():
        gray = m[0, 0].cpu().numpy()
        write_png(folder / f"mask_{frame.index + 1:05d}_j{j}.png", np.repeat(gray[..., None], 3, axis=2))


class FrameSolver:
    """Fast mode for one frame at a time: stylize, then the temporal solve (or the painted frame)."""

    def __init__(self, ctx, timeline: Timeline):
        self.ctx, self.timeline = ctx, timeline
        self.stylizer = MagentaStylizer(device=ctx.device)
        self.guides = OverrideGuides(ctx, timeline)

    def __call__(self, frame, history: Sequence, flows: dict) -> np.ndarray:
        """The output of ``frame`` (quantized as stored) given the earlier outputs in ``history``."""
        ctx, s, k, rep = self.ctx, self.ctx.settings, frame.index, self.ctx.report
        index = k + 1
        painted = self.guides.painted(k)
        if painted is not None:  # the artist's frame is the output; neighbours are pulled towards it
            return quantize(painted, frame.bit_depth)
        t = time.perf_counter()
        self.stylizer.configure(self.timeline.styles_at(k))
        target = self.stylizer(frame.rgb)
        strength = self.timeline.weight_at(k, "strength", 1.0)
        if strength < 1.0:
            target = strength * target + (1.0 - strength) * frame.rgb
        rep.add_time(index, "stylize", time.perf_counter() - t)
        t, flow_start = time.perf_counter(), ctx.flows.seconds
        gamma = self.timeline.weight_at(k, "temporal_weight", s.temporal_weight)
        extra = self.guides.terms(k) if self.guides else []
        out = target
        if (gamma > 0 and history) or extra:
            out = temporal_step(ctx, frame, target, history if gamma > 0 else (), flows, temporal_weight=gamma, extra=extra)
        flow_seconds = ctx.flows.seconds - flow_start
        rep.add_time(index, "flow", flow_seconds)
        rep.add_time(index, "temporal", time.perf_counter() - t - flow_seconds)
        return quantize(out, frame.bit_depth)


def run_fast(ctx, timeline: Timeline, *, first: int = 0, last: Optional[int] = None, lead: int = 0) -> None:
    """Stream the clip front to back; memory holds max(J) earlier frames.

    Args:
        first, last: 0-based range of frames to write (default: all), for chunked runs.
        lead: frames before ``first`` run (not written) to warm the temporal state, so a
            chunk's first frames look like the inside of a single run. A chunk never reads
            another chunk's output, so its result does not depend on which chunk ran first.
    """
    from .metrics import warping_error

    s, rep = ctx.settings, ctx.report
    solve = FrameSolver(ctx, timeline)
    history: deque = deque(maxlen=max(s.long_term))
    key = ""
    n = len(ctx.source)
    last = n - 1 if last is None else last
    for k in range(max(0, first - lead), last + 1):
        ctx.check_cancel()
        index = k + 1
        t0 = time.perf_counter()
        frame = ctx.source.read(k)
        rep.add_time(index, "decode", time.perf_counter() - t0)
        key = ctx.chain_key(frame, key)
        flows: dict = {}
        if k < first:  # lead-in: state only
            history.append((frame, solve(frame, history, flows)))
            rep.frames.pop(index, None)
            continue
        out = ctx.reusable(index, key)
        reused = out is not None
        if not reused:
            out = solve(frame, history, flows)
        ctx.emit_frame(frame, out, key, time.perf_counter() - t0, reused=reused)
        if history:  # warping error of the result against the previous output, with the engine's flow
            t = time.perf_counter()
            fw, bw = flows.get(1) or ctx.flows.pair(history[-1][0], frame)
            rep.frame(index)["warping_error"] = warping_error(history[-1][1], out, fw, bw)
            rep.add_time(index, "measure", time.perf_counter() - t)
        history.append((frame, out))
        ctx.progress("stylize", index, n)


def stitch_boundary(ctx, timeline: Timeline, boundary: int, limit: int) -> int:
    """Make a chunk boundary as consistent as the inside of a chunk.

    Re-solves frames ``boundary``, ``boundary + 1``, ... with the true history (the previous
    chunk's final frames, read from disk) and rewrites them, until a re-solved frame equals
    the chunk's own (from there on the two chains agree) or ``limit`` frames are done.

    Returns:
        the number of frames rewritten.
    """
    from .frames import read_image, write_png
    from .pipeline import frame_name

    solve = FrameSolver(ctx, timeline)
    j_max = max(ctx.settings.long_term)
    history: deque = deque(maxlen=j_max)
    for k in range(max(0, boundary - j_max), boundary):
        history.append((ctx.source.read(k), read_image(ctx.out / frame_name(k + 1), "chunk output")[0]))
    rewritten = 0
    for k in range(boundary, min(boundary + limit, len(ctx.source))):
        ctx.check_cancel()
        frame = ctx.source.read(k)
        path = ctx.out / frame_name(k + 1)
        old = read_image(path, "chunk output")[0]
        out = solve(frame, history, {})
        if np.abs(out - old).max() < 0.25 / 255:
            break
        write_png(path, out, frame.alpha, frame.bit_depth)
        ctx.on_event({"event": "frame", "index": k + 1, "path": str(path), "seconds": 0.0, "stitched": True})
        rewritten += 1
        history.append((frame, out))
    return rewritten


def stitch_chunks(ctx, timeline: Timeline, plan, margin: int) -> None:
    """Stitch every boundary of a chunk plan, then re-measure the warping error around each."""
    from .frames import read_image
    from .metrics import warping_error
    from .pipeline import frame_name

    limit = 2 * margin + 2
    for c in plan[1:]:
        rewritten = stitch_boundary(ctx, timeline, c.start, limit)
        for k in range(c.start, min(c.start + rewritten + 1, len(ctx.source))):
            a, b = ctx.source.read(k - 1), ctx.source.read(k)
            fw, bw = ctx.flows.pair(a, b)
            prev, cur = (read_image(ctx.out / frame_name(i + 1), "chunk output")[0] for i in (k - 1, k))
            ctx.report.frame(k + 1)["warping_error"] = warping_error(prev, cur, fw, bw)
        ctx.progress("stitch", c.index - 1, len(plan) - 1)
