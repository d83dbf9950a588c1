"""The one place that knows how the sequencer API differs between Blender releases.

Blender 4.2/4.3 call strips ``Sequence`` and keep them in ``sequence_editor.sequences``;
4.4+ call them ``Strip`` in ``sequence_editor.strips``. 5.0 adds ``context.sequencer_scene``
(the scene the Sequencer edits, which may differ from ``context.scene``). Everything else in
the add-on asks this module instead of testing versions itself.
"""

from __future__ import annotations

import contextlib

import bpy

__all__ = [
    "BLEND_RELATIVE_PATH",
    "strip_type",
    "sequencer_scene",
    "active_strip",
    "top_strips",
    "all_strips",
    "new_image_strip",
    "remove_strip",
    "prefetch_paused",
    "is_rendering",
    "set_status",
]


BLEND_RELATIVE_PATH = (
    {'PATH_SUPPORTS_BLEND_RELATIVE'}
    if "is_path_supports_blend_relative" in bpy.types.Property.bl_rna.properties
    else set()
)
"""``options`` for path properties that may start with ``//`` (5.0 warns without it)."""


def strip_type() -> type:
    """The RNA type every strip derives from (``Strip``, formerly ``Sequence``)."""
    return getattr(bpy.types, "Strip", None) or bpy.types.Sequence


def sequencer_scene(context) -> "bpy.types.Scene | None":
    """The scene the Sequencer shows (5.0's ``sequencer_scene``, else ``context.scene``)."""
    return getattr(context, "sequencer_scene", None) or context.scene


def active_strip(context):
    """The active strip, whichever name this Blender gives it; ``None`` when there is none."""
    for name in ("active_strip", "active_sequence_strip"):
        strip = getattr(context, name, None)
        if strip is not None:
            return strip
    scene = sequencer_scene(context)
    editor = scene.sequence_editor if scene is not None else None
    return editor.active_strip if editor is not None else None


def top_strips(editor):
    """The editor's top-level strip collection (has ``new_image``, ``new_movie``, ``remove``)."""
    return editor.strips if hasattr(editor, "strips") else editor.sequences


def all_strips(editor):
    """Every strip of the editor, inside meta strips too."""
    return editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all


def new_image_strip(editor, name: str, filepath: str, channel: int, frame_start: int):
    """Add an image strip at its original pixel size (the add-on sets its transform itself)."""
    strips = top_strips(editor)
    try:
        return strips.new_image(name=name, filepath=filepath, channel=channel, frame_start=frame_start,
                                fit_method='ORIGINAL')
    except TypeError:  # releases without fit_method
        return strips.new_image(name=name, filepath=filepath, channel=channel, frame_start=frame_start)


def remove_strip(editor, strip) -> None:
    """Remove ``strip`` from the editor (never touches its media)."""
    top_strips(editor).remove(strip)


@contextlib.contextmanager
def prefetch_paused(scene):
    """Pause sequencer prefetch while strips change (a known crash race), then restore it."""
    editor = scene.sequence_editor if scene is not None else None
    was_on = bool(editor is not None and getattr(editor, "use_prefetch", False))
    if was_on:
        editor.use_prefetch = False
    try:
        yield
    finally:
        if was_on and scene.sequence_editor is not None:
            scene.sequence_editor.use_prefetch = True


def is_rendering() -> bool:
    """True while a render job runs (strip changes then wait, DESIGN 5)."""
    is_job_running = getattr(bpy.app, "is_job_running", None)
    if is_job_running is None:
        return False
    try:
        return bool(is_job_running('RENDER'))
    except (TypeError, ValueError):
        return False


def set_status(context, text: str | None) -> None:
    """Show ``text`` in the status bar (``None`` clears it); a no-op without a UI."""
    workspace = getattr(context, "workspace", None)
    if workspace is not None and not bpy.app.background:
        try:
            workspace.status_text_set(text)
        except (AttributeError, RuntimeError):
            pass
