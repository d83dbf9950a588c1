"""Image files: decode (8/16-bit, gray, alpha) and write PNGs atomically (temp file + rename).

A killed run therefore never leaves a half-written file under its final name.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from ..base.errors import FlowstyleError

__all__ = ["IMAGE_EXTENSIONS", "decode_file", "normalize", "read_image", "write_png", "atomic_write_bytes",
           "linear_to_srgb", "REDUCIBLE",
           "exif_orientation"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".exr")


REDUCIBLE = (".jpg", ".jpeg")  # formats whose decoder itself works at 1/2, 1/4, 1/8 (no alpha, 8 bit)
_REDUCED = {n: flag | cv2.IMREAD_IGNORE_ORIENTATION  # turned below, as every other decode is
            for n, flag in ((2, cv2.IMREAD_REDUCED_COLOR_2), (4, cv2.IMREAD_REDUCED_COLOR_4), (8, cv2.IMREAD_REDUCED_COLOR_8))}
# EXIF orientation (tag 0x0112) -> how to turn the stored pixels upright (the TIFF/EXIF definitions)
_UPRIGHT = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
            5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1),
            7: lambda a: a.swapaxes(0, 1)[::-1, ::-1], 8: lambda a: np.rot90(a, 1)}


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_without_exif(path: Path | str) -> bool:
    """True for a PNG file with no eXIf chunk, found by walking the chunk headers (PIL decodes the
    whole image to look for one, 12 ms a 1024x436 frame)."""
    try:
        with open(path, "rb") as f:
            if f.read(8) != _PNG_SIGNATURE:
                return False
            while len(head := f.read(8)) == 8:
                if head[4:] == b"eXIf":
                    return False
                if head[4:] == b"IEND":
                    return True
                f.seek(int.from_bytes(head[:4], "big") + 4, os.SEEK_CUR)  # data and CRC
    except OSError:
        pass
    return False  # truncated or unreadable: PIL decides


def exif_orientation(path: Path | str) -> int:
    """The EXIF orientation of an image file (1, upright, when it has none or is not one PIL reads)."""
    from PIL import Image

    if _png_without_exif(path):
        return 1
    try:
        with Image.open(path) as im:
            value = im.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - no readable EXIF is no rotation; damage is found elsewhere
        return 1
    return value if value in _UPRIGHT else 1


def decode_file(path: Path | str, reduce: int = 1) -> Optional[np.ndarray]:
    """The raw OpenCV array (BGR(A)/gray, 8/16 bit or float) of an image file, or None when it does not decode.

    Reads the bytes first, so non-ASCII paths work on every OS. OpenCV's OpenEXR codec is off
    unless asked for; it is switched on when an ``.exr`` file is read (the user's own frames),
    not for every file. The pixels come upright: an EXIF orientation is applied (``cv2.imread``
    does so, but not with ``IMREAD_UNCHANGED``, the one flag that keeps alpha and 16 bit). ``reduce`` (2, 4 or 8) decodes a JPEG at that fraction of its size (the
    sides rounded up) without ever holding the full-size pixels; other formats ignore it.
    """
    if Path(path).suffix.lower() == ".exr":
        os.environ["OPENCV_IO_ENABLE_OPENEXR"] = "1"  # read by OpenCV at its first EXR decode
    data = np.fromfile(str(path), dtype=np.uint8)
    if not data.size:
        return None
    reduced = reduce > 1 and Path(path).suffix.lower() in REDUCIBLE
    raw = cv2.imdecode(data, _REDUCED[reduce] if reduced else cv2.IMREAD_UNCHANGED)  # neither turns by EXIF
    turn = _UPRIGHT.get(exif_orientation(path)) if raw is not None else None
    return np.ascontiguousarray(turn(raw)) if turn else raw


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """The sRGB transfer curve (IEC 61966-2-1) on linear values, clipped to [0, 1]."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)


def normalize(raw: np.ndarray, where: str) -> tuple[np.ndarray, Optional[np.ndarray], int]:
    """OpenCV BGR(A)/gray, 8 or 16 bit or float -> (RGB float32, alpha float32 or None, bit depth).

    Float pixels (EXR, float TIFF) are scene-linear, as renderers write them: their colour goes
    through the sRGB curve (the networks and the PNG output are sRGB) and they come out as 16 bit.
    """
    if raw.dtype == np.uint8:
        depth, scale = 8, 255.0
    elif raw.dtype == np.uint16:
        depth, scale = 16, 65535.0
    elif raw.dtype in (np.float32, np.float64):
        depth, scale = 16, 1.0
    else:
        raise FlowstyleError(f"unsupported pixel type {raw.dtype} in {where}: use 8- or 16-bit PNG, JPEG or TIFF")
    img = raw.astype(np.float32) / scale
    if img.ndim == 2:
        img = img[..., None]
    alpha = None
    if img.shape[2] == 4:
        alpha = np.clip(img[..., 3], 0.0, 1.0)
        img = img[..., :3]
    elif img.shape[2] == 2:  # gray + alpha
        alpha = np.clip(img[..., 1], 0.0, 1.0)
        img = img[..., :1]
    if raw.dtype.kind == "f":
        img = linear_to_srgb(img)
    if img.shape[2] == 1:
        rgb = np.repeat(img, 3, axis=2)
    else:  # BGR -> RGB: OpenCV's swap writes a contiguous array (numpy's clip of the reversed view took 9 ms
        rgb = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGR2RGB)  # a 1024 x 436 frame, of this one 0.6)
    return np.clip(rgb, 0.0, 1.0, out=rgb), alpha, depth


def read_image(path: Path | str, what: str = "image") -> tuple[np.ndarray, Optional[np.ndarray], int]:
    """Read an image file (8/16-bit, gray, alpha) as (RGB float32 [0,1], alpha or None, bit depth)."""
    path = Path(path)
    if not path.is_file():
        raise FlowstyleError(f"cannot read {what} '{path}': no such file")
    raw = decode_file(path)
    if raw is None:
        raise FlowstyleError(f"cannot read {what} '{path}': not an image OpenCV can decode (use PNG, JPEG or TIFF)")
    return normalize(raw, f"{what} '{path}'")


def write_png(path: Path, rgb: np.ndarray, alpha: Optional[np.ndarray] = None, bit_depth: int = 8) -> None:
    """Write an (H, W, 3) float [0, 1] image as PNG atomically (temp file in the same folder + rename).

    A killed run therefore never leaves a half-written frame under the final name.
    """
    scale, dtype = (65535.0, np.uint16) if bit_depth == 16 else (255.0, np.uint8)
    # rounded, then RGB -> BGR by OpenCV: on contiguous arrays (numpy on the reversed view took 9 ms a 1024 x 436 frame)
    data = cv2.cvtColor((np.clip(rgb, 0.0, 1.0) * scale + 0.5).astype(dtype), cv2.COLOR_RGB2BGR)
    if alpha is not None:
        data = np.concatenate([data, (np.clip(alpha, 0.0, 1.0) * scale + 0.5).astype(dtype)[..., None]], axis=2)
    ok, buf = cv2.imencode(".png", data)
    if not ok:
        raise FlowstyleError(f"cannot encode '{path}' as PNG")
    atomic_write_bytes(path, buf.tobytes())


def _read_umask() -> int:
    """The process's umask. Reading it means setting it, which is not thread-safe, so it is read
    once, when this module is imported (the umask is not changed mid-run)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write bytes to ``path`` via a temp file in the same folder and ``os.replace``."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            if hasattr(os, "fchmod"):  # mkstemp makes 0600: give the file the mode open() would
                os.fchmod(fd, 0o666 & ~_UMASK)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise FlowstyleError(f"cannot write '{path}': {exc.strerror or exc}; check the output folder is writable and has space") from None
