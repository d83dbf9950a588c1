"""Quality mode's loss terms (Gatys et al. 2016; Ruder et al. 2016 and 2018; ReCoNet; seed 000).

Pure tensor functions, no I/O, no device choices. Images come in as RGB in [0, 1]; the four
terms of the papers are computed as the reference implementation (manuelruder/artistic-videos)
computes them, so that its weights (content 5, style 100, temporal 1000, TV 1e-3) give its
balance:

- pixel terms (temporal, TV) on its image scale: [0, 1] times PIXEL_SCALE = 256 (its caffe
  preprocessing multiplies by 256, then subtracts the mean pixel, which differences cancel);
- content: the mean squared error of the relu4_2 features (torch's MSECriterion);
- style: per layer the mean squared error of Gram matrices normalized by C·H·W, summed over
  the layers;
- temporal: per earlier frame j the mean over D = C·H·W of c·(x − ω)², summed over J;
- TV: ½ Σ (x[i, j] − x[i, j+1])² + (x[i, j] − x[i+1, j])² over i < H−1, j < W−1, all channels
  (the energy whose gradient its TVLoss module returns).

Features are those of the caffe network fed the 0-255 image: our VGG-19 takes torchvision's
normalized input (x − μ)/σ, which is the caffe input 256·(x − μ) divided by 256·σ, so its
features are multiplied by FEATURE_SCALE = 256·mean(σ) ≈ 57.9 before they enter the loss
(exact for the first layer; beyond it as far as the biases are small: one documented
conversion, not a calibration against the caffe weights, which cannot be had offline).

The optional terms (feature-level temporal, sharpness) are relative (scale-free); the objective
multiplies them by PIXEL_SCALE² so their weights keep their meaning next to the temporal weight.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ..base.tensors import laplacian

__all__ = [
    "PIXEL_SCALE", "FEATURE_SCALE", "STYLE_LAYERS", "CONTENT_LAYER", "FEATURE_LAYER", "gram_matrix", "relative_mse", "relative_gram_loss", "content_loss", "style_loss", "tv_loss",
    "temporal_loss", "feature_temporal_loss", "detail_energy", "sharpness_loss", "luminance", "rgb_to_yiq",
    "yiq_to_rgb",
]

PIXEL_SCALE = 256.0  # the reference's image scale (its preprocess: RGB [0, 1] * 256, BGR, minus the mean pixel)
_IMAGENET_STD = (0.229, 0.224, 0.225)  # torchvision's input normalization (vgg.VGG19_WEIGHTS.meta["std"])
FEATURE_SCALE = PIXEL_SCALE * sum(_IMAGENET_STD) / 3  # torchvision-normalized input -> caffe 0-255 input
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"
FEATURE_LAYER = "relu3_1"  # feature-level temporal term (1/4 resolution, like ReCoNet's encoder output)
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


def relative_mse(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean((x − target)²) / mean(target²): an MSE whose weight does not depend on the target's scale
    (image size, layer); ``flowstyle train``'s perceptual terms."""
    return F.mse_loss(x, target) / target.square().mean().clamp(min=_EPS)


def relative_gram_loss(feats: Sequence[torch.Tensor], grams: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean over layers of :func:`relative_mse` of the Gram matrices of ``feats`` (each (B, C, H, W))
    against ``grams`` (each (B, C, C), no gradient needed)."""
    return sum(relative_mse(gram_matrix(f), g) for f, g in zip(feats, grams)) / len(grams)


def content_loss(f: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean((s·F − s·P)²), s = FEATURE_SCALE: the reference's MSE of (B, C, H, W) features (Ruder eq. 1)."""
    if f.shape != target.shape:
        raise ValueError(f"features {tuple(f.shape)} and target {tuple(target.shape)} must match")
    return (f.float() - target.float()).square().mean() * FEATURE_SCALE ** 2


def style_loss(feats: Sequence[torch.Tensor], grams: Sequence[torch.Tensor]) -> torch.Tensor:
    """Σ over layers of mean((G(s·F_l) − s²·A_l)²), s = FEATURE_SCALE (Ruder eq. 2 as the reference sums it).

    Args:
        feats: per layer (1, C_l, H_l, W_l). grams: per layer (1, C_l, C_l) targets, :func:`gram_matrix`
            of the unscaled features (the scale enters here, once).
    """
    if len(feats) != len(grams):
        raise ValueError(f"need one Gram target per layer; got {len(feats)} layers and {len(grams)} targets")
    total = 0.0
    for f, a in zip(feats, grams):
        total = total + (gram_matrix(f) - a).square().mean()
    return total * FEATURE_SCALE ** 4


def tv_loss(x: torch.Tensor) -> torch.Tensor:
    """½ Σ |∇x|² on the reference's pixel scale, as its TVLoss module's gradient implies.

    Differences to the right and downwards, taken on the (H−1)×(W−1) top-left block as the
    reference does, summed over channels and pixels (so it grows with the frame's area, as there).

    Args:
        x: (B, C, H, W) image in [0, 1].
    """
    d = x[..., :-1, :-1]
    return 0.5 * ((d - x[..., :-1, 1:]).square().sum() + (d - x[..., 1:, :-1]).square().sum()) * PIXEL_SCALE ** 2


def temporal_loss(x: torch.Tensor, warped: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]) -> torch.Tensor:
    """Σ_j (1/D) Σ_k c_j,k (x_k − ω_j,k)² on the reference's pixel scale (Ruder et al. 2016, eq. 7 summed
    over J as in eq. 9; D = C·H·W; the reference's WeightedContentLoss on the image).

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
    return total * PIXEL_SCALE ** 2


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


def detail_energy(x: torch.Tensor, window: int = 5) -> torch.Tensor:
    """Local high-frequency energy: box average of the squared Laplacian, mean over channels.

    Args:
        x: (B, C, H, W) image.

    Returns:
        (B, 1, H, W).
    """
    e = laplacian(x).square().mean(1, keepdim=True)
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
