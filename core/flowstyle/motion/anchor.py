"""Where each pixel of a frame came from in an anchor frame: flow chained from the anchor, re-anchored.

A painted keyframe is carried through its stretch of the shot by following every pixel of frame k
back to the key frame o. Warping the painting again at every step would resample it k − o times
and soften its strokes, so the chain carries *positions* instead: ``P_k(x)`` is where pixel x of
frame k sits in frame o, and the painting is sampled once, from the key, at ``P_k``.

Chaining (one step, k−1 -> k going forward, k+1 -> k going back)::

    P_k(x) = P_prev(x + ŵ(x)),    R_k(x) = R_prev(x + ŵ(x)) · c(x)

with ŵ the flow from frame k to its neighbour on the key's side and c the consistency mask of
DESIGN 4.2 (masks multiplied along the chain: once lost, a pixel stays lost).

Drift. Each step adds a little flow error, and over 20+ frames the chain slides. Every step also
takes the direct flow from frame k to the key, ``D_k(x) = x + ŵ_direct(x)``; where it is consistent
and within ``agree`` px of the chain, the chain moves a fraction ``pull`` of the way towards it.
This is a complementary filter (a heuristic): the chain gives smooth motion from frame to frame,
the direct flow bounds how far it can slide, and its per-frame noise reaches the result only as
``pull`` times its size. Pixels the chain has lost but the direct flow finds again, with the
input colour at both ends agreeing, are picked up from the direct flow (content that comes back
after an occlusion).
"""
from __future__ import annotations

from typing import Optional

import torch

from ..base.tensors import to_tensor
from ..io.frames import Frame, FrameSource
from .flow import FlowEstimator
from .masks import consistency_mask
from .warp import Sampler, warp

__all__ = ["AnchorTrack", "identity_positions", "sample_at"]

PULL = 0.25  # share of the way from the chain to the direct flow, per frame
AGREE = 3.0  # px: farther apart, the chain is kept (one of the two is wrong, and the chain is smooth)
REACQUIRE_COLOUR = 0.06  # mean |Δrgb| of the inputs at both ends for a lost pixel to be picked up again


def identity_positions(h: int, w: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """(1, 2, H, W) the position of every pixel in its own frame, channel 0 = x."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32, device=device),
                            torch.arange(w, dtype=torch.float32, device=device), indexing="ij")
    return torch.stack((xs, ys))[None]


class AnchorTrack:
    """Positions in the anchor frame and their reliability, for frames walked away from it one by one.

    Args:
        source: the clip (frames are read as the walk needs them).
        flows: the run's flow estimator (its cache is shared with the temporal solve).
        anchor: index of the anchor frame o.
        device: torch device of the maps.
        reanchor: take the direct flow to the anchor each step (drift control); off, the chain alone.
    """

    def __init__(self, source: FrameSource, flows: FlowEstimator, anchor: int, *, device: str, reanchor: bool = True):
        self.source, self.flows, self.anchor, self.device, self.reanchor = source, flows, anchor, device, reanchor
        self._anchor_frame = source.read(anchor)
        h, w = self._anchor_frame.rgb.shape[:2]
        self._anchor_rgb = to_tensor(self._anchor_frame.rgb, device)
        self.index = anchor
        self._identity = identity_positions(h, w, device)
        self.positions = self._identity
        self.reliability = torch.ones(1, 1, h, w, device=device)
        self._frame: Frame = self._anchor_frame

    def step(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Walk one frame on, to ``k`` (= index ± 1, away from the anchor); returns (positions (1, 2, H, W),
        reliability (1, 1, H, W)) of frame k."""
        if abs(k - self.index) != 1 or abs(k - self.anchor) != abs(self.index - self.anchor) + 1:
            raise ValueError(f"the walk from anchor {self.anchor} is at {self.index}; it cannot step to {k}")
        frame = self.source.read(k)
        fw, bw = self.flows.pair(self._frame, frame)  # neighbour -> k, k -> neighbour
        bw_t = to_tensor(bw, self.device)
        sampler = Sampler(bw_t)  # exact positions: errors would add up along the walk
        c = consistency_mask(to_tensor(fw, self.device), bw_t, sampler=sampler)
        carried = sampler(torch.cat([self.positions, self.reliability], 1), "bilinear")
        positions, reliability = carried[:, :2], carried[:, 2:] * c
        if self.reanchor:
            positions, reliability = self._reanchor(frame, positions, reliability)
        self.index, self._frame, self.positions, self.reliability = k, frame, positions, reliability
        return positions, reliability

    def _reanchor(self, frame: Frame, positions: torch.Tensor, reliability: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pull the chain towards the direct flow to the anchor where both agree; pick up lost pixels."""
        fw, bw = self.flows.pair(self._anchor_frame, frame)  # anchor -> k, k -> anchor
        bw_t = to_tensor(bw, self.device)
        sampler = Sampler(bw_t)
        c = consistency_mask(to_tensor(fw, self.device), bw_t, sampler=sampler)
        direct = self._identity + bw_t
        gap = (direct - positions).norm(dim=1, keepdim=True)
        agree = c * (gap < AGREE).float() * (reliability > 0).float()
        positions = positions + PULL * agree * (direct - positions)
        colour = (sampler(self._anchor_rgb) - to_tensor(frame.rgb, self.device)).abs().mean(1, keepdim=True)
        found = c * (reliability <= 0).float() * (colour < REACQUIRE_COLOUR).float()
        positions = torch.where(found > 0, direct, positions)
        return positions, torch.maximum(reliability, found)


def sample_at(image: torch.Tensor, positions: torch.Tensor, *, mode: str = "bicubic") -> torch.Tensor:
    """``image`` (1, C, H, W) of the anchor frame read at ``positions`` (1, 2, H, W): one resampling."""
    h, w = positions.shape[-2:]
    out = warp(image, positions - identity_positions(h, w, positions.device), mode=mode)
    return out.clamp(0.0, 1.0) if mode == "bicubic" else out

