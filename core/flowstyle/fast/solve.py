"""Fast mode's output-space temporal optimization (DESIGN 4.6).

Per frame, with p the per-frame stylization and ω_k the earlier outputs (and painted frames)
carried into this frame with per-pixel weights w_k (γ times their long-term masks), the
energy over the image x is

    E(x) = g Σ_{edges pq} e_pq ((x_p − x_q) − (r_p − r_q))² + λ ||x − p||² + Σ_k w_k ||x − ω_k||²

with the gradient term's reference r = p + κ t (ω̄ − p), ω̄ = Σ w_k ω_k / Σ w_k the pulls' weighted
mean, t the per-pixel trust (how far a pixel is traced, in [0, 1]) and κ the carry (``carry``). The
temporal and fidelity terms set the colour (the blend of p and the past); the gradient term sets
the fine pattern, the strokes. With κ = 1 (the default) a fully traced pixel takes its strokes
from the warped past: they stay where they are on the scene instead of being redrawn each frame
(the network redraws them a little differently every frame, and blending two unrelated stroke
patterns both flickers and flattens them); untraced pixels take p's. With κ = 0 the strokes are
p's everywhere (DESIGN 4.6's ``g ||∇x − ∇p||²``). ``e_pq = 1 − |t_p − t_q|``: the gradient term is
cut exactly where traced meets untraced, so the correction of traced pixels never leaks into
disoccluded ones (which follow p) and is not diluted near a mask edge.

Solvers, tensors in and out, no I/O and no device choices:

- :func:`pcg_solve` (default): the minimizer of E by Jacobi-preconditioned conjugate gradients on
  the correction d = x − p, started from the per-pixel minimizer without the gradient term
  (right at low frequencies, so CG only has the fine band left to fix). Shift-invariant.
- :func:`restore_detail`: seed 000's anti-blur for the solve's result, a heuristic after it (not
  part of E): where mixing in and resampling the warped past lowered the fine detail below the
  per-frame stylization's, the finest band is raised back towards p's local detail energy. It
  trades a little stability (amplified resampling error, and with κ < 1 partly the new frame's
  strokes) for strokes as crisp as p's.
- :func:`band_solve`: the former default, a heuristic filter (not a minimizer): the per-pixel
  blend below a box low-pass cut-off, ``detail`` of p's own fine band above it. Kept for
  comparison in the benchmark.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from ..base.tensors import binomial_blur, laplacian

__all__ = ["lowpass", "pull_terms", "energy", "pcg_solve", "restore_detail", "band_solve", "SolveStats"]

MAX_DETAIL_GAIN = 2.0  # restore_detail: at most this factor on that band
STRIP_ROWS = 128  # restore_detail works on the CPU in strips of this many rows...
STRIP_HALO = 4  # ...each read with this many more rows on both sides: its Laplacian (1) and two binomial blurs (2) reach 3


def lowpass(x: torch.Tensor, cell: int) -> torch.Tensor:
    """Box-average over ``cell`` x ``cell`` blocks, then bilinear back up. (B, C, H, W) -> same."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % cell, (-w) % cell
    xp = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
    small = F.avg_pool2d(xp, cell)
    return F.interpolate(small, scale_factor=cell, mode="bilinear", align_corners=False)[..., :h, :w]


def pull_terms(target: torch.Tensor, images: Sequence[torch.Tensor], weights: Sequence[torch.Tensor]
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(W, b): the summed pull weight Σ w_k (B, 1, H, W) and the pull Σ w_k (ω_k − p) (B, C, H, W)."""
    if len(images) != len(weights):
        raise ValueError(f"need one weight map per pulled image; got {len(images)} images and {len(weights)} weights")
    total, pull = None, None
    for w, c in zip(images, weights):  # the first term starts the sums: no zero images to add to
        term = torch.sub(w, target).mul_(c)
        total, pull = (c.clone(), term) if total is None else (total.add_(c), pull.add_(term))
    if total is None:
        return torch.zeros_like(target[:, :1]), torch.zeros_like(target)
    return total, pull


def _edge_weights(trust: Optional[torch.Tensor], like: torch.Tensor, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Horizontal (B, 1, H, W−1) and vertical (B, 1, H−1, W) edge weights ``scale`` · (1 − |t_p − t_q|)."""
    if trust is None:
        ones = like.new_full((like.shape[0], 1, *like.shape[-2:]), scale)
        return ones[..., :, 1:], ones[..., 1:, :]
    ex = torch.sub(trust[..., :, 1:], trust[..., :, :-1]).abs_().neg_().add_(1.0)
    ey = torch.sub(trust[..., 1:, :], trust[..., :-1, :]).abs_().neg_().add_(1.0)
    return (ex, ey) if scale == 1.0 else (ex.mul_(scale), ey.mul_(scale))


def _graph_laplacian(d: torch.Tensor, ex: torch.Tensor, ey: torch.Tensor,
                     out: Optional[torch.Tensor] = None, scratch: Optional[tuple] = None) -> torch.Tensor:
    """(L d)_p = Σ_q e_pq (d_p − d_q) over the 4-neighbours q, added to ``out`` in place when given
    (one pass fewer per term than building it apart). ``scratch``: buffers of the edge differences'
    shapes, (B, C, H, W−1) and (B, C, H−1, W), reused across calls (measured on the CPU at 1024 px: a
    fresh frame-sized result cost 2.5 ms to write, a reused buffer 0.7 ms). (B, C, H, W) -> same."""
    out = torch.zeros_like(d) if out is None else out
    bx, by = scratch if scratch is not None else (None, None)
    fx = torch.sub(d[..., :, 1:], d[..., :, :-1], out=bx).mul_(ex)
    out[..., :, 1:] += fx
    out[..., :, :-1] -= fx
    fy = torch.sub(d[..., 1:, :], d[..., :-1, :], out=by).mul_(ey)
    out[..., 1:, :] += fy
    out[..., :-1, :] -= fy
    return out


def _carried_offset(pull: torch.Tensor, total: torch.Tensor, trust: Optional[torch.Tensor], carry: float,
                    reference: Optional[torch.Tensor] = None, target: Optional[torch.Tensor] = None) -> torch.Tensor:
    """r − p = carry · t · (ω̄ − p), ω̄ = Σ w_k ω_k / Σ w_k the pulls' weighted mean (0 where nothing pulls),
    or ``reference`` in its place where given (with ``target`` p). ``pull`` (B, C, H, W) Σ w_k (ω_k − p) and
    ``total`` (B, 1, H, W) Σ w_k, as :func:`pull_terms` gives them."""
    u = pull / total.clamp(min=1e-8) if reference is None else reference - target
    return u.mul_(trust).mul_(carry) if trust is not None else u.mul_(carry)


def energy(x: torch.Tensor, target: torch.Tensor, images: Sequence[torch.Tensor], weights: Sequence[torch.Tensor], *,
           fidelity_weight: float, gradient_weight: float, trust: Optional[torch.Tensor] = None,
           carry: float = 0.0, reference: Optional[torch.Tensor] = None) -> float:
    """E(x) of the module docstring (summed over pixels and channels); ``reference`` as :func:`pcg_solve`'s."""
    ex, ey = _edge_weights(trust, target)
    fidelity = x - target
    d = fidelity  # x − r, whose gradients the gradient term penalizes
    if carry > 0 and images:
        total, pull = pull_terms(target, images, weights)
        d = fidelity - _carried_offset(pull, total, trust, carry, reference, target)
    grad = (ex * (d[..., :, 1:] - d[..., :, :-1]).square()).sum() + (ey * (d[..., 1:, :] - d[..., :-1, :]).square()).sum()
    temporal = sum((c * (x - w).square()).sum() for w, c in zip(images, weights))
    return float(gradient_weight * grad + fidelity_weight * fidelity.square().sum() + temporal)


@dataclass
class SolveStats:
    """What the last :func:`pcg_solve` did: iterations run and the final relative residual."""

    iterations: int = 0
    residual: float = 0.0


def pcg_solve(
    target: torch.Tensor, images: Sequence[torch.Tensor], weights: Sequence[torch.Tensor], *,
    fidelity_weight: float, gradient_weight: float = 1.0, trust: Optional[torch.Tensor] = None,
    carry: float = 0.0, iterations: int = 12, tolerance: float = 1e-3, stats: Optional[SolveStats] = None,
    reference: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Minimize E(x) (module docstring) by preconditioned conjugate gradients.

    Normal equations on d = x − p: ((λ + W) + g L_e) d = Σ w_k (ω_k − p) + g L_e (r − p), L_e the
    graph Laplacian with edge weights e; Jacobi preconditioner. Pixels that nothing pulls and that no
    edge ties to a pulled pixel keep d = 0 exactly (x = p).

    Args:
        target: (B, C, H, W) per-frame stylization p.
        images: each (B, C, H, W) ω_k. weights: each (B, 1, H, W) w_k >= 0.
        fidelity_weight: λ > 0. gradient_weight: g >= 0.
        trust: (B, 1, H, W) in [0, 1], where the pulls hold (None: the plain, uncut gradient term).
        carry: κ in [0, 1], how much of the traced past's fine pattern the gradient term asks for.
        iterations: at most this many CG steps. tolerance: stop when the residual falls below
            this fraction of the right-hand side.
        stats: receives the iterations run and the final relative residual.
        reference: (B, C, H, W) the image whose fine pattern traced pixels take, in place of the pulls'
            weighted mean ω̄ (r = p + κ t (reference − p); fast mode's stroke sources).

    Returns:
        (B, C, H, W) x, same dtype and device as ``target``.
    """
    if not images:
        return target
    total, b = pull_terms(target, images, weights)
    g = gradient_weight
    u = _carried_offset(b, total, trust, carry, reference, target) if g > 0 and carry > 0 and iterations > 0 else None
    diag_data = total.add_(fidelity_weight)  # λ + Σ w_k (pull_terms' sum is ours)
    d = b / diag_data  # the minimizer without the gradient term: right at low frequencies
    if g > 0 and iterations > 0:
        ex, ey = _edge_weights(trust, target, g)
        n, c, h, w = target.shape
        scratch = (target.new_empty(n, c, h, w - 1), target.new_empty(n, c, h - 1, w))
        if u is not None:
            b = _graph_laplacian(u, ex, ey, out=b, scratch=scratch)  # right-hand side + g L_e (r − p)
        inv_diag = diag_data.clone()  # λ + Σ w_k + the degree Σ_q e_pq, inverted in place
        inv_diag[..., :, 1:] += ex
        inv_diag[..., :, :-1] += ex
        inv_diag[..., 1:, :] += ey
        inv_diag[..., :-1, :] += ey
        inv_diag.reciprocal_()

        def apply_a(v: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
            return _graph_laplacian(v, ex, ey, out=torch.mul(diag_data, v, out=out), scratch=scratch)

        def dot(u: torch.Tensor, v: torch.Tensor) -> float:  # one pass, no temporary
            return float(torch.dot(u.reshape(-1), v.reshape(-1)))

        # CG with its vectors allocated once: r, z, s and A s are overwritten in place
        b_norm = float(torch.linalg.vector_norm(b)) or 1.0
        r = b.sub_(apply_a(d))  # b is ours (pull_terms made it) and not needed again
        z = inv_diag * r
        s, a_s = z.clone(), torch.empty_like(z)
        rz = dot(r, z)
        done = 0
        for done in range(1, iterations + 1):
            apply_a(s, out=a_s)
            alpha = rz / max(dot(s, a_s), 1e-30)
            d.add_(s, alpha=alpha)
            r.sub_(a_s, alpha=alpha)
            if float(torch.linalg.vector_norm(r)) <= tolerance * b_norm:
                break
            torch.mul(inv_diag, r, out=z)
            rz_new = dot(r, z)
            s.mul_(rz_new / max(rz, 1e-30)).add_(z)
            rz = rz_new
        if stats is not None:
            stats.iterations, stats.residual = done, float(torch.linalg.vector_norm(r)) / b_norm
    return target + d


def _detail_energy(x: torch.Tensor) -> torch.Tensor:
    """Local fine-detail energy: the squared Laplacian, mean over channels, binomial-weighted over
    about 5 x 5 pixels. (B, C, H, W) -> (B, 1, H, W)."""
    return binomial_blur(laplacian(x).square_().mean(1, keepdim=True))


def restore_detail(x: torch.Tensor, target: torch.Tensor, strength: float) -> torch.Tensor:
    """Raise the finest band of ``x`` where its local detail energy fell below ``target``'s.

    gain = 1 + strength · (clamp(sqrt(E(p) / E(x)), 1, MAX_DETAIL_GAIN) − 1) per pixel, E the local
    Laplacian energy (:func:`_detail_energy`); the result is x + (gain − 1) · (x − blur(x)), blur
    the σ = 1 px binomial filter. Where x already has p's detail (untraced pixels: x = p) nothing
    changes; detail is only raised, never lowered. A heuristic (module docstring).

    On the CPU it runs in strips of ``STRIP_ROWS`` rows, each with the ``STRIP_HALO`` rows around it
    that its filters reach (the same result to the bit): a strip's intermediates stay in the CPU's
    cache, where the whole frame's go to memory (12 instead of 15-18 ms at 1024 x 436, one thread).

    Args:
        x: (B, C, H, W) the solve's result. target: (B, C, H, W) the per-frame stylization p.
        strength: 0 (off) .. 1 (restore p's energy fully, within MAX_DETAIL_GAIN).
    """
    if strength <= 0:
        return x
    h = x.shape[-2]
    if x.device.type != "cpu" or h <= STRIP_ROWS + 2 * STRIP_HALO:
        return _restore_detail(x, target, strength)
    out = torch.empty_like(x)
    for r0 in range(0, h, STRIP_ROWS):
        r1 = min(h, r0 + STRIP_ROWS)
        a, b = max(0, r0 - STRIP_HALO), min(h, r1 + STRIP_HALO)
        out[..., r0:r1, :] = _restore_detail(x[..., a:b, :], target[..., a:b, :], strength)[..., r0 - a:r1 - a, :]
    return out


def _restore_detail(x: torch.Tensor, target: torch.Tensor, strength: float) -> torch.Tensor:
    extra = _detail_energy(target).div_(_detail_energy(x).clamp_(min=1e-8)).sqrt_()
    extra = extra.clamp_(1.0, MAX_DETAIL_GAIN).sub_(1.0).mul_(strength)  # gain − 1
    return x + extra * (x - binomial_blur(x))


def band_solve(
    target: torch.Tensor, images: Sequence[torch.Tensor], weights: Sequence[torch.Tensor], *,
    fidelity_weight: float, detail: float = 0.7, cell: int = 8,
) -> torch.Tensor:
    """The former default, a heuristic two-band filter (not a minimizer of E).

    x = p + (1 − detail) c + detail · lowpass(c) with c = Σ w_k (ω_k − p) / (λ + Σ w_k) the
    per-pixel correction: applied in full below the box low-pass cut-off (``cell`` pixels, on a
    fixed grid) and at ``1 − detail`` above it.

    Returns:
        (B, C, H, W), same dtype and device as ``target``.
    """
    if not images:
        return target
    total, pull = pull_terms(target, images, weights)
    correction = pull / (fidelity_weight + total)
    return target + (1.0 - detail) * correction + detail * lowpass(correction, cell)

