"""Reliability masks (DESIGN 4.2) on constructed flows where the right answer is known."""
import pytest
import torch

from flowstyle.motion.masks import consistency_mask, long_term_masks, soften


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
