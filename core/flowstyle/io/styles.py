"""Style specs and style images: ``builtin:N``, ``path``, ``path:weight``; reading a painting.

One place parses a style spec and one reads a style image, for both modes and the keyframes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..base.errors import FlowstyleError
from .images import read_image

__all__ = ["StyleRef", "parse_style", "read_style_image", "NUM_BUILTIN", "MIN_STYLE_SIDE"]

NUM_BUILTIN = 26  # styles of the shipped multi-style network
MIN_STYLE_SIDE = 16


@dataclass(frozen=True)
class StyleRef:
    """One style: ``builtin`` index or an image path, with a blend weight."""

    builtin: Optional[int] = None
    image: Optional[str] = None
    weight: float = 1.0

    def __str__(self) -> str:
        base = f"builtin:{self.builtin}" if self.builtin is not None else str(self.image)
        return base if self.weight == 1.0 else f"{base}:{self.weight:g}"


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def parse_style(spec: str, base: Optional[Path] = None) -> StyleRef:
    """Parse ``builtin:N``, ``builtin:N:W``, ``path`` or ``path:W``; relative paths resolve against ``base``."""
    text = spec.strip()
    weight = 1.0
    head, sep, tail = text.rpartition(":")
    if sep and head and _is_number(tail) and not (head == "builtin"):
        text, weight = head, float(tail)
    if not math.isfinite(weight) or weight <= 0:
        raise FlowstyleError(f"style '{spec}': the weight must be a positive number")
    if text.startswith("builtin:"):
        n = text.split(":", 1)[1]
        if not n.isdigit() or not 0 <= int(n) < NUM_BUILTIN:
            raise FlowstyleError(f"style '{spec}': builtin styles are builtin:0 to builtin:{NUM_BUILTIN - 1}")
        return StyleRef(builtin=int(n), weight=weight)
    path = Path(text)
    if base is not None and not path.is_absolute():
        path = base / path
    if not path.is_file():
        raise FlowstyleError(f"cannot read style image '{path}': no such file (give an image path or builtin:0..{NUM_BUILTIN - 1})")
    return StyleRef(image=str(path), weight=weight)


def read_style_image(path: str | Path) -> np.ndarray:
    """A style image as (H, W, 3) float32 RGB in [0, 1]; one clear line when it cannot carry a style."""
    rgb, _, _ = read_image(path, "style image")
    if min(rgb.shape[:2]) < MIN_STYLE_SIDE:
        raise FlowstyleError(f"style image '{path}' is {rgb.shape[1]}x{rgb.shape[0]}: too small to carry a style "
                             f"(at least {MIN_STYLE_SIDE} px a side)")
    return rgb
