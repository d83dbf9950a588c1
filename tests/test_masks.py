"""Reliability masks (DESIGN 4.2) on constructed flows where the right answer is known."""
import pytest
import torch

from flowstyle.motion.masks import consistency_mask, long_term_masks, near_unreliable, soften


def translation(dx: float, dy: float, h: int = 32, w: int = 40) -> torch.Tensor:
    f = torch.empty(1, 2, h, w)
    f[:, 0], f[:, 1] = dx, dy
    return f


class TestConsistencyMask:
    def test_zero_flow_all_reliable(self):
        z = torch.zeros(1, 2, 16, 16)
        assert torch.equal(consistency_mask(z, z), torch.ones(1, 1, 16, 16))

    def test_translation_reliable_inside_outside_masked(self):
        # content moves 3 px right: forward +3, backward -3; frame i's first 3 columns come from outside frame i-1
        m = consistency_mask(translation(3, 0), translation(-3, 0))
        assert m.shape == (1, 1, 32, 40)
        assert torch.all(m[..., :, 3:] == 1)
        assert torch.all(m[..., :, :3] == 0)

    def test_square_moving_over_background(self):
        # frame i-1: square at columns 10..19, rows 10..19; frame i: moved 4 px right (columns 14..23)
        h, w, s, d = 32, 40, 10, 4
        fw = torch.zeros(1, 2, h, w)
        fw[:, 0, 10:20, 10:20] = d  # on frame i-1
        bw = torch.zeros(1, 2, h, w)
        bw[:, 0, 10:20, 14:24] = -d  # on frame i
        m = consistency_mask(fw, bw)[0, 0]
        # the strip the square uncovered (background hidden in frame i-1) must be masked
        assert torch.all(m[10:20, 10:14] == 0)
        # away from the square's edges (motion boundaries, 1 px each side) everything is reliable
        expected = torch.ones(h, w, dtype=torch.bool)
        expected[9:21, 9:25] = False  # square, strip and their 1-px boundaries
        assert torch.all(m[expected] == 1)
        assert torch.all(m[11:19, 16:22] == 1)  # the square's own interior is traceable
        # and the masked area is just the strip plus boundaries, not more
        assert (m == 0).sum() <= 12 * 16

    def test_inconsistent_flow_is_masked(self):
        m = consistency_mask(translation(5, 0), translation(5, 0))  # both claim +5: no round trip
        assert torch.all(m == 0)

    def test_motion_boundary_masked(self):
        bw = torch.zeros(1, 2, 20, 20)
        bw[:, 1, :, 10:] = 6.0  # shear: right half moves
        fw = torch.zeros(1, 2, 20, 20)
        fw[:, 1, :, 10:] = -6.0
        m = consistency_mask(fw, bw)[0, 0]
        assert torch.all(m[8:12, 9:11] == 0)  # on the boundary
        assert torch.all(m[8:12, 2:7] == 1)

    def test_soft_mask_in_unit_range_and_spreads(self):
        hard = consistency_mask(translation(3, 0), translation(-3, 0))
        soft = consistency_mask(translation(3, 0), translation(-3, 0), soft=True)
        assert soft.min() >= 0 and soft.max() <= 1
        assert torch.all(soft[..., :3] == 0)
        assert soft[..., 3].mean() < 1.0  # unreliability spreads to the neighbours
        assert torch.all(soft[..., 8:] == hard[..., 8:])

    def test_soften_keeps_all_reliable(self):
        assert torch.equal(soften(torch.zeros(1, 1, 8, 8, dtype=torch.bool)), torch.ones(1, 1, 8, 8))

    def test_exception_shapes(self):
        with pytest.raises(ValueError, match="flows must both be"):
            consistency_mask(torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 8, 9))
        with pytest.raises(ValueError, match="flows must both be"):
            consistency_mask(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))


class TestLongTermMasks:
    def test_nearest_visible_frame_claims_pixel(self):
        c1 = torch.tensor([[[[1.0, 0.0, 0.0, 1.0]]]])
        c2 = torch.tensor([[[[1.0, 1.0, 0.0, 0.0]]]])
        c4 = torch.tensor([[[[1.0, 1.0, 1.0, 0.0]]]])
        out = long_term_masks({1: c1, 2: c2, 4: c4}, (1, 2, 4))
        assert out[1].flatten().tolist() == [1, 0, 0, 1]
        assert out[2].flatten().tolist() == [0, 1, 0, 0]
        assert out[4].flatten().tolist() == [0, 0, 1, 0]
        assert torch.all(sum(out.values()) <= 1)

    def test_missing_offsets_skipped(self):
        c1 = torch.ones(1, 1, 2, 2)
        out = long_term_masks({1: c1}, (1, 2, 4))
        assert list(out) == [1] and torch.equal(out[1], c1)


class TestThresholds:
    """DESIGN 4.2's constants, pinned by flows just inside and just outside each test."""

    @pytest.mark.parametrize("delta, reliable", [(1.685, True), (1.700, False)])
    def test_disocclusion_threshold(self, delta, reliable):
        # |w~ + ŵ|² > 0.01 (|w~|² + |ŵ|²) + 0.5 with w = +10 and ŵ = −(10 + δ): the boundary is δ ≈ 1.693
        m = consistency_mask(translation(10, 0), translation(-(10 + delta), 0))
        assert bool(m[0, 0, 16, 30] == 1) is reliable

    @pytest.mark.parametrize("slope, reliable", [(0.0440, True), (0.0455, False)])
    def test_motion_boundary_threshold(self, slope, reliable):
        # |∇û|² + |∇v̂|² > 0.01 |ŵ|² + 0.002: a shear ramp û = s (x − 20), zero at column 20: boundary s ≈ 0.0447
        xs = torch.arange(40, dtype=torch.float32)
        bw = torch.zeros(1, 2, 32, 40)
        bw[:, 0] = slope * (xs - 20)
        m = consistency_mask(-bw, bw)
        assert bool(m[0, 0, 16, 20] == 1) is reliable
        assert m[0, 0, 16, 30] == 1  # ten columns on, |ŵ| is large enough that the same slope is fine

    def test_out_of_frame(self):
        m = consistency_mask(translation(0.4, 0), translation(-0.4, 0))[0, 0, 16]
        assert m[0] == 0 and torch.all(m[1:] == 1)  # column 0 samples x = −0.4, outside; column 1 samples 0.6


class TestNearUnreliable:
    def test_off_and_never_above_the_mask(self):
        m = (torch.rand(1, 1, 40, 60) > 0.2).float()
        assert torch.equal(near_unreliable(m, 0.0), m)
        assert torch.all(near_unreliable(m, 6.0) <= m)

    def test_a_wide_unreliable_band_empties_its_neighbourhood(self):
        m = torch.ones(1, 1, 48, 96)
        m[..., 40:56] = 0.0  # a disoccluded strip 16 px wide
        out = near_unreliable(m, 8.0)[0, 0, 24]
        assert float(out[56:58].max()) < 0.05 and float(out[38:40].max()) < 0.05  # right beside it: no pull
        assert float(out[72:].min()) > 0.95 and float(out[:24].min()) > 0.95  # two radii away: full pull

    def test_a_stray_pixel_barely_counts(self):
        m = torch.ones(1, 1, 48, 48)
        m[..., 24, 24] = 0.0
        out = near_unreliable(m, 8.0)
        assert out[0, 0, 24, 24] == 0 and float(out[0, 0, 24, 27]) > 0.9
