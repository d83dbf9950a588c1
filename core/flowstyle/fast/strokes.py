"""Where each traced pixel's strokes are read from: the output frame that last drew them, read once.

Fast mode carries the past's strokes (``--carry-detail``) by pulling each frame towards the previous
output warped in. Warped again every frame, that reference compounds: each output mixes in a share of
the new per-frame stylization, so after a few frames a pixel's strokes are a running blend of strokes
the network drew on many frames, resampled once per frame. The painting networks' fine grain does not
survive that blend; it drifts from the look the network draws (the benchmark's style drift).

:class:`StrokeSources` keeps, per pixel, a *source*: the output frame where the pixel was last redrawn,
and the position there that the pixel has been traced back to (chained one frame at a time, as
:mod:`flowstyle.motion.anchor` chains a painted key's positions). While the pixel stays traced (trust
at or above ``keep``), its reference is that source read once at that position, so the output mixes
at most two frames' strokes (the source's and this frame's share of the new per-frame stylization),
resampled once. Where the trust falls below ``keep`` the pixel's reference is the warped previous
output as without sources, and this frame's output becomes its new source. Positions are carried from
the nearest pixel plus the sub-pixel offset (exact for a local translation): a position is never
interpolated between two sources.

A heuristic, and what it trades: a kept pixel's fine strokes stay those of its source for as long as it
is traced, so where the footage's look changes slowly (light, shading) the fine band follows only
through the solve's other terms; and the sources' frames take memory (``max_sources`` slots of one
frame each). When every slot holds a source, all pixels move to one new source, the reference read
there: one more resampling, at most once every ``max_sources`` frames.
"""
from __future__ import annotations

from typing import Optional

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..motion.anchor import identity_positions

__all__ = ["StrokeSources", "KEEP"]

KEEP = 0.5  # trust from which a pixel keeps reading its source (below: the warped previous output, and a new source)
PAD = 2  # rows and columns of replicated border around each source in the atlas: what bicubic reads past an edge
FIXED_POINT_LIMIT = 32000  # OpenCV's fixed-point maps hold positions below 32768


class StrokeSources:
    """Per-pixel stroke sources carried along the shot, frame after frame.

    The sources sit in one atlas, each in its own slot, so that reading every pixel from its own source
    is one resampling pass however many sources there are. Use: :meth:`step` before the frame's solve,
    :meth:`commit` with its output after.

    Args:
        max_sources: slots, each holding one frame's source (at least 2).
        keep: trust from which a pixel keeps its source.
    """

    def __init__(self, max_sources: int = 8, keep: float = KEEP):
        if max_sources < 2:
            raise ValueError(f"stroke sources need at least 2 slots, got {max_sources}")
        self.max_sources, self.keep = max_sources, keep
        self.index: Optional[int] = None  # the frame last stepped to
        self.frames: dict[int, int] = {}  # slot -> frame index of the source in it
        self.atlas: Optional[_Atlas] = None  # the sources' images, one slot each
        self.carried: Optional[torch.Tensor] = None  # (3, H, W) each pixel's position in its source (x, y) and slot
        self._pending: Optional[tuple] = None  # (slot, kept pixels, reference) of the step awaiting commit
        self._grid: Optional[torch.Tensor] = None  # identity positions, made once per frame size

    def reset(self, index: int, image: torch.Tensor) -> None:
        """Start over at frame ``index`` with ``image`` (1, C, H, W) as every pixel's source."""
        _, c, h, w = image.shape
        if self.atlas is None or not self.atlas.fits(image):
            self.atlas = _Atlas(self.max_sources, image)
        self.frames, self.index, self._pending = {}, index, None
        self.atlas.store(0, image)
        self.frames[0] = index
        self.carried = torch.cat((self._identity(h, w, image.device)[0], image.new_zeros(1, h, w)))

    def step(self, index: int, flow_bw: torch.Tensor, trust: torch.Tensor, warped: torch.Tensor,
             previous: Optional[torch.Tensor]) -> torch.Tensor:
        """Carry the sources on to frame ``index`` and return its stroke reference.

        Args:
            flow_bw: (1, 2, H, W) backward flow to the previous frame.
            trust: (1, 1, H, W) in [0, 1], how far each pixel is traced from the previous frame.
            warped: (1, C, H, W) the reference where a pixel is not kept: the previous output warped into
                this frame.
            previous: (1, C, H, W) the previous output: every pixel's source when the sources start (the
                first step, or one that does not follow the last). None: they start at this frame instead,
                every pixel's reference ``warped`` and its source this frame's output.

        Returns:
            (1, C, H, W): where trust >= ``keep`` each pixel's source read at its carried position,
            elsewhere ``warped``.
        """
        h, w = warped.shape[-2:]
        if self.index is None or index != self.index + 1 or not self.atlas.fits(warped):
            if previous is None:
                self.reset(index, warped)
                self._pending = (0, torch.zeros((h, w), dtype=torch.bool, device=warped.device), warped)
                return warped
            self.reset(index - 1, previous)
        identity = self._identity(h, w, warped.device)
        q = flow_bw[0] + identity[0]  # (2, H, W) where each pixel was in the previous frame
        near = q.round().clamp_(min=0)
        near[0].clamp_(max=w - 1)
        near[1].clamp_(max=h - 1)
        flat = (near[1] * w + near[0]).long().reshape(1, -1)
        # x, y and slot of the nearest pixel there (torch.gather: about 4x faster than index_select on the CPU)
        carried = torch.gather(self.carried.reshape(3, -1), 1, flat.expand(3, -1)).reshape(3, h, w)
        carried[:2] += q - near  # the sub-pixel offset: exact for a local translation
        kept = trust[0, 0] >= self.keep
        slot = carried[2].long()
        counts = torch.bincount(torch.where(kept, slot, self.max_sources).reshape(-1), minlength=self.max_sources + 1)
        counts = counts.tolist()
        free = [k for k in range(self.max_sources) if k not in self.frames or counts[k] == 0]
        self.frames = {k: f for k, f in self.frames.items() if k not in free}
        self.carried = carried
        reference = torch.where(kept[None, None], self._read(), warped)
        moved = ~kept
        if free:  # the pixels not kept take this frame's output as their source
            here = free[0]
        else:  # every slot holds a source: all pixels move to one new one, the reference read here
            here, moved = 0, torch.ones_like(kept)
            self.frames = {}
        start = torch.cat((identity[0], identity.new_full((1, h, w), float(here))))
        self.carried = torch.where(moved[None], start, carried)
        self.frames[here] = index
        self.index, self._pending = index, (here, kept, reference)
        return reference

    def commit(self, output: torch.Tensor) -> None:
        """Store frame ``index``'s source: ``output`` (1, C, H, W) where its pixels were not kept."""
        if self._pending is None:
            raise RuntimeError("commit follows a step")
        here, kept, reference = self._pending
        self.atlas.store(here, torch.where(kept[None, None], reference, output))
        self._pending = None

    def _identity(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        if self._grid is None or self._grid.shape[-2:] != (h, w) or self._grid.device != torch.device(device):
            self._grid = identity_positions(h, w, device)
        return self._grid

    def _read(self) -> torch.Tensor:
        """Every pixel's source read at its position: one bicubic pass over the atlas. (1, C, H, W)."""
        return self.atlas.read(self.carried)


class _Atlas:
    """The sources' images in slots one above the other, each with a replicated border of ``PAD`` pixels.

    On the CPU (float32) it is one (rows, W + 2 PAD, C) interleaved array read by OpenCV's ``remap``
    (positions to 1/32 px): one pass for all channels, about half the time of a pass per channel. Elsewhere
    a (1, C, rows, W + 2 PAD) tensor read by ``grid_sample``.
    """

    def __init__(self, slots: int, like: torch.Tensor):
        _, self.c, self.h, self.w = like.shape
        self.device, self.dtype = like.device, like.dtype
        rows, cols = slots * (self.h + 2 * PAD), self.w + 2 * PAD
        self.interleaved = like.device.type == "cpu" and like.dtype == torch.float32
        self.data = (torch.zeros(rows, cols, self.c) if self.interleaved
                     else like.new_zeros(1, self.c, rows, cols))

    def fits(self, image: torch.Tensor) -> bool:
        return (image.shape[1:] == (self.c, self.h, self.w) and image.device == self.device
                and image.dtype == self.dtype)

    def store(self, slot: int, image: torch.Tensor) -> None:
        """Write ``image`` (1, C, H, W) into ``slot``."""
        top = slot * (self.h + 2 * PAD)
        padded = F.pad(image, (PAD, PAD, PAD, PAD), mode="replicate")
        if self.interleaved:
            self.data[top:top + self.h + 2 * PAD] = padded[0].permute(1, 2, 0)
        else:
            self.data[..., top:top + self.h + 2 * PAD, :] = padded

    def read(self, carried: torch.Tensor) -> torch.Tensor:
        """Each pixel's slot read at its position (``carried`` (3, H, W): x, y, slot) by bicubic
        interpolation. (1, C, H, W)."""
        x = carried[0].clamp(0, self.w - 1).add_(PAD)
        y = carried[1].clamp(0, self.h - 1).add_(carried[2], alpha=self.h + 2 * PAD).add_(PAD)
        if self.interleaved:
            maps = (x.contiguous().numpy(), y.contiguous().numpy())
            if self.data.shape[0] < FIXED_POINT_LIMIT:
                maps = cv2.convertMaps(*maps, cv2.CV_16SC2)
            out = cv2.remap(self.data.numpy(), *maps, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
            planes = cv2.split(out) if self.c > 1 else [out]
            return torch.from_numpy(np.stack(planes))[None].clamp_(0.0, 1.0)
        rows, cols = self.data.shape[-2:]
        grid = torch.stack((x * (2.0 / (cols - 1)) - 1.0, y * (2.0 / (rows - 1)) - 1.0), -1)[None]
        out = F.grid_sample(self.data, grid.to(self.dtype), mode="bicubic", padding_mode="border", align_corners=True)
        return out.clamp_(0.0, 1.0)
