"""Measures of a stylized clip: warping error (Lai et al. 2018), sharpness, style distance.

Used by report.json, the tests and the benchmarks, so all three measure the same way.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ..base.tensors import to_tensor
from .masks import consistency_mask
from .warp import warp

__all__ = ["warping_error", "sharpness", "style_drift"]


def warping_error(prev_out: np.ndarray, out: np.ndarray, flow_fw: np.ndarray, flow_bw: np.ndarray,
                  mask: Optional[torch.Tensor] = None, warped: Optional[torch.Tensor] = None) -> float:
    """Masked mean squared difference between frame i and frame i-1 warped into it.

    Lai et al. 2018 (eq. 9): E = Σ_x M(x) ||O_i(x) - warp(O_{i-1})(x)||² / Σ_x M(x), with the
    occlusion mask M of DESIGN 4.2 and flow computed on the *input* frames.

    Args:
        prev_out, out: (H, W, 3) float in [0, 1], output frames i-1 and i.
        flow_fw: (H, W, 2) input flow i-1 -> i; flow_bw: (H, W, 2) input flow i -> i-1.
        mask: (1, 1, H, W) ``consistency_mask(flow_fw, flow_bw)`` where the caller has it already.
        warped: (1, 3, H, W) ``prev_out`` warped into frame i where the caller has it already (the
            engine's report passes its own, warped as the engine warps: bicubic by default).
    """
    device = mask.device if mask is not None else "cpu"  # where the caller's tensors are: no copies back
    bw = to_tensor(flow_bw, device)
    m = consistency_mask(to_tensor(flow_fw, device), bw) if mask is None else mask
    prev = warp(to_tensor(prev_out, device), bw) if warped is None else warped.to(device)
    diff = (to_tensor(out, device) - prev).square().sum(1, keepdim=True)
    return float((diff * m).sum() / m.sum().clamp(min=1.0))


def sharpness(img: np.ndarray) -> float:
    """Mean gradient magnitude of an (H, W, 3) image (forward differences, averaged over channels)."""
    gx = np.diff(img, axis=1)[:-1]
    gy = np.diff(img, axis=0)[:, :-1]
    return float(np.sqrt(gx ** 2 + gy ** 2).mean())


def style_drift(reference: np.ndarray, candidate: np.ndarray) -> float:
    """How far a clip's look wanders from the per-frame stylization (DESIGN 7).

    Args:
        reference: (T, D) style embeddings of the per-frame stylization.
        candidate: (T, D) style embeddings of the clip to judge.

    Returns:
        mean ||e - μ|| over the candidate / mean ||e - μ|| over the reference, μ the reference's
        mean embedding. 1 means the candidate stays as close to the style as per-frame does.
    """
    mu = reference.mean(0)
    own = np.linalg.norm(reference - mu, axis=1).mean()
    return float(np.linalg.norm(candidate - mu, axis=1).mean() / max(own, 1e-12))
