"""The loss of ``flowstyle train`` on one batch of pairs (ReCoNet, seed 002; Gupta et al., seed 003;
Ruder et al. 2018, seed 004).

Style and content are kept by distillation: the student's output and encoder features stay near
the shipped network's own output on the same frame (works offline, no VGG), and seed 000's anti-blur
term keeps the local detail energy of the shipped network's output (a stable network's easy way out
is to blur its strokes: trained without it, one went to 0.41x the sharpness). Stability comes from

- the output-level temporal loss: masked mean of ||O_t − warp(O_t−1)||² (Ruder et al.; ReCoNet eq. 4);
- the feature-level temporal loss on the encoder features (1/4 size; flow and mask brought to
  that size): ReCoNet's eq. 5, :func:`~flowstyle.quality.losses.feature_temporal_loss`;
- ReCoNet's luminance-aware term: the output's change between the frames follows the input's
  luminance change, ||(O_t − warp(O_t−1)) − (Y(I_t) − Y(warp(I_t−1)))||² under the mask.

With a :class:`~flowstyle.train.predictor_style.PredictorGram` the style is also held by Gram
matrices of the style predictor's features (frame t's output against the shipped network's), an
offline style loss (no VGG).

A recurrent network (Ruder et al. 2018) reads frame t with warp(O_t−1) and the mask; frame t−1 with
zeros there, as a first frame.

Shapes: images (B, 3, S, S); flow (B, 2, S, S); masks (B, 1, S, S); the style condition as
:func:`~flowstyle.fast.video_net.run_with_features` takes it.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..fast.video_net import RECURRENT_CHANNELS, run_with_features
from ..motion.warp import warp
from ..quality.losses import PIXEL_SCALE, detail_energy, feature_temporal_loss, luminance, sharpness_loss, temporal_loss
from .pairs import Pair
from .perceptual import Perceptual
from .predictor_style import PredictorGram

__all__ = ["ENCODER_STRIDE", "shrink_flow", "shrink_mask", "luminance_temporal_loss", "video_losses"]

ENCODER_STRIDE = 4  # the encoder features are at 1/4 of the image size


def shrink_flow(flow: torch.Tensor, factor: int = ENCODER_STRIDE) -> torch.Tensor:
    """Flow at 1/factor size, in that size's pixels: (B, 2, H, W) -> (B, 2, H / f, W / f)."""
    return F.avg_pool2d(flow, factor) / factor


def shrink_mask(mask: torch.Tensor, factor: int = ENCODER_STRIDE) -> torch.Tensor:
    """A mask at 1/factor size, reliable only where every pixel it covers is: (B, 1, H, W) -> (B, 1, H / f, W / f)."""
    return -F.max_pool2d(-mask, factor)


def luminance_temporal_loss(out: torch.Tensor, warped_out: torch.Tensor, frame: torch.Tensor,
                            warped_frame: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """ReCoNet's luminance-aware output term: mean of c ||(O_t − ω(O)) − ΔY||², ΔY = Y(I_t) − Y(ω(I)) on every channel."""
    change = luminance(frame) - luminance(warped_frame)
    return (mask * ((out - warped_out) - change).square()).mean()


def _forward(net: nn.Module, frames: torch.Tensor, condition: torch.Tensor, previous) -> tuple:
    if previous is not None:
        frames = torch.cat([frames, previous], 1)
    return run_with_features(net, frames, condition)


def video_losses(student: nn.Module, teacher: nn.Module, pair: Pair, condition: torch.Tensor, *,
                 recurrent: bool, perceptual: Optional[Perceptual] = None,
                 predictor_gram: Optional[PredictorGram] = None) -> dict[str, torch.Tensor]:
    """The loss terms of one batch, unweighted: distill, sharpness, feature, temporal, feature_temporal,
    luminance (and content, style on frame t with ``perceptual``; predictor_style on frame t with
    ``predictor_gram``).

    ``teacher`` is the shipped network (no gradient); ``student`` the network being trained.
    """
    with torch.no_grad():
        t1, f1_t = run_with_features(teacher, pair.first, condition)
        t2, f2_t = run_with_features(teacher, pair.second, condition)
    zeros = pair.first.new_zeros(pair.first.shape[0], RECURRENT_CHANNELS, *pair.first.shape[2:]) if recurrent else None
    o1, f1 = _forward(student, pair.first, condition, zeros)
    warped_o1 = warp(o1, pair.flow_bw)
    previous = torch.cat([warped_o1.detach(), pair.mask], 1) if recurrent else None
    o2, f2 = _forward(student, pair.second, condition, previous)
    small_flow, small_mask = shrink_flow(pair.flow_bw), shrink_mask(pair.mask)
    extra = perceptual(o2, pair.second, t2) if perceptual is not None else {}
    if predictor_gram is not None:
        extra["predictor_style"] = predictor_gram(o2, t2)
    return extra | {
        "distill": 0.5 * (F.mse_loss(o1, t1) + F.mse_loss(o2, t2)),
        "sharpness": sharpness_loss(o2, detail_energy(t2), torch.ones_like(pair.mask)),
        "feature": 0.5 * (F.mse_loss(f1, f1_t) + F.mse_loss(f2, f2_t)) / f2_t.square().mean().clamp(min=1e-12),
        "temporal": temporal_loss(o2, [warped_o1], [pair.mask]) / PIXEL_SCALE ** 2,
        "feature_temporal": feature_temporal_loss(f2, [warp(f1, small_flow)], [small_mask]),
        "luminance": luminance_temporal_loss(o2, warped_o1, pair.second, warp(pair.first, pair.flow_bw), pair.mask),
    }
