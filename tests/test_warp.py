"""Warping by flow (DESIGN 4.3), on constructed cases with known answers."""
import pytest
import torch

from flowstyle.motion.warp import sample_grid, warp


class TestWarp:
    def test_smoke_shapes(self, device):
        img = torch.rand(2, 3, 9, 13, device=device)
        out = warp(img, torch.zeros(2, 2, 9, 13, device=device))
        assert out.shape == img.shape and out.dtype == img.dtype

    @pytest.mark.parametrize("mode", ["bilinear", "bicubic", "nearest"])
    def test_zero_flow_is_identity(self, device, mode):
        img = torch.rand(1, 3, 16, 20, device=device)
        assert torch.allclose(warp(img, torch.zeros(1, 2, 16, 20, device=device), mode=mode), img, atol=1e-5)

    @pytest.mark.parametrize("dx,dy", [(3, 0), (0, -2), (2, 5)])
    def test_translation_moves_content_exactly(self, device, dx, dy):
        # frame i-1 shows the texture; frame i shows it moved by (dx, dy): backward flow is (-dx, -dy)
        img = torch.rand(1, 3, 24, 30, device=device)
        flow_bw = torch.empty(1, 2, 24, 30, device=device)
        flow_bw[:, 0], flow_bw[:, 1] = -dx, -dy
        out = warp(img, flow_bw)
        ys = slice(max(dy, 0), 24 + min(dy, 0))
        xs = slice(max(dx, 0), 30 + min(dx, 0))
        ys0 = slice(max(-dy, 0), 24 + min(-dy, 0))
        xs0 = slice(max(-dx, 0), 30 + min(-dx, 0))
        assert torch.allclose(out[..., ys, xs], img[..., ys0, xs0], atol=1e-5)

    def test_half_pixel_shift_interpolates(self, device):
        img = torch.tensor([[[[0.0, 1.0, 0.0, 1.0]]]], device=device)
        flow = torch.zeros(1, 2, 1, 4, device=device)
        flow[:, 0] = 0.5
        out = warp(img, flow)
        assert torch.allclose(out[0, 0, 0, :3], torch.tensor([0.5, 0.5, 0.5], device=device))

    def test_outside_samples_clamp_to_border(self, device):
        img = torch.arange(5.0, device=device).view(1, 1, 1, 5)
        flow = torch.full((1, 2, 1, 5), 0.0, device=device)
        flow[:, 0] = 10.0
        assert torch.allclose(warp(img, flow), torch.full_like(img, 4.0))

    def test_exception_flow_shape(self, device):
        with pytest.raises(ValueError, match="flow must be"):
            warp(torch.rand(1, 3, 8, 8), torch.zeros(1, 2, 8, 9))
        with pytest.raises(ValueError, match="flow must be"):
            warp(torch.rand(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
        with pytest.raises(ValueError, match="image must be"):
            warp(torch.rand(3, 8, 8), torch.zeros(1, 2, 8, 8))
        with pytest.raises(ValueError, match="flow must be"):
            sample_grid(torch.zeros(1, 8, 8))

    def test_gradcheck(self):
        img = torch.rand(1, 1, 5, 6, dtype=torch.float64, requires_grad=True)
        flow = (torch.rand(1, 2, 5, 6, dtype=torch.float64) - 0.5) * 0.8
        assert torch.autograd.gradcheck(lambda x: warp(x, flow), (img,))
