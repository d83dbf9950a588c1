"""The warping error (Lai et al. 2018) that grades flicker: both the warp and the mask matter."""
import numpy as np
import pytest

from flowstyle.motion.metrics import warping_error


def flow(h, w, dx):
    f = np.zeros((h, w, 2), np.float32)
    f[..., 0] = dx
    return f


@pytest.fixture
def moving():
    """Output i−1, and output i = the same picture moved 3 px right (perfectly consistent)."""
    rng = np.random.default_rng(0)
    prev = rng.random((24, 40, 3)).astype(np.float32)
    cur = np.roll(prev, 3, axis=1)
    return prev, cur, flow(24, 40, 3.0), flow(24, 40, -3.0)


def test_consistent_output_scores_zero(moving):
    prev, cur, fw, bw = moving
    assert warping_error(prev, cur, fw, bw) < 1e-10


def test_the_warp_matters(moving):
    prev, cur, _, _ = moving
    zero = flow(24, 40, 0.0)
    assert warping_error(prev, cur, zero, zero) > 0.1  # compared without following the motion


def test_the_mask_matters(moving):
    prev, cur, fw, bw = moving
    garbage = cur.copy()
    garbage[:, :3] = 1.0 - garbage[:, :3]  # the 3 columns that entered the frame: nothing to compare with
    assert warping_error(prev, garbage, fw, bw) < 1e-10  # masked out (they come from outside frame i−1)
    bad_fw = fw.copy()
    bad_fw[10:20, :, 0] = 8.0  # forward and backward disagree there: not trusted
    flicker = cur.copy()
    flicker[10:20] = 0.0
    masked = warping_error(prev, flicker, bad_fw, bw)
    unmasked = warping_error(prev, flicker, fw, bw)
    assert masked < 0.2 * unmasked
