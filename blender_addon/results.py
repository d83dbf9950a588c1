"""Result and preview strips: where they go, how they line up with the source, removal.

A result is an image strip of the engine's frames in a free channel above its source, over
the same timeline frames (holds and reverse included) and scaled so it covers the source
exactly, whatever the working size. The source strip and its media are never modified.
Call these on the main thread only, with prefetch paused (``compat.prefetch_paused``).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
from pathlib import Path

import bpy

from . import compat
from .planning import FrameMap, PlanError

__all__ = [
    "MAX_CHANNEL",
    "STAGING",
    "frame_name",
    "has_frames",
    "prepare_staging",
    "swap_in",
    "ready_count",
    "png_size",
    "free_channel",
    "result_strip",
    "preview_strips",
    "show_frames",
    "finish_result",
    "place_preview",
    "lift_previews",
    "missing_frames",
    "check_on_disk",
    "remove_outputs",
]

MAX_CHANNEL = 128
STAGING = "frames.new"
"""Beside ``frames/``: where a run writes while a result is already on disk (swapped in when complete)."""


def frame_name(index: int) -> str:
    """Engine output file name of frame ``index`` (1-based)."""
    return f"frame_{index:05d}.png"


def ready_count(frames_dir: Path, limit: int) -> int:
    """How many frames 1, 2, ... exist without a gap (at most ``limit``)."""
    count = 0
    while count < limit and (frames_dir / frame_name(count + 1)).is_file():
        count += 1
    return count


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG header."""
    with open(path, "rb") as fh:
        head = fh.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n":
        raise PlanError(f"'{path}' is not a PNG file: delete it and stylize again")
    return struct.unpack(">II", head[16:24])


def _overlaps(strip, start: int, end: int) -> bool:
    return strip.frame_final_start < end and start < strip.frame_final_end


def _first_free(editor, start: int, end: int, lowest: int, ignore: set[str], what: str) -> int:
    """Lowest channel >= ``lowest`` with no strip (but ``ignore``) over frames ``start..end-1``."""
    busy = {s.channel for s in compat.top_strips(editor) if s.name not in ignore and _overlaps(s, start, end)}
    for channel in range(max(1, lowest), MAX_CHANNEL + 1):
        if channel not in busy:
            return channel
    raise PlanError(f"no free channel above {what} over frames {start}-{end - 1}: make room above the strip")


def free_channel(editor, source, ignore=()) -> int:
    """Lowest channel above ``source`` that is empty over the source's whole range.

    ``ignore``: strips about to be replaced or moved (the old result, the source's previews).
    """
    start, end = int(source.frame_final_start), int(source.frame_final_end)
    ignored = {s.name for s in ignore if s is not None} | {source.name}
    return _first_free(editor, start, end, source.channel + 1, ignored, f"'{source.name}'")


def preview_channel(editor, source, frame: int, above: int = 0) -> int:
    """Channel for a one-frame preview at ``frame``: free there, above the source and ``above``
    (the result's channel), so the result never hides it."""
    ignored = {s.name for s in preview_strips(editor, source)} | {source.name}
    return _first_free(editor, frame, frame + 1, max(source.channel, above) + 1, ignored, f"'{source.name}'")


def lift_previews(editor, source, result_channel: int) -> None:
    """Move the source's previews above ``result_channel`` where the result would cover them."""
    for preview in preview_strips(editor, source):
        if preview.channel <= result_channel:
            frame = int(preview.frame_final_start)
            ignored = {preview.name, source.name}
            preview.channel = _first_free(editor, frame, frame + 1, result_channel + 1, ignored,
                                          f"the result of '{source.name}'")


def result_strip(editor, source):
    """The result strip made from ``source``, or ``None``."""
    name = source.flowstyle.result_name
    strip = compat.all_strips(editor).get(name) if name else None
    return strip if strip is not None and strip.flowstyle.role == 'RESULT' else None


def preview_strips(editor, source) -> list:
    """The preview strips made from ``source``."""
    return [s for s in compat.all_strips(editor)
            if s.flowstyle.role == 'PREVIEW' and s.flowstyle.source_name == source.name]


def _dir_for_strip(folder: Path) -> str:
    """``folder`` as an image strip directory: relative (``//``) when the .blend is saved."""
    text = str(folder) + os.sep
    if bpy.data.filepath:
        try:
            text = bpy.path.relpath(text)
        except ValueError:  # another drive on Windows
            pass
    return text


def _match_geometry(dst, src, dst_size: tuple[int, int]) -> None:
    """Scale/offset ``dst`` so it covers ``src`` exactly, and copy how ``src`` is shown."""
    element = src.elements[0] if len(src.elements) else None
    src_w = (element.orig_width if element is not None else 0) or dst_size[0]
    src_h = (element.orig_height if element is not None else 0) or dst_size[1]
    rx, ry = src_w / dst_size[0], src_h / dst_size[1]
    st, dt = src.transform, dst.transform
    dt.scale_x, dt.scale_y = st.scale_x * rx, st.scale_y * ry
    dt.offset_x, dt.offset_y, dt.rotation = st.offset_x, st.offset_y, st.rotation
    dt.origin = st.origin
    if hasattr(st, "filter"):
        dt.filter = st.filter
    sc, dc = src.crop, dst.crop
    dc.min_x, dc.max_x = round(sc.min_x / rx), round(sc.max_x / rx)
    dc.min_y, dc.max_y = round(sc.min_y / ry), round(sc.max_y / ry)
    for attr in ("use_flip_x", "use_flip_y", "use_reverse_frames", "strobe", "blend_type", "blend_alpha"):
        if hasattr(src, attr):
            setattr(dst, attr, getattr(src, attr))


def _new_image_strip(editor, source, name: str, folder: Path, first: Path, channel: int, frame: int,
                     role: str):
    strip = compat.new_image_strip(editor, name, str(first), channel, frame)
    strip.directory = _dir_for_strip(folder)
    strip.flowstyle.role = role
    strip.flowstyle.source_name = source.name
    _match_geometry(strip, source, png_size(first))
    return strip


def has_frames(folder: Path) -> bool:
    """True when ``folder`` holds at least one stylized frame."""
    return (folder / frame_name(1)).is_file() or (folder.is_dir() and any(
        _FRAME.match(p.name) for p in folder.iterdir()))


_FRAME = re.compile(r"^frame_(\d{5})\.png$")
_KEY = re.compile(r"^(\d{5})\.key$")


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def prepare_staging(final: Path, staging: Path, resume: bool) -> None:
    """Make ``staging`` ready for a run that must not touch the result in ``final``.

    A fresh run starts from an empty folder. A resumed run (Update) keeps what a cancelled
    run left in ``staging`` and adds links to ``final``'s frames with their resume keys, a
    frame and its key together and only where ``staging`` has neither: the engine then
    reuses every frame whose key still matches. The engine replaces files by renaming, so a
    link in ``staging`` never changes the file in ``final``.
    """
    if staging.exists() and not resume:
        shutil.rmtree(staging)
    staging.mkdir(parents=True, exist_ok=True)
    if not resume or not final.is_dir():
        return
    keys, staged_keys = final / ".flowstyle" / "keys", staging / ".flowstyle" / "keys"
    staged_keys.mkdir(parents=True, exist_ok=True)
    for path in final.iterdir():
        match = _FRAME.match(path.name)
        if not match:
            continue
        key_name = f"{match[1]}.key"
        if (staging / path.name).exists() or (staged_keys / key_name).exists():
            continue
        _link(path, staging / path.name)
        if (keys / key_name).is_file():
            _link(keys / key_name, staged_keys / key_name)
    flows = final / ".flowstyle" / "flow"
    if flows.is_dir():  # the flow cache: content-keyed files, written by renaming too
        for path in flows.rglob("*"):
            target = staging / ".flowstyle" / "flow" / path.relative_to(flows)
            if path.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            elif not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                _link(path, target)


def swap_in(staging: Path, final: Path) -> None:
    """Replace ``final`` by the complete run in ``staging`` (the old result is deleted last)."""
    old = final.with_name(final.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


def show_frames(editor, source, frames_dir: Path, fmap: FrameMap, count: int, channel: int, shrink: bool = True):
    """Make the result strip show frames 1..count (creating it on the first frame).

    With ``shrink=False`` a longer strip keeps its extra frames (an Update in progress).
    """
    if count <= 0:
        return result_strip(editor, source)
    strip = result_strip(editor, source)
    if strip is None:
        strip = _new_image_strip(editor, source, f"{source.name} (flowstyle)", frames_dir,
                                 frames_dir / frame_name(1), channel, fmap.first, 'RESULT')
        source.flowstyle.result_name = strip.name
        source.flowstyle.output_dir = _dir_for_strip(frames_dir)
    have = len(strip.elements)
    if count > have:
        for index in range(have + 1, count + 1):
            strip.elements.append(frame_name(index))
    elif count < have and shrink:
        for index in range(have - 1, count - 1, -1):
            strip.elements.pop(index)
    return strip


def finish_result(strip, fmap: FrameMap, complete: bool) -> None:
    """Give a result the source's holds (when complete) and drop stale cached images."""
    if complete:
        strip.frame_offset_start = -fmap.hold_before
        strip.frame_offset_end = -fmap.hold_after
    strip.invalidate_cache('RAW')


def place_preview(editor, source, image: Path, frame: int, channel: int):
    """Show ``image`` as a one-frame strip over ``source`` at timeline ``frame``."""
    for old in preview_strips(editor, source):
        compat.remove_strip(editor, old)
    strip = _new_image_strip(editor, source, f"{source.name} (preview)", image.parent, image, channel, frame,
                             'PREVIEW')
    strip.invalidate_cache('RAW')
    return strip


MISSING = "missing on disk"


def missing_frames(strip) -> int:
    """How many of an image strip's frames are not on disk."""
    folder = Path(os.path.normpath(bpy.path.abspath(strip.directory, library=strip.id_data.library)))
    return sum(1 for element in strip.elements if not (folder / element.filename).is_file())


def check_on_disk(scene) -> int:
    """Make each source's status say what its result shows on disk; returns the results with gaps.

    Runs after undo, redo and file load: those bring back strips, never files, so a result
    strip may list frames that a later run replaced or that someone deleted.
    """
    editor = scene.sequence_editor
    if editor is None:
        return 0
    strips = compat.all_strips(editor)
    broken = 0
    for strip in strips:
        if strip.flowstyle.role != 'RESULT':
            continue
        source = strips.get(strip.flowstyle.source_name)
        if source is None:
            continue
        missing = missing_frames(strip)
        total = len(strip.elements)
        if missing:
            broken += 1
            text = f"{missing} of {total} stylized frames of '{source.name}' are {MISSING}: run Update"
        elif MISSING in source.flowstyle.status:
            text = f"Stylized {total} frames of '{source.name}'"
        else:
            continue
        if source.flowstyle.status != text:
            source.flowstyle.status = text
    return broken


_OWN_FILES = re.compile(
    r"^(frame_\d{5}\.png|preview.*\.png|report\.(json|png)|keyframes\.json|\d{5}\.[A-Za-z0-9]+)$"
)


def remove_outputs(folder: Path) -> int:
    """Delete the files flowstyle wrote for one strip (and empty folders); returns how many.

    Only names flowstyle writes are removed, so a cache folder pointed at the wrong place
    loses nothing else. Staged inputs are links (or copies) and never the media itself;
    painted overrides (``overrides/``) are the artist's work and stay.
    """
    removed = 0
    if not folder.is_dir():
        return 0
    engine_cache = folder / "frames" / ".flowstyle"  # the engine's flow cache for these frames
    if engine_cache.is_dir() and not engine_cache.is_symlink():
        shutil.rmtree(engine_cache)
    for leftover in (folder / STAGING, folder / "frames.old"):  # an unfinished or interrupted re-run
        if leftover.is_dir() and not leftover.is_symlink():
            removed += sum(1 for p in leftover.glob("frame_*.png"))
            shutil.rmtree(leftover)
    for sub in (folder / "frames", folder / "preview", folder / "input", folder):
        if not sub.is_dir():
            continue
        for path in sub.iterdir():
            if _OWN_FILES.match(path.name) and (path.is_symlink() or path.is_file()):
                path.unlink()
                removed += 1
        try:
            sub.rmdir()
        except OSError:
            pass  # other files (the engine's caches, the user's) stay
    return removed
