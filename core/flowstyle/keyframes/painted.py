"""Painted keyframes that hold through their stretch of the shot (DESIGN 4.5).

A painted frame o sets the look from the previous painted key (or the start) to the next one (or
the end), or ``reach`` frames each side when the artist sets one. At every frame k of that stretch:

- where the content can be traced to frame o (flow chained from the key, masks multiplied,
  re-anchored against drift: :class:`~flowstyle.motion.anchor.AnchorTrack`), the output is the
  painting itself, sampled once at the traced positions, at the override's ``strength``;
- where it cannot (disocclusions, content entering the frame), the mode fills in new pixels in
  the painting's look (fast mode: :mod:`flowstyle.fast.fill`; quality mode: the painting joins
  the style mix, :func:`painted_styles`).

Between two painted keys both are carried (forward from the earlier, backward from the later)
and their shares cross over with a smoothstep, so the change is a dissolve. This module says,
per frame, how much of which painting, carried where; the modes decide how to use it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np
import torch

from ..base.tensors import to_tensor
from ..context import RunContext
from ..io.images import read_image
from ..motion.anchor import AnchorTrack, sample_at
from ..io.styles import StyleRef
from .timeline import Override, Timeline, blend_styles

__all__ = ["Look", "PaintedLooks", "stretch_weights", "fade", "painted_styles"]

HOLD = 4.0  # weight of the carried painting in the temporal solve, relative to the pull to the previous output


def fade(distance: int, reach: Optional[int]) -> float:
    """1 within an override's reach, falling linearly to 0 over its last third (None: no limit)."""
    if reach is None:
        return 1.0
    ramp = max(1, reach // 3)
    return float(min(1.0, max(0.0, (reach + 1 - distance) / ramp)))


def stretch_weights(overrides: Sequence[Override], k: int) -> dict[int, float]:
    """Share of each painting at frame k: override position in ``overrides`` (sorted by frame) -> a in (0, 1].

    Before the first key and after the last one the nearest key holds alone; between two keys
    their shares cross over with a smoothstep (a dissolve); each is scaled by its strength and
    by :func:`fade` of its reach. The shares sum to at most 1.
    """
    frames = [o.frame for o in overrides]
    left = max((i for i, f in enumerate(frames) if f <= k), default=None, key=lambda i: frames[i])
    right = min((i for i, f in enumerate(frames) if f > k), default=None, key=lambda i: frames[i])
    shares: dict[int, float] = {}
    if left is not None and frames[left] == k:
        shares[left] = 1.0
    elif left is not None and right is not None:
        t = (k - frames[left]) / (frames[right] - frames[left])
        t = t * t * (3.0 - 2.0 * t)
        shares[left] = (1.0 - t) * fade(k - frames[left], overrides[left].reach)
        shares[right] = t * fade(frames[right] - k, overrides[right].reach)
    elif left is not None:
        shares[left] = fade(k - frames[left], overrides[left].reach)
    elif right is not None:
        shares[right] = fade(frames[right] - k, overrides[right].reach)
    return {i: a * overrides[i].strength for i, a in shares.items() if a * overrides[i].strength > 0}


def painted_styles(overrides: Sequence[Override], k: int, base: Sequence[StyleRef]) -> tuple[StyleRef, ...]:
    """The style mix at frame k with the paintings that reach it taken in as style images, by share.

    ``base`` (the timeline's mix) keeps 1 − A of the weight, A the paintings' summed share
    (quality mode: new pixels are optimized towards the painting's Gram statistics, not only the
    timeline style's).
    """
    shares = stretch_weights(overrides, k)
    total = sum(shares.values())
    if total <= 0:
        return tuple(base)
    paintings = [StyleRef(image=overrides[i].image, weight=a / total) for i, a in shares.items()]
    return blend_styles(base, paintings, total)


@dataclass
class Look:
    """The painted look at one frame.

    Attributes:
        image: (1, 3, H, W) the paintings carried here, blended by share (meaningful where mask > 0).
        mask: (1, 1, H, W) M = Σ a_i R_i: how much of each pixel the carried paintings decide.
        share: A = Σ a_i, how much the painted look decides the frame (M <= A everywhere).
        paintings: (override, a_i) for each painting with a share here.
        exact: the painted frame itself when k is a key at full strength, else None.
    """

    image: torch.Tensor
    mask: torch.Tensor
    share: float
    paintings: tuple[tuple[Override, float], ...]
    exact: Optional[np.ndarray] = None


class PaintedLooks:
    """The painted overrides of a :class:`~flowstyle.keyframes.Timeline`, carried through the shot.

    Frames may be asked in any order; walking on from the last frame asked (front to back after a
    key, back to front before one) costs one step each, anything else restarts the walk from the
    key. The walk back from a key is made whole on first need and kept on the CPU (about 4.4 MB a
    frame at 1024x436) so a front-to-back run can read it in its order.

    Args:
        ctx: the run's context (source, flows, device).
        timeline: gives the overrides.
        gain: weight of the carried painting in quality mode's temporal loss, relative to γ.
    """

    def __init__(self, ctx: RunContext, timeline: Timeline, *, gain: float = 2.0):
        self.ctx, self.gain = ctx, gain
        self.overrides = timeline.overrides
        w, h = ctx.source.size
        self._painted: list[np.ndarray] = []
        for o in self.overrides:
            rgb, _, _ = read_image(o.image, "painted image")
            if rgb.shape[:2] != (h, w):
                rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
            self._painted.append(np.clip(rgb, 0.0, 1.0).astype(np.float32))
        self._tensors: dict[int, torch.Tensor] = {}
        self._forward: dict[int, AnchorTrack] = {}
        self._backward: dict[int, dict[int, tuple[torch.Tensor, torch.Tensor]]] = {}

    def __bool__(self) -> bool:
        return bool(self.overrides)

    def painted(self, k: int) -> Optional[np.ndarray]:
        """The painted image for frame ``k`` at working size when k is a key at full strength, or None."""
        for i, o in enumerate(self.overrides):
            if o.frame == k and o.strength >= 1.0:
                return self._painted[i]
        return None

    def _tensor(self, i: int) -> torch.Tensor:
        """Painting i as (1, 3, H, W) on the run's device, moved there once."""
        if i not in self._tensors:
            self._tensors[i] = to_tensor(self._painted[i], self.ctx.device)
        return self._tensors[i]

    def image(self, i: int) -> np.ndarray:
        """Painting ``i`` (position in the timeline's overrides) at working size, (H, W, 3)."""
        return self._painted[i]

    def _reach_end(self, i: int, step: int) -> int:
        """The last frame painting i reaches going ``step`` (+1 or −1) from its key."""
        o, n = self.overrides[i], len(self.ctx.source)
        end = n - 1 if step > 0 else 0
        neighbour = i + step
        if 0 <= neighbour < len(self.overrides):
            end = self.overrides[neighbour].frame - step
        if o.reach is not None:
            end = min(end, o.frame + o.reach) if step > 0 else max(end, o.frame - o.reach)
        return end

    def _carried(self, i: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(positions (1, 2, H, W) in key frame i, reliability (1, 1, H, W)) of frame k."""
        o = self.overrides[i].frame
        if k > o:
            track = self._forward.get(i)
            if track is None or track.index > k:
                track = self._forward[i] = AnchorTrack(self.ctx.source, self.ctx.flows, o, device=self.ctx.device)
            while track.index < k:
                track.step(track.index + 1)
            return track.positions, track.reliability
        if i not in self._backward:
            track = AnchorTrack(self.ctx.source, self.ctx.flows, o, device=self.ctx.device)
            walk = {}
            for f in range(o - 1, self._reach_end(i, -1) - 1, -1):
                self.ctx.check_cancel()
                positions, reliability = track.step(f)
                walk[f] = (positions.cpu(), (reliability * 255).round().to(torch.uint8).cpu())
            self._backward[i] = walk
        positions, reliability = self._backward[i][k]
        return positions.to(self.ctx.device), reliability.to(self.ctx.device, torch.float32) / 255

    def look(self, k: int) -> Optional[Look]:
        """The painted look at frame k, or None where no painting reaches."""
        shares = stretch_weights(self.overrides, k)
        if not shares:
            return None
        exact = self.painted(k)
        h, w = self.ctx.source.height, self.ctx.source.width
        image = torch.zeros(1, 3, h, w, device=self.ctx.device)
        mask = torch.zeros(1, 1, h, w, device=self.ctx.device)
        for i, a in shares.items():
            painting = self._tensor(i)
            if self.overrides[i].frame == k:
                carried, reliability = painting, torch.ones_like(mask)
            else:
                positions, reliability = self._carried(i, k)
                carried = sample_at(painting, positions)
            image = image + a * reliability * carried
            mask = mask + a * reliability
        image = torch.where(mask > 0, image / mask.clamp(min=1e-6), image)
        for i in list(self._forward):  # a forward walk is not needed once k has passed its stretch
            if k > self._reach_end(i, +1):
                del self._forward[i]
        return Look(image, mask.clamp(0.0, 1.0), float(sum(shares.values())),
                    tuple((self.overrides[i], a) for i, a in shares.items()), exact)

    def terms(self, k: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Quality mode's pulls: (carried paintings (1, 3, H, W), weight (1, 1, H, W)) at frame k."""
        look = self.look(k)
        if look is None or look.exact is not None:
            return []
        return [(look.image, look.mask * self.gain)]
