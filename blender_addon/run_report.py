"""What the engine said about a result: report.json's warping errors and report.png, shown in Blender.

The engine writes both beside the stylized frames (issue 18). The panel shows the mean warping
error (and per-frame stylization's, where the run measured it with ``--compare-perframe``); the
Open Report operator shows report.png in an Image Editor. Nothing here imports the engine.
"""

from __future__ import annotations

import json
from pathlib import Path

import bpy

__all__ = ["REPORT_JSON", "REPORT_IMAGE", "result_folder", "warping_errors", "summary_line", "show_image"]

REPORT_JSON = "report.json"
REPORT_IMAGE = "report.png"

_cache: dict[str, tuple[tuple, tuple]] = {}  # report.json path -> (its stat, figures): panels redraw often


def result_folder(result) -> Path:
    """The folder of a result strip's frames, where the engine wrote its reports."""
    return Path(bpy.path.abspath(result.directory))


def warping_errors(folder: Path) -> tuple[float | None, float | None] | None:
    """(flowstyle's mean warping error, per-frame stylization's or None) from ``folder``'s report.json;
    None when there is no readable report."""
    path = folder / REPORT_JSON
    try:
        st = path.stat()
    except OSError:
        return None
    stamp = (st.st_mtime_ns, st.st_size, st.st_ino)  # the engine replaces the file: a new inode
    cached = _cache.get(str(path))
    if cached and cached[0] == stamp:
        return cached[1]
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))["summary"]
        figures = (summary.get("warping_error_mean"), summary.get("warping_error_perframe_mean"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        figures = None
    _cache[str(path)] = (stamp, figures)
    return figures


def summary_line(folder: Path) -> str | None:
    """'Warping error 0.0096 (per-frame 0.0216: 2.2x less)' for the panel, or None without a figure."""
    figures = warping_errors(folder)
    if not figures or figures[0] is None:
        return None
    ours, per_frame = figures
    if per_frame is None:
        return f"Warping error {ours:.4f}"
    ratio = f": {per_frame / ours:.1f}x less" if ours > 0 else ""
    return f"Warping error {ours:.4f} (per-frame {per_frame:.4f}{ratio})"


def show_image(context, path: Path) -> str:
    """Load ``path`` (once; reloaded if it changed) and show it in an Image Editor.

    An open Image Editor shows it; otherwise a new window opens with one. Headless (no windows)
    the image is only loaded. Returns what happened, for the operator's report.
    """
    image = bpy.data.images.load(str(path), check_existing=True)
    image.reload()  # a re-run replaced the file under the same name
    windows = list(context.window_manager.windows) if not bpy.app.background else []
    for window in windows:
        for area in window.screen.areas:
            if area.type == 'IMAGE_EDITOR':
                area.spaces.active.image = image
                return f"Showing '{image.name}' in the Image Editor"
    if not windows:
        return f"Loaded '{image.name}' (no window to show it in)"
    before = set(context.window_manager.windows[:])
    with context.temp_override(window=windows[0]):
        bpy.ops.wm.window_new()
    new = [w for w in context.window_manager.windows if w not in before]
    if not new:
        return f"Loaded '{image.name}': open an Image Editor to see it"
    area = max(new[0].screen.areas, key=lambda a: a.width * a.height)
    area.type = 'IMAGE_EDITOR'
    area.spaces.active.image = image
    return f"Showing '{image.name}' in a new window"
