"""Backward warping of images by optical flow (DESIGN 4.3).

Pure tensor functions in the manner of kornia's ``remap``: no I/O, no device choices.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

__all__ = ["sample_grid", "warp"]


def sample_grid(flow: torch.Tensor) -> torch.Tensor:
    """Turn a pixel displacement field into a ``grid_sample`` grid.

    Args:
        flow: (B, 2, H, W) displacements in pixels, channel 0 = dx, channel 1 = dy.

    Returns:
        (B, H, W, 2) normalized sampling positions of ``x + flow(x)`` for ``align_corners=True``.
    """
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"flow must be (B, 2, H, W); got {tuple(flow.shape)}")
    _, _, h, w = flow.shape
    ys = torch.arange(h, device=flow.device, dtype=flow.dtype).view(1, h, 1)
    xs = torch.arange(w, device=flow.device, dtype=flow.dtype).view(1, 1, w)
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    return torch.stack((gx, gy), dim=-1)


def warp(image: torch.Tensor, flow_bw: torch.Tensor, *, mode: str = "bilinear",
         grid: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Resample the stylized frame i-j into frame i's geometry (DESIGN 4.3).

    Convention:
        - image: (B, C, H, W) float; flow_bw: (B, 2, H, W) in pixels, channel 0 = dx.
        - flow_bw is the backward flow i -> i-j: output(x) = image(x + flow_bw(x)).
        - pixel centres sit on integer coordinates, origin top left; samples outside the
          frame clamp to the border (``padding_mode="border"``).

    Args:
        image: (B, C, H, W) the frame to resample.
        flow_bw: (B, 2, H, W) backward flow.
        mode: ``"bilinear"`` (the papers') or ``"bicubic"`` (keeps strokes sharper when a
            result is carried over many frames) or ``"nearest"``.
        grid: ``sample_grid(flow_bw)`` where the caller has it already.

    Returns:
        (B, C, H, W), same dtype and device as ``image``.

    Example:
        >>> img = torch.rand(1, 3, 8, 8)
        >>> torch.allclose(warp(img, torch.zeros(1, 2, 8, 8)), img, atol=1e-6)
        True
    """
    if image.ndim != 4:
        raise ValueError(f"image must be (B, C, H, W); got {tuple(image.shape)}")
    if flow_bw.shape[0] != image.shape[0] or flow_bw.shape[1] != 2 or flow_bw.shape[2:] != image.shape[2:]:
        raise ValueError(f"flow must be (B, 2, H, W) like image {tuple(image.shape)}; got {tuple(flow_bw.shape)}")
    grid = sample_grid(flow_bw.to(image.dtype)) if grid is None else grid.to(image.dtype)
    return F.grid_sample(image, grid, mode=mode, padding_mode="border", align_corners=True)
