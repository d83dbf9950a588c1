"""Painted overrides carried through the shot (DESIGN 4.5).

A painted frame o restyles its neighbourhood: its image is warped frame by frame forward
(o+1, o+2, ...) and backward (o−1, o−2, ...) along the input's flow, the reliability masks
multiplied along the way, and each neighbour k gets an extra temporal term pulling it
towards that warped look with weight ``gain · decay^|k − o|``. Both modes use it.
"""
from __future__ import annotations

from typing import Optional

import cv2
import numpy as np
import torch

from ..base.tensors import to_tensor
from ..context import RunContext
from ..io.images import read_image
from ..motion.trace import trace
from .timeline import Timeline

__all__ = ["OverrideGuides"]


class OverrideGuides:
    """Per-frame pulls towards the painted overrides of a :class:`~flowstyle.keyframes.Timeline`.

    Args:
        ctx: the run's context (source, flows, device, settings).
        timeline: gives the overrides.
        radius: frames on each side of an override that it reaches.
        decay: weight factor per frame of distance.
        gain: weight of a pull next to the painted frame, relative to the temporal term.
    """

    def __init__(self, ctx: RunContext, timeline: Timeline, *, radius: int = 12, decay: float = 0.8, gain: float = 2.0):
        self.ctx, self.radius, self.decay, self.gain = ctx, radius, decay, gain
        self._painted: dict[int, np.ndarray] = {}
        for o in timeline.overrides:
            rgb, _, _ = read_image(o.image, "painted image")
            w, h = ctx.source.size
            if rgb.shape[:2] != (h, w):
                rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
            self._painted[o.frame] = np.clip(rgb, 0.0, 1.0).astype(np.float32)
        self._cache: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def painted(self, k: int) -> Optional[np.ndarray]:
        """The painted image for frame ``k`` at working size, or None."""
        return self._painted.get(k)

    def __bool__(self) -> bool:
        return bool(self._painted)

    def _step(self, image: torch.Tensor, mask: torch.Tensor, src: int, dst: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Carry (image (1, 3, H, W), mask (1, 1, H, W)) from frame src to the adjacent frame dst."""
        a, b = self.ctx.source.read(src), self.ctx.source.read(dst)
        t = trace(self.ctx.flows, b, [(1, a, torch.cat([image, mask], 1))], device=self.ctx.device)
        carried = t.warped[1]
        return carried[:, :3], carried[:, 3:] * t.masks[1]

    def _guide(self, o: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Painted frame o carried to frame k, with its accumulated reliability; memoized per step.

        Before o the memo holds the walk back from o (up to ``radius`` frames); it is freed
        as :meth:`terms` moves forward.
        """
        if (o, k) in self._cache:
            return self._cache[o, k]
        if k == o:
            img = to_tensor(self._painted[o], self.ctx.device)
            out = (img, torch.ones_like(img[:, :1]))
        else:
            prev = k - 1 if k > o else k + 1
            out = self._step(*self._guide(o, prev), prev, k)
        self._cache[o, k] = out
        return out

    def terms(self, k: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(guide image (1, 3, H, W), weighted mask (1, 1, H, W)) for each override within reach of frame k."""
        for key in [key for key in self._cache if key[1] < k - 1]:
            del self._cache[key]  # frames are visited in order: what lies behind is not needed again
        out = []
        for o in self._painted:
            d = abs(k - o)
            if 0 < d <= self.radius:
                image, mask = self._guide(o, k)
                out.append((image, mask * (self.gain * self.decay ** d)))
        return out
