"""The benchmarks' independent grader: OpenCV DeepFlow after taking out the camera's motion.

DeepFlow alone loses fast camera moves: on sintel_cave_2 at 480 px the camera pans ~27 px a frame,
and between frames 10 apart most of the picture has moved further than DeepFlow searches. It then
returns a small, smooth flow that passes the forward-backward check over most of the frame
(coverage 0.95 at 10 frames on cave_2), so a grade with it measures the grader's error. Here a
homography fitted to SIFT matches (RANSAC) takes the camera's motion out first, DeepFlow finds
what is left, and the two are composed. Nothing here shares code or estimates with the engine's
DIS flow. On the cave_2 ground-truth pair (small motion) both give 1.0 px end-point error; on
frames of cave_2 1 to 10 apart the input carried by it is closer to the target frame.

``trusted`` is where a grade may look: the forward-backward check (DESIGN 4.2) and colour
constancy, i.e. the input carried by the flow matches the input within ``COLOUR_TOLERANCE`` in
every channel. The second check is a heuristic: it drops a flow that is consistent but wrong
(it carries a pixel to a different colour), and also pixels whose lighting changes.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from flowstyle.base.recent import Recent
from flowstyle.base.tensors import to_tensor
from flowstyle.motion.masks import consistency_mask
from flowstyle.motion.warp import warp

COLOUR_TOLERANCE = 15 / 255
MIN_INLIERS = 40


def _gray(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor((np.clip(rgb, 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)


def _rgb(frame) -> np.ndarray:
    return frame.rgb if hasattr(frame, "rgb") else frame


class PrealignedDeepFlow:
    """Flow a -> b (H, W, 2) float32 by homography + DeepFlow; ``pair`` gives (a -> b, b -> a).

    a and b are (H, W, 3) RGB arrays or the engine's frames; flows between frames are kept in
    ``cache`` (a :class:`~flowstyle.motion.FlowCache`) when one is given."""

    NAME = "prealigned-deepflow"

    def __init__(self, cache=None):
        self._deepflow = cv2.optflow.createOptFlow_DeepFlow()
        self._sift = cv2.SIFT_create(4000)
        self.cache = cache
        # SIFT of an image, found again by identity for the last few: a pair's two flows and the next pair
        # share each frame's, so SIFT runs once a frame instead of four times a pair (the same keypoints,
        # so the same grade; 0.11 s a 1024-px frame)
        self.features = Recent(lambda image: self._sift.detectAndCompute(_gray(image), None), keep=4)

    def homography(self, a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
        """H with b(H x) ~ a(x) from SIFT matches (ratio test, RANSAC 3 px); None if too few inliers."""
        (ka, da), (kb, db) = self.features(a), self.features(b)
        if da is None or db is None or len(ka) < MIN_INLIERS or len(kb) < MIN_INLIERS:
            return None
        good = [m for m, n in (p for p in cv2.BFMatcher().knnMatch(da, db, k=2) if len(p) == 2)
                if m.distance < 0.75 * n.distance]
        if len(good) < MIN_INLIERS:
            return None
        pa = np.float32([ka[m.queryIdx].pt for m in good])
        pb = np.float32([kb[m.trainIdx].pt for m in good])
        H, inliers = cv2.findHomography(pa, pb, cv2.RANSAC, 3.0)
        return H if H is not None and inliers.sum() >= MIN_INLIERS else None

    def flow(self, a, b) -> np.ndarray:
        cached = self.cache is not None and hasattr(a, "key") and hasattr(b, "key")
        if cached and (hit := self.cache.get(self.NAME, a, b)) is not None:
            return hit
        flow = self._flow(_rgb(a), _rgb(b))
        if cached:
            self.cache.put(self.NAME, a, b, flow)
        return flow

    def _flow(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        H = self.homography(a, b)
        if H is None:
            return self._deepflow.calc(_gray(a), _gray(b), None)
        h, w = a.shape[:2]
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)

        def apply(x, y):
            p = np.stack([x, y, np.ones_like(x)], -1) @ H.T
            return p[..., 0] / p[..., 2], p[..., 1] / p[..., 2]

        hx, hy = apply(xs, ys)
        b_aligned = cv2.remap(b, hx.astype(np.float32), hy.astype(np.float32), cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        rest = self._deepflow.calc(_gray(a), _gray(b_aligned), None)  # a(x) ~ b_aligned(x + rest)
        fx, fy = apply(xs + rest[..., 0], ys + rest[..., 1])
        return np.stack([fx - xs, fy - ys], -1).astype(np.float32)

    def pair(self, a, b) -> tuple[np.ndarray, np.ndarray]:
        return self.flow(a, b), self.flow(b, a)


def trusted(a, b, fw: np.ndarray, bw: np.ndarray) -> torch.Tensor:
    """(1, 1, H, W) mask of a's pixels whose flow ``fw`` (a -> b) a grade may use (``bw``: b -> a).

    Both checks on a's pixels: the forward-backward check with a as the frame the mask lives on
    (``consistency_mask``'s "frame i", whose flow to the other frame is ``fw``), and the colour check."""
    fw_t, bw_t = to_tensor(fw), to_tensor(bw)
    carried = warp(to_tensor(_rgb(b)), fw_t)  # b seen at a's pixels
    same = ((carried - to_tensor(_rgb(a))).abs().amax(1, keepdim=True) < COLOUR_TOLERANCE).float()
    return consistency_mask(bw_t, fw_t) * same
