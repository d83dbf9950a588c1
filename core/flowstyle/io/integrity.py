"""Is every frame of a clip whole? Checked cheaply before the first frame is written (DESIGN 8).

A damaged frame in the middle of a shot must stop the run before any output exists, not after
half the shot was written. So each frame is read through once, up front, as cheaply as its format
allows, and the run then streams without surprises:

- PNG: every chunk's CRC and the end marker (``PIL.Image.verify``), without inflating the pixels;
- JPEG: decoded at 1/8 scale (``draft``), which still reads every entropy-coded byte, so a
  truncated file is found (OpenCV would fill its missing rows with grey and say nothing);
- other formats: decoded in full, as the run will;
- video: every frame of the range is grabbed (decoded without colour conversion or copies).
"""
from __future__ import annotations

from pathlib import Path

from ..base.errors import FlowstyleError
from .images import decode_file, exif_orientation
from .video import open_video

__all__ = ["checked_image_size", "check_video_frames"]


def _damaged(path: Path, why: str) -> FlowstyleError:
    return FlowstyleError(f"frame '{path}' is damaged ({why}): replace or remove it (nothing was written)")


def checked_image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file whose whole body reads; FlowstyleError when it is damaged."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            size, fmt = im.size, im.format
            if fmt == "PNG":
                im.verify()
            elif fmt == "JPEG":
                im.draft(im.mode, (max(1, size[0] // 8), max(1, size[1] // 8)))
                im.load()
    except UnidentifiedImageError:
        fmt = None  # a format PIL does not know: OpenCV's full decode decides
    except Exception as exc:  # noqa: BLE001 - PIL reports damage with many exception types
        raise _damaged(path, str(exc) or type(exc).__name__) from None
    if fmt in ("PNG", "JPEG"):
        return size[::-1] if exif_orientation(path) in (5, 6, 7, 8) else size  # as decode_file turns it
    raw = decode_file(path)
    if raw is None:
        raise _damaged(path, "it does not decode as an image")
    return raw.shape[1], raw.shape[0]


def check_video_frames(path: Path, end: int) -> None:
    """Every frame up to ``end`` (1-based) of the video decodes; FlowstyleError naming the last good one."""
    cap = open_video(path)
    try:
        for n in range(end):
            if not cap.grab():
                raise FlowstyleError(f"video '{path}' ends after {n} decodable frames, but the clip needs {end}: "
                                     f"it is truncated or damaged; use --frames 1:{n} or re-export it (nothing was written)")
    finally:
        cap.release()
