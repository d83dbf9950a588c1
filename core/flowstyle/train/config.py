"""What ``flowstyle train`` is asked to do: one frozen dataclass, each field with its flag and help.

Built like :class:`~flowstyle.settings.Settings` (``option`` fields), so the CLI makes the
``train`` subcommand's flags from these fields and each default is written once, here.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Optional

from ..base.device import DEVICES
from ..base.errors import FlowstyleError
from ..io.styles import parse_style
from ..settings import option

__all__ = ["TrainSettings", "VARIANTS"]

VARIANTS = ("stable", "recurrent")
DATA, LOSS = "training data", "loss weights (ReCoNet / Gupta et al. / Ruder et al. 2018)"


@dataclass(frozen=True)
class TrainSettings:
    """Everything that decides the trained network (its file's ``training`` header)."""

    style: str = option("builtin:7", "the style: builtin:N (the 26-style network) or a painting (the arbitrary "
                        "network, conditioned on its style vector)")
    variant: str = option("stable", "stable: the shipped inputs, trained for temporal consistency (ReCoNet); "
                          "recurrent: also reads the warped previous output and its mask (Ruder et al. 2018)",
                          choices=VARIANTS)
    size: int = option(256, "training crops are SIZE x SIZE pixels", metavar="PX")
    steps: int = option(2000, "optimizer steps")
    batch: int = option(2, "frame pairs per step")
    lr: float = option(1e-4, "Adam learning rate")
    seed: int = option(0, "random seed: the same seed and data give the same network")
    device: str = option("auto", "compute device", choices=DEVICES)
    images: tuple[str, ...] = option((), "folder (or file) of still images moved by known shifts, zooms and "
                                     "rotations into pairs with exact flow; repeat for more",
                                     group=DATA, metavar="DIR", repeat=True, parse=tuple, kind=str, shown="none")
    pairs: tuple[str, ...] = option((), "folder searched for real frame pairs (consecutive images of one folder; "
                                    "flow by DIS, consistency masks); their first frames also serve as stills",
                                    group=DATA, metavar="DIR", repeat=True, parse=tuple, kind=str, shown="none")
    hold_out: tuple[str, ...] = option((), "skip image paths containing this text (keep benchmark clips out); "
                                       "repeat for more", group=DATA, metavar="TEXT", repeat=True, parse=tuple,
                                       kind=str, shown="none")
    real_share: float = option(0.3, "share of real pairs in each batch where there are any (the rest known motion)",
                               group=DATA, metavar="F")
    patch_share: float = option(0.5, "share of known-motion pairs with a pasted patch moving on its own "
                                "(disocclusions, Ruder et al. 2018)", group=DATA, metavar="F")
    max_shift: float = option(6.0, "known motion: largest shift in pixels", group=DATA, metavar="PX")
    distill_weight: float = option(1.0, "mean squared distance to the shipped network's own output", group=LOSS)
    sharpness_weight: float = option(0.1, "anti-blur term: the share of the shipped network's local detail energy "
                                     "the output lacks (seed 000)", group=LOSS)
    feature_weight: float = option(0.5, "mean squared distance of the encoder features to the shipped network's",
                                   group=LOSS)
    predictor_style_weight: float = option(0.3, "offline Gram style loss (no VGG): relative distance of the Gram "
                                           "matrices of the Magenta style predictor's (MobileNet-v2) first four "
                                           "stages, output against the shipped network's output", group=LOSS)
    temporal_weight: float = option(40.0, "output-level temporal loss: masked ||O_t - warp(O_t-1)||²", group=LOSS)
    feature_temporal_weight: float = option(4.0, "feature-level temporal loss on the encoder features (1/4 size)",
                                            group=LOSS)
    luminance_weight: float = option(10.0, "luminance-aware term: the output's change follows the input's "
                                     "luminance change (ReCoNet)", group=LOSS)
    vgg_weights: Optional[str] = option(None, "a local torchvision VGG-19 state dict ('torchvision': its download): "
                                        "adds the papers' perceptual content and Gram style losses", group=LOSS,
                                        metavar="PATH", shown="none, distillation only")
    content_weight: float = option(0.05, "with --vgg-weights: relative relu4_2 content loss against the frame",
                                   group=LOSS)
    style_weight: float = option(0.5, "with --vgg-weights: relative Gram style loss (the painting's, or the "
                                 "shipped network's output's for a built-in style)", group=LOSS)
    ramp: int = option(200, "the temporal terms rise linearly to their weights over this many steps", group=LOSS)
    init: Optional[str] = option(None, "start from this network (a 'flowstyle train' file of the same variant and "
                                 "style) instead of the shipped one: train on, e.g. with other weights",
                                 metavar="FILE", shown="the shipped network")
    checkpoint_every: int = option(100, "write a resumable checkpoint (OUT.ckpt) every N steps", metavar="N")

    def resolved(self) -> "TrainSettings":
        """A copy with every value checked (FlowstyleError lines)."""
        parse_style(self.style)
        if self.variant not in VARIANTS:
            raise FlowstyleError(f"unknown variant '{self.variant}': use stable or recurrent")
        if self.size < 32 or self.size % 4:
            raise FlowstyleError(f"--size must be a multiple of 4 and at least 32, got {self.size}")
        if self.steps < 1 or self.batch < 1 or self.checkpoint_every < 1:
            raise FlowstyleError(f"--steps, --batch and --checkpoint-every must be 1 or more; got {self.steps}, "
                                 f"{self.batch} and {self.checkpoint_every}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and (not math.isfinite(value) or value < 0):
                raise FlowstyleError(f"--{f.name.replace('_', '-')} must be a finite number of 0 or more, got {value}")
        if not 0 <= self.real_share <= 1 or not 0 <= self.patch_share <= 1:
            raise FlowstyleError("--real-share and --patch-share must be in [0, 1]")
        if not self.images and not self.pairs:
            raise FlowstyleError("no training images: give --images DIR (stills) and/or --pairs DIR (frame pairs)")
        return self

    def header(self) -> dict:
        """The settings as plain JSON values (the network file's ``training`` header)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @staticmethod
    def from_header(values: dict) -> "TrainSettings":
        names = {f.name for f in dataclasses.fields(TrainSettings)}
        return TrainSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names})


