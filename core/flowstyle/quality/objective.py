"""The loss of one frame (DESIGN 4.4): its weights, its temporal targets, the style's Gram targets.

Per frame i, over the image x:

    α L_content + β L_style + w_tv L_tv + γ Σ_j L_temporal(x, ω_j, c_j)
    (+ optional: the luminance-aware temporal target, a feature-level temporal term and a
    sharpness term; seeds 002 and 000)

The four papers' terms are on the reference implementation's scales (see :mod:`.losses`), so
its weights keep its balance; the optional relative terms are multiplied by PIXEL_SCALE².
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from ..io.styles import StyleRef, read_style_image
from .losses import (CONTENT_LAYER, FEATURE_LAYER, PIXEL_SCALE, STYLE_LAYERS, content_loss, feature_temporal_loss, gram_matrix,
                     rgb_to_yiq, sharpness_loss, style_loss, temporal_loss, tv_loss, yiq_to_rgb)
from .vgg import VGG19Features, VggOutputs

__all__ = ["LossWeights", "Temporal", "StyleBank", "FrameObjective"]

_RELATIVE, _RELATIVE_SCALE = ("feature", "sharpness"), PIXEL_SCALE ** 2  # scale-free terms next to the 0-255 ones


@dataclass(frozen=True)
class LossWeights:
    """α, β, TV, γ (the reference's defaults and meaning) and the optional terms' weights (0 turns a term off)."""

    content: float = 5.0
    style: float = 100.0
    tv: float = 1e-3
    temporal: float = 1000.0
    feature: float = 0.0
    sharpness: float = 0.0


@dataclass
class Temporal:
    """What ties frame i to earlier results, all in frame i's geometry.

    Attributes:
        warped: each (1, 3, H, W) ω_j, the result of frame i−j warped into frame i (with the
            input's luminance change added when the luminance-aware term is on).
        masks: each (1, 1, H, W) c_long,j.
        features: each (1, C, h, w) the earlier result's FEATURE_LAYER features, warped (feature term).
        feature_masks: each (1, 1, h, w) c_long,j at feature resolution.
        energy: (1, 1, H, W) detail energy of the previous result, warped (sharpness term).
        energy_mask: (1, 1, H, W) where ``energy`` is traced.
    """

    warped: list = field(default_factory=list)
    masks: list = field(default_factory=list)
    features: list = field(default_factory=list)
    feature_masks: list = field(default_factory=list)
    energy: Optional[torch.Tensor] = None
    energy_mask: Optional[torch.Tensor] = None


class StyleBank:
    """Gram targets of style images: computed once per (image, size), blended per frame by weight.

    Args:
        net: the loss network.
        scale: style image size relative to the frame's longest side (the reference's style scale).
        luminance_of: (mean, std) of the content's luminance for luminance-only transfer (keep
            original colours; Gatys et al. 2016, "Preserving color in neural artistic style
            transfer"): the style's luminance is matched to it and the Gram targets are taken
            from that gray image. None: full-colour targets.
    """

    def __init__(self, net: VGG19Features, *, scale: float = 1.0, luminance_of: Optional[tuple[float, float]] = None):
        self.net, self.scale, self.luminance_of = net, float(scale), luminance_of
        self._images: dict[str, torch.Tensor] = {}
        self._grams: dict[tuple[str, int], list[torch.Tensor]] = {}

    def grams(self, path: str, long_side: int) -> list[torch.Tensor]:
        """Gram targets (each (1, C_l, C_l)) of one style image scaled to ``long_side`` · scale."""
        side = max(16, round(long_side * self.scale))
        key = (path, side)
        if key not in self._grams:
            if path not in self._images:
                self._images[path] = torch.from_numpy(read_style_image(path)).permute(2, 0, 1)[None]
            img = self._images[path]
            h, w = img.shape[-2:]
            f = side / max(h, w)
            size = (max(16, round(h * f)), max(16, round(w * f)))
            dev = next(self.net.buffers()).device
            img = F.interpolate(img.to(dev), size=size, mode="bilinear", antialias=True, align_corners=False)
            if self.luminance_of is not None:
                y = rgb_to_yiq(img)[:, :1]
                mu, sigma = self.luminance_of
                y = (y - y.mean()) * (sigma / y.std().clamp(min=1e-6)) + mu
                img = y.expand(-1, 3, -1, -1)
            with torch.no_grad():
                feats = self.net(img.clamp(0.0, 1.0))
                self._grams[key] = [gram_matrix(getattr(feats, n)) for n in STYLE_LAYERS]
        return self._grams[key]

    def blend(self, styles: Sequence[StyleRef], long_side: int) -> list[torch.Tensor]:
        """Weighted mean of the styles' Gram targets (``styles``: StyleRefs with ``.image``, ``.weight``)."""
        total = sum(s.weight for s in styles)
        per_style = [(s.weight / total, self.grams(s.image, long_side)) for s in styles]
        return [sum(w * g[l] for w, g in per_style) for l in range(len(STYLE_LAYERS))]


class FrameObjective:
    """The loss of one frame (DESIGN 4.4), callable on the optimization variable.

    The variable is the RGB image, or only its luminance Y when ``keep_colors`` (the image is
    then Y with the content's own I and Q, and content and style see the gray image Y).

    Args:
        net: the loss network.
        content: (1, 3, H, W) the input frame p_i.
        grams: per STYLE_LAYERS the (1, C, C) Gram targets.
        weights: :class:`LossWeights`.
        temporal: :class:`Temporal` or None (first frame, per-frame stylization).
        keep_colors: luminance-only transfer.
        channels_last, amp_dtype: CUDA speed-ups (see :func:`amp_agrees`).
    """

    def __init__(self, net: VGG19Features, content: torch.Tensor, grams: Sequence[torch.Tensor], *,
                 weights: LossWeights, temporal: Optional[Temporal] = None, keep_colors: bool = False,
                 channels_last: bool = False, amp_dtype: Optional[torch.dtype] = None):
        if content.ndim != 4 or content.shape[:2] != (1, 3):
            raise ValueError(f"content must be (1, 3, H, W); got {tuple(content.shape)}")
        self.net, self.grams, self.weights = net, list(grams), weights
        self.temporal = temporal or Temporal()
        self.keep_colors, self.channels_last, self.amp_dtype = keep_colors, channels_last, amp_dtype
        self.content = content
        self.chroma = rgb_to_yiq(content)[:, 1:] if keep_colors else None
        with torch.no_grad():
            self.content_target = self._features(self._net_input(self.to_variable(content)), CONTENT_LAYER).relu4_2

    def to_variable(self, rgb: torch.Tensor) -> torch.Tensor:
        """RGB image (1, 3, H, W) -> the variable: itself, or its (1, 1, H, W) luminance."""
        return rgb_to_yiq(rgb)[:, :1] if self.keep_colors else rgb

    def render(self, v: torch.Tensor) -> torch.Tensor:
        """The variable -> the (1, 3, H, W) RGB image it stands for."""
        return yiq_to_rgb(torch.cat([v, self.chroma], 1)) if self.keep_colors else v

    def _net_input(self, v: torch.Tensor) -> torch.Tensor:
        x = v.expand(-1, 3, -1, -1) if self.keep_colors else v
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _features(self, x: torch.Tensor, upto: Optional[str] = None) -> VggOutputs:
        ctx = (torch.autocast(x.device.type, dtype=self.amp_dtype) if self.amp_dtype is not None
               else contextlib.nullcontext())
        with ctx:
            return self.net(x, upto=upto)

    def __call__(self, v: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its unweighted parts (content, style, tv, temporal, feature, sharpness)."""
        w, t = self.weights, self.temporal
        x = self.render(v)
        feats = self._features(self._net_input(v))
        parts = {
            "content": content_loss(feats.relu4_2, self.content_target),
            "style": style_loss([getattr(feats, n) for n in STYLE_LAYERS], self.grams),
            "tv": tv_loss(x),
        }
        if t.warped and w.temporal:
            parts["temporal"] = temporal_loss(x, t.warped, t.masks)
        if t.features and w.feature:
            parts["feature"] = feature_temporal_loss(getattr(feats, FEATURE_LAYER), t.features, t.feature_masks)
        if t.energy is not None and w.sharpness:
            parts["sharpness"] = sharpness_loss(x, t.energy, t.energy_mask)
        total = sum(getattr(w, k) * v_ * (_RELATIVE_SCALE if k in _RELATIVE else 1.0) for k, v_ in parts.items())
        return total, parts
