"""Fast mode (DESIGN 4.6): per-frame Magenta stylization, then the masked output-space
temporal optimization, warm-started from the warped previous result."""
from __future__ import annotations

import time
from collections import deque
from typing import Sequence

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

__all__ = ["run_fast", "build_stylizer", "temporal_step"]


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


def run_fast(ctx, timeline: Timeline) -> None:
    """Stream the clip once, front to back; memory holds max(J) earlier frames."""
    from .metrics import warping_error

    s, rep = ctx.settings, ctx.report
    stylizer = MagentaStylizer(device=ctx.device)
    guides = OverrideGuides(ctx, timeline)
    history: deque = deque(maxlen=max(s.long_term))
    key = ""
    n = len(ctx.source)
    for k in range(n):
        ctx.check_cancel()
        index = k + 1
        t0 = time.perf_counter()
        frame = ctx.source.read(k)
        rep.add_time(index, "decode", time.perf_counter() - t0)
        key = ctx.chain_key(frame, key)
        out = ctx.reusable(index, key)
        reused = out is not None
        flows: dict = {}
        if not reused:
            t = time.perf_counter()
            painted = guides.painted(k)
            gamma = timeline.weight_at(k, "temporal_weight", s.temporal_weight)
            if painted is not None:  # the artist's frame is the output; neighbours are pulled towards it
                out = painted
            else:
                stylizer.configure(timeline.styles_at(k))
                target = stylizer(frame.rgb)
                strength = timeline.weight_at(k, "strength", 1.0)
                if strength < 1.0:
                    target = strength * target + (1.0 - strength) * frame.rgb
                rep.add_time(index, "stylize", time.perf_counter() - t)
                t, flow_start = time.perf_counter(), ctx.flows.seconds
                extra = guides.terms(k) if guides else []
                if (gamma > 0 and history) or extra:
                    out = temporal_step(ctx, frame, target, history if gamma > 0 else (), flows,
                                        temporal_weight=gamma, extra=extra)
                else:
                    out = target
                flow_seconds = ctx.flows.seconds - flow_start
                rep.add_time(index, "flow", flow_seconds)
                rep.add_time(index, "temporal", time.perf_counter() - t - flow_seconds)
            out = quantize(out, frame.bit_depth)
        ctx.emit_frame(frame, out, key, time.perf_counter() - t0, reused=reused)
        if history:  # warping error of the result against the previous output, with the engine's flow
            t = time.perf_counter()
            fw, bw = flows.get(1) or ctx.flows.pair(history[-1][0], frame)
            rep.frame(index)["warping_error"] = warping_error(history[-1][1], out, fw, bw)
            rep.add_time(index, "measure", time.perf_counter() - t)
        history.append((frame, out))
        ctx.progress("stylize", index, n)
