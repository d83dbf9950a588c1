"""Run settings: one frozen dataclass, checked before the first frame."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

from .errors import FlowstyleError
from .stylize import StyleRef

__all__ = ["Settings", "MODE_DEFAULTS", "parse_range", "parse_offsets"]

# Defaults that differ by mode (None in Settings means "the mode's default").
MODE_DEFAULTS = {
    "fast": {"temporal_weight": 1.0, "long_term": (1,), "passes": 1, "flow": "dis-fast"},
    "quality": {"temporal_weight": 1000.0, "long_term": (1, 2, 4), "passes": 1, "flow": "dis"},
}


@dataclass(frozen=True)
class Settings:
    """Everything that decides the output (DESIGN 3 and 4).

    Fields left None take the mode's default (:data:`MODE_DEFAULTS`); :meth:`resolved`
    fills them in.
    """

    styles: tuple[StyleRef, ...] = (StyleRef(builtin=7),)
    mode: str = "fast"
    frames: Optional[tuple[int, int]] = None  # 1-based inclusive
    size: Optional[int] = 1024  # working size, longest side; None keeps the input's
    flow: Optional[str] = None  # dis | dis-fast | deepflow | raft; None: dis-fast (fast mode), dis (quality)
    raft_weights: Optional[str] = None  # local torchvision RAFT state dict (default: torchvision's download)
    temporal_weight: Optional[float] = None  # γ; 0 turns temporal terms off (fast: per-frame; quality: also --init content)
    long_term: Optional[tuple[int, ...]] = None  # J
    passes: Optional[int] = None
    mask: str = "hard"  # hard | soft
    device: str = "auto"
    keyframes: Optional[str] = None
    # fast mode (DESIGN 4.6)
    fidelity_weight: float = 0.2  # λ
    detail: float = 0.7  # share of the fine band kept from the per-frame stylization
    band: int = 8  # band cut-off in pixels
    warp_mode: str = "bicubic"
    solver: str = "band"  # band | cg
    # quality mode (DESIGN 4.4)
    content_weight: float = 5.0
    style_weight: float = 100.0
    tv_weight: float = 1e-3
    iterations: int = 500
    iterations_first: int = 1000
    optimizer: str = "lbfgs"
    init: str = "prev-warped"
    vgg_weights: Optional[str] = None
    style_scale: float = 1.0
    keep_colors: bool = False
    seed: int = 0
    init_first: str = "content"  # start of frame 1 (and of fresh frames): content | random
    coarse_to_fine: int = 0  # coarser levels (each half size) before a fresh frame's full size; 0 off
    temporal_luminance: bool = False  # ReCoNet: temporal target follows the input's luminance change
    feature_temporal_weight: float = 0.0  # feature-level temporal term (relu3_1); 0 off
    sharpness_weight: float = 3.0  # anti-blur term (keep the traced detail energy); 0 off
    extra: dict = field(default_factory=dict, hash=False, compare=False)

    def resolved(self) -> "Settings":
        """A copy with mode defaults filled in, after checking every value a user can set."""
        if self.mode not in MODE_DEFAULTS:
            raise FlowstyleError(f"unknown mode '{self.mode}': use fast or quality")
        d = MODE_DEFAULTS[self.mode]
        s = dataclasses.replace(
            self,
            temporal_weight=d["temporal_weight"] if self.temporal_weight is None else float(self.temporal_weight),
            long_term=d["long_term"] if self.long_term is None else tuple(sorted(set(self.long_term))),
            passes=d["passes"] if self.passes is None else int(self.passes),
            flow=d["flow"] if self.flow is None else self.flow,
        )
        if s.temporal_weight < 0:
            raise FlowstyleError(f"--temporal-weight must be 0 or more, got {s.temporal_weight:g}")
        if not s.long_term or min(s.long_term) < 1:
            raise FlowstyleError(f"--long-term needs frame offsets of 1 or more, like 1,2,4; got {s.long_term}")
        if s.passes < 1:
            raise FlowstyleError(f"--passes must be 1 or more, got {s.passes}")
        if s.size is not None and s.size < 16:
            raise FlowstyleError(f"--size must be at least 16 pixels, got {s.size}")
        if s.mask not in ("hard", "soft"):
            raise FlowstyleError(f"unknown mask '{s.mask}': use hard or soft")
        if s.solver not in ("band", "cg"):
            raise FlowstyleError(f"unknown solver '{s.solver}': use band or cg")
        if s.optimizer not in ("lbfgs", "adam"):
            raise FlowstyleError(f"unknown optimizer '{s.optimizer}': use lbfgs or adam")
        if s.init not in ("prev-warped", "prev", "content", "random"):
            raise FlowstyleError(f"unknown --init '{s.init}': use prev-warped, prev, content or random")
        if s.init_first not in ("content", "random"):
            raise FlowstyleError(f"unknown first-frame init '{s.init_first}': use content or random")
        if s.iterations < 1 or s.iterations_first < 1:
            raise FlowstyleError(f"--iterations and --iterations-first must be 1 or more, got {s.iterations} and {s.iterations_first}")
        if min(s.content_weight, s.style_weight, s.tv_weight, s.feature_temporal_weight, s.sharpness_weight) < 0:
            raise FlowstyleError("quality-mode weights (content, style, tv, feature, sharpness) must be 0 or more")
        if s.style_scale <= 0 or s.coarse_to_fine < 0:
            raise FlowstyleError(f"--style-scale must be positive and coarse-to-fine levels 0 or more, got {s.style_scale:g} and {s.coarse_to_fine}")
        if s.device not in ("auto", "cpu", "cuda", "mps"):
            raise FlowstyleError(f"unknown device '{s.device}': use auto, cpu, cuda or mps")
        return s

    def fingerprint(self) -> dict:
        """The settings that decide the pixels (for --resume), as plain JSON values."""
        d = dataclasses.asdict(self)
        for k in ("device", "extra", "keyframes"):
            d.pop(k)
        d["styles"] = [str(s) for s in self.styles]
        return d


def parse_range(text: str) -> tuple[int, int]:
    """'START:END' (1-based, inclusive) -> (start, end)."""
    a, sep, b = text.partition(":")
    try:
        start, end = int(a), int(b)
    except ValueError:
        raise FlowstyleError(f"--frames '{text}' is not START:END with whole numbers, like 1:48") from None
    if not sep or start < 1 or end < start:
        raise FlowstyleError(f"--frames '{text}' is empty or starts before 1: use START:END with 1 <= START <= END")
    return start, end


def parse_offsets(text: str) -> tuple[int, ...]:
    """'1,2,4' -> (1, 2, 4)."""
    try:
        out = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise FlowstyleError(f"--long-term '{text}' must be frame offsets like 1,2,4") from None
    if not out or min(out) < 1:
        raise FlowstyleError(f"--long-term '{text}' must be frame offsets of 1 or more, like 1,2,4")
    return out
