"""Sidebar panels in the Sequencer (Flowstyle tab) for the active strip; layout only."""

from __future__ import annotations

import bpy
from bpy.types import Panel, UIList

from . import compat, jobs, planning, preferences, results, run_report

__all__ = ["FLOWSTYLE_UL_styles", "FLOWSTYLE_UL_keyframes", "FLOWSTYLE_PT_strip", "FLOWSTYLE_PT_advanced",
           "FLOWSTYLE_PT_keyframes"]


def _style_label(item) -> str:
    if item.source == 'BUILTIN':
        return f"Built-in {item.builtin}"
    return bpy.path.basename(item.image) or "(no image)"


def _split(layout):
    """``layout`` with labels left of the values and no animation decorators."""
    layout.use_property_split = True
    layout.use_property_decorate = False
    return layout


def _column(layout, active: bool):
    """A column in ``layout``, greyed out (still editable) unless ``active``."""
    col = layout.column()
    col.active = active
    return col


def _active_item(settings, list_prop: str, index_prop: str):
    """The item selected in one of the strip's lists, or ``None``."""
    items, index = getattr(settings, list_prop), getattr(settings, index_prop)
    return items[index] if 0 <= index < len(items) else None


def _draw_style_source(layout, item) -> None:
    """A style's or a style key's source and, under it, the built-in index or the image."""
    layout.prop(item, "source")
    layout.prop(item, "builtin" if item.source == 'BUILTIN' else "image")


def _draw_override(layout, data, toggle: str, name: str, heading: str) -> None:
    """One row: the ``toggle`` checkbox, then the value it switches on."""
    row = layout.row(heading=heading)
    row.prop(data, toggle, text="")
    sub = row.row()
    sub.active = getattr(data, toggle)
    sub.prop(data, name, text="")


class FLOWSTYLE_UL_styles(UIList):
    """The styles blended on a strip."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        row = layout.row(align=True)
        row.label(text=_style_label(item), icon='BRUSH_DATA' if item.source == 'BUILTIN' else 'IMAGE_DATA')
        row.prop(item, "weight", text="", emboss=False)


class FLOWSTYLE_UL_keyframes(UIList):
    """Style keys and painted overrides of a strip."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        row = layout.row()
        if item.kind == 'STYLE':
            row.label(text=f"Frame {item.frame}: {_style_label(item)}", icon='KEYFRAME')
            row.label(text=item.interpolation.title())
        else:
            row.label(text=f"Frame {item.frame}: {bpy.path.basename(item.image) or '(no image)'}", icon='BRUSH_DATA')


def _draw_report(layout, result) -> None:
    """The result's mean warping error from report.json (and per-frame's, where measured), and Open Report."""
    line = run_report.summary_line(run_report.result_folder(result))
    row = layout.row(align=True)
    row.label(text=line or "No warping error reported", icon='GRAPH')
    row.operator("flowstyle.open_report", icon='IMAGE_DATA', text="Open Report")


class _FlowstylePanel:
    bl_space_type = 'SEQUENCE_EDITOR'
    bl_region_type = 'UI'
    bl_category = "Flowstyle"

    @classmethod
    def poll(cls, context):
        strip = compat.active_strip(context)
        return strip is not None and strip.type in planning.SUPPORTED_TYPES


class _SourcePanel(_FlowstylePanel):
    """A sub-panel of Flowstyle (closed at first), shown for source strips only."""

    bl_parent_id = "FLOWSTYLE_PT_strip"
    bl_options = {'DEFAULT_CLOSED'}

    @classmethod
    def poll(cls, context):
        return super().poll(context) and compat.active_strip(context).flowstyle.role == 'SOURCE'


class FLOWSTYLE_PT_strip(_FlowstylePanel, Panel):
    bl_label = "Flowstyle"

    def draw_header(self, context):
        settings = compat.active_strip(context).flowstyle
        if settings.role == 'SOURCE':
            self.layout.prop(settings, "enabled", text="")

    def draw(self, context):
        layout = _split(self.layout)
        strip = compat.active_strip(context)
        settings = strip.flowstyle
        if settings.role != 'SOURCE':
            what = "Stylized copy" if settings.role == 'RESULT' else "Preview"
            layout.label(text=f"{what} of '{settings.source_name}'", icon='INFO')
            if settings.role == 'RESULT':
                _draw_report(layout, strip)
            layout.operator("flowstyle.remove_result", icon='TRASH')
            return

        layout.label(text="Styles")
        row = layout.row()
        row.template_list("FLOWSTYLE_UL_styles", "", settings, "styles", settings, "active_style", rows=2)
        side = row.column(align=True)
        side.operator("flowstyle.style_add", icon='ADD', text="")
        side.operator("flowstyle.style_remove", icon='REMOVE', text="")
        style = _active_item(settings, "styles", "active_style")
        if style is not None:
            col = layout.column()
            _draw_style_source(col, style)
            col.prop(style, "weight")

        col = layout.column()
        col.prop(settings, "mode")
        col.prop(settings, "stylizer")
        col.prop(settings, "use_source_size")
        _column(col, not settings.use_source_size).prop(settings, "size")

        scene = compat.sequencer_scene(context)
        job = jobs.find(scene.name, strip.name)
        layout.use_property_split = False
        row = layout.row(align=True)
        row.operator("flowstyle.preview_frame", icon='IMAGE_DATA')
        row.operator("flowstyle.stylize_strip", icon='RENDER_ANIMATION')
        row = layout.row(align=True)
        row.operator("flowstyle.update", icon='FILE_REFRESH')
        row.operator("flowstyle.remove_result", icon='TRASH')
        if job is not None:
            row = layout.row(align=True)
            if hasattr(row, "progress"):
                row.progress(factor=job.progress, type='BAR', text=job.status_line())
            else:
                row.label(text=job.status_line())
            row.operator("flowstyle.cancel", icon='CANCEL', text="")
        elif settings.status:
            layout.label(text=settings.status)
        result = results.result_strip(scene.sequence_editor, strip)
        if result is not None:
            layout.label(text=f"Result: '{result.name}' in channel {result.channel}", icon='SEQ_STRIP_DUPLICATE')
            _draw_report(layout, result)


class FLOWSTYLE_PT_advanced(_SourcePanel, Panel):
    bl_label = "Advanced"

    def draw(self, context):
        layout = _split(self.layout)
        settings = compat.active_strip(context).flowstyle
        layout.prop(settings, "flow")
        layout.prop(settings, "long_term")
        layout.prop(settings, "passes")
        quality = _column(layout, settings.mode == 'QUALITY' or (
            settings.mode == 'DEFAULT' and preferences.get(context).default_mode == 'QUALITY'))
        quality.prop(settings, "recipe")
        quality.prop(settings, "content_weight")
        quality.prop(settings, "style_weight")
        layout.prop(settings, "use_temporal_weight")
        _column(layout, settings.use_temporal_weight).prop(settings, "temporal_weight")


class FLOWSTYLE_PT_keyframes(_SourcePanel, Panel):
    bl_label = "Keyframes"

    def draw(self, context):
        layout = self.layout
        strip = compat.active_strip(context)
        settings = strip.flowstyle
        row = layout.row(align=True)
        row.operator("flowstyle.keyframe_add", text="Style Key", icon='KEYFRAME').kind = 'STYLE'
        row.operator("flowstyle.keyframe_add", text="Painted Override", icon='BRUSH_DATA').kind = 'OVERRIDE'
        row = layout.row()
        row.template_list("FLOWSTYLE_UL_keyframes", "", settings, "keyframes", settings, "active_keyframe", rows=2)
        row.operator("flowstyle.keyframe_remove", icon='REMOVE', text="")
        key = _active_item(settings, "keyframes", "active_keyframe")
        if key is None:
            return
        col = _split(layout.column())
        col.prop(key, "kind")
        col.prop(key, "frame")
        try:
            col.label(text=f"Timeline frame {planning.frame_map(strip).timeline_frame(key.frame)}")
        except planning.PlanError:
            pass
        if key.kind == 'OVERRIDE':
            col.prop(key, "image", text="Painted Image")
            col.prop(key, "strength")
            _draw_override(col, key, "use_reach", "reach", heading="Limit Reach")
            return
        _draw_style_source(col, key)
        col.prop(key, "interpolation")
        _draw_override(col, key, "use_style_weight", "style_weight", heading="Style Weight")
        _draw_override(col, key, "use_temporal_weight", "temporal_weight", heading="Temporal Weight")


classes = (
    FLOWSTYLE_UL_styles,
    FLOWSTYLE_UL_keyframes,
    FLOWSTYLE_PT_strip,
    FLOWSTYLE_PT_advanced,
    FLOWSTYLE_PT_keyframes,
)

register, unregister = bpy.utils.register_classes_factory(classes)
