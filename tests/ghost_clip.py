"""A constructed clip for ghosting: a textured square sliding over a still painting (issue 13).

The background is one painting, still, with a little sensor noise per frame (so per-frame
stylization flickers on it as it does on real footage); a square cut from another painting
moves ``speed`` px a frame to the right across it. Ghosts and smear of a temporal method show in
the strips just behind the square (ground it has just uncovered) and just ahead of it (ground
next to a moving edge); a static strip far from its path is the reference.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = ["GhostClip", "make_ghost_clip", "ghost_ratio"]


@dataclass(frozen=True)
class GhostClip:
    folder: Path
    frames: int
    size: tuple[int, int]  # (width, height)
    square: int  # side
    top: int  # row of the square's top edge
    left0: int  # column of its left edge in frame 1
    speed: int  # px per frame to the right
    strip: int  # width of the behind/ahead strips

    def left(self, k: int) -> int:
        """Left edge of the square in frame k (0-based)."""
        return self.left0 + self.speed * k


def _read(path: Path, size: tuple[int, int]) -> np.ndarray:
    img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def make_ghost_clip(folder: Path, data: Path, *, frames: int = 20, size: tuple[int, int] = (320, 192),
                    square: int = 64, speed: int = 8, noise: float = 0.015, seed: int = 0) -> GhostClip:
    """Write the clip as PNG frames into ``folder``; paintings from ``data``/styles."""
    folder.mkdir(parents=True, exist_ok=True)
    w, h = size
    ground = _read(data / "styles" / "water_lilies_1919.jpg", size)
    tile = _read(data / "styles" / "great_wave_off_kanagawa.jpg", (square, square))
    clip = GhostClip(folder, frames, size, square, top=(h - square) // 2 + 16, left0=16, speed=speed, strip=speed * 2)
    rng = np.random.default_rng(seed)
    for k in range(frames):
        img = ground.copy()
        x = clip.left(k)
        img[clip.top:clip.top + square, x:x + square] = tile
        img = np.clip(img + rng.normal(0.0, noise, img.shape).astype(np.float32), 0.0, 1.0)
        cv2.imwrite(str(folder / f"frame_{k + 1:04d}.png"), cv2.cvtColor((img * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR))
    return clip


def ghost_ratio(clip: GhostClip, ours: list, per_frame: list, *, skip: int = 3) -> dict:
    """Distance to per-frame stylization beside the moving square over that on static ground.

    Returns:
        {"behind", "ahead", "static": mean |ours − per-frame| (0-1) in each strip, and
         "ratio": mean(behind, ahead) / static}, over frames ``skip``.. (the run's warm-up skipped).
    """
    behind, ahead, static = [], [], []
    s, t, q = clip.strip, clip.top, clip.square
    for k in range(skip, clip.frames):
        diff = np.abs(np.asarray(ours[k]) - np.asarray(per_frame[k])).mean(axis=2)
        x = clip.left(k)
        if x - s < 0 or x + q + s > clip.size[0]:
            continue
        behind.append(diff[t:t + q, x - s:x].mean())
        ahead.append(diff[t:t + q, x + q:x + q + s].mean())
        static.append(diff[4:t - 24, :].mean())  # rows well above the square's path
    b, a, st = float(np.mean(behind)), float(np.mean(ahead)), float(np.mean(static))
    return {"behind": b, "ahead": a, "static": st, "ratio": (b + a) / 2 / max(st, 1e-9)}
