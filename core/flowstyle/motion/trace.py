"""Carry earlier results into the current frame: flow -> reliability mask -> warp (DESIGN 4.1-4.3).

The one implementation of that step, for fast mode's temporal solve, quality mode's temporal
loss and the painted overrides carried along the shot.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence, Union

import numpy as np
import torch

from ..base.tensors import to_tensor
from ..io.frames import Frame
from .flow import FlowEstimator
from .masks import consistency_mask, long_term_masks, near_unreliable, soften
from .warp import Sampler

__all__ = ["Traced", "trace", "earlier_results"]

Image = Union[np.ndarray, torch.Tensor]  # (H, W, C) array or (1, C, H, W) tensor


@dataclass
class Traced:
    """Earlier results in frame i's geometry, keyed by their offset j (frame i−j).

    Attributes:
        warped: j -> (1, C, H, W) ω_j, the result of frame i−j resampled at x + ŵ(x).
        masks: j -> (1, 1, H, W) reliability of ω_j on frame i: the consistency mask, lowered
            beside unreliable pixels when ``context`` is on.
        consistency: j -> (1, 1, H, W) the hard consistency mask c(i−j, i) of DESIGN 4.2 (for measuring).
        results: j -> (1, C, H, W) the earlier results themselves, unwarped.
        flows_bw: j -> (1, 2, H, W) backward flow ŵ, i -> i−j.
        flows: j -> (flow i−j -> i, flow i -> i−j), (H, W, 2) arrays as the flow estimator gave them.
    """

    warped: dict = field(default_factory=dict)
    masks: dict = field(default_factory=dict)
    consistency: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)
    flows_bw: dict = field(default_factory=dict)
    flows: dict = field(default_factory=dict)

    def motion(self) -> dict:
        """j -> (flow i−j -> i, flow i -> i−j, hard consistency mask, ω_j): what measuring the result needs."""
        return {j: (*self.flows[j], self.consistency[j], self.warped[j]) for j in self.flows}

    def long_term(self, offsets: Sequence[int]) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
        """(j, ω_j, c_long,j) for the offsets in J that are present, nearest first (DESIGN 4.2)."""
        c_long = long_term_masks(self.masks, offsets)
        return [(j, self.warped[j], c_long[j]) for j in sorted(c_long)]


def trace(flows: FlowEstimator, frame: Frame, earlier: Iterable[tuple[int, Frame, Image]], *, device: str,
          soft: bool = False, warp_mode: str = "bilinear", context: float = 0.0) -> Traced:
    """Warp each earlier result into ``frame`` and say where that can be trusted.

    Args:
        flows: flow between input frames (cached).
        frame: frame i.
        earlier: (j, frame i−j, its result) triples; the result may have any number of channels
            (an image, or an image with a mask stacked on it).
        soft: soft masks (DESIGN 4.2) instead of hard ones.
        warp_mode: ``bilinear`` (the papers'), ``bicubic`` or ``nearest``.
        context: radius in pixels of :func:`~flowstyle.motion.masks.near_unreliable` (0: off).
    """
    out = Traced()
    for j, prev_frame, prev_out in earlier:
        fw, bw = flows.pair(prev_frame, frame)
        out.flows[j] = (fw, bw)
        bw_t = to_tensor(bw, device)
        out.flows_bw[j] = bw_t
        sampler = Sampler(bw_t, fixed_point=True)  # positions to 1/32 px (OpenCV) on the CPU
        hard = consistency_mask(to_tensor(fw, device), bw_t, sampler=sampler)
        out.consistency[j] = hard
        out.masks[j] = near_unreliable(soften(hard == 0) if soft else hard, context)
        out.results[j] = prev_out if isinstance(prev_out, torch.Tensor) else to_tensor(prev_out, device)
        out.warped[j] = sampler(out.results[j], warp_mode)
    return out


def earlier_results(history: Sequence[tuple[Frame, Image]], offsets: Sequence[int]) -> list[tuple[int, Frame, Image]]:
    """(j, frame, result) for each offset j in ``offsets`` that ``history`` (oldest first) reaches back to."""
    return [(j, *history[-j]) for j in offsets if j <= len(history)]
