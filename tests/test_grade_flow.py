"""The benchmarks' independent grader (bench/grade_flow.py) follows a fast camera move that plain
DeepFlow loses, and its trust mask drops a flow that is consistent but wrong."""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
STILL = REPO.parent / "shared" / "data" / "flow" / "sintel-alley_1" / "final" / "frame_0002.png"
sys.path.insert(0, str(REPO / "bench"))

pytestmark = pytest.mark.skipif(not STILL.exists(), reason=f"shared test data not found at {STILL}")


def _pan_pair(shift: float = 28.0, zoom: float = 1.02):
    """Two 320x200 views of a Sintel still, the second panned by ``shift`` px and zoomed; exact flow a -> b."""
    still = cv2.imread(str(STILL))[..., ::-1].astype(np.float32) / 255
    w, h, cx, cy = 320, 200, 500.0, 220.0
    views, maps = [], []
    for dx, s in ((0.0, 1.0), (shift, 1.0 / zoom)):  # s: still pixels per view pixel
        m = np.float32([[s, 0, cx + dx - s * w / 2], [0, s, cy - s * h / 2]])  # view pixel -> still pixel
        views.append(cv2.warpAffine(still, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP))
        maps.append(m)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    (ma, mb) = maps
    sx, sy = ma[0, 0] * xs + ma[0, 2], ma[1, 1] * ys + ma[1, 2]
    bx, by = (sx - mb[0, 2]) / mb[0, 0], (sy - mb[1, 2]) / mb[1, 1]
    return views[0], views[1], np.stack([bx - xs, by - ys], -1).astype(np.float32)


def test_grader_follows_a_fast_pan():
    from grade_flow import PrealignedDeepFlow

    a, b, exact = _pan_pair()
    flow = PrealignedDeepFlow().flow(a, b)
    inner = (slice(20, -20), slice(20, -60))  # pixels that stay in view
    epe = np.linalg.norm(flow - exact, axis=-1)[inner]
    assert np.median(epe) < 0.5, f"median end-point error {np.median(epe):.2f} px on a 28 px pan"


def test_trust_drops_consistent_but_wrong_flow():
    from grade_flow import trusted

    a, b, exact = _pan_pair()
    right = trusted(a, b, exact, _backward(exact)).mean().item()
    wrong = trusted(a, b, np.zeros_like(exact), np.zeros_like(exact)).mean().item()  # consistent, wrong
    assert right > 0.6 and wrong < 0.5 * right, (right, wrong)  # zero flow passes the forward-backward check everywhere


def test_trust_is_on_the_first_frames_pixels():
    """a's pixel x shows b's pixel x + 10: a's last 10 columns leave b and are not trusted, its first 10 are
    (the forward-backward check in a's geometry, not in b's, where the first 10 columns would drop)."""
    from grade_flow import trusted

    h, w = 20, 60
    b = np.random.default_rng(0).random((h, w, 3)).astype(np.float32)
    a = np.concatenate([b[:, 10:], b[:, :10]], axis=1)  # a(x) = b(x + 10) for x < 50
    fw, bw = np.zeros((h, w, 2), np.float32), np.zeros((h, w, 2), np.float32)
    fw[..., 0], bw[..., 0] = 10.0, -10.0
    columns = trusted(a, b, fw, bw)[0, 0].numpy().min(axis=0)
    assert columns[:50].all() and not columns[50:].any(), np.flatnonzero(columns)


def _backward(fw: np.ndarray) -> np.ndarray:
    """b -> a flow of an affine a -> b flow, by sampling -fw where each b pixel came from (one fixed-point step)."""
    h, w = fw.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    bw = -fw.copy()
    for _ in range(3):
        bw = -cv2.remap(fw, xs + bw[..., 0], ys + bw[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return bw


def test_each_pair_is_prealigned_by_its_own_frames_features():
    """SIFT features are shared between a frame's flows (found by identity), never lent to another frame:
    after (a, b), the homographies of (b, a) and of (a, c), a pan half as long, are still each pair's own."""
    from grade_flow import PrealignedDeepFlow

    a, b, ab = _pan_pair(28.0)
    _, c, ac = _pan_pair(14.0)
    grader = PrealignedDeepFlow()
    h, w = ab.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    points = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    for x, y, exact in ((a, b, ab), (b, a, _backward(ab)), (a, c, ac)):
        q = grader.homography(x, y) @ points
        moved = (q[:2] / q[2] - points[:2]).T.reshape(h, w, 2)
        inner = (slice(20, -20), slice(60, -60))
        assert np.median(np.linalg.norm(moved - exact, axis=-1)[inner]) < 0.5
    assert len(grader.features) == 3  # each frame's features found once
