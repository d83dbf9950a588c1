"""What the files of an output folder are called: the one place that names them.

    OUT/frame_00001.png ...        the stylized frames (1-based within the range)
    OUT/preview.png                --preview
    OUT/report.json                the run's report (report-chunk-I-of-N.json, report-stitch.json)
    OUT/report.png                 the run as a picture: frames, time slices, warping error (plain run, stitch)
    OUT/debug/mask_00002_j1.png    --debug: the reliability mask tying frame 2 to frame 1 (j-1: to frame 3)
    OUT/.flowstyle/keys/00001.key  --resume: what frame 1 was made from
    OUT/.flowstyle/flow/           the default flow cache
    OUT/.flowstyle/lock            one job per folder
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator, Optional

__all__ = ["frame_name", "PREVIEW_NAME", "REPORT_IMAGE_NAME", "report_name", "mask_name", "state_dir", "keys_dir", "key_path",
           "flow_cache_dir", "passes_dir", "lock_path", "stale_temp_files", "is_output_name"]

_OUTPUT_NAME = re.compile(r"(frame_\d{5}\.png|preview\.png|report\.png|report(-chunk-\d+-of-\d+|-stitch)?\.json)")

PREVIEW_NAME = "preview.png"
REPORT_IMAGE_NAME = "report.png"


def frame_name(index: int) -> str:
    """Output file name of frame ``index`` (1-based)."""
    return f"frame_{index:05d}.png"


def report_name(chunk: Optional[tuple[int, int]] = None, stitch: bool = False) -> str:
    if chunk:
        return f"report-chunk-{chunk[0]}-of-{chunk[1]}.json"
    return "report-stitch.json" if stitch else "report.json"


def mask_name(index: int, offset: int) -> str:
    """Debug image of the mask tying frame ``index`` (1-based) to frame ``index - offset`` (a negative
    offset: a later frame, from a backward pass of multi-pass quality mode)."""
    return f"mask_{index:05d}_j{offset}.png"


def state_dir(out: Path) -> Path:
    return Path(out) / ".flowstyle"


def keys_dir(out: Path) -> Path:
    return state_dir(out) / "keys"


def key_path(out: Path, index: int) -> Path:
    return keys_dir(out) / f"{index:05d}.key"


def flow_cache_dir(out: Path) -> Path:
    return state_dir(out) / "flow"


def passes_dir(out: Path) -> Path:
    return state_dir(out) / "passes"


def lock_path(out: Path, chunk: Optional[tuple[int, int]] = None) -> Path:
    return state_dir(out) / (f"lock-chunk-{chunk[0]}" if chunk else "lock")


def is_output_name(name: str) -> bool:
    """Whether a file called ``name`` in OUT is one a run writes (case-insensitively)."""
    return _OUTPUT_NAME.fullmatch(name.lower()) is not None


def stale_temp_files(out: Path) -> Iterator[Path]:
    """Temp files of this program's atomic writes that a killed run left (``.NAME.XXXX.tmp`` beside
    a file it names); nothing else, so a user's own ``.notes.txt.tmp`` stays."""
    out = Path(out)
    for folder, owned in ((out, is_output_name), (keys_dir(out), lambda n: re.fullmatch(r"\d{5}\.key", n) is not None)):
        if not folder.is_dir():
            continue
        for p in folder.glob(".*.tmp"):
            target = p.name[1:].rsplit(".", 2)[0]  # ".frame_00001.png.ab12cd.tmp" -> "frame_00001.png"
            if owned(target) and p.is_file():
                yield p
