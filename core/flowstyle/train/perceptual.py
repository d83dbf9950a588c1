"""The papers' perceptual losses for ``flowstyle train``, when VGG-19 weights are given (``--vgg-weights``):
content on relu4_2 against the input frame, Gram-matrix style on relu1_1..relu5_1 (Johnson et al. as
ReCoNet and Ruder et al. 2018 train; DESIGN 4.4's layers).

The style target is the painting's Gram matrices for a painting style, and for a built-in style
(which has no painting) those of the shipped network's own output on the same frame. Both terms are
relative (divided by the target's energy), so their weights do not depend on the image size.

Shapes: images (B, 3, H, W) RGB in [0, 1], H and W at least 16.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ..base.tensors import to_tensor
from ..quality.losses import CONTENT_LAYER, STYLE_LAYERS, gram_matrix, relative_gram_loss, relative_mse
from ..quality.vgg import VGG19Features

__all__ = ["Perceptual"]


class Perceptual:
    """Content and style loss of an output on a frame.

    Args:
        vgg: the loss network (:func:`~flowstyle.quality.vgg.vgg19_features`), on the training device.
        painting: (H, W, 3) style image, or None for a built-in style (then the teacher's output is the target).
    """

    def __init__(self, vgg: VGG19Features, painting: Optional[np.ndarray] = None):
        self.vgg = vgg
        self.grams = None
        if painting is not None:
            with torch.no_grad():
                f = vgg(to_tensor(painting, next(iter(vgg.buffers())).device))
                self.grams = [gram_matrix(getattr(f, name)) for name in STYLE_LAYERS]

    def __call__(self, out: torch.Tensor, frame: torch.Tensor, teacher_out: torch.Tensor) -> dict[str, torch.Tensor]:
        """{"content": ..., "style": ...} for ``out`` (B, 3, H, W) made from ``frame``."""
        f = self.vgg(out)
        with torch.no_grad():
            content = getattr(self.vgg(frame, upto=CONTENT_LAYER), CONTENT_LAYER)
            if self.grams is not None:
                grams = [g.expand(out.shape[0], -1, -1) for g in self.grams]
            else:
                t = self.vgg(teacher_out)
                grams = [gram_matrix(getattr(t, name)) for name in STYLE_LAYERS]
        return {"content": relative_mse(getattr(f, CONTENT_LAYER), content),
                "style": relative_gram_loss([getattr(f, name) for name in STYLE_LAYERS], grams)}
