"""Cheaper ways to compute two kinds of convolution of the Magenta networks on the CPU, with the same result.

oneDNN, torch's CPU convolution, is slow where a convolution has very few channels on one side:
the 9x9 convs to RGB (8 or 4 channels in, 3 out) run at a fifth of the machine's speed, and the
nearest-2x-upsample + 3x3 conv of the expand layers builds a 4x larger tensor first. Rewritten here:

- :func:`space_to_depth_conv`: a stride-1 KxK conv equals pixel_shuffle(conv(pixel_unshuffle(x), W'))
  with r*r times the channels on both sides and a ceil((K + r - 1) / r) kernel;
  :func:`space_to_depth_weight` builds W'.
- :func:`nnpack_conv`: NNPACK's FFT convolution, where torch was built with it (a large kernel to
  or from few channels is where FFT tiles pay off).
- :func:`upsample_conv`: a 3x3 conv of the nearest-2x upsampled, reflect-padded image equals
  pixel_shuffle(conv(replicate-pad(x), W4)) at the low resolution, four output phases per channel;
  :func:`upsample_conv_weight` builds W4.

Results agree with the direct computation to float rounding (about 1e-5; tests pin it). Measured at
1024x436 on a 2-core AVX-512 CPU, each conv alone: the 8->3 9x9 conv 43 ms in oneDNN, 27 ms as
space-to-depth, 12 ms in NNPACK; the 16->8 upsample conv 16 -> 10 ms. On CUDA, cuDNN's own choice is kept (not measured there).

Shapes: x (B, C, H, W) -> (B, C_out, H', W') as stated per function.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["space_to_depth_weight", "space_to_depth_conv", "upsample_conv_weight", "upsample_conv", "nnpack_usable",
           "nnpack_conv"]


def nnpack_usable(x: torch.Tensor) -> bool:
    """Whether :func:`nnpack_conv` can run on ``x``: float32 on the CPU, a torch built with NNPACK
    (the Linux and macOS wheels; not Windows)."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and torch.backends.nnpack.is_available()


def nnpack_conv(padded: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """A valid stride-1 conv through NNPACK (FFT tiles; closer to float64 than oneDNN on a 9x9 kernel):
    (B, C_in, H + K - 1, W + K - 1) -> (B, C_out, H, W), in the plain layout."""
    if bias is None:
        bias = weight.new_zeros(weight.shape[0])
    return torch._nnpack_spatial_convolution(padded.contiguous(), weight.contiguous(), bias, [0, 0], [1, 1])


def space_to_depth_weight(weight: torch.Tensor, r: int) -> torch.Tensor:
    """(C_out, C_in, K, K) -> (C_out*r*r, C_in*r*r, K', K'), K' = ceil((K + r - 1) / r).

    Output phase (a, b) of channel o reads input phase (s, t) of channel c at low-res tap (p, q)
    with the original tap (r*p + s - a, r*q + t - b) where it lies inside the kernel, else zero.
    """
    c_out, c_in, k, _ = weight.shape
    kk = -(-(k + r - 1) // r)
    out = weight.new_zeros(c_out, r, r, c_in, r, r, kk, kk)  # (o, a, b, c, s, t, p, q)
    for a in range(r):
        for s in range(r):
            for p in range(kk):
                i = r * p + s - a
                if not 0 <= i < k:
                    continue
                for b in range(r):
                    for t in range(r):
                        for q in range(kk):
                            j = r * q + t - b
                            if 0 <= j < k:
                                out[:, a, b, :, s, t, p, q] = weight[:, :, i, j]
    return out.reshape(c_out * r * r, c_in * r * r, kk, kk)


def space_to_depth_conv(padded: torch.Tensor, weight: torch.Tensor, r: int, kernel: int,
                        bias: torch.Tensor | None = None) -> torch.Tensor:
    """A valid stride-1 ``kernel``-sized conv of ``padded`` (B, C, H + K - 1, W + K - 1) -> (B, C_out, H, W),
    computed with ``weight`` from :func:`space_to_depth_weight` (and the conv's own (C_out,) bias)."""
    h, w = padded.shape[-2] - (kernel - 1), padded.shape[-1] - (kernel - 1)
    kk = weight.shape[-1]
    need_h, need_w = r * (-(-h // r) + kk - 1), r * (-(-w // r) + kk - 1)
    # the extra rows and columns meet only zero taps of the weight
    extra = (0, need_w - padded.shape[-1], 0, need_h - padded.shape[-2])
    x = F.pad(padded, extra) if any(extra) else padded
    y = F.conv2d(F.pixel_unshuffle(x, r), weight, None if bias is None else bias.repeat_interleave(r * r))
    return F.pixel_shuffle(y, r)[..., :h, :w]


def upsample_conv_weight(weight: torch.Tensor) -> torch.Tensor:
    """(C_out, C_in, 3, 3) -> (C_out*4, C_in, 3, 3): the four phases of a 3x3 conv on a nearest-2x upsample.

    Phase (a, b) of the high-res output reads high-res tap (i, j) from low-res row
    floor((a + i - 1) / 2), i.e. low-res tap (a + i - 1) // 2 + 1 of a 1-padded input; taps landing
    on the same low-res pixel add up.
    """
    c_out, c_in = weight.shape[:2]
    out = weight.new_zeros(c_out, 2, 2, c_in, 3, 3)
    for a in range(2):
        for b in range(2):
            for i in range(3):
                for j in range(3):
                    out[:, a, b, :, (a + i - 1) // 2 + 1, (b + j - 1) // 2 + 1] += weight[:, :, i, j]
    return out.reshape(c_out * 4, c_in, 3, 3)


def upsample_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """conv3x3(reflect_pad1(nearest_upsample2x(x))) as (B, C, H, W) -> (B, C_out, 2H, 2W), with ``weight``
    from :func:`upsample_conv_weight`. One pixel of reflection at high resolution is the edge pixel
    itself, so the low-res input is padded by replication."""
    y = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), weight,
                 None if bias is None else bias.repeat_interleave(4))
    return F.pixel_shuffle(y, 2)
