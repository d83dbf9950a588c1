"""Quality mode's per-frame optimization (Gatys et al. 2016; Ruder et al. 2016 and 2018; DESIGN 4.4).

Per frame i, over the image x:

    α L_content + β L_style + w_tv L_tv + γ Σ_j L_temporal(x, ω_j, c_j)
    (+ optional: the luminance-aware temporal target, a feature-level temporal term and a
    sharpness term; seeds 002 and 000)

Pure tensor functions and two small classes, no I/O beyond reading style images, no device
choices. Units: images are RGB in [0, 1]. Feature losses are relative to their target's energy, TV
to the content frame's own (so the weights mean the same with any VGG weights and at any
size); the temporal term is the papers' mean over the D = C·H·W values.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F

from .errors import FlowstyleError
from .vgg import VGG19Features, VggOutputs

__all__ = [
    "STYLE_LAYERS", "CONTENT_LAYER", "FEATURE_LAYER", "gram_matrix", "content_loss", "style_loss", "tv_loss",
    "temporal_loss", "feature_temporal_loss", "detail_energy", "sharpness_loss", "luminance", "rgb_to_yiq",
    "yiq_to_rgb", "LossWeights", "Temporal", "StyleBank", "FrameObjective", "OptimizeResult", "optimize",
    "coarse_to_fine", "converged", "amp_agrees", "noise_like",
]

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"
FEATURE_LAYER = "relu3_1"  # feature-level temporal term (1/4 resolution, like ReCoNet's encoder output)
LBFGS_HISTORY = 20  # 2 x 20 image-sized vectors: bounded memory at 1080p (torch's default 100 is 5 GB there)
ADAM_LR = 0.02  # in [0, 1] pixel units (the reference's 10 on the 0-255 scale is 0.04)
STOP_WINDOW, STOP_DROP = 50, 1e-4  # stop when the loss falls by less than 0.01 % over 50 iterations
_EPS = 1e-12


def gram_matrix(f: torch.Tensor) -> torch.Tensor:
    """Gram matrix normalized by C·H·W, computed in float32.

    Args:
        f: (B, C, H, W) features.

    Returns:
        (B, C, C).
    """
    if f.ndim != 4:
        raise ValueError(f"features must be (B, C, H, W); got {tuple(f.shape)}")
    b, c, h, w = f.shape
    v = f.float().reshape(b, c, h * w)
    return torch.bmm(v, v.transpose(1, 2)) / (c * h * w)


def content_loss(f: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """||F − P||² / ||P||²: relative squared error of (B, C, H, W) features (Ruder eq. 1, scale-free)."""
    if f.shape != target.shape:
        raise ValueError(f"features {tuple(f.shape)} and target {tuple(target.shape)} must match")
    t = target.float()
    return (f.float() - t).square().sum() / t.square().sum().clamp(min=_EPS)


def style_loss(feats: Sequence[torch.Tensor], grams: Sequence[torch.Tensor]) -> torch.Tensor:
    """Σ over layers of ||G(F_l) − A_l||² / ||A_l||² (Ruder eq. 2 summed as the reference code does; scale-free).

    Args:
        feats: per layer (1, C_l, H_l, W_l). grams: per layer (1, C_l, C_l) targets.
    """
    if len(feats) != len(grams):
        raise ValueError(f"need one Gram target per layer; got {len(feats)} layers and {len(grams)} targets")
    total = 0.0
    for f, a in zip(feats, grams):
        total = total + (gram_matrix(f) - a).square().sum() / a.square().sum().clamp(min=_EPS)
    return total


def _gradient_energy(x: torch.Tensor) -> torch.Tensor:
    return (x[..., :, 1:] - x[..., :, :-1]).square().sum() + (x[..., 1:, :] - x[..., :-1, :]).square().sum()


def tv_loss(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Squared total variation relative to a reference's: Σ |∇x|² / Σ |∇p|² (scale-free).

    The reference's TV (½ Σ |∇x|², on the 0-255 scale, summed over the frame) grows with the
    frame size and has no fixed relation to relative feature losses; measured against the
    content frame's own gradient energy it pulls the same at every size.

    Args:
        x: (B, C, H, W) image. reference: (B, C, H, W) the content frame p.
    """
    floor = 1e-4 * reference[..., :1, :, :].numel()  # a flat reference frame must not blow it up
    return _gradient_energy(x) / (_gradient_energy(reference) + floor)


def temporal_loss(x: torch.Tensor, warped: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]) -> torch.Tensor:
    """Σ_j (1/D) Σ_k c_j,k (x_k − ω_j,k)² (Ruder et al. 2016, eq. 7 summed over J as in eq. 9).

    Args:
        x: (B, C, H, W). warped: each (B, C, H, W) ω_j. masks: each (B, 1, H, W) c_long,j in [0, 1].
    """
    if len(warped) != len(masks):
        raise ValueError(f"need one mask per warped frame; got {len(warped)} frames and {len(masks)} masks")
    total = x.new_zeros(())
    for w, c in zip(warped, masks):
        if w.shape != x.shape or c.shape[-2:] != x.shape[-2:]:
            raise ValueError(f"warped {tuple(w.shape)} and mask {tuple(c.shape)} must match x {tuple(x.shape)}")
        total = total + (c * (x - w).square()).mean()
    return total


def feature_temporal_loss(f: torch.Tensor, warped: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]) -> torch.Tensor:
    """Feature-level temporal term (ReCoNet): Σ_j mean(c_j (F − W(F_j))²) / mean(W(F_j)²).

    Args:
        f: (B, C, h, w) features of x. warped: each (B, C, h, w) earlier result's features warped.
        masks: each (B, 1, h, w) the long-term mask at feature resolution.
    """
    total = f.new_zeros((), dtype=torch.float32)
    for w, c in zip(warped, masks):
        total = total + (c * (f.float() - w).square()).mean() / w.square().mean().clamp(min=_EPS)
    return total


def _laplacian(x: torch.Tensor) -> torch.Tensor:
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return p[..., 1:-1, 2:] + p[..., 1:-1, :-2] + p[..., 2:, 1:-1] + p[..., :-2, 1:-1] - 4.0 * x


def detail_energy(x: torch.Tensor, window: int = 5) -> torch.Tensor:
    """Local high-frequency energy: box average of the squared Laplacian, mean over channels.

    Args:
        x: (B, C, H, W) image.

    Returns:
        (B, 1, H, W).
    """
    e = _laplacian(x).square().mean(1, keepdim=True)
    return F.avg_pool2d(e, window, stride=1, padding=window // 2, count_include_pad=False)


def sharpness_loss(x: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Anti-blur term: Σ c · max(E_ref − E(x), 0) / Σ c · E_ref.

    Where a pixel is traced (c), x must keep at least the detail energy E_ref the earlier result
    had there (its own energy, warped: warping the energy map does not blur it away as warping
    the image does). Repeated bilinear warping softens a carried-over result; this stops it.

    Args:
        x: (B, C, H, W). reference: (B, 1, H, W) E_ref. mask: (B, 1, H, W).
    """
    deficit = (reference - detail_energy(x)).clamp(min=0.0)
    return (mask * deficit).sum() / (mask * reference).sum().clamp(min=_EPS)


_RGB2YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ2RGB = torch.linalg.inv(_RGB2YIQ)


def rgb_to_yiq(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB -> (B, 3, H, W) YIQ (Y = 0.299 R + 0.587 G + 0.114 B)."""
    return torch.einsum("ij,bjhw->bihw", _RGB2YIQ.to(x), x)


def yiq_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) YIQ -> RGB; the inverse of :func:`rgb_to_yiq`."""
    return torch.einsum("ij,bjhw->bihw", _YIQ2RGB.to(x), x)


def luminance(x: torch.Tensor) -> torch.Tensor:
    """Relative luminance 0.2126 R + 0.7152 G + 0.0722 B (ReCoNet): (B, 3, H, W) -> (B, 1, H, W)."""
    w = torch.tensor([0.2126, 0.7152, 0.0722], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def noise_like(content: torch.Tensor, seed: int) -> torch.Tensor:
    """A noise start image: the content's mean colour + N(0, 0.1²) noise, reproducible by ``seed``."""
    g = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(content.shape, generator=g).to(content)
    return content.mean((2, 3), keepdim=True) + 0.1 * noise


@dataclass(frozen=True)
class LossWeights:
    """α, β, TV, γ and the optional terms' weights (0 turns a term off)."""

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


def _read_style(path: str) -> torch.Tensor:
    from .frames import read_image

    rgb, _, _ = read_image(path, "style image")
    if min(rgb.shape[:2]) < 16:
        raise FlowstyleError(f"style image '{path}' is {rgb.shape[1]}x{rgb.shape[0]}: too small to carry a style (at least 16 px a side)")
    return torch.from_numpy(rgb).permute(2, 0, 1)[None]


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
                self._images[path] = _read_style(path)
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

    def blend(self, styles: Sequence, long_side: int) -> list[torch.Tensor]:
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
            "tv": tv_loss(x, self.content),
        }
        if t.warped and w.temporal:
            parts["temporal"] = temporal_loss(x, t.warped, t.masks)
        if t.features and w.feature:
            parts["feature"] = feature_temporal_loss(getattr(feats, FEATURE_LAYER), t.features, t.feature_masks)
        if t.energy is not None and w.sharpness:
            parts["sharpness"] = sharpness_loss(x, t.energy, t.energy_mask)
        total = sum(getattr(w, k) * v_ for k, v_ in parts.items())
        return total, parts


@dataclass
class OptimizeResult:
    """The image found, the loss before each iteration, and the final unweighted parts."""

    image: torch.Tensor  # (1, 3, H, W), not clamped
    losses: list[float]
    parts: dict[str, float]
    seconds: float = 0.0


def converged(losses: Sequence[float], window: int = STOP_WINDOW, drop: float = STOP_DROP) -> bool:
    """True when the loss fell by less than ``drop`` (relative) over the last ``window`` iterations."""
    if len(losses) <= window:
        return False
    before, now = losses[-1 - window], losses[-1]
    return before - now < drop * abs(before)


def optimize(
    objective: FrameObjective, init: torch.Tensor, *, iterations: int, optimizer: str = "lbfgs",
    lr: float = ADAM_LR, callback: Optional[Callable[[int, float], None]] = None,
) -> OptimizeResult:
    """Minimize ``objective`` from ``init`` (DESIGN 4.4).

    L-BFGS (the papers' choice, no line search, history LBFGS_HISTORY) or Adam; at most
    ``iterations`` steps, stopping early by :func:`converged`. Returns the last iterate, or the
    best one seen when the last step overshot (no line search) or went non-finite.

    Args:
        init: (1, 3, H, W) RGB start image.
        callback: called as ``callback(iteration, loss)`` every 10 iterations (cancel, progress).
    """
    import time

    t0 = time.perf_counter()
    v = objective.to_variable(init).detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS([v], lr=1.0, max_iter=1, history_size=LBFGS_HISTORY)
    elif optimizer == "adam":
        opt = torch.optim.Adam([v], lr=lr)
    else:
        raise FlowstyleError(f"unknown optimizer '{optimizer}': use lbfgs or adam")

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss, _ = objective(v)
        loss.backward()
        return loss

    losses: list[float] = []
    best, best_v = math.inf, None
    for it in range(iterations):
        before = v.detach().clone()
        loss = float(opt.step(closure).detach())  # the loss at ``before``
        if not math.isfinite(loss):
            break
        losses.append(loss)
        if loss < best:
            best, best_v = loss, before
        if callback is not None and it % 10 == 0:
            callback(it, loss)
        if converged(losses):
            break
    with torch.no_grad():
        x = v.detach()
        total, parts = objective(x)
        if not float(total) < best and best_v is not None:  # L-BFGS without line search can end on an overshoot
            x = best_v
            total, parts = objective(x)
    if not math.isfinite(float(total)):
        raise FlowstyleError("the quality-mode loss became infinite or NaN: lower --style-weight or --temporal-weight")
    parts = {k: float(p) for k, p in parts.items()} | {"total": float(total)}
    return OptimizeResult(objective.render(x), losses, parts, time.perf_counter() - t0)


def coarse_to_fine(
    build: Callable[[float], FrameObjective], init: torch.Tensor, *, iterations: int, levels: int,
    min_side: int = 32, **kwargs,
) -> OptimizeResult:
    """Optimize at 1/2^levels of the size first, then upsample and go on at each finer size.

    Each coarser level gets half the budget (a quarter of the cost per iteration or less), the
    full size the other half; levels that would be smaller than ``min_side`` are skipped.

    Args:
        build: scale -> the frame's objective at that scale (1.0 is full size).
        init: (1, 3, H, W) start image at full size.
        iterations: the budget at full size when ``levels`` is 0.
    """
    h, w = init.shape[-2:]
    levels = max(0, min(levels, int(math.log2(max(1, min(h, w) // min_side))) if min(h, w) >= min_side else 0))
    if levels == 0:
        return optimize(build(1.0), init, iterations=iterations, **kwargs)
    x, losses, seconds = None, [], 0.0
    for level in range(levels, -1, -1):
        scale = 0.5 ** level
        size = (max(16, round(h * scale)), max(16, round(w * scale)))
        start = F.interpolate(init if x is None else x, size=size, mode="bilinear", align_corners=False,
                              antialias=x is None)
        res = optimize(build(scale), start, iterations=max(1, iterations // 2), **kwargs)
        x, seconds = res.image, seconds + res.seconds
        losses += res.losses
    return OptimizeResult(x, losses, res.parts, seconds)


def amp_agrees(objective: FrameObjective, x: torch.Tensor, dtype: torch.dtype, *, rtol: float = 1e-3) -> bool:
    """Whether mixed precision leaves the loss and its gradient unchanged within ``rtol`` at ``x``.

    Evaluates the objective in float32 and under autocast(``dtype``): the loss must agree within
    ``rtol`` (relative) and the gradients' cosine similarity must be at least 1 − ``rtol``.
    """
    def loss_grad(amp: Optional[torch.dtype]) -> tuple[float, torch.Tensor]:
        saved = objective.amp_dtype
        objective.amp_dtype = amp
        try:
            v = objective.to_variable(x).detach().clone().requires_grad_(True)
            loss, _ = objective(v)
            (g,) = torch.autograd.grad(loss, v)
            return float(loss.detach()), g.flatten().float()
        finally:
            objective.amp_dtype = saved

    l32, g32 = loss_grad(None)
    lmp, gmp = loss_grad(dtype)
    if not (math.isfinite(lmp) and torch.isfinite(gmp).all()):
        return False
    cos = float(F.cosine_similarity(g32, gmp, dim=0))
    return abs(lmp - l32) <= rtol * abs(l32) and cos >= 1.0 - rtol
