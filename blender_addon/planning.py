"""From a strip to an engine job: media, visible frame range, styles, keyframes, folders.

Everything a user can get wrong here (missing media, no style, a playhead off the strip)
raises :class:`PlanError` with one line saying what, where and what to do; operators turn
it into ``self.report({'ERROR'}, ...)``. Nothing here changes the strip or its media.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import bpy

from . import preferences, worker
from .properties import style_spec

__all__ = [
    "PlanError",
    "FrameMap",
    "Plan",
    "frame_map",
    "make_plan",
    "strip_folder",
    "keyframes_payload",
    "safe_name",
    "check_strip",
]

SUPPORTED_TYPES = {'MOVIE', 'IMAGE'}


class PlanError(RuntimeError):
    """A problem with the strip or its settings the user can fix (one line)."""


@dataclass(frozen=True)
class FrameMap:
    """How a strip's timeline frames map to frames of its media.

    Convention:
        - media indices are 1-based, in the media's own order (movie frame number, or the
          position in the image strip's element list); the engine's ``--frames a:b`` uses them
        - ``first``/``last`` are the timeline frames (inclusive) where media is visible;
          frames the strip holds before/after its media are ``hold_before``/``hold_after``
        - output frame k of the engine is media frame ``a + k - 1``, whatever ``reverse`` says
    """

    frame_start: int  # timeline frame of the first content frame (trims not applied)
    length: int  # content frames (strip.frame_duration)
    offset: int  # media frames skipped before the content (hold offset)
    reverse: bool
    first: int
    last: int
    hold_before: int
    hold_after: int

    def media_index(self, frame: int) -> int:
        """Media index shown at timeline ``frame`` (which must lie in ``first..last``)."""
        position = frame - self.frame_start
        if self.reverse:
            position = self.length - 1 - position
        return self.offset + position + 1

    def timeline_frame(self, media_index: int) -> int:
        """Timeline frame that shows ``media_index`` (the inverse of :meth:`media_index`)."""
        position = media_index - 1 - self.offset
        if self.reverse:
            position = self.length - 1 - position
        return self.frame_start + position

    @property
    def media_range(self) -> tuple[int, int]:
        """(a, b): the visible media frames, 1-based inclusive, in media order."""
        ends = (self.media_index(self.first), self.media_index(self.last))
        return min(ends), max(ends)

    @property
    def count(self) -> int:
        return self.last - self.first + 1


def frame_map(strip) -> FrameMap:
    """The :class:`FrameMap` of a movie or image strip (trims, holds and reverse applied)."""
    start = int(strip.frame_start)
    length = int(strip.frame_duration)
    final_start, final_end = int(strip.frame_final_start), int(strip.frame_final_end)
    first = max(final_start, start)
    last = min(final_end, start + length) - 1
    if last < first:
        raise PlanError(
            f"strip '{strip.name}' shows no frame of its media (frames {final_start}-{final_end - 1} are held): "
            "trim it so some of the media is visible"
        )
    return FrameMap(
        frame_start=start,
        length=length,
        offset=int(getattr(strip, "animation_offset_start", 0)),
        reverse=bool(getattr(strip, "use_reverse_frames", False)),
        first=first,
        last=last,
        hold_before=first - final_start,
        hold_after=final_end - 1 - last,
    )


def check_strip(strip) -> str | None:
    """Why ``strip`` cannot be stylized (cheap, for ``poll``), or ``None`` when it can."""
    if strip is None:
        return "Select a movie or image strip"
    if strip.type not in SUPPORTED_TYPES:
        return "Select a movie or image strip"
    if strip.flowstyle.role != 'SOURCE':
        return "This strip is a flowstyle result: select its source strip"
    return None


def safe_name(name: str) -> str:
    """``name`` as a folder name on every OS (non-ASCII letters kept)."""
    cleaned = re.sub(r'[<>:"/\\|?*\x00-\x1f]', "_", name).strip().rstrip(". ")
    return cleaned or "strip"


def _abspath(path: str, library=None) -> Path:
    return Path(os.path.normpath(bpy.path.abspath(path, library=library)))


def strip_folder(strip, prefs) -> Path:
    """Folder for this strip's output: the cache folder, else ``//flowstyle/<strip>``, else temp."""
    name = safe_name(strip.name)
    if prefs.cache_dir.strip():
        blend = Path(bpy.data.filepath).stem if bpy.data.filepath else "unsaved"
        return _abspath(prefs.cache_dir) / safe_name(blend) / name
    if bpy.data.filepath:
        return _abspath("//flowstyle") / name
    return Path(tempfile.gettempdir()) / "flowstyle" / "unsaved" / name


def _styles(strip) -> tuple[str, ...]:
    settings, library = strip.flowstyle, strip.id_data.library
    used = [s for s in settings.styles if s.weight > 0.0]
    if not used:
        raise PlanError(
            f"strip '{strip.name}' has no style: add a built-in style or an image in the sidebar's Flowstyle tab"
        )
    specs = []
    for number, style in enumerate(settings.styles, start=1):
        if style.weight <= 0.0:
            continue
        image = ""
        if style.source == 'IMAGE':
            image = _style_image(style.image, library, f"style {number} of strip '{strip.name}'")
        weight = style.weight if len(used) > 1 else None
        specs.append(style_spec(style.source, style.builtin, image, weight))
    return tuple(specs)


def _style_image(path: str, library, where: str) -> str:
    if not path.strip():
        raise PlanError(f"{where} has no image: pick one, or switch it to Built-in")
    resolved = _abspath(path, library)
    if not resolved.is_file():
        raise PlanError(f"image '{resolved}' not found ({where}): pick the file again")
    return str(resolved)


def keyframes_payload(strip, fmap: FrameMap) -> dict | None:
    """The engine's keyframe file for the visible range (DESIGN 4.5), or ``None`` without keys.

    Key frames are stored as media indices; the file counts from 1 within the range. A key
    before the range carries over to frame 1; keys and overrides after it are dropped.
    """
    settings, library = strip.flowstyle, strip.id_data.library
    if not len(settings.keyframes):
        return None
    a, b = fmap.media_range
    keys, overrides, carried, seen = [], [], None, set()
    for key in sorted(settings.keyframes, key=lambda k: k.frame):
        where = f"keyframe at source frame {key.frame} of strip '{strip.name}'"
        if (key.kind, key.frame) in seen:
            kind = "style keys" if key.kind == 'STYLE' else "painted overrides"
            raise PlanError(f"two {kind} at source frame {key.frame} of strip '{strip.name}': remove one")
        seen.add((key.kind, key.frame))
        if key.kind == 'OVERRIDE':
            if a <= key.frame <= b:
                # Blender stores floats in single precision: 6 decimals keep 0.4 from reading 0.4000000059604645.
                entry = {"frame": key.frame - a + 1, "image": _style_image(key.image, library, where),
                         "strength": round(key.strength, 6)}
                if key.use_reach:
                    entry["reach"] = key.reach  # frames each side, the same in media and in the range
                overrides.append(entry)
            continue
        image = _style_image(key.image, library, where) if key.source == 'IMAGE' else ""
        entry = {"frame": key.frame - a + 1, "style": style_spec(key.source, key.builtin, image),
                 "interpolation": key.interpolation.lower()}
        if key.use_style_weight:
            entry["style_weight"] = key.style_weight
        if key.use_temporal_weight:
            entry["temporal_weight"] = key.temporal_weight
        if key.frame < a:
            carried = entry
        elif key.frame <= b:
            keys.append(entry)
    if carried is not None and not any(k["frame"] == 1 for k in keys):
        keys.insert(0, dict(carried, frame=1))
    if not keys and not overrides:
        return None
    return {"keys": keys, "overrides": overrides}


def _write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def _movie_input(strip) -> str:
    path = _abspath(strip.filepath, strip.id_data.library)
    if not path.is_file():
        raise PlanError(
            f"cannot stylize '{strip.name}': movie '{path}' not found "
            "(relink the strip's media, or check the drive is mounted)"
        )
    return str(path)


def _image_frames(strip, fmap: FrameMap) -> list[Path]:
    folder = _abspath(strip.directory, strip.id_data.library)
    a, b = fmap.media_range
    names = [strip.elements[i - 1].filename for i in range(a, b + 1)]
    paths = [folder / name for name in names]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise PlanError(
            f"cannot stylize '{strip.name}': {len(missing)} of {len(paths)} frames missing in '{folder}' "
            f"(first: {missing[0]}); relink the strip's media"
        )
    return paths


_STAGED = re.compile(r"^\d{5}\.[A-Za-z0-9]+$")


def stage_frames(paths: list[Path], folder: Path) -> Path:
    """Link (or copy) ``paths`` into ``folder`` as 00001.ext, 00002.ext ... in that order.

    An image strip's frames may be any files in any order; the engine reads a folder in
    natural order, so the strip's own order is staged as links. Sources are never touched:
    only links (or copies) this function made are ever removed.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        if _STAGED.match(old.name) and (old.is_symlink() or old.is_file()):
            old.unlink()
    for k, src in enumerate(paths, start=1):
        dst = folder / f"{k:05d}{src.suffix.lower()}"
        try:
            os.symlink(src, dst)
        except (OSError, NotImplementedError):
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)
    return folder


@dataclass
class Plan:
    """One engine run for one strip, ready to start."""

    kind: str  # "stylize" | "preview"
    scene_name: str
    strip_name: str
    engine_python: str
    spec: worker.JobSpec
    fmap: FrameMap
    folder: Path  # the strip's folder; frames in folder/"frames", previews in folder/"preview"
    out_dir: Path  # what the engine writes (--out)
    preview_frame: int | None = None  # timeline frame of a preview
    staged: tuple[str, ...] = ()  # image strips: the media files behind input/00001.ext, ...

    def explain(self, message: str) -> str:
        """``message`` with staged links (``input/00007.png``) named as the strip's own files."""
        if not self.staged:
            return message
        folder = re.escape(str(self.folder / "input") + os.sep)

        def original(match: re.Match) -> str:
            index = int(match.group(1))
            return self.staged[index - 1] if 1 <= index <= len(self.staged) else match.group(0)

        return re.sub(folder + r"(\d{5})\.[A-Za-z0-9]+", original, message)

    @property
    def args(self) -> list[str]:
        return worker.build_args(self.engine_python, self.spec)


def _mode(settings, prefs) -> str:
    return (prefs.default_mode if settings.mode == 'DEFAULT' else settings.mode).lower()


def make_plan(scene, strip, prefs, *, kind: str = "stylize", resume: bool = False) -> Plan:
    """Check ``strip`` and build the engine run for it (writes only into the strip's folder)."""
    problem = check_strip(strip)
    if problem:
        raise PlanError(f"cannot stylize '{getattr(strip, 'name', '')}': {problem.lower()}")
    if hasattr(strip, "parent_meta") and strip.parent_meta() is not None:
        raise PlanError(f"strip '{strip.name}' is inside a meta strip: stylize it outside the meta (Tab out, Ungroup)")
    if len(getattr(strip, "retiming_keys", ())):
        raise PlanError(
            f"strip '{strip.name}' has retiming keys (speed changes), which flowstyle does not follow yet: "
            "reset its retiming, or render the strip to images and stylize those"
        )
    try:
        python = preferences.engine_python(prefs)
    except preferences.EngineNotConfigured as exc:
        raise PlanError(str(exc)) from None
    settings = strip.flowstyle
    fmap = frame_map(strip)
    styles = _styles(strip)
    folder = strip_folder(strip, prefs)
    a, b = fmap.media_range

    staged: tuple[str, ...] = ()
    if strip.type == 'MOVIE':
        source, frames = _movie_input(strip), (a, b)
    else:
        paths = _image_frames(strip, fmap)
        source, frames = str(stage_frames(paths, folder / "input")), None
        staged = tuple(str(p) for p in paths)

    keyframes = None
    payload = keyframes_payload(strip, fmap)
    if payload is not None:
        keyframes = folder / "keyframes.json"
        _write_json(keyframes, payload)

    size = 0 if settings.use_source_size else settings.size  # the engine reads 0 as the input's own size
    preview, preview_frame = None, None
    out_dir = folder / "frames"
    if kind == "preview":
        preview_frame = scene.frame_current
        if not fmap.first <= preview_frame <= fmap.last:
            raise PlanError(
                f"the playhead (frame {preview_frame}) is not over the media of '{strip.name}' "
                f"(frames {fmap.first}-{fmap.last}): move it onto the strip"
            )
        preview = fmap.media_index(preview_frame) - a + 1
        size = min(size or prefs.preview_size, prefs.preview_size)
        out_dir = folder / "preview"
    elif kind != "stylize":
        raise ValueError(f"kind must be 'stylize' or 'preview'; got {kind!r}")

    mode = _mode(settings, prefs)
    quality = mode == "quality"
    spec = worker.JobSpec(
        input=source,
        out=str(out_dir),
        styles=styles,
        mode=mode,
        frames=frames,
        size=size,
        flow=settings.flow.lower(),
        temporal_weight=settings.temporal_weight if settings.use_temporal_weight else None,
        long_term=None if settings.long_term == 'DEFAULT' else tuple(int(j) for j in settings.long_term.split(",")),
        passes=settings.passes or None,
        keyframes=str(keyframes) if keyframes else None,
        device=None if prefs.device == 'AUTO' else prefs.device.lower(),
        content_weight=settings.content_weight if quality else None,
        style_weight=settings.style_weight if quality else None,
        recipe=("fast" if kind == "preview" else settings.recipe.lower()) if quality else None,
        vgg_weights=str(_abspath(prefs.vgg_weights)) if quality and prefs.vgg_weights.strip() else None,
        stylizer=str(_abspath(settings.stylizer)) if not quality and settings.stylizer.strip() else None,
        resume=resume and kind == "stylize",
        preview=preview,
    )
    return Plan(kind=kind, scene_name=scene.name, strip_name=strip.name, engine_python=python, spec=spec,
                fmap=fmap, folder=folder, out_dir=out_dir, preview_frame=preview_frame, staged=staged)
