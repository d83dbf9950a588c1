"""An offline Gram style loss for ``flowstyle train``: Gram matrices of the shipped style predictor's features.

The papers' style loss (Gatys; Johnson et al., as ReCoNet and Ruder et al. 2018 train) compares Gram
matrices of a pretrained image network's features. VGG-19 weights are not always at hand
(``--vgg-weights``), but one pretrained image network always is: the Magenta style predictor, a
MobileNet-v2 (:class:`~flowstyle.fast.networks.StylePredictor`) trained to describe a painting's
style. This term takes the Gram matrices of its features on the student's output and on the
shipped network's output of the same frame, and keeps them together: the texture statistics the
shipped network paints (stroke shapes, colour mixtures) stay while the temporal terms pull the
output towards stability.

Layers (``LAYERS``): the outputs of MobileNet-v2's first four stages, ``expanded_conv`` (16 channels,
1/2 size), ``expanded_conv_2`` (24, 1/4), ``expanded_conv_5`` (32, 1/8) and ``expanded_conv_9`` (64,
1/16), the counterparts of VGG's relu1_1..relu4_1 (fine strokes to larger motifs). Deeper stages, the
pooled 1280-channel head and the 100-number style vector are left out on purpose: bench/stylizers.py's
crop style distance, by which the trained networks are graded, is the distance of that vector, and a
loss on it would grade the network with what it was trained on.

The loss is relative, like :class:`~flowstyle.train.perceptual.Perceptual`'s: per layer the mean
squared Gram difference divided by the target Gram's mean square, averaged over the layers, so its
weight does not depend on the image size. For a painting style the target is also the shipped
network's output (not the painting), so the term keeps the shipped look rather than pulling towards
a new one.

Shapes: images (B, 3, H, W) RGB in [0, 1]; the predictor was trained at 256 px, as ``--size`` defaults to.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..fast.networks import StylePredictor
from ..fast.video_net import shipped_network
from ..quality.losses import gram_matrix, relative_gram_loss

__all__ = ["LAYERS", "PredictorGram", "predictor_features"]

LAYERS = ("expanded_conv", "expanded_conv_2", "expanded_conv_5", "expanded_conv_9")


def predictor_features(net: StylePredictor, image: torch.Tensor, layers: tuple[str, ...] = LAYERS
                       ) -> list[torch.Tensor]:
    """The outputs of the named MobileNet-v2 blocks, in ``layers``' order; the blocks after the last are not run.

    Args:
        net: the style predictor (float32, not emulating int8).
        image: (B, 3, H, W) RGB in [0, 1].
    Returns:
        one (B, C, H / s, W / s) tensor per layer (s: the block's stride, 2 to 16 for ``LAYERS``).
    """
    unknown = set(layers) - set(net.blocks)
    if unknown:
        raise ValueError(f"layers must be blocks of the predictor ({', '.join(net.blocks)}); got {sorted(unknown)}")
    found = {}
    x = F.relu6(net.conv(image))
    for name, block in net.blocks.items():
        x = block(x)
        if name in layers:
            found[name] = x
            if len(found) == len(layers):
                break
    return [found[name] for name in layers]


class PredictorGram(nn.Module):
    """The relative Gram style loss of outputs against targets on the style predictor's features (frozen).

    Args:
        predictor: a :class:`~flowstyle.fast.networks.StylePredictor`; the shipped one when omitted.
        layers: its blocks whose outputs are compared (default ``LAYERS``).
    """

    def __init__(self, predictor: StylePredictor | None = None, layers: tuple[str, ...] = LAYERS):
        super().__init__()
        self.net = (predictor or shipped_network("arbitrary_predict")).eval().requires_grad_(False)
        self.layers = layers

    def forward(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """A scalar: 0 when ``out`` equals ``target`` (both (B, 3, H, W)); gradients flow into ``out`` only."""
        if out.shape != target.shape:
            raise ValueError(f"out and target must have one shape; got {tuple(out.shape)} and {tuple(target.shape)}")
        with torch.no_grad():
            grams = [gram_matrix(f) for f in predictor_features(self.net, target, self.layers)]
        return relative_gram_loss(predictor_features(self.net, out, self.layers), grams)
