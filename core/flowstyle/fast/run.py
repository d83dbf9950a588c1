"""Fast mode (DESIGN 4.6): per-frame Magenta stylization (torch, at the working size), then the masked output-space
temporal solve against the warped earlier outputs."""
from __future__ import annotations

import time
from typing import Optional, Sequence

import numpy as np
import torch

from ..base.tensors import quantize, quantize_tensor, to_array, to_tensor, wide_blur
from ..context import History, RunContext, run_frames
from ..io.frames import Frame
from ..keyframes.painted import HOLD, Look, PaintedLooks
from ..keyframes.timeline import Timeline
from ..motion.trace import earlier_results, trace
from ..motion.warp import warp
from .fill import PaintedFill
from .magenta import MagentaStylizer
from .solve import band_solve, pcg_solve, restore_detail
from .strokes import StrokeSources
from .video_net import VideoStylizer

__all__ = ["run_fast", "preview_fast", "FrameSolver", "temporal_step", "incremental_reliability", "perframe_target",
           "make_stylizer", "recurrent_target"]


def incremental_reliability(previous: Optional[torch.Tensor], consistency: torch.Tensor, flow_bw: torch.Tensor,
                            frames: int) -> torch.Tensor:
    """Seed 000's incremental mask: trust that builds up while a pixel is traced, and resets when it is not.

    r_i = c_i · min(1, r_{i−1} warped into frame i + 1 / frames); with no previous map every traced
    pixel counts as established (r_i = c_i). (1, 1, H, W) in, (1, 1, H, W) out.
    """
    if previous is None:
        return consistency
    return consistency * (warp(previous, flow_bw) + 1.0 / frames).clamp(max=1.0)


def temporal_step(ctx: RunContext, frame: Frame, target: np.ndarray, history: History, motion: dict, *,
                  temporal_weight: float, extra: Sequence[tuple[torch.Tensor, torch.Tensor]] = (),
                  hold: Optional[torch.Tensor] = None, state: Optional[dict] = None,
                  carry: Optional[float] = None, replay: Optional[np.ndarray] = None) -> np.ndarray:
    """Pull the per-frame stylization ``target`` of ``frame`` towards the warped earlier outputs.

    Args:
        history: (frame, output) pairs of the previous frames, oldest first.
        motion: receives j -> (flow fw, flow bw, consistency mask, ω_j) for the offsets traced (for measuring).
        temporal_weight: γ at this frame (style keys may change it).
        extra: more (image (1, 3, H, W), weight (1, 1, H, W)) pulls, weights absolute (not
            scaled by γ), e.g. painted overrides carried here.
        hold: (1, 1, H, W) more pull towards the previous output, where the step from it is
            consistent (the hard mask, without ``mask_context``): keeps a painted look the chain
            to its key has lost.
        state: carried from frame to frame by the caller (the incremental mask's map, the stroke sources).
        carry: κ at this frame (None: the settings' ``carry_detail``).
        replay: the frame's output as an earlier run stored it (``--resume``): ``state`` is stepped as
            the solve stepped it, with that output, and no solve runs; ``target`` is only read where the
            stroke sources start from it (after a painted look).

    Returns:
        (H, W, 3) the output, quantized as stored (``replay`` itself when given).
    """
    s = ctx.settings
    traced = trace(ctx.flows, frame, earlier_results(history, s.long_term), device=ctx.device,
                   soft=s.mask == "soft", warp_mode=s.warp_mode, context=s.mask_context * s.stroke_scale)
    motion.update(traced.motion())
    ctx.write_debug_masks(frame, traced.masks)
    pulls = traced.long_term(s.long_term)
    if s.incremental_mask and state is not None and 1 in traced.consistency:
        last = state.get("reliability")
        r = incremental_reliability(last[1] if last and last[0] == frame.index - 1 else None,
                                    traced.consistency[1], traced.flows_bw[1], s.incremental_mask)
        state["reliability"] = (frame.index, r)
        pulls = [(j, w, c * r) for j, w, c in pulls]
    if hold is not None and 1 in traced.warped:
        extra = [*extra, (traced.warped[1], hold * traced.consistency[1])]
    images = [w for _, w, _ in pulls] + [img for img, _ in extra]
    weights = [temporal_weight * c for _, _, c in pulls] + [m for _, m in extra]
    p = to_tensor(target, ctx.device)
    if s.solver == "band":
        if replay is not None:
            return replay
        x = band_solve(p, images, weights, fidelity_weight=s.fidelity_weight, detail=s.detail, cell=s.band)
        return quantize(to_array(x), frame.bit_depth)
    trust = sum((c for _, _, c in pulls), torch.zeros_like(p[:, :1])) + sum(((m > 0).float() for _, m in extra), 0.0)
    trust, kappa = trust.clamp(0.0, 1.0), s.carry_detail if carry is None else carry
    # strokes read once from the output that last drew them (fast/strokes.py); only for the plain pull
    # to the previous frame: with fusion or a painted look the reference is the pulls' mean, as without
    sources, reference = None, None
    if s.stroke_sources and state is not None:
        if frame.index % s.stroke_sources == 0:  # every Nth frame of the shot from the previous output again:
            state.pop("strokes", None)  # N frames of memory, so a chunk's lead-in (N more) rebuilds the same state
        simple = [j for j, _, _ in pulls] == [1] and not extra and kappa > 0
        if not simple:  # they start again when the plain pull resumes...
            state.pop("strokes", None)
            state["strokes_from_target"] = bool(extra)  # ...after a painted look, from the network's strokes
        else:
            sources = state.get("strokes") or state.setdefault("strokes", StrokeSources(s.stroke_sources))
            fresh = state.pop("strokes_from_target", False)
            reference = sources.step(frame.index, traced.flows_bw[1], trust, p if fresh else traced.warped[1],
                                     None if fresh else traced.results[1])
            if s.stroke_band > 0:  # the pull's detail from the sources, its shading from the warped past
                images[0] = reference + wide_blur(images[0] - reference, s.stroke_band)
    if replay is not None:
        if reference is not None:  # the frame as stored is the source, so that a resumed run steps the same
            sources.commit(to_tensor(replay, ctx.device))
        return replay
    x = pcg_solve(p, images, weights, fidelity_weight=s.fidelity_weight, gradient_weight=s.gradient_weight,
                  trust=trust, carry=kappa, iterations=s.solver_iterations, reference=reference)
    stored = quantize_tensor(restore_detail(x, p, s.keep_detail), frame.bit_depth)  # the frame as the PNG stores it
    if reference is not None:
        sources.commit(stored)
    return to_array(stored)


def perframe_target(stylizer: MagentaStylizer, timeline: Timeline, frame: Frame) -> np.ndarray:
    """The per-frame stylization p̂_i of ``frame``: the network with the style mix and strength at its
    place in the shot, no temporal step. (H, W, 3) float in [0, 1]."""
    k = frame.index
    stylizer.configure(timeline.styles_at(k))
    target = stylizer(frame.rgb)
    strength = timeline.weight_at(k, "strength", 1.0)
    return strength * target + (1.0 - strength) * frame.rgb if strength < 1.0 else target


def make_stylizer(ctx: RunContext) -> MagentaStylizer:
    """The run's per-frame network: the shipped Magenta ones, or the ``--stylizer`` video network."""
    s = ctx.settings
    if s.stylizer:
        return VideoStylizer(s.stylizer, device=ctx.device, stroke_scale=s.stroke_scale)
    return MagentaStylizer(device=ctx.device, stroke_scale=s.stroke_scale, precision=s.precision)


def recurrent_target(ctx: RunContext, stylizer: VideoStylizer, frame: Frame, history: History) -> np.ndarray:
    """A recurrent video network's output for ``frame``: its input also holds the previous output warped
    into the frame and the consistency mask of that step (the engine's flow -> mask -> warp, as the
    temporal solve traces it); zeros where there is no previous frame. (H, W, 3) float in [0, 1]."""
    previous = None
    if history and history[-1][0].index == frame.index - 1:
        traced = trace(ctx.flows, frame, earlier_results(history, (1,)), device=ctx.device,
                       warp_mode=ctx.settings.warp_mode)
        previous = torch.cat([traced.warped[1][:, :3].float(), traced.consistency[1].float()], 1)
    return to_array(stylizer.batch(to_tensor(frame.rgb, ctx.device), previous))


def _target(stylizer: MagentaStylizer, fill: PaintedFill, timeline: Timeline, frame: Frame,
            look: Optional[Look]) -> np.ndarray:
    """What the solve pulls towards: the per-frame stylization, or inside a painted stretch the painted
    look (the per-frame stylization only as the share the paintings leave). (H, W, 3) float."""
    if look is None:
        return perframe_target(stylizer, timeline, frame)
    base = to_tensor(perframe_target(stylizer, timeline, frame), stylizer.device) if look.share < 1.0 else torch.zeros(())
    return to_array(fill(frame, look, base))


class FrameSolver:
    """Fast mode for one frame at a time: stylize, then the temporal solve (or the painted frame).

    Inside a painted key's stretch the target is that painting carried here, with new pixels in
    its style (:class:`~flowstyle.fast.fill.PaintedFill`), and the carried painting is also a pull
    of weight ``HOLD`` in the solve. Called as a :data:`~flowstyle.context.SolveFrame`.
    """

    def __init__(self, ctx: RunContext, timeline: Timeline):
        self.ctx, self.timeline = ctx, timeline
        self.stylizer = make_stylizer(ctx)
        self.looks = PaintedLooks(ctx, timeline)
        self.fill = PaintedFill(self.looks, self.stylizer)
        self.state: dict = {}  # what the temporal step carries from frame to frame
        # the next frame's decode and flow in threads beside the network (run_frames), only where the network
        # leaves the CPU's cores free: on the CPU it takes them all, and the flow beside it made fast mode
        # slower (2 cores, 1024 px: 64 -> 87 and 27 -> 60 ms a frame added, raft_demo and rubberwhale)
        self.decode_ahead = torch.device(ctx.device).type != "cpu"
        self.flow_ahead = self.decode_ahead and ctx.settings.temporal_weight > 0

    def __call__(self, frame: Frame, history: History, motion: dict) -> np.ndarray:
        """The output of ``frame`` (quantized as stored) given the earlier outputs in ``history``."""
        return self._frame(frame, history, motion)

    def keep(self, frame: Frame, history: History, stored: np.ndarray) -> None:
        """``frame`` as an earlier run stored it, kept by ``--resume``: step what the solve carries from
        frame to frame (the stroke sources, the incremental mask) as that run stepped it, with ``stored``
        as the output and without the solve, so the frames after it come out as in a run never stopped.
        Without either there is nothing to step (and nothing runs)."""
        if self.ctx.settings.stroke_sources or self.ctx.settings.incremental_mask:
            self._frame(frame, history, {}, stored)

    def _frame(self, frame: Frame, history: History, motion: dict, kept: Optional[np.ndarray] = None) -> np.ndarray:
        ctx, s, k, rep = self.ctx, self.ctx.settings, frame.index, self.ctx.report
        index = k + 1
        t = time.perf_counter()
        look = self.looks.look(k) if self.looks else None
        if look is not None and look.exact is not None:  # the artist's frame is the output
            return quantize(look.exact, frame.bit_depth) if kept is None else kept
        # a style key's change is the artist's direction, not flicker: the pull to the past yields to it
        change = self.timeline.style_change(k)
        gamma = self.timeline.weight_at(k, "temporal_weight", s.temporal_weight) * (1.0 - change) ** 2
        temporal = (gamma > 0 and history) or look is not None  # else the output is the stylization itself
        if kept is not None and not temporal:
            return kept
        # a kept frame needs the network only where the stroke sources start from its strokes
        target = self._stylize(frame, history, look) if kept is None or self.state.get("strokes_from_target") else kept
        if kept is None:
            rep.add_time(index, "stylize", time.perf_counter() - t)
        if not temporal:
            return quantize(target, frame.bit_depth)
        t, flow_start = time.perf_counter(), ctx.flows.seconds
        # while the style mix changes, the past's strokes are the old style's: take them from the new target
        carry = s.carry_detail if change == 0 else 0.0
        extra, hold = [], None
        if look is not None:
            # the painting pulls where it is traced; where the chain to the key is lost but the step from the
            # previous frame holds, the previous output (painted look included) is carried at the same weight
            extra, hold = [(look.image, look.mask * HOLD)], HOLD * (look.share - look.mask)
        out = temporal_step(ctx, frame, target, history, motion, temporal_weight=gamma, extra=extra, hold=hold,
                            state=self.state, carry=carry, replay=kept)
        if kept is None:
            flow_seconds = ctx.flows.seconds - flow_start
            rep.add_time(index, "flow", flow_seconds)
            rep.add_time(index, "temporal", time.perf_counter() - t - flow_seconds)
        return out  # quantized by the step

    def _stylize(self, frame: Frame, history: History, look: Optional[Look]) -> np.ndarray:
        """The solve's target for ``frame``: the network's output, or inside a painted stretch the look."""
        if getattr(self.stylizer, "recurrent", False):
            return recurrent_target(self.ctx, self.stylizer, frame, history)
        return _target(self.stylizer, self.fill, self.timeline, frame, look)


def run_fast(ctx: RunContext, timeline: Timeline, *, first: int = 0, last: int | None = None, lead: int = 0) -> None:
    """The whole fast-mode run, or one chunk of it (see :func:`~flowstyle.context.run_frames`).

    With stroke sources a chunk's lead-in is ``stroke_sources`` frames longer: the sources hold up to that
    many frames of the past, and then the lead-in's own margin lets the rest of the chain settle.
    """
    if lead > 0 and ctx.settings.stroke_sources:
        lead = min(first, lead + ctx.settings.stroke_sources)
    run_frames(ctx, FrameSolver(ctx, timeline), first=first, last=last, lead=lead)


def preview_fast(ctx: RunContext, timeline: Timeline, frame: Frame) -> np.ndarray:
    """One frame, no temporal solve: what the editor sees before committing to a render.

    Inside a painted key's stretch it is that key's look (the painting carried here, new pixels in
    its look), as the render will show it; elsewhere the per-frame stylization.
    """
    stylizer = make_stylizer(ctx)
    looks = PaintedLooks(ctx, timeline)
    look = looks.look(frame.index) if looks else None
    if look is not None and look.exact is not None:
        return look.exact
    return _target(stylizer, PaintedFill(looks, stylizer), timeline, frame, look)
