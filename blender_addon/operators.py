"""Operators: preview, stylize, update, cancel, remove, open report; style and keyframe lists; render all.

Operators stay thin (STYLE 13): ``poll`` is cheap and says why not; user problems become
one ``self.report({'ERROR'}, line)``. Engine jobs run modal in the UI (a timer steps
:func:`jobs.step`, Esc cancels) and blocking from ``execute()`` (scripts, ``blender -b``,
tests), where timers never tick.
"""

import shutil

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty

from . import compat, jobs, planning, preferences, results, run_report
from .planning import PlanError

__all__ = [
    "FLOWSTYLE_OT_preview_frame",
    "FLOWSTYLE_OT_stylize_strip",
    "FLOWSTYLE_OT_update",
    "FLOWSTYLE_OT_cancel",
    "FLOWSTYLE_OT_remove_result",
    "FLOWSTYLE_OT_open_report",
    "FLOWSTYLE_OT_style_add",
    "FLOWSTYLE_OT_style_remove",
    "FLOWSTYLE_OT_keyframe_add",
    "FLOWSTYLE_OT_keyframe_remove",
    "FLOWSTYLE_OT_render_all",
]

_TIMER_STEP = 0.2


def _source_strip(context):
    """The active strip, or the source of the active result/preview strip."""
    strip = compat.active_strip(context)
    if strip is None or strip.flowstyle.role == 'SOURCE':
        return strip
    scene = compat.sequencer_scene(context)
    return compat.all_strips(scene.sequence_editor).get(strip.flowstyle.source_name)


def _running_job(context):
    strip = _source_strip(context)
    if strip is None:
        return None
    return jobs.find(compat.sequencer_scene(context).name, strip.name)


class _StripJob:
    """Shared body of the operators that run the engine on the active strip."""

    bl_options = {'REGISTER', 'UNDO'}
    kind = "stylize"
    resume = False

    @classmethod
    def poll(cls, context):
        strip = compat.active_strip(context)
        problem = planning.check_strip(strip)
        if problem:
            cls.poll_message_set(problem)
            return False
        if jobs.find(compat.sequencer_scene(context).name, strip.name) is not None:
            cls.poll_message_set("A flowstyle job is running for this strip")
            return False
        return True

    def _start(self, context):
        scene = compat.sequencer_scene(context)
        strip = compat.active_strip(context)
        try:
            plan = planning.make_plan(scene, strip, preferences.get(context), kind=self.kind, resume=self.resume)
            return jobs.start(scene, strip, plan)
        except PlanError as exc:
            self.report({'ERROR'}, str(exc))
            return None

    def execute(self, context):
        job = self._start(context)
        if job is None:
            return {'CANCELLED'}
        jobs.run_to_end(job)
        self._forward(job, 0)
        return self._conclude(job)

    def invoke(self, context, event):
        if bpy.app.background or context.window is None:
            return self.execute(context)
        job = self._start(context)
        if job is None:
            return {'CANCELLED'}
        self._job, self._seen, self._said = job, 0, None
        wm = context.window_manager
        self._timer = wm.event_timer_add(_TIMER_STEP, window=context.window)
        wm.modal_handler_add(self)
        self._say(context, job.status_line())
        return {'RUNNING_MODAL'}

    def _say(self, context, text):
        """The job's line in the status bar, set only when it changed (each set redraws the bar)."""
        if text != self._said:
            self._said = text
            compat.set_status(context, text)

    def modal(self, context, event):
        job = self._job
        if event.type == 'ESC' and event.value == 'PRESS':
            jobs.cancel(job)
            self._say(context, job.status_line())
            return {'RUNNING_MODAL'}
        if event.type != 'TIMER':
            return {'PASS_THROUGH'}
        finished = jobs.step(job)
        self._seen = self._forward(job, self._seen)
        if not finished:
            self._say(context, job.status_line())
            return {'PASS_THROUGH'}
        self._stop_timer(context)
        return self._conclude(job)

    def cancel(self, context):
        """Blender ends the modal (file load, quit): stop the engine and wait for it."""
        job = self._job
        jobs.cancel(job)
        job.proc.wait(timeout=3 * job.proc.grace)
        jobs.step(job)
        self._stop_timer(context)

    def _stop_timer(self, context):
        context.window_manager.event_timer_remove(self._timer)
        compat.set_status(context, None)

    def _forward(self, job, seen: int) -> int:
        """Report warnings that arrived since ``seen`` (errors go out once, at the end)."""
        for level, text in job.messages[seen:]:
            if level == 'WARNING':
                self.report({'WARNING'}, text)
        return len(job.messages)

    def _conclude(self, job):
        if job.status == "failed":
            self.report({'ERROR'}, job.summary.removeprefix("Failed: "))
        elif job.status == "cancelled":
            self.report({'WARNING'}, job.summary)
        else:
            self.report({'INFO'}, job.summary)
        # Strips may have changed even when the job failed: let the undo step record them.
        return {'FINISHED'}


class FLOWSTYLE_OT_preview_frame(_StripJob, bpy.types.Operator):
    """Stylize the frame under the playhead at preview size and show it over the strip"""

    bl_idname = "flowstyle.preview_frame"
    bl_label = "Preview Frame"
    kind = "preview"


class FLOWSTYLE_OT_stylize_strip(_StripJob, bpy.types.Operator):
    """Stylize the visible frames of the strip into an image strip above it (Esc cancels)"""

    bl_idname = "flowstyle.stylize_strip"
    bl_label = "Stylize Strip"


class FLOWSTYLE_OT_update(_StripJob, bpy.types.Operator):
    """Stylize again, keeping frames whose input and settings did not change"""

    bl_idname = "flowstyle.update"
    bl_label = "Update"
    resume = True


class FLOWSTYLE_OT_cancel(bpy.types.Operator):
    """Stop the running flowstyle job of this strip; frames already done are kept"""

    bl_idname = "flowstyle.cancel"
    bl_label = "Cancel"
    bl_options = {'REGISTER'}

    @classmethod
    def poll(cls, context):
        if _running_job(context) is None:
            cls.poll_message_set("No flowstyle job is running for this strip")
            return False
        return True

    def execute(self, context):
        job = _running_job(context)
        jobs.cancel(job)
        self.report({'INFO'}, f"Cancelling flowstyle on '{job.plan.strip_name}'")
        return {'FINISHED'}


class FLOWSTYLE_OT_remove_result(bpy.types.Operator):
    """Remove the stylized strip and previews made from this strip (the source stays untouched)"""

    bl_idname = "flowstyle.remove_result"
    bl_label = "Remove Result"
    bl_options = {'REGISTER', 'UNDO'}

    delete_files: BoolProperty(name="Delete Files", description="Also delete the stylized frames from disk",
                               default=True)

    @classmethod
    def poll(cls, context):
        strip = _source_strip(context)
        if strip is None or strip.type not in planning.SUPPORTED_TYPES:
            cls.poll_message_set("Select a stylized strip or its source")
            return False
        if _running_job(context) is not None:
            cls.poll_message_set("A flowstyle job is running for this strip: cancel it first")
            return False
        return True

    def execute(self, context):
        scene = compat.sequencer_scene(context)
        editor = scene.sequence_editor
        source = _source_strip(context)
        removed = []
        with compat.prefetch_paused(scene):
            for strip in [results.result_strip(editor, source), *results.preview_strips(editor, source)]:
                if strip is not None:
                    removed.append(strip.name)
                    compat.remove_strip(editor, strip)
        source.flowstyle.result_name = ""
        source.flowstyle.progress = 0.0
        source.flowstyle.status = ""
        deleted = 0
        if self.delete_files:
            deleted = results.remove_outputs(planning.strip_folder(source, preferences.get(context)))
        if not removed and not deleted:
            self.report({'INFO'}, f"'{source.name}' has no flowstyle result")
            return {'CANCELLED'}
        self.report({'INFO'}, f"Removed {len(removed)} strip(s) and {deleted} file(s) made from '{source.name}'")
        return {'FINISHED'}


def _report_image(context):
    """report.png of the active strip's result (or of the active result strip), or None."""
    strip = _source_strip(context)
    if strip is None:
        return None
    result = results.result_strip(compat.sequencer_scene(context).sequence_editor, strip)
    return None if result is None else run_report.result_folder(result) / run_report.REPORT_IMAGE


class FLOWSTYLE_OT_open_report(bpy.types.Operator):
    """Show the result's report.png (frames, time slices, warping error over the shot) in an Image Editor"""

    bl_idname = "flowstyle.open_report"
    bl_label = "Open Report"

    @classmethod
    def poll(cls, context):
        path = _report_image(context)
        if path is None:
            cls.poll_message_set("Select a stylized strip or its source")
            return False
        return True

    def execute(self, context):
        path = _report_image(context)
        if not path.is_file():
            self.report({'ERROR'}, f"no report picture at '{path}': stylize the strip again (the engine writes "
                                   "report.png unless run with --no-report-image)")
            return {'CANCELLED'}
        try:
            message = run_report.show_image(context, path)
        except RuntimeError as exc:  # bpy.data.images.load: unreadable file
            self.report({'ERROR'}, f"cannot open '{path}': {exc}")
            return {'CANCELLED'}
        self.report({'INFO'}, message)
        return {'FINISHED'}


class _SourceSettings:
    @classmethod
    def poll(cls, context):
        problem = planning.check_strip(compat.active_strip(context))
        if problem:
            cls.poll_message_set(problem)
            return False
        return True


class _ListItem(_SourceSettings):
    """Add and remove items of one of the strip's lists: ``styles`` or ``keyframes``."""

    bl_options = {'REGISTER', 'UNDO'}
    list_prop = ""  # the CollectionProperty on ``strip.flowstyle``
    index_prop = ""  # its active-index IntProperty (the row selected in the panel's list)
    noun = ""  # one item, in messages

    def _new_item(self, settings):
        return getattr(settings, self.list_prop).add()

    def _select_last(self, settings) -> None:
        """Make the newest item the selected one, and turn flowstyle on for the strip."""
        setattr(settings, self.index_prop, len(getattr(settings, self.list_prop)) - 1)
        settings.enabled = True


class _RemoveListItem(_ListItem):
    def execute(self, context):
        settings = compat.active_strip(context).flowstyle
        items, index = getattr(settings, self.list_prop), getattr(settings, self.index_prop)
        if not 0 <= index < len(items):
            self.report({'ERROR'}, f"No {self.noun} selected: click one in the list")
            return {'CANCELLED'}
        items.remove(index)
        setattr(settings, self.index_prop, max(0, min(index, len(items) - 1)))
        return {'FINISHED'}


class _StyleList(_ListItem):
    list_prop, index_prop, noun = "styles", "active_style", "style"


class _KeyframeList(_ListItem):
    list_prop, index_prop, noun = "keyframes", "active_keyframe", "keyframe"


class FLOWSTYLE_OT_style_add(_StyleList, bpy.types.Operator):
    """Add a style to the strip's blend"""

    bl_idname = "flowstyle.style_add"
    bl_label = "Add Style"

    def execute(self, context):
        settings = compat.active_strip(context).flowstyle
        style = self._new_item(settings)
        style.builtin = len(settings.styles) - 1 if len(settings.styles) <= 26 else 0
        self._select_last(settings)
        return {'FINISHED'}


class FLOWSTYLE_OT_style_remove(_RemoveListItem, _StyleList, bpy.types.Operator):
    """Remove the selected style from the strip's blend"""

    bl_idname = "flowstyle.style_remove"
    bl_label = "Remove Style"


class FLOWSTYLE_OT_keyframe_add(_KeyframeList, bpy.types.Operator):
    """Add a style key or a painted override at the playhead"""

    bl_idname = "flowstyle.keyframe_add"
    bl_label = "Add Keyframe"

    kind: EnumProperty(
        name="Kind",
        items=(('STYLE', "Style Key", "Change the style from this frame on"),
               ('OVERRIDE', "Painted Override", "Use a painted image for this frame")),
        default='STYLE',
    )

    def execute(self, context):
        scene = compat.sequencer_scene(context)
        strip = compat.active_strip(context)
        settings = strip.flowstyle
        try:
            fmap = planning.frame_map(strip)
        except PlanError as exc:
            self.report({'ERROR'}, str(exc))
            return {'CANCELLED'}
        frame = scene.frame_current
        if not fmap.first <= frame <= fmap.last:
            self.report({'ERROR'}, f"the playhead (frame {frame}) is not over the media of '{strip.name}' "
                                   f"(frames {fmap.first}-{fmap.last}): move it onto the strip")
            return {'CANCELLED'}
        media_index = fmap.media_index(frame)
        key = self._new_item(settings)
        key.kind, key.frame = self.kind, media_index
        if len(settings.styles):
            first = settings.styles[0]
            key.source, key.builtin, key.image = first.source, first.builtin, first.image
        if self.kind == 'OVERRIDE':
            key.image = self._paintable_copy(context, strip, fmap, media_index)
        self._select_last(settings)
        where = f"source frame {media_index} (timeline {frame})"
        if self.kind == 'OVERRIDE' and key.image:
            self.report({'INFO'}, f"Added a painted override at {where}: paint over '{key.image}', then Update")
        else:
            self.report({'INFO'}, f"Added a {'style key' if self.kind == 'STYLE' else 'painted override'} at {where}")
        return {'FINISHED'}

    @staticmethod
    def _paintable_copy(context, strip, fmap, media_index: int) -> str:
        """Copy the stylized frame (if there is one) as the image to paint over."""
        folder = planning.strip_folder(strip, preferences.get(context))
        done = folder / "frames" / results.frame_name(media_index - fmap.media_range[0] + 1)
        if not done.is_file():
            return ""
        target = folder / "overrides" / f"paint_{media_index:05d}.png"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(done, target)
        return bpy.path.relpath(str(target)) if bpy.data.filepath else str(target)


class FLOWSTYLE_OT_keyframe_remove(_RemoveListItem, _KeyframeList, bpy.types.Operator):
    """Remove the selected keyframe"""

    bl_idname = "flowstyle.keyframe_remove"
    bl_label = "Remove Keyframe"


class FLOWSTYLE_OT_render_all(bpy.types.Operator):
    """Stylize every strip that has flowstyle enabled (blocking), then render the animation"""

    bl_idname = "flowstyle.render_all"
    bl_label = "Stylize All and Render"
    bl_options = {'REGISTER'}

    scene: StringProperty(name="Scene", description="Scene to stylize and render (default: the current one)")
    render: BoolProperty(name="Render", description="Render the animation after stylizing", default=True)
    resume: BoolProperty(name="Reuse Frames",
                         description="Keep frames whose input and settings did not change", default=True)

    def execute(self, context):
        scene = bpy.data.scenes.get(self.scene) if self.scene else compat.sequencer_scene(context)
        if scene is None:
            self.report({'ERROR'}, f"no scene named '{self.scene}' in this file: "
                                   f"use one of {', '.join(s.name for s in bpy.data.scenes)}")
            return {'CANCELLED'}
        editor = scene.sequence_editor
        prefs = preferences.get(context)
        sources = [s for s in compat.all_strips(editor)
                   if s.flowstyle.enabled and not s.mute and planning.check_strip(s) is None] if editor else []
        if not sources:
            self.report({'WARNING'}, f"scene '{scene.name}' has no strip with Flowstyle enabled: nothing to stylize")
        failures = []
        for strip in sources:
            if jobs.find(scene.name, strip.name) is not None:
                failures.append(f"a flowstyle job is still running for '{strip.name}': wait for it or cancel it")
                continue
            try:
                job = jobs.start(scene, strip, planning.make_plan(scene, strip, prefs, resume=self.resume))
            except PlanError as exc:
                failures.append(str(exc))
                continue
            jobs.run_to_end(job)
            if job.status != "ok":
                failures.append(job.summary)
        with compat.prefetch_paused(scene):
            for strip in list(compat.all_strips(editor)):
                if strip.flowstyle.role == 'PREVIEW':
                    compat.remove_strip(editor, strip)
        if failures:
            self.report({'ERROR'}, f"{len(failures)} of {len(sources)} strips not stylized, nothing rendered: "
                                   f"{failures[0]}")
            return {'CANCELLED'}
        if self.render:
            bpy.ops.render.render(animation=True, scene=scene.name)
            self.report({'INFO'}, f"Stylized {len(sources)} strip(s); rendered to '{scene.render.filepath}'")
        else:
            self.report({'INFO'}, f"Stylized {len(sources)} strip(s)")
        return {'FINISHED'}


classes = (
    FLOWSTYLE_OT_preview_frame,
    FLOWSTYLE_OT_stylize_strip,
    FLOWSTYLE_OT_update,
    FLOWSTYLE_OT_cancel,
    FLOWSTYLE_OT_remove_result,
    FLOWSTYLE_OT_open_report,
    FLOWSTYLE_OT_style_add,
    FLOWSTYLE_OT_style_remove,
    FLOWSTYLE_OT_keyframe_add,
    FLOWSTYLE_OT_keyframe_remove,
    FLOWSTYLE_OT_render_all,
)

register, unregister = bpy.utils.register_classes_factory(classes)
