"""Fast mode's output-space temporal optimization (DESIGN 4.6).

Per frame, with p the per-frame stylization and ω_j the earlier outputs warped into this
frame under the long-term masks c_j, the energy is

    E(x) = g ||∇x − ∇p||² + λ ||x − p||² + γ Σ_j c_j ||x − ω_j||²

Two solvers, tensors in and out, no I/O and no device choices:

- ``band_solve`` (default): the closed-form minimizer of the energy split into two bands.
  Without the gradient term the minimizer is the per-pixel blend
  b = (λ p + γ Σ c_j ω_j) / (λ + γ Σ c_j). Coarse structure (colour, shading: below the
  band cut-off) is taken from b, which removes flicker; fine structure (strokes) takes
  ``detail`` of p's own and the rest from b. The gradient term's job, keeping strokes sharp,
  is done by the band split; repeated warping cannot soften what is taken fresh from p, so
  the look does not drift. Cost: one blend, one box low-pass, no iterations.
- ``cg_solve``: the full quadratic solved by preconditioned conjugate gradients, warm-started
  from the warped previous result. Exact, several times slower, and it softens over long
  runs (see bench/fast_vs_perframe.py for the figures).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from ..base.tensors import laplacian

__all__ = ["lowpass", "temporal_blend", "band_solve", "cg_solve"]


def lowpass(x: torch.Tensor, cell: int) -> torch.Tensor:
    """Box-average over ``cell`` x ``cell`` blocks, then bilinear back up. (B, C, H, W) -> same."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % cell, (-w) % cell
    xp = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
    small = F.avg_pool2d(xp, cell)
    return F.interpolate(small, scale_factor=cell, mode="bilinear", align_corners=False)[..., :h, :w]


def temporal_blend(
    target: torch.Tensor, warped: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], *,
    temporal_weight: float, fidelity_weight: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pixel minimizer of λ||x − p||² + γ Σ c_j ||x − ω_j||².

    Args:
        target: (B, C, H, W) p. warped: each (B, C, H, W). masks: each (B, 1, H, W) in [0, 1].

    Returns:
        (blend (B, C, H, W), Σ c_j (B, 1, H, W), Σ c_j ω_j (B, C, H, W)).
    """
    if len(warped) != len(masks):
        raise ValueError(f"need one mask per warped frame; got {len(warped)} frames and {len(masks)} masks")
    c_sum = torch.zeros_like(target[:, :1])
    pull = torch.zeros_like(target)
    for w, c in zip(warped, masks):
        c_sum = c_sum + c
        pull = pull + c * w
    blend = (fidelity_weight * target + temporal_weight * pull) / (fidelity_weight + temporal_weight * c_sum)
    return blend, c_sum, pull


def band_solve(
    target: torch.Tensor, warped: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], *,
    temporal_weight: float, fidelity_weight: float, detail: float = 0.7, cell: int = 8,
) -> torch.Tensor:
    """Two-band solution of the fast-mode energy (module docstring).

    x = p + (1 − detail) (b − p) + detail · lowpass(b − p): the temporal correction b − p is
    applied in full below the band cut-off and at ``1 − detail`` above it.

    Args:
        target: (B, C, H, W) per-frame stylization p.
        warped, masks: as in :func:`temporal_blend`.
        detail: share of the fine band taken from p (0: plain blend, 1: all strokes from p).
        cell: band cut-off, in pixels (box size of the low-pass).

    Returns:
        (B, C, H, W), same dtype and device as ``target``.
    """
    if len(warped) != len(masks):
        raise ValueError(f"need one mask per warped frame; got {len(warped)} frames and {len(masks)} masks")
    if not warped:
        return target
    # b − p = γ Σ c_j (ω_j − p) / (λ + γ Σ c_j), computed without the full-size blend
    c_sum, pull = masks[0], masks[0] * (warped[0] - target)
    for w, c in zip(warped[1:], masks[1:]):
        c_sum = c_sum + c
        pull = pull + c * (w - target)
    correction = pull * (temporal_weight / (fidelity_weight + temporal_weight * c_sum))
    return target + (1.0 - detail) * correction + detail * lowpass(correction, cell)


def cg_solve(
    target: torch.Tensor, warped: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], *,
    temporal_weight: float, fidelity_weight: float, gradient_weight: float = 1.0,
    iterations: int = 8, init: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Minimize the full energy E(x) by preconditioned conjugate gradients.

    Normal equations: (λ + γ Σc_j − g Δ) x = λ p + γ Σ c_j ω_j − g Δ p, Jacobi-preconditioned.

    Args:
        target, warped, masks: as in :func:`temporal_blend`.
        gradient_weight: g. iterations: CG steps.
        init: start point; default the warped previous result where traced, p elsewhere.

    Returns:
        (B, C, H, W), same dtype and device as ``target``.
    """
    _, c_sum, pull = temporal_blend(target, warped, masks, temporal_weight=temporal_weight, fidelity_weight=fidelity_weight)
    g = gradient_weight
    diag = fidelity_weight + temporal_weight * c_sum

    def apply_a(v: torch.Tensor) -> torch.Tensor:
        return diag * v - g * laplacian(v)

    b = fidelity_weight * target + temporal_weight * pull - g * laplacian(target)
    x = torch.where(c_sum > 0, pull / c_sum.clamp(min=1e-6), target) if init is None else init
    r = b - apply_a(x)
    precond = 1.0 / (diag + 4.0 * g)
    z = precond * r
    d, rz = z, (r * z).sum()
    for _ in range(iterations):
        ad = apply_a(d)
        alpha = rz / (d * ad).sum().clamp(min=1e-20)
        x = x + alpha * d
        r = r - alpha * ad
        z = precond * r
        rz_new = (r * z).sum()
        d = z + (rz_new / rz.clamp(min=1e-20)) * d
        rz = rz_new
    return x
