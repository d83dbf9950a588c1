"""Warping by flow (DESIGN 4.3), on constructed cases with known answers."""
import pytest
import torch

from flowstyle.motion.warp import Sampler, sample_grid, warp


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


def _smooth_image(h: int, w: int, channels: int = 3) -> tuple[torch.Tensor, float]:
    """A smooth (1, C, H, W) image and a bound on its gradient (px⁻¹)."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    planes = [0.5 + 0.4 * torch.sin(xs * (0.1 + 0.05 * c) + ys * 0.07 * (c + 1)) for c in range(channels)]
    return torch.stack(planes)[None], 0.4 * (0.1 + 0.05 * channels + 0.07 * channels)


def _smooth_flow(h: int, w: int) -> torch.Tensor:
    """(1, 2, H, W) a sub-pixel, varying flow that also points out of the frame on the left and top."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    return torch.stack([3.3 * torch.cos(ys * 0.2) - 1.7, 2.6 * torch.sin(xs * 0.15) - 1.1])[None]


class TestSampler:
    """Sampler: the temporal step's warps, OpenCV fixed point on the CPU (positions to 1/32 px)."""

    @pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
    def test_fixed_point_within_a_64th_of_a_pixel(self, mode):
        img, slope = _smooth_image(40, 56)
        flow = _smooth_flow(40, 56)
        s = Sampler(flow, fixed_point=True)
        assert s.fixed_point
        exact, fast = warp(img, flow, mode=mode), s(img, mode)
        # a position off by at most 1/64 px moves a value by at most slope/64 (plus the interpolants' overshoot)
        assert (fast - exact).abs().max() <= 1.5 * slope / 64 + 1e-5

    def test_fixed_point_ramp_is_a_position_error_only(self):
        # a ramp of slope 1 reads back its sampling position: every pixel within 1/64 px of x + u
        ramp = torch.arange(64, dtype=torch.float32).view(1, 1, 1, 64).expand(1, 1, 4, 64).contiguous()
        flow = torch.zeros(1, 2, 4, 64)
        flow[:, 0] = torch.linspace(0.0, 1.0, 64)
        out = Sampler(flow, fixed_point=True)(ramp, "bilinear")
        target = (torch.arange(64.0) + flow[0, 0, 0]).clamp(max=63.0)
        assert (out[0, 0] - target).abs().max() <= 1 / 64 + 1e-5

    def test_outside_and_border_like_warp(self):
        img, _ = _smooth_image(30, 40)
        flow = _smooth_flow(30, 40) * 3.0  # far out of the frame on two sides
        fast, exact = Sampler(flow, fixed_point=True), Sampler(flow)
        assert torch.equal(fast.outside(), exact.outside()) and fast.outside().any()
        assert torch.allclose(fast(img), warp(img, flow), atol=0.02)

    def test_any_channel_count_and_exact_elsewhere(self):
        img, _ = _smooth_image(20, 24, channels=5)
        flow = _smooth_flow(20, 24)
        assert Sampler(flow, fixed_point=True)(img).shape == (1, 5, 20, 24)
        assert not Sampler(flow).fixed_point  # the default is exact
        assert not Sampler(flow.repeat(2, 1, 1, 1), fixed_point=True).fixed_point  # batches: grid_sample
        assert not Sampler(flow.double(), fixed_point=True).fixed_point

    def test_images_needing_gradients_take_the_exact_path(self):
        img, _ = _smooth_image(20, 24)
        img.requires_grad_(True)
        flow = _smooth_flow(20, 24)
        out = Sampler(flow, fixed_point=True)(img)
        assert out.grad_fn is not None and torch.equal(out, warp(img, flow))
