"""The add-on registers and unregisters cleanly in bpy, and polls say why not."""

import pytest

bpy = pytest.importorskip("bpy")

import addon_utils  # noqa: E402

from .addon_helpers import run_op  # noqa: E402

OPERATORS = ("preview_frame", "stylize_strip", "update", "cancel", "remove_result", "style_add", "style_remove",
             "keyframe_add", "keyframe_remove", "render_all")


def _registered() -> dict:
    return {
        "strip_settings": hasattr(bpy.types.Strip, "flowstyle")
        and "flowstyle" in bpy.types.Strip.bl_rna.properties.keys(),
        "operators": [name for name in OPERATORS if hasattr(bpy.types, f"FLOWSTYLE_OT_{name}")],
        "panel": hasattr(bpy.types, "FLOWSTYLE_PT_strip"),
        "prefs": "blender_addon" in bpy.context.preferences.addons,
    }


def test_enable_disable_enable(addon):
    on = _registered()
    assert on == {"strip_settings": True, "operators": list(OPERATORS), "panel": True, "prefs": True}
    addon_utils.disable("blender_addon", default_set=True)
    try:
        assert _registered() == {"strip_settings": False, "operators": [], "panel": False, "prefs": False}
    finally:
        addon_utils.enable("blender_addon", default_set=True)
    assert _registered() == on


def test_settings_live_on_each_strip_and_clamp(scene):
    editor = scene.sequence_editor
    a = editor.strips.new_effect(name="a", type='COLOR', channel=1, frame_start=1, length=10)
    b = editor.strips.new_effect(name="b", type='COLOR', channel=2, frame_start=1, length=10)
    a.flowstyle.size = 256
    assert b.flowstyle.size == 1024  # default, independent per strip
    a.flowstyle.size = 10  # below min: Blender clamps, the engine never sees it
    assert a.flowstyle.size == 64
    style = a.flowstyle.styles.add()
    style.builtin = 99
    assert style.builtin == 25


def test_poll_says_why_not(scene):
    color = scene.sequence_editor.strips.new_effect(name="c", type='COLOR', channel=1, frame_start=1, length=10)
    with bpy.context.temp_override(active_strip=color):
        assert not bpy.ops.flowstyle.stylize_strip.poll()
        assert not bpy.ops.flowstyle.preview_frame.poll()
        assert not bpy.ops.flowstyle.cancel.poll()
    with pytest.raises(RuntimeError, match="poll"):
        run_op("stylize_strip", color)


def test_a_missing_engine_skips_or_fails_and_never_fakes(monkeypatch, shim_dir):
    """Tests that ask for the real engine must not pass against the fake one (conftest)."""
    from . import conftest

    monkeypatch.delenv("FLOWSTYLE_REQUIRE_ENGINE", raising=False)
    with pytest.raises(pytest.skip.Exception, match="real engine not available: no torch"):
        conftest._use_engine("real", monkeypatch, shim_dir, "no torch")
    monkeypatch.setenv("FLOWSTYLE_REQUIRE_ENGINE", "1")
    with pytest.raises(pytest.fail.Exception, match="real engine required .* does not start: no torch"):
        conftest._use_engine("real", monkeypatch, shim_dir, "no torch")
