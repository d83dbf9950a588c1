"""Scene building blocks for the add-on tests (imported by the tests, not a fixture file)."""

from __future__ import annotations

import time
from pathlib import Path

import bpy
import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = (ROOT / ".." / "shared" / "data").resolve()
CLIPS = DATA / "clips"
RUBBERWHALE = CLIPS / "middlebury_rubberwhale"
CAVE = CLIPS / "sintel_cave_2" / "sintel_cave_2_clean.mp4"


def need(path: Path) -> Path:
    """``path``, or skip: test clips live in ../shared/data, outside the repository."""
    if not path.exists():
        pytest.skip(f"test clip not found: {path} (the shared data folder sits next to the repository)")
    return path


def image_strip(sc, count: int = 8, channel: int = 1, start: int = 1, folder: Path | None = None,
                names: list[str] | None = None, name: str = "whale"):
    """An image strip of the rubberwhale frames (or ``names`` in ``folder``)."""
    folder = folder or need(RUBBERWHALE)
    names = names or [f"frame_{i:04d}.png" for i in range(1, count + 1)]
    strip = sc.sequence_editor.strips.new_image(name, str(folder / names[0]), channel, start)
    for file_name in names[1:]:
        strip.elements.append(file_name)
    return strip


def movie_strip(sc, channel: int = 1, start: int = 1, path: Path | None = None, name: str = "cave"):
    """A movie strip of the Sintel cave clip (50 frames)."""
    path = path or need(CAVE)
    return sc.sequence_editor.strips.new_movie(name, str(path), channel, start)


def add_style(strip, builtin: int = 3, size: int = 128):
    """Give ``strip`` one built-in style and a small working size."""
    style = strip.flowstyle.styles.add()
    style.source, style.builtin = 'BUILTIN', builtin
    strip.flowstyle.size = size
    strip.flowstyle.enabled = True
    return strip


def run_op(name: str, strip, **kwargs):
    """Run ``bpy.ops.flowstyle.<name>`` with ``strip`` active (ERROR reports raise RuntimeError)."""
    op = getattr(bpy.ops.flowstyle, name)
    with bpy.context.temp_override(active_strip=strip):
        return op(**kwargs)


def strip_snapshot(strip) -> dict:
    """The source-side properties a flowstyle run must never change."""
    names = ["name", "channel", "frame_start", "frame_final_start", "frame_final_end", "frame_offset_start",
             "frame_offset_end", "mute", "blend_type", "blend_alpha", "use_reverse_frames"]
    snap = {n: getattr(strip, n) for n in names}
    snap["path"] = strip.filepath if strip.type == 'MOVIE' else strip.directory
    snap["elements"] = [e.filename for e in strip.elements]
    snap["transform"] = (strip.transform.scale_x, strip.transform.offset_x, strip.transform.rotation)
    return snap


def png_complete(path: Path) -> bool:
    """True when ``path`` is a whole PNG (signature at the start, IEND chunk at the end)."""
    data = path.read_bytes()
    return data.startswith(b"\x89PNG\r\n\x1a\n") and data[-8:-4] == b"IEND"


def step_until(job, predicate, timeout: float = 60.0) -> None:
    """Call the modal timer body (``jobs.step``) until ``predicate()`` holds, as Blender's timer would."""
    from blender_addon import jobs

    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        jobs.step(job)
        time.sleep(0.02)
    assert predicate(), "timed out"
