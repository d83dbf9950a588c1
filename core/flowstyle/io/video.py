"""Opening a video file the one way every reader here uses: with its rotation metadata applied."""
from __future__ import annotations

from pathlib import Path

import cv2

__all__ = ["open_video"]


def open_video(path: Path | str) -> cv2.VideoCapture:
    """A capture whose frames come upright: a phone's portrait clip stored sideways with a rotation
    in its metadata (``CAP_PROP_ORIENTATION_META``) is turned as players turn it. OpenCV's FFmpeg
    reader does not do that unless asked (``CAP_PROP_ORIENTATION_AUTO``)."""
    cap = cv2.VideoCapture(str(path))
    if cap.isOpened():
        cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    return cap
