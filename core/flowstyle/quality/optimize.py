"""Quality mode's optimizer: L-BFGS or Adam with the papers' stopping rule, coarse-to-fine, and
the check that mixed precision leaves the objective unchanged (DESIGN 4.4)."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F

from ..base.errors import FlowstyleError
from .objective import FrameObjective

__all__ = ["OptimizeResult", "optimize", "coarse_to_fine", "converged", "amp_agrees", "noise_like"]

LBFGS_HISTORY = 20  # 2 x 20 image-sized vectors: bounded memory at 1080p (torch's default 100 is 5 GB there)
ADAM_LR = 0.02  # in [0, 1] pixel units (the reference's 10 on the 0-255 scale is 0.04)
STOP_WINDOW, STOP_DROP = 50, 1e-4  # stop when the loss falls by less than 0.01 % over 50 iterations
COARSE_GROWTH = 2.5  # coarse-to-fine: each coarser level gets this many times the iterations of the one above


def noise_like(content: torch.Tensor, seed: int) -> torch.Tensor:
    """A noise start image: the content's mean colour + N(0, 0.1²) noise, reproducible by ``seed``."""
    g = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(content.shape, generator=g).to(content)
    return content.mean((2, 3), keepdim=True) + 0.1 * noise


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

    L-BFGS (the papers' choice, no line search, history LBFGS_HISTORY), ``lbfgs-wolfe`` (the same
    with a strong-Wolfe line search: fewer, dearer, surer iterations) or Adam; at most
    ``iterations`` steps, stopping early by :func:`converged`. Returns the last iterate, or the
    best one seen when the last step overshot (no line search) or went non-finite.

    Args:
        init: (1, 3, H, W) RGB start image.
        callback: called as ``callback(iteration, loss)`` every 10 iterations (cancel, progress).
    """
    t0 = time.perf_counter()
    v = objective.to_variable(init).detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS([v], lr=1.0, max_iter=1, history_size=LBFGS_HISTORY)
    elif optimizer == "lbfgs-wolfe":
        opt = torch.optim.LBFGS([v], lr=1.0, max_iter=1, history_size=LBFGS_HISTORY, line_search_fn="strong_wolfe")
    elif optimizer == "adam":
        opt = torch.optim.Adam([v], lr=lr)
    else:
        raise FlowstyleError(f"unknown optimizer '{optimizer}': use lbfgs, lbfgs-wolfe or adam")

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
    min_side: int = 32, growth: float = COARSE_GROWTH, **kwargs,
) -> OptimizeResult:
    """Optimize at 1/2^levels of the size first, then upsample and go on at each finer size.

    The full size gets ``iterations``; each coarser level ``growth`` times the iterations of the
    level above it, at about a quarter of the cost per iteration, so with the default growth of 2.5
    every coarser level costs 5/8 of the one above and the whole schedule about twice the full
    size's share. Levels that would be smaller than ``min_side`` are skipped.

    Args:
        build: scale -> the frame's objective at that scale (1.0 is full size).
        init: (1, 3, H, W) start image at full size.
        iterations: the budget at full size.
    """
    h, w = init.shape[-2:]
    levels = max(0, min(levels, int(math.log2(max(1, min(h, w) // min_side))) if min(h, w) >= min_side else 0))
    x, losses, seconds = None, [], 0.0
    for level in range(levels, -1, -1):
        scale = 0.5 ** level
        size = (max(16, round(h * scale)), max(16, round(w * scale)))
        start = init if x is None and level == 0 else F.interpolate(
            init if x is None else x, size=size, mode="bilinear", align_corners=False, antialias=x is None)
        res = optimize(build(scale), start, iterations=max(1, round(iterations * growth ** level)), **kwargs)
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
