"""The CPU execution plans of the stylizers' convolutions give the same numbers as the plain ones
(issue 11: speed without changing the output), and the allocator setting keeps big blocks in the heap."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from flowstyle.fast.conv_plans import (nnpack_conv, space_to_depth_conv, space_to_depth_weight, upsample_conv,
                                       upsample_conv_weight)
from flowstyle.fast.networks import _instance_norm


@pytest.mark.parametrize("c_in,c_out,kernel,r,h,w", [
    (8, 3, 9, 2, 36, 52),   # the RGB end of the arbitrary transformer
    (3, 8, 9, 2, 29, 41),   # odd sides: the plan crops what it adds
    (4, 3, 9, 3, 30, 33),
    (5, 6, 3, 2, 16, 20),
])
def test_space_to_depth_conv_equals_conv(c_in, c_out, kernel, r, h, w):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, c_in, h + kernel - 1, w + kernel - 1, generator=g)
    weight = torch.randn(c_out, c_in, kernel, kernel, generator=g)
    plain = F.conv2d(x, weight)
    bias = torch.randn(c_out, generator=g)
    plain = plain + bias.view(1, -1, 1, 1)
    planned = space_to_depth_conv(x, space_to_depth_weight(weight, r), r, kernel, bias)
    assert planned.shape == plain.shape == (2, c_out, h, w)
    assert (planned - plain).abs().max() < 1e-4 * plain.abs().max()


@pytest.mark.parametrize("h,w", [(9, 13), (16, 16), (1, 5)])
def test_upsample_conv_equals_upsample_then_conv(h, w):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 6, h, w, generator=g)
    weight, bias = torch.randn(4, 6, 3, 3, generator=g), torch.randn(4, generator=g)
    up = F.interpolate(x, scale_factor=2.0, mode="nearest")
    plain = F.conv2d(F.pad(up, (1, 1, 1, 1), mode="reflect" if min(h, w) > 1 else "replicate"), weight, bias)
    planned = upsample_conv(x, upsample_conv_weight(weight), bias)
    assert planned.shape == plain.shape == (2, 4, 2 * h, 2 * w)
    assert (planned - plain).abs().max() < 1e-4 * plain.abs().max()


@pytest.mark.parametrize("channels", [3, 8, 16])
def test_instance_norm_same_in_either_layout(channels):
    x = torch.rand(1, channels, 20, 30, generator=torch.Generator().manual_seed(2)) * 5
    gamma, beta = torch.rand(channels) + 0.5, torch.rand(channels)
    plain = F.group_norm(x, channels, gamma, beta, 1e-3)
    last = _instance_norm(x.contiguous(memory_format=torch.channels_last), gamma, beta, 1e-3)
    assert last.is_contiguous(memory_format=torch.channels_last)  # the next conv gets the layout it expects
    assert (last - plain).abs().max() < 1e-5


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
@pytest.mark.parametrize("keep", [False, True])
def test_large_blocks_stay_in_the_heap(keep):
    """glibc maps a 64 MB block straight from the system (and unmaps it on free) unless told to keep it."""
    script = textwrap.dedent(f"""
        import ctypes
        from flowstyle.base.allocator import keep_large_blocks
        class Info(ctypes.Structure):
            _fields_ = [(n, ctypes.c_size_t) for n in
                        ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                         "fordblks", "keepcost")]
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = Info
        applied = keep_large_blocks() if {keep} else False
        before = libc.mallinfo2().hblkhd
        block = ctypes.create_string_buffer(64 << 20)
        print(applied, libc.mallinfo2().hblkhd - before)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    applied, mapped = out[0] == "True", int(out[1])
    if keep:
        assert applied and mapped == 0
    else:
        assert mapped >= 64 << 20


@pytest.mark.skipif(not torch.backends.nnpack.is_available(), reason="this torch has no NNPACK")
@pytest.mark.parametrize("c_in,c_out", [(8, 3), (3, 8)])
def test_nnpack_conv_equals_conv(c_in, c_out):
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, c_in, 40, 57, generator=g).contiguous(memory_format=torch.channels_last)
    weight, bias = torch.randn(c_out, c_in, 9, 9, generator=g), torch.randn(c_out, generator=g)
    plain = F.conv2d(x.double(), weight.double(), bias.double())
    planned = nnpack_conv(x, weight, bias)
    assert planned.shape == plain.shape == (2, c_out, 32, 49)
    assert (planned.double() - plain).abs().max() < 1e-5 * plain.abs().max()


def test_networks_same_without_nnpack(monkeypatch):
    """Where torch has no NNPACK (Windows wheels) the 9x9 RGB convs take the space-to-depth plan:
    both stylizers give the same frame either way."""
    import numpy as np

    from flowstyle.fast import networks
    from flowstyle.fast.magenta import MagentaStylizer
    from flowstyle.io.styles import StyleRef

    rgb = np.random.default_rng(4).random((60, 84, 3), dtype=np.float32)
    rng = np.random.default_rng(5)
    stylizer = MagentaStylizer([StyleRef(builtin=7)], precision="float")  # bfloat16 rounding would blur the test
    stylizer.vector = rng.normal(size=100).astype(np.float32)  # an arbitrary style vector, no painting needed
    stylizer.image_total = 1.0
    with torch.no_grad():
        planned = stylizer(rgb)
        monkeypatch.setattr(networks, "nnpack_usable", lambda x: False)
        fallback = stylizer(rgb)
    assert np.abs(planned - fallback).max() < 1e-4
