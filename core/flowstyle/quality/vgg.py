"""VGG-19 loss network of quality mode (Gatys et al. 2016; Ruder et al. 2016, section 6.1).

The network is cut after the deepest layer the losses use (``relu5_1``) and returns its
features by layer name, as pytorch/examples' ``Vgg16`` does. Weights are torchvision's
``VGG19_Weights.IMAGENET1K_V1`` (downloaded by torch.hub for users with internet) or a local
torchvision-format state dict, checked for keys and shapes. There is no untrained fallback:
without weights the builder says how to get them.
"""
from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Union

import torch
from torch import nn

from ..base.errors import FlowstyleError

__all__ = ["VggOutputs", "LAYERS", "VGG19Features", "Weights", "VGG19_WEIGHTS", "vgg19_features",
           "load_vgg19_state_dict"]

VggOutputs = namedtuple("VggOutputs", ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"])

# Layer name -> index of its ReLU in torchvision's ``vgg19().features``.
LAYERS = {"relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 20, "relu4_2": 22, "relu5_1": 29}

# torchvision's VGG-19 ("E") feature stack: channels per conv, "M" a 2x2 max pool.
_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


@dataclass(frozen=True)
class Weights:
    """A pretrained weights file: where it comes from and what it is (torchvision's ``Weights``)."""

    url: str
    meta: dict = field(default_factory=dict)

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]


VGG19_WEIGHTS = Weights(
    url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",  # name ends in its SHA-256 prefix
    meta={
        "source": "torchvision.models.VGG19_Weights.IMAGENET1K_V1",
        "file_size_mb": 548.1,
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
    },
)


def _make_features(last_index: int) -> nn.Sequential:
    """torchvision's VGG-19 feature layers 0..``last_index``, built on the meta device (no init cost)."""
    layers: list[nn.Module] = []
    c_in = 3
    with torch.device("meta"):
        for v in _CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(c_in, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                c_in = v
    return nn.Sequential(*layers[: last_index + 1])


def _expected_shapes(last_index: int) -> dict[str, tuple[int, ...]]:
    """``features.N.weight/bias`` -> shape for the conv layers up to ``last_index``."""
    out = {}
    for i, m in enumerate(_make_features(last_index)):
        if isinstance(m, nn.Conv2d):
            out[f"features.{i}.weight"] = tuple(m.weight.shape)
            out[f"features.{i}.bias"] = tuple(m.bias.shape)
    return out


class VGG19Features(nn.Module):
    """VGG-19 features by layer name; input (B, 3, H, W) RGB in [0, 1].

    The ImageNet normalization torchvision's weights expect is applied inside. Parameters are
    frozen; the module is in eval mode.

    Args:
        features: torchvision's ``vgg19().features`` (or its first layers), loaded.
        last: deepest layer needed; the stack is cut right after it.
    """

    def __init__(self, features: nn.Sequential, *, last: str = "relu5_1"):
        super().__init__()
        if last not in LAYERS:
            raise ValueError(f"last must be one of {', '.join(LAYERS)}; got {last!r}")
        n = LAYERS[last] + 1
        if len(features) < n:
            raise ValueError(f"features must hold at least {n} layers to reach {last}; got {len(features)}")
        self.features = nn.Sequential(*list(features)[:n])
        self.last = last
        mean, std = VGG19_WEIGHTS.meta["mean"], VGG19_WEIGHTS.meta["std"]
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()
        self._names = {i: name for name, i in LAYERS.items() if i < n}

    def forward(self, x: torch.Tensor, *, upto: Optional[str] = None) -> VggOutputs:
        """Features of ``x``.

        Args:
            x: (B, 3, H, W) RGB in [0, 1]; H and W at least 16 (four pools before relu5_1).
            upto: stop after this layer; the later fields are None (saves work when only an
                early layer is needed).

        Returns:
            :data:`VggOutputs` of (B, C_l, H_l, W_l) tensors: relu1_1 at full size (64 channels)
            down to relu5_1 at 1/16 (512 channels).
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"x must be (B, 3, H, W) RGB; got {tuple(x.shape)}")
        if min(x.shape[-2:]) < 16:
            raise ValueError(f"x must be at least 16x16 to reach relu5_1; got {tuple(x.shape[-2:])}")
        stop = LAYERS[upto or self.last]
        if stop >= len(self.features):
            raise ValueError(f"upto={upto!r} lies past this network's last layer {self.last!r}")
        out = dict.fromkeys(VggOutputs._fields)
        h = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self._names:
                out[self._names[i]] = h
            if i == stop:
                break
        return VggOutputs(**out)


def _read_state_dict(path: Path) -> Mapping[str, torch.Tensor]:
    if not path.is_file():
        raise FlowstyleError(
            f"VGG-19 weights file '{path}' does not exist: give the path of torchvision's "
            f"{VGG19_WEIGHTS.file_name} with --vgg-weights"
        )
    try:
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:  # files in the legacy (pre-zip) format cannot be memory-mapped
            if "mmap" not in str(exc):
                raise
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling and zip errors come in many types
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise FlowstyleError(
            f"cannot load VGG-19 weights '{path}': not a torch state dict of tensors ({first}); "
            f"use torchvision's {VGG19_WEIGHTS.file_name}"
        ) from None
    if isinstance(sd, Mapping) and "state_dict" in sd and isinstance(sd["state_dict"], Mapping):
        sd = sd["state_dict"]
    if not isinstance(sd, Mapping):
        raise FlowstyleError(
            f"VGG-19 weights '{path}' hold a {type(sd).__name__}, expected a state dict (name -> tensor) "
            f"like torchvision's {VGG19_WEIGHTS.file_name}"
        )
    return sd


def load_vgg19_state_dict(path: Union[str, Path], *, last: str = "relu5_1") -> dict[str, torch.Tensor]:
    """Read and check a local torchvision-format VGG-19 state dict.

    Only the ``features.*`` entries up to ``last`` are checked and returned; the classifier
    may be present or not.

    Raises:
        FlowstyleError: one line naming the file, the first missing key or wrong shape, and what
            to use instead.
    """
    path = Path(path)
    sd = _read_state_dict(path)
    expected = _expected_shapes(LAYERS[last])
    missing = [k for k in expected if k not in sd]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise FlowstyleError(
            f"VGG-19 weights '{path}' lack '{missing[0]}'{more}: expected a torchvision VGG-19 state dict "
            f"(features.0.weight ... features.28.bias), like {VGG19_WEIGHTS.file_name}"
        )
    out = {}
    for k, shape in expected.items():
        t = sd[k]
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != shape:
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise FlowstyleError(
                f"VGG-19 weights '{path}': '{k}' should be {shape} but is {got}; this is not torchvision's "
                f"VGG-19 (VGG-16 and others have other layers): use {VGG19_WEIGHTS.file_name}"
            )
        if not t.is_floating_point() or not bool(torch.isfinite(t).all()):
            raise FlowstyleError(
                f"VGG-19 weights '{path}': '{k}' is not finite floating point; the file is damaged: "
                f"download {VGG19_WEIGHTS.file_name} again"
            )
        out[k] = t.float()
    return out


def _download(progress: bool) -> Mapping[str, torch.Tensor]:
    """torchvision's VGG-19 weights through torch.hub's cache (downloads once, checks the SHA-256 prefix)."""
    return torch.hub.load_state_dict_from_url(
        VGG19_WEIGHTS.url, map_location="cpu", progress=progress, check_hash=True, weights_only=True
    )


def vgg19_features(
    *,
    weights: Optional[Union[str, Path]] = None,
    progress: bool = False,
    network: Optional[nn.Module] = None,
    last: str = "relu5_1",
) -> VGG19Features:
    """Build the loss network.

    Args:
        weights: path of a local torchvision-format state dict; None takes torchvision's
            ``VGG19_Weights.IMAGENET1K_V1`` from torch.hub's cache, downloading it if needed.
        progress: show torch.hub's download bar (on stderr).
        network: a ready-made VGG-19 (a torchvision ``VGG`` or its ``features``), used as it is;
            ``weights`` is then ignored. Tests pass a seeded random one.
        last: deepest layer needed.

    Raises:
        FlowstyleError: the weights file is bad, or there is no file and the download fails.
    """
    if network is not None:
        features = getattr(network, "features", network)
        if not isinstance(features, nn.Sequential):
            raise TypeError(f"network must be a torchvision VGG or its features (nn.Sequential); got {type(network).__name__}")
        return VGG19Features(features, last=last)
    if weights is not None:
        sd = load_vgg19_state_dict(weights, last=last)
    else:
        try:
            raw = _download(progress)
        except Exception as exc:  # URLError, OSError, hash mismatch (RuntimeError), ...
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
            cache = Path(torch.hub.get_dir()) / "checkpoints"
            raise FlowstyleError(
                f"quality mode needs VGG-19 weights and the download of {VGG19_WEIGHTS.url} failed ({reason}): "
                f"fetch that file on a machine with internet and pass it with --vgg-weights PATH "
                f"(or copy it into {cache})"
            ) from None
        sd = {k: v.float() for k, v in raw.items() if k in _expected_shapes(LAYERS[last])}
    features = _make_features(LAYERS[last])
    features.load_state_dict({k.removeprefix("features."): v for k, v in sd.items()}, strict=True, assign=True)
    return VGG19Features(features, last=last)
