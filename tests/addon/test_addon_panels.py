"""Panel and list layouts, drawn into a recording layout that checks every name they use.

Headless Blender has no UI to draw into; a typo in ``layout.prop(settings, "sise")`` or an
operator id would only show in a real Sequencer. The recorder fails on both.
"""

import time
from types import SimpleNamespace

import pytest

bpy = pytest.importorskip("bpy")

from .addon_helpers import add_style, image_strip, run_op  # noqa: E402
from blender_addon import jobs, panels, planning  # noqa: E402


class OperatorProps:
    def __init__(self, idname):
        module, name = idname.split(".")
        self._rna = getattr(getattr(bpy.ops, module), name).get_rna_type()

    def __setattr__(self, name, value):
        if not name.startswith("_") and name not in self._rna.properties:
            raise AssertionError(f"operator has no property '{name}'")
        object.__setattr__(self, name, value)


class Recorder:
    """Stands in for ``UILayout``: records calls, checks property and operator names."""

    def __init__(self, log):
        self.log = log

    def __getattr__(self, name):  # use_property_split, active, enabled, ... are plain attributes
        if name in ("row", "column", "box", "split"):
            return lambda *a, **k: Recorder(self.log)
        raise AttributeError(name)

    def prop(self, data, name, **kwargs):
        assert name in data.bl_rna.properties, f"{type(data).__name__} has no property '{name}'"
        self.log.append(("prop", name))

    def operator(self, idname, **kwargs):
        module, name = idname.split(".")
        assert hasattr(bpy.types, f"{module.upper()}_OT_{name}"), f"no operator '{idname}'"
        self.log.append(("operator", idname))
        return OperatorProps(idname)

    def label(self, text="", **kwargs):
        self.log.append(("label", text))

    def template_list(self, list_type, list_id, data, propname, active_data, active_propname, **kwargs):
        assert hasattr(bpy.types, list_type), f"no UIList '{list_type}'"
        assert propname in data.bl_rna.properties and active_propname in active_data.bl_rna.properties
        self.log.append(("list", propname))

    def progress(self, factor=0.0, type='BAR', text=""):
        assert 0.0 <= factor <= 1.0
        self.log.append(("progress", text))

    def separator(self, **kwargs):
        pass


def draw(panel_cls, strip, method="draw"):
    log = []
    fake = SimpleNamespace(layout=Recorder(log))
    with bpy.context.temp_override(active_strip=strip):
        context = bpy.context
        if panel_cls.poll(context):
            getattr(panel_cls, method)(fake, context)
        else:
            log.append(("hidden", panel_cls.__name__))
    return log


def test_source_panels(scene, prefs, fake_engine):
    strip = add_style(image_strip(scene, 3))
    strip.flowstyle.styles.add().source = 'IMAGE'
    log = draw(panels.FLOWSTYLE_PT_strip, strip)
    assert ("list", "styles") in log and ("prop", "size") in log
    assert ("operator", "flowstyle.stylize_strip") in log and ("operator", "flowstyle.preview_frame") in log
    assert draw(panels.FLOWSTYLE_PT_strip, strip, "draw_header") == [("prop", "enabled")]
    strip.flowstyle.active_style = 1
    assert ("prop", "image") in draw(panels.FLOWSTYLE_PT_strip, strip)
    assert ("prop", "temporal_weight") in draw(panels.FLOWSTYLE_PT_advanced, strip)

    scene.frame_current = 2
    run_op("keyframe_add", strip, kind='STYLE')
    run_op("keyframe_add", strip, kind='OVERRIDE')
    override_props = {("prop", "strength"), ("prop", "use_reach"), ("prop", "reach")}
    for index in (0, 1):
        strip.flowstyle.active_keyframe = index
        log = draw(panels.FLOWSTYLE_PT_keyframes, strip)
        assert ("label", "Timeline frame 2") in log
        # Strength and reach are drawn for painted overrides only.
        assert override_props & set(log) == (override_props if index == 1 else set())


def test_panel_while_running_and_on_result(scene, prefs, fake_engine, monkeypatch):
    monkeypatch.setenv("FAKE_WORKER_DELAY", "0.2")
    strip = add_style(image_strip(scene, 6))
    job = jobs.start(scene, strip, planning.make_plan(scene, strip, prefs))
    try:
        deadline = time.monotonic() + 30
        while job.frames < 1 and time.monotonic() < deadline:
            jobs.step(job)
            time.sleep(0.02)
        log = draw(panels.FLOWSTYLE_PT_strip, strip)
        assert ("operator", "flowstyle.cancel") in log
        assert any(kind == "progress" for kind, _ in log)
    finally:
        jobs.cancel(job)
        jobs.run_to_end(job)
    result = scene.sequence_editor.strips[strip.flowstyle.result_name]
    log = draw(panels.FLOWSTYLE_PT_strip, result)
    assert ("label", "Stylized copy of 'whale'") in log and ("operator", "flowstyle.remove_result") in log
    assert draw(panels.FLOWSTYLE_PT_advanced, result) == [("hidden", "FLOWSTYLE_PT_advanced")]


def test_lists_draw_items(scene, prefs):
    strip = add_style(image_strip(scene, 2))
    log = []
    item = strip.flowstyle.styles[0]
    panels.FLOWSTYLE_UL_styles.draw_item(None, bpy.context, Recorder(log), strip.flowstyle, item, 0, None, "", 0)
    assert ("label", "Built-in 3") in log and ("prop", "weight") in log
    key = strip.flowstyle.keyframes.add()
    log.clear()
    panels.FLOWSTYLE_UL_keyframes.draw_item(None, bpy.context, Recorder(log), strip.flowstyle, key, 0, None, "", 0)
    assert ("label", "Frame 1: Built-in 0") in log


def test_preferences_draw(prefs):
    log = []
    type(prefs).draw(prefs_view(prefs, log), bpy.context)
    assert ("prop", "engine_python") in log and ("prop", "cache_dir") in log
    assert any(kind == "label" and text.startswith("Engine: ") for kind, text in log)


def prefs_view(prefs, log):
    """``prefs`` with a recording layout (AddonPreferences.layout is read-only)."""

    class View:
        layout = Recorder(log)

        def __getattr__(self, name):
            return getattr(prefs, name)

    view = View()
    view.bl_rna = prefs.bl_rna
    return view
