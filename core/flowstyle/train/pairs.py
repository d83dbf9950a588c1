"""Training pairs with known motion: a still image moved by an affine map (and a pasted patch moving on
its own), with the exact backward flow and the exact mask of what can be traced (Ruder et al. 2018's
synthetic part of the data mix).

Pure tensor functions, no I/O; randomness only from the ``numpy.random.Generator`` passed in.

Convention (as :func:`~flowstyle.motion.warp.warp`):
    - a pair is frame t-1 ``first`` and frame t ``second``, (B, 3, S, S) float in [0, 1];
    - ``flow_bw`` (B, 2, S, S) is the backward flow t -> t-1 in pixels, channel 0 = dx, so
      ``warp(first, flow_bw)`` is frame t-1 moved into frame t;
    - ``mask`` (B, 1, S, S) lives on frame t: 1 where that warp reproduces ``second`` exactly
      (up to the brightness ``gain``), 0 where the pixel left the frame or was uncovered by the patch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from ..motion.warp import sample_grid, warp

__all__ = ["Pair", "stack_pairs", "crop", "affine_flow", "inside_mask", "margin_for", "known_motion"]


@dataclass
class Pair:
    """Frames t-1 and t, the backward flow t -> t-1 and the mask on frame t (shapes in the module doc)."""

    first: torch.Tensor
    second: torch.Tensor
    flow_bw: torch.Tensor
    mask: torch.Tensor

    def to(self, device) -> "Pair":
        return Pair(*(t.to(device) for t in (self.first, self.second, self.flow_bw, self.mask)))


def stack_pairs(pairs: Sequence[Pair]) -> Pair:
    """One batch from pairs of the same size: each field concatenated along B."""
    return Pair(*(torch.cat([getattr(p, f) for p in pairs]) for f in ("first", "second", "flow_bw", "mask")))


def crop(image: torch.Tensor, size: int, rng: np.random.Generator) -> tuple[int, int]:
    """A random top-left corner (y, x) of a ``size`` square inside (B, C, H, W) ``image``."""
    h, w = image.shape[-2:]
    return int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))


def _grid(size: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32, device=device),
                            torch.arange(size, dtype=torch.float32, device=device), indexing="ij")
    return xs, ys


def affine_flow(size: int, rng: np.random.Generator, *, max_shift: float = 6.0, max_zoom: float = 0.04,
                max_angle: float = 2.0) -> torch.Tensor:
    """The backward flow of a random shift, zoom (log-uniform, ±``max_zoom``) and rotation (±``max_angle``
    degrees) about the centre: (1, 2, S, S), flow(x) = A (x - c) + c + t - x."""
    angle = math.radians(rng.uniform(-max_angle, max_angle))
    zoom = math.exp(rng.uniform(-max_zoom, max_zoom))
    tx, ty = rng.uniform(-max_shift, max_shift, 2)
    xs, ys = _grid(size)
    c = (size - 1) / 2.0
    cos, sin = zoom * math.cos(angle), zoom * math.sin(angle)
    px = cos * (xs - c) - sin * (ys - c) + c + tx
    py = sin * (xs - c) + cos * (ys - c) + c + ty
    return torch.stack((px - xs, py - ys))[None]


def inside_mask(flow_bw: torch.Tensor) -> torch.Tensor:
    """1 where x + flow_bw(x) lies inside the frame (border included): (B, 2, H, W) -> (B, 1, H, W)."""
    return (sample_grid(flow_bw).abs() <= 1.0).all(dim=-1).float()[:, None]  # the masks' out-of-frame test


def margin_for(size: int, max_shift: float) -> int:
    """The border a still needs around a ``size`` crop so the largest known motion stays inside it."""
    return int(math.ceil(max_shift)) + int(math.ceil(0.05 * size)) + 2


def known_motion(canvas: torch.Tensor, size: int, rng: np.random.Generator, *, max_shift: float = 6.0,
                 patch: Optional[torch.Tensor] = None, gain: float = 1.0) -> Pair:
    """A pair made from one still by known motion, as a camera would see it.

    Args:
        canvas: (1, 3, S + 2m, S + 2m): frame t-1 is its centre ``size`` x ``size`` crop; frame t
            samples the whole canvas, so what moves into view is real content (not a smeared
            border), and the mask is 0 there. Use m >= :func:`margin_for` (S, max_shift).
        patch: (1, 3, P, P) with P < S / 2, pasted into frame t-1 and moved by a whole-pixel shift of
            its own into frame t (background it uncovers gets mask 0); None: no patch.
        gain: brightness of frame t relative to frame t-1 (a lighting change; 1: none).
    Returns:
        the :class:`Pair`; ``warp(first, flow_bw) == second / gain`` where ``mask`` is 1.
    """
    full = canvas.shape[-1]
    m = (full - size) // 2
    if canvas.shape[-2] != full or m < 0 or full - size != 2 * m:
        raise ValueError(f"canvas must be square with an even border around {size}; got {tuple(canvas.shape)}")
    if patch is not None and patch.shape[-1] * 2 >= size:
        raise ValueError(f"the patch must be under half of {size}; got {tuple(patch.shape)}")
    inner = (..., slice(m, m + size), slice(m, m + size))
    flow_full = affine_flow(full, rng, max_shift=max_shift)  # about the canvas centre = the crop's centre
    flow, first, second = flow_full[inner], canvas[inner], warp(canvas, flow_full)[inner]
    mask = inside_mask(flow)
    if patch is not None:
        p = patch.shape[-1]
        reach = int(max_shift * 1.5) + 1
        dy, dx = (int(v) for v in rng.integers(-reach, reach + 1, 2))
        y1 = int(rng.integers(max(0, -dy), size - p - max(0, dy) + 1))
        x1 = int(rng.integers(max(0, -dx), size - p - max(0, dx) + 1))
        y2, x2 = y1 + dy, x1 + dx
        first = first.clone()
        first[..., y1:y1 + p, x1:x1 + p] = patch
        xs, ys = _grid(size)
        px, py = xs + flow[0, 0], ys + flow[0, 1]  # where each pixel of frame t was in frame t-1
        # background that sat under the patch (any bilinear tap inside it) was not visible in frame t-1
        covered = (px > x1 - 1) & (px < x1 + p) & (py > y1 - 1) & (py < y1 + p)
        mask = mask * (~covered).float()
        second = second.clone()
        second[..., y2:y2 + p, x2:x2 + p] = patch
        flow = flow.clone()
        flow[:, 0, y2:y2 + p, x2:x2 + p] = -dx
        flow[:, 1, y2:y2 + p, x2:x2 + p] = -dy
        mask[..., y2:y2 + p, x2:x2 + p] = 1.0
    if gain != 1.0:
        second = (second * gain).clamp(0.0, 1.0)
    return Pair(first.contiguous(), second.contiguous(), flow.contiguous(), mask.contiguous())
