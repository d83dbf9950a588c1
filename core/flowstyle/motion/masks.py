"""Flow reliability masks (Ruder, Dosovitskiy & Brox 2016, section 4.2; DESIGN 4.2).

Pure tensor functions: no I/O, no device choices.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import torch

from ..base.tensors import gaussian_blur, wide_blur
from .warp import Sampler

__all__ = ["consistency_mask", "long_term_masks", "soften", "near_unreliable"]


def _central_difference(flow: torch.Tensor, dim: int) -> torch.Tensor:
    """2 × the central difference along ``dim`` with a replicated border (one-sided at the edges), with
    no padded copy. (B, C, H, W) -> same."""
    n = flow.shape[dim]
    out = torch.empty_like(flow)
    if n < 2:
        return out.zero_()
    torch.sub(flow.narrow(dim, 2, n - 2), flow.narrow(dim, 0, n - 2), out=out.narrow(dim, 1, n - 2))
    torch.sub(flow.narrow(dim, 1, 1), flow.narrow(dim, 0, 1), out=out.narrow(dim, 0, 1))
    torch.sub(flow.narrow(dim, n - 1, 1), flow.narrow(dim, n - 2, 1), out=out.narrow(dim, n - 1, 1))
    return out


def _gradient_sq(flow: torch.Tensor) -> torch.Tensor:
    """|∇u|² + |∇v|² with central differences (replicated border). (B, 2, H, W) -> (B, 1, H, W)."""
    g = _central_difference(flow, -1).square_().add_(_central_difference(flow, -2).square_())
    return g.sum(1, keepdim=True).mul_(0.25)


def consistency_mask(flow_fw: torch.Tensor, flow_bw: torch.Tensor, *, soft: bool = False,
                     sampler: Optional[Sampler] = None) -> torch.Tensor:
    """Where frame i's pixels can be traced back to frame i-j (DESIGN 4.2).

    Convention:
        - flow_fw: (B, 2, H, W) forward flow i-j -> i, defined on frame i-j, in pixels.
        - flow_bw: (B, 2, H, W) backward flow i -> i-j, defined on frame i (ŵ).
        - the mask lives on frame i: c(x) = 0 where x is disoccluded, on a motion boundary,
          or where x + ŵ(x) leaves the frame; 1 elsewhere.

    Args:
        flow_fw: (B, 2, H, W) forward flow.
        flow_bw: (B, 2, H, W) backward flow.
        soft: spread unreliability to the neighbours (the reference code's soft mask:
            unreliable pixels set to a large negative value, Gaussian blur σ = 0.8, clipped).
        sampler: ``Sampler(flow_bw)`` where the caller has it already (it warps with the same).

    Returns:
        (B, 1, H, W) float mask, values in {0, 1} (hard) or [0, 1] (soft).
    """
    if flow_fw.shape != flow_bw.shape or flow_fw.ndim != 4 or flow_fw.shape[1] != 2:
        raise ValueError(
            f"flows must both be (B, 2, H, W); got {tuple(flow_fw.shape)} and {tuple(flow_bw.shape)}"
        )
    sampler = Sampler(flow_bw) if sampler is None else sampler
    w_tilde = sampler(flow_fw, "bilinear")
    bw_sq = flow_bw.square().sum(1, keepdim=True)
    round_trip = torch.add(w_tilde, flow_bw).square_().sum(1, keepdim=True)
    bound = w_tilde.square_().sum(1, keepdim=True).add_(bw_sq).mul_(0.01).add_(0.5)  # w_tilde is ours, used up
    unreliable = round_trip > bound  # disoccluded
    unreliable |= _gradient_sq(flow_bw) > bw_sq.mul_(0.01).add_(0.002)  # motion boundary
    unreliable |= sampler.outside()  # points outside the frame
    if not soft:
        return (~unreliable).to(flow_bw.dtype)
    return soften(unreliable)


def soften(unreliable: torch.Tensor, sigma: float = 0.8) -> torch.Tensor:
    """Soft mask from a boolean unreliability map: -large where unreliable, blur, clip to [0, 1].

    Args:
        unreliable: (B, 1, H, W) bool.

    Returns:
        (B, 1, H, W) float in [0, 1].
    """
    values = 1.0 - 1001.0 * unreliable.float()  # 1 where reliable, -1000 where not
    return gaussian_blur(values, sigma).clamp(0.0, 1.0)


def long_term_masks(masks: Mapping[int, torch.Tensor], offsets: Sequence[int]) -> dict[int, torch.Tensor]:
    """Tie each pixel to its nearest earlier frame where it was visible (DESIGN 4.2).

    c_long(i-j, i) = max(c(i-j, i) - Σ_{k in J, k < j} c(i-k, i), 0)

    Args:
        masks: offset j -> (B, 1, H, W) consistency mask c(i-j, i). Offsets missing here (the
            start of the shot) are skipped.
        offsets: the long-term set J, e.g. (1, 2, 4).

    Returns:
        offset j -> (B, 1, H, W) long-term mask, for the offsets present in ``masks``.
    """
    out: dict[int, torch.Tensor] = {}
    claimed = None
    for j in sorted(set(offsets)):
        if j not in masks:
            continue
        c = masks[j]
        out[j] = c if claimed is None else (c - claimed).clamp(min=0.0)
        claimed = c if claimed is None else claimed + c
    return out


def near_unreliable(mask: torch.Tensor, radius: float, *, gain: float = 4.0) -> torch.Tensor:
    """Lower the trust of pixels near unreliable ones, fading over ``radius`` px (a heuristic).

    A feed-forward stylizer paints each pixel from a neighbourhood of the input, so where the
    content next to a pixel appears or vanishes (a moving object's edges) its stylization changes
    for a real reason, and pulling it towards the past leaves a ghost of the old look beside the
    object. The unreliability 1 − c is blurred (Gaussian, σ = radius / 2) and ``gain`` times it is
    taken off: a wide disoccluded band empties its whole neighbourhood, a stray unreliable pixel
    barely counts. The trade: less temporal pull beside moving objects (they may flicker a little
    there), no ghost trails.

    Args:
        mask: (B, 1, H, W) consistency mask in [0, 1].
        radius: in pixels; 0 returns ``mask``.

    Returns:
        (B, 1, H, W) in [0, 1], never above ``mask``.
    """
    if radius <= 0:
        return mask
    near = wide_blur(1.0 - mask, radius / 2.0)  # at reduced resolution: the result is smooth anyway
    return mask * (1.0 - gain * near).clamp(0.0, 1.0)
