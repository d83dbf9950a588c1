"""Tensor helpers every stage shares: array <-> tensor, storage rounding, the Laplacian.

Pure functions, no I/O, no device choices (the caller passes the device).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["to_tensor", "to_array", "quantize", "quantize_tensor", "laplacian", "binomial_blur", "gaussian_blur", "wide_blur"]


def to_tensor(a: np.ndarray, device: str | torch.device = "cpu", *,
              memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """(H, W, C) array -> (1, C, H, W) float32 tensor on ``device``, contiguous in ``memory_format``
    (elementwise work on a channels-last view costs several times as much as on NCHW, and
    flattening it copies; a network that runs channels-last asks for that and gets it free)."""
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).permute(2, 0, 1)[None].to(device).contiguous(
        memory_format=memory_format)


def to_array(x: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) tensor -> (H, W, C) float32 array clipped to [0, 1], on the CPU."""
    return x[0].detach().clamp(0.0, 1.0).permute(1, 2, 0).float().cpu().contiguous().numpy()


def quantize(rgb: np.ndarray, bit_depth: int) -> np.ndarray:
    """Round to what a PNG of ``bit_depth`` stores, so the carried-forward result equals the file."""
    scale = 65535.0 if bit_depth == 16 else 255.0
    return (np.floor(np.clip(rgb, 0.0, 1.0) * scale + 0.5) / scale).astype(np.float32)


def quantize_tensor(x: torch.Tensor, bit_depth: int) -> torch.Tensor:
    """:func:`quantize` on a tensor (the same float32 steps, so the same values), as a new tensor."""
    scale = 65535.0 if bit_depth == 16 else 255.0
    return x.clamp(0.0, 1.0).mul_(scale).add_(0.5).floor_().div_(scale)


def laplacian(x: torch.Tensor) -> torch.Tensor:
    """Discrete 5-point Laplacian with reflecting (Neumann) borders. (B, C, H, W) -> same."""
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return p[..., 1:-1, 2:] + p[..., 1:-1, :-2] + p[..., 2:, 1:-1] + p[..., :-2, 1:-1] - 4.0 * x


def binomial_blur(x: torch.Tensor) -> torch.Tensor:
    """The 5-tap binomial filter [1, 4, 6, 4, 1] / 16 along each axis (a Gaussian of σ = 1 px to
    within 0.03), borders replicated, by shifted sums (several times faster than a grouped conv on
    the CPU). (B, C, H, W) -> same."""
    p = F.pad(x, (2, 2, 0, 0), mode="replicate")
    y = (p[..., :-4] + p[..., 4:]).add_((p[..., 1:-3] + p[..., 3:-1]).mul_(4)).add_(p[..., 2:-2].mul(6))
    p = F.pad(y, (0, 0, 2, 2), mode="replicate")
    y = (p[..., :-4, :] + p[..., 4:, :]).add_((p[..., 1:-3, :] + p[..., 3:-1, :]).mul_(4)).add_(p[..., 2:-2, :].mul(6))
    return y.div_(256.0)


def gaussian_blur(x: torch.Tensor, sigma: float, step: int = 1) -> torch.Tensor:
    """Separable Gaussian (σ in pixels of the full grid) of a (B, C, h, w) map sampled every ``step``
    pixels, each channel on its own, borders replicated. Returns (B, C, h, w)."""
    radius = max(1, int(round(3 * sigma / step)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t * step / sigma) ** 2)
    k = (k / k.sum()).repeat(x.shape[1], 1, 1, 1)
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    return F.conv2d(F.conv2d(x, k.view(x.shape[1], 1, 1, -1), groups=x.shape[1]), k.view(x.shape[1], 1, -1, 1),
                    groups=x.shape[1])


def wide_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """A Gaussian of large σ (px) at reduced resolution: averaged over step x step blocks (step = σ // 2),
    blurred there, bilinear back up. What is left of the blocks' grid is small against σ; cheap where a
    full-size blur of that width is not. (B, C, H, W) -> same."""
    step = max(1, int(sigma // 2))
    if step == 1:
        return gaussian_blur(x, sigma)
    small = gaussian_blur(F.avg_pool2d(x, step, ceil_mode=True), sigma, step)
    return F.interpolate(small, scale_factor=step, mode="bilinear", align_corners=False)[..., :x.shape[-2], :x.shape[-1]]
