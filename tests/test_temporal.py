"""Fast mode's temporal solvers (DESIGN 4.6)."""
import pytest
import torch

from flowstyle.base.tensors import laplacian
from flowstyle.fast.solve import band_solve, cg_solve, lowpass


def energy(x, p, w, c, g, lam, gam):
    grad = lambda v: (v[..., :, 1:] - v[..., :, :-1], v[..., 1:, :] - v[..., :-1, :])
    (xa, xb), (pa, pb) = grad(x), grad(p)
    return g * ((xa - pa).square().sum() + (xb - pb).square().sum()) + lam * (x - p).square().sum() + gam * (c * (x - w).square()).sum()


class TestBandSolve:
    def test_no_history_returns_target(self):
        p = torch.rand(1, 3, 16, 16)
        assert torch.equal(band_solve(p, [], [], temporal_weight=1, fidelity_weight=0.2), p)

    def test_masked_out_pixels_follow_target(self):
        p, w = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
        out = band_solve(p, [w], [torch.zeros(1, 1, 16, 16)], temporal_weight=1, fidelity_weight=0.2)
        assert torch.allclose(out, p)

    def test_agreeing_history_changes_nothing(self):
        p = torch.rand(1, 3, 16, 16)
        out = band_solve(p, [p.clone()], [torch.ones(1, 1, 16, 16)], temporal_weight=1, fidelity_weight=0.2)
        assert torch.allclose(out, p, atol=1e-6)

    def test_pulls_coarse_structure_towards_history(self):
        p = torch.full((1, 3, 32, 32), 0.2)
        w = torch.full((1, 3, 32, 32), 0.8)
        out = band_solve(p, [w], [torch.ones(1, 1, 32, 32)], temporal_weight=1.0, fidelity_weight=0.25)
        assert torch.allclose(out, torch.full_like(p, 0.2 + 0.6 * 0.8), atol=1e-5)  # blend weight γ/(λ+γ) = 0.8

    def test_fine_detail_kept_from_target(self):
        p = torch.zeros(1, 1, 32, 32)
        p[..., ::2, :] = 1.0  # stripes, 2 px period: all fine band
        w = torch.full_like(p, 0.5)
        out = band_solve(p, [w], [torch.ones(1, 1, 32, 32)], temporal_weight=1.0, fidelity_weight=0.0, detail=0.7)
        contrast = (out[..., ::2, :].mean() - out[..., 1::2, :].mean()).item()
        assert contrast == pytest.approx(0.7, abs=0.02)

    def test_exception_mismatched(self):
        with pytest.raises(ValueError, match="one mask per warped"):
            band_solve(torch.rand(1, 3, 4, 4), [torch.rand(1, 3, 4, 4)], [], temporal_weight=1, fidelity_weight=1)


class TestCgSolve:
    def test_lowers_energy_and_converges(self):
        torch.manual_seed(0)
        p, w = torch.rand(1, 3, 24, 24), torch.rand(1, 3, 24, 24)
        c = (torch.rand(1, 1, 24, 24) > 0.3).float()
        kw = dict(temporal_weight=2.0, fidelity_weight=0.5, gradient_weight=1.0)
        e0 = energy(torch.where(c > 0, w, p), p, w, c, 1.0, 0.5, 2.0)
        x8 = cg_solve(p, [w], [c], iterations=8, **kw)
        x200 = cg_solve(p, [w], [c], iterations=200, **kw)
        e8, e200 = energy(x8, p, w, c, 1.0, 0.5, 2.0), energy(x200, p, w, c, 1.0, 0.5, 2.0)
        assert e8 < e0 and e200 <= e8 + 1e-4
        # at the minimum the gradient of the energy vanishes: (λ + γc − gΔ)x = λp + γcω − gΔp
        residual = 0.5 * x200 + 2.0 * c * x200 - laplacian(x200) - (0.5 * p + 2.0 * c * w - laplacian(p))
        assert residual.abs().max() < 1e-3


def test_lowpass_keeps_constants_and_shape():
    x = torch.full((1, 3, 13, 17), 0.3)
    out = lowpass(x, 8)
    assert out.shape == x.shape and torch.allclose(out, x)
