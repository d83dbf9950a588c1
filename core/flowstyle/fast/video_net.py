"""Video networks trained by ``flowstyle train`` (seeds 002-004): their file, and the stylizer that runs one.

A video network is one of the shipped Magenta transformers fine-tuned for one style:

- ``stable`` (ReCoNet, Gupta et al.): the same input as the shipped network, trained to change its
  output only as the input moves;
- ``recurrent`` (Gupta et al., Ruder et al. 2018): the input also holds the previous output warped
  into this frame (3 channels) and its consistency mask (1 channel). The first conv's weights for
  those channels start at zero, so before training it is exactly the shipped network.

The file is ``torch.save({"header": HEADER, "state_dict": ...})``, read back with
``torch.load(weights_only=True)``. The header is plain JSON values: ``format`` (:data:`FORMAT`),
``version`` (:data:`VERSION`), ``variant``, ``base`` (the shipped network's name), ``style`` (the
style spec it was trained for), ``condition`` (the 26 style weights, or the painting's 100-number
style vector), ``training`` (the training settings) and ``steps``.

Convention: images (B, 3, H, W) float RGB in [0, 1]; the recurrent input (B, 3 + 4, H, W).
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

from ..base.errors import FlowstyleError
from ..io.images import atomic_write_bytes
from ..io.styles import StyleRef
from .magenta import NETWORKS, MagentaStylizer, _tensors
from .networks import ArbitraryTransformer, MultiStyleTransformer
from .onnx_weights import load_weights

__all__ = ["FORMAT", "VERSION", "VARIANTS", "RECURRENT_CHANNELS", "shipped_network", "widen_input", "first_conv",
           "run_with_features", "save_video_network", "load_video_network", "VideoStylizer"]

FORMAT = "flowstyle-video-network"
VERSION = 1
VARIANTS = ("stable", "recurrent")
BASES = ("multistyle26", "arbitrary_transform")
RECURRENT_CHANNELS = 4  # the warped previous output (3) and its consistency mask (1)
NUM_CONDITION = {"multistyle26": 26, "arbitrary_transform": 100}  # style weights / style vector length


def shipped_network(base: str) -> nn.Module:
    """A fresh float32 CPU copy of a shipped transformer (``multistyle26`` or ``arbitrary_transform``)."""
    return load_weights(NETWORKS[base](), _tensors(base))


def first_conv(net: nn.Module) -> nn.Module:
    """The conv that reads the image (``contract/conv1``) of either transformer."""
    return net.contract["conv1"].conv


def widen_input(net: nn.Module, extra: int = RECURRENT_CHANNELS) -> nn.Module:
    """Give the first conv ``extra`` more input channels with zero weights (in place; returns ``net``).

    The network's output is then unchanged whatever those channels hold, until training moves them.
    """
    conv = first_conv(net)
    w = conv.weight
    conv.weight = nn.Parameter(torch.cat([w.data, w.data.new_zeros(w.shape[0], extra, *w.shape[2:])], 1),
                               requires_grad=w.requires_grad)
    return net


def build_network(base: str, variant: str) -> nn.Module:
    """The untrained video network: the shipped weights, widened for ``recurrent``."""
    net = shipped_network(base)
    return widen_input(net) if variant == "recurrent" else net


def run_with_features(net: nn.Module, image: torch.Tensor, condition: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The network's output and its encoder features (after the contract layers, 1/4 of the size).

    Args:
        image: (B, C, H, W), sides multiples of 4 (C = 3, or 7 for a recurrent network).
        condition: (26,) style weights for ``multistyle26``, (1, 100) style vector for the arbitrary one.
    Returns:
        (B, 3, H, W) output in [0, 1], (B, 32, H / 4, W / 4) features.
    """
    if isinstance(net, (MultiStyleTransformer, ArbitraryTransformer)):
        return net.forward_with_features(image, condition.reshape(-1, condition.shape[-1]))
    raise TypeError(f"not a Magenta transformer: {type(net).__name__}")


def save_video_network(path: Path | str, net: nn.Module, header: dict) -> None:
    """Write the network and its header to ``path`` atomically (temp file + rename)."""
    buf = io.BytesIO()
    torch.save({"header": dict(header, format=FORMAT, version=VERSION),
                "state_dict": {k: v.detach().cpu().float() for k, v in net.state_dict().items()}}, buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def _refuse(path: Path, why: str) -> FlowstyleError:
    return FlowstyleError(f"--stylizer '{path}' {why}")


def load_video_network(path: Path | str) -> tuple[dict, nn.Module]:
    """Read a video network file: (header, float32 CPU module in eval mode).

    Anything wrong with the file is one :class:`FlowstyleError` line: what, where, what to do.
    """
    path = Path(path)
    retrain = "train one with 'flowstyle train --style builtin:7 --out FILE.pt'"
    if not path.is_file():
        raise _refuse(path, f"does not exist: give a file written by 'flowstyle train', or {retrain}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several kinds for a file that is not a torch save
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _refuse(path, f"is not a flowstyle video network (cannot read it: {reason[:120]}); {retrain}") from None
    header = data.get("header") if isinstance(data, dict) else None
    if not isinstance(header, dict) or header.get("format") != FORMAT or not isinstance(data.get("state_dict"), dict):
        raise _refuse(path, f"is not a flowstyle video network (no '{FORMAT}' header): {retrain}")
    if header.get("version") != VERSION:
        raise _refuse(path, f"has format version {header.get('version')}, this flowstyle reads version {VERSION}: "
                            f"use the flowstyle that wrote it, or {retrain}")
    if header.get("variant") not in VARIANTS or header.get("base") not in BASES:
        raise _refuse(path, f"names an unknown variant or base network ({header.get('variant')}, "
                            f"{header.get('base')}): {retrain}")
    net = build_network(header["base"], header["variant"])
    try:
        net.load_state_dict(data["state_dict"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise _refuse(path, f"does not fit the {header['variant']} {header['base']} network ({first[:120]}); "
                            f"{retrain}") from None
    width = NUM_CONDITION[header["base"]]
    if len(header.get("condition") or ()) != width:
        raise _refuse(path, f"has no {width}-number style condition for {header['base']}: {retrain}")
    return header, net.eval()


class VideoStylizer(MagentaStylizer):
    """Fast mode's stylizer with a trained video network in place of the shipped one.

    The network knows one style (its file's); :meth:`configure` keeps it. A recurrent network takes
    the previous output warped into the frame and its mask (zeros on a first frame).
    """

    def __init__(self, path: Path | str, *, device: str = "cpu", stroke_scale: float = 1.0):
        header, net = load_video_network(path)
        super().__init__(device=device, stroke_scale=stroke_scale)
        self.header, self.recurrent = header, header["variant"] == "recurrent"
        self._base, self._trained = header["base"], net
        condition = np.asarray(header["condition"], np.float32)
        self.builtin_weights, self.vector = np.zeros(26, np.float32), None
        self.builtin_total = self.image_total = 0.0
        if self._base == "multistyle26":
            self.builtin_weights, self.builtin_total = condition, 1.0
        else:
            self.vector, self.image_total = condition, 1.0
        self.styles = (StyleRef(image=f"{Path(path).name} ({header.get('style')})"),)

    def configure(self, styles) -> None:
        """The network's own style stays (it was trained for that one)."""

    def network(self, name: str) -> nn.Module:
        if name == self._base and name not in self._nets:
            self._nets[name] = self._trained.to(self.device, self.dtype).to(memory_format=torch.channels_last)
        return super().network(name)

    @torch.no_grad()
    def batch(self, frames: torch.Tensor, previous: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 3, H, W); ``previous`` (B, 4, H, W): warped previous output and mask (recurrent)."""
        if self.recurrent:
            if previous is None:
                previous = frames.new_zeros(frames.shape[0], RECURRENT_CHANNELS, *frames.shape[2:])
            frames = torch.cat([frames, previous.to(frames)], 1)
        return super().batch(frames)
