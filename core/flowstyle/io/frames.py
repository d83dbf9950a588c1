"""Frame sources: video files, frame folders, printf patterns, streamed at working size.

Frames stream: a source decodes one frame at a time, so memory stays bounded by the few
frames the pipeline keeps, whatever the clip length.
"""
from __future__ import annotations

import hashlib
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import cv2
import numpy as np

from ..base.errors import FlowstyleError
from .images import IMAGE_EXTENSIONS, REDUCIBLE, decode_file, normalize
from .integrity import check_video_frames, checked_image_size
from .video import open_video

__all__ = ["Frame", "FrameSource", "open_source", "fit_size", "MIN_SIDE"]

RECENT = 3  # frames FrameSource.read keeps to give again (the one read ahead, the one in hand, the one before)
MIN_SIDE = 16  # smaller frames break the flow's patch pyramid (DIS) and the networks' downsampling


@dataclass(frozen=True)
class Frame:
    """One decoded frame at working size.

    Attributes:
        index: 0-based position within the requested range (output file ``index + 1``).
        rgb: (H, W, 3) float32 in [0, 1].
        alpha: (H, W) float32 in [0, 1], or None when the input has none; passed through.
        bit_depth: 8 or 16, the input's, so the output keeps it.
        key: content fingerprint (for the flow cache and ``--resume``).
    """

    index: int
    rgb: np.ndarray
    alpha: Optional[np.ndarray]
    bit_depth: int
    key: str


def fit_size(width: int, height: int, max_side: Optional[int]) -> tuple[int, int]:
    """(width, height) scaled so the longest side is ``max_side`` (never upscaled); even sizes kept >= 2."""
    if not max_side or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(2, round(width * scale)), max(2, round(height * scale))


def _resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (img.shape[1], img.shape[0]) == size:
        return img
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def _fingerprint(rgb: np.ndarray, alpha: Optional[np.ndarray]) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(np.ascontiguousarray(rgb).view(np.uint8))
    if alpha is not None:
        h.update(np.ascontiguousarray(alpha).view(np.uint8))
    h.update(str(rgb.shape).encode())
    return h.hexdigest()


class FrameSource:
    """A clip: video file, folder of frames, or printf pattern, restricted to a frame range.

    Iterating yields :class:`Frame` objects one at a time at working size; ``read(k)`` gives
    random access (0-based within the range) for passes that go backwards.
    """

    def __init__(self, path: Path, kind: str, files: list[Path], count: int, native: tuple[int, int],
                 start: int, end: int, max_side: Optional[int]):
        self.path, self.kind, self._files = path, kind, files
        self.warnings: list[str] = []  # what the user should hear about, said once the run starts
        self.native_count, self.native_size = count, native
        self.start, self.end = start, end  # 1-based inclusive, in the input's own order
        self.size = fit_size(*native, max_side)  # (width, height) at working resolution
        # decoders that can (JPEG) decode at 1/2, 1/4 or 1/8 when the working size is that much smaller
        self._reduce = max([r for r in (1, 2, 4, 8) if min(n // r - w for n, w in zip(native, self.size)) >= 0])
        self._cap: Optional[cv2.VideoCapture] = None
        self._cap_pos = -1
        self._recent: list[Frame] = []  # the last RECENT frames read, newest last
        self._lock = threading.Lock()  # one decode at a time: the video reader and _recent are shared
        self._ahead: Optional[tuple[int, Future]] = None  # the frame read_ahead started
        self._worker: Optional[ThreadPoolExecutor] = None

    def __len__(self) -> int:
        return self.end - self.start + 1

    @property
    def width(self) -> int:
        return self.size[0]

    @property
    def height(self) -> int:
        return self.size[1]

    def describe(self) -> str:
        return f"{self.path} ({self.kind}, frames {self.start}-{self.end} of {self.native_count}, {self.width}x{self.height})"

    def _decode(self, native_index: int) -> np.ndarray:
        """Raw OpenCV array of frame ``native_index`` (0-based in the whole input)."""
        if self.kind != "video":
            f = self._files[native_index]
            raw = decode_file(f, self._reduce)
            if raw is None:
                raise FlowstyleError(f"cannot decode frame '{f}': the file is damaged or not an image; replace or remove it")
            expected = [-(-n // self._reduce) for n in self.native_size] if f.suffix.lower() in REDUCIBLE \
                else self.native_size  # a reduced decode rounds up
            if [raw.shape[1], raw.shape[0]] != list(expected):
                raise FlowstyleError(
                    f"frame '{f}' is {raw.shape[1]}x{raw.shape[0]} but the clip is "
                    f"{self.native_size[0]}x{self.native_size[1]}: all frames of a sequence must have one size"
                )
            return raw
        if self._cap is None:
            self._cap = open_video(self.path)
            self._cap_pos = 0
        if native_index != self._cap_pos:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, native_index)
            self._cap_pos = native_index
        ok, raw = self._cap.read()
        if not ok or raw is None:
            raise FlowstyleError(
                f"cannot decode frame {native_index + 1} of '{self.path}': the video ends early or is damaged; "
                f"try --frames {self.start}:{native_index}"
            )
        self._cap_pos += 1
        return raw

    def check_frames(self) -> None:
        """Check every frame of the range decodes, and (files) has the clip's size, as cheaply as
        its format allows (:mod:`flowstyle.io.integrity`).

        Run before any work, so a damaged or mixed-size shot is refused before a frame is written.
        """
        if self.kind == "video":
            check_video_frames(self.path, self.end)
            return
        for f in self.files or self._files:
            size = checked_image_size(f)
            if size != self.native_size:
                raise FlowstyleError(
                    f"frame '{f}' is {size[0]}x{size[1]} but the clip is "
                    f"{self.native_size[0]}x{self.native_size[1]}: all frames of a sequence must have one size"
                )

    def read(self, k: int) -> Frame:
        """Frame ``k`` (0-based within the range) at working size.

        The last :data:`RECENT` frames read are kept and given again (the same object: frames' pixels
        are never changed in place), so a second reader of the frame in hand, a painted key's walk
        beside the main loop, does not decode it again (25 ms a 1024-px MP4 frame, more where it seeks).
        """
        if not 0 <= k < len(self):
            raise IndexError(f"frame {k} outside 0..{len(self) - 1}")
        ahead = self._ahead
        if ahead is not None and ahead[0] == k:
            try:
                return ahead[1].result()
            except Exception:
                pass  # decoded again below, so the error is raised here, where the frame is wanted
        return self._read(k)

    def _read(self, k: int) -> Frame:
        with self._lock:
            for frame in self._recent:
                if frame.index == k:
                    return frame
            raw = _resize(self._decode(self.start - 1 + k), self.size)  # before the float copy: a huge frame stays cheap
            rgb, alpha, depth = normalize(raw, f"frame {self.start + k} of '{self.path}'")
            frame = Frame(k, rgb, alpha, depth, _fingerprint(rgb, alpha))
            self._recent = self._recent[-(RECENT - 1):] + [frame]
            return frame

    def read_ahead(self, k: int) -> None:
        """Start decoding frame ``k`` in a background thread; ``read(k)`` then waits for it.

        For a run whose network is not on the CPU: the decode then runs on a core the main thread
        leaves idle while it waits for the device. One frame ahead at most.
        """
        if not 0 <= k < len(self) or (self._ahead is not None and self._ahead[0] == k):
            return
        if self._worker is None:
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="flowstyle-decode")
        self._ahead = (k, self._worker.submit(self._read, k))

    @property
    def files(self) -> list[Path]:
        """The frame files of the range (empty for a video or a single image)."""
        return self._files[self.start - 1:self.end] if self.kind in ("folder", "pattern") else []

    def __iter__(self) -> Iterator[Frame]:
        for k in range(len(self)):
            yield self.read(k)

    def close(self) -> None:
        if self._worker is not None:
            self._worker.shutdown(wait=True)  # a frame read ahead finishes before the reader goes
            self._worker, self._ahead = None, None
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def _list_folder(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    return sorted(files, key=_natural_key)


def _natural_key(p: Path) -> list:
    """Natural order: runs of decimal digits, in any script (``re``'s ``\\d`` and ``int`` agree on which
    those are), compare as numbers; the rest (``²`` too, a digit to ``str.isdigit`` but not a number)
    compares as text. Numbers and text never meet at one position, so mixed names sort too."""
    parts = re.split(r"(\d+)", p.name)
    return [(1, int(t), "") if i % 2 else (0, 0, t) for i, t in enumerate(parts)]


def _list_pattern(pattern: str) -> tuple[list[Path], Optional[int]]:
    """Files matching a printf pattern (``shot_%04d.png``), counting up from the first that exists,
    and the number of the first file left out after a gap in the numbering (None when none is)."""
    folder = Path(pattern).parent
    name = Path(pattern).name
    m = re.search(r"%0?(\d*)d", name)
    if not m:
        raise FlowstyleError(f"'{pattern}' is not a printf frame pattern: use e.g. shot_%04d.png")
    regex = re.compile("^" + re.escape(name[: m.start()]) + r"(\d+)" + re.escape(name[m.end():]) + "$")
    found = []
    if folder.is_dir():
        for p in folder.iterdir():
            r = regex.match(p.name)
            if r and (not m.group(1) or len(r.group(1)) >= int(m.group(1))):
                found.append((int(r.group(1)), p))
    found.sort()
    files: list[Path] = []
    for n, p in found:  # a contiguous run from the first number
        if files and n != found[0][0] + len(files):
            break
        files.append(p)
    return files, (found[len(files)][0] if len(files) < len(found) else None)


def _parse_range(frames: Optional[tuple[int, int]], count: int, where: str) -> tuple[int, int]:
    if count <= 0:
        raise FlowstyleError(f"{where} has no frames: check the path and that the video is not empty")
    if frames is None:
        return 1, count
    start, end = frames
    if start < 1 or end < start:
        raise FlowstyleError(f"frame range {start}:{end} is empty or starts before 1: use START:END with 1 <= START <= END")
    if end > count:
        raise FlowstyleError(f"frame range {start}:{end} runs past the end of {where}, which has {count} frames")
    return start, end


def open_source(path: str | Path, frames: Optional[tuple[int, int]] = None, max_side: Optional[int] = None) -> FrameSource:
    """Open a video file, a frame folder or a printf pattern, checking everything a user can get wrong.

    Args:
        path: the input.
        frames: (start, end), 1-based and inclusive, or None for all.
        max_side: working size (longest side), never upscaled; None keeps the input's size.
    """
    text = str(path)
    p = Path(text)
    gap = None
    if "%" in p.name and not p.exists():  # a file or folder whose name holds a % is itself, not a pattern
        files, gap = _list_pattern(text)
        if not files:
            raise FlowstyleError(f"no frames match the pattern '{text}': check the folder and the number of digits")
        kind = "pattern"
    elif p.is_dir():
        files = _list_folder(p)
        if not files:
            raise FlowstyleError(f"the folder '{p}' holds no image frames ({', '.join(IMAGE_EXTENSIONS)})")
        kind = "folder"
    elif p.is_file():
        files, kind = [], "video"
        if p.suffix.lower() in IMAGE_EXTENSIONS:
            files, kind = [p], "image"
    else:
        raise FlowstyleError(f"input '{p}' does not exist: give a video file, a folder of frames or a pattern like shot_%04d.png")

    if kind == "video":
        cap = open_video(p)
        ok, first = cap.read() if cap.isOpened() else (False, None)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if ok else 0
        cap.release()
        if not ok or first is None:
            raise FlowstyleError(f"cannot read video '{p}': the file is damaged or in a format OpenCV cannot decode; convert it to H.264 MP4 or a PNG sequence")
        native = (first.shape[1], first.shape[0])
    else:
        first = decode_file(files[0])
        if first is None:
            raise FlowstyleError(f"cannot decode frame '{files[0]}': the file is damaged or not an image")
        count = len(files)
        native = (first.shape[1], first.shape[0])
    if min(native) < MIN_SIDE:
        raise FlowstyleError(f"input '{p}' is {native[0]}x{native[1]} pixels: too small to stylize "
                             f"(optical flow needs at least {MIN_SIDE} px a side)")
    start, end = _parse_range(frames, count, f"'{p}'")
    source = FrameSource(p, kind, files, count, native, start, end, max_side)
    if min(source.size) < MIN_SIDE:
        raise FlowstyleError(f"at --size {max_side} the frames of '{p}' would be {source.width}x{source.height} pixels: "
                             f"too small to stylize (at least {MIN_SIDE} px a side); use a larger --size")
    if kind == "pattern" and gap is not None:
        source.warnings.append(f"the numbering of '{text}' has a gap: frames {files[0].name} to {files[-1].name} "
                               f"are used, {gap} and later are not (rename them, or run them as a second clip)")
    return source


