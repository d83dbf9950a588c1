"""Which media frames a strip shows (trims, holds, reverse) and the keyframe file for them."""

import json
import subprocess
import sys

import pytest

bpy = pytest.importorskip("bpy")

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from .addon_helpers import RUBBERWHALE, add_style, image_strip, need, run_op  # noqa: E402
from blender_addon import planning, worker  # noqa: E402


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    start=st.integers(-5, 20),
    hold_start=st.integers(0, 2),
    hold_end=st.integers(0, 2),
    trim_start=st.integers(-3, 3),
    trim_end=st.integers(-3, 3),
    reverse=st.booleans(),
)
def test_frame_map_agrees_with_blender(scene, start, hold_start, hold_end, trim_start, trim_end, reverse):
    strip = image_strip(scene, 8, start=start)
    try:
        strip.animation_offset_start, strip.animation_offset_end = hold_start, hold_end
        strip.frame_offset_start, strip.frame_offset_end = trim_start, trim_end
        strip.use_reverse_frames = reverse
        try:
            fmap = planning.frame_map(strip)
        except planning.PlanError:
            # Only when Blender itself shows no media frame: held frames, or nothing at all.
            visible = range(max(strip.frame_final_start, strip.frame_start),
                            min(strip.frame_final_end, strip.frame_start + strip.frame_duration))
            assert len(visible) == 0
            return
        shown = [strip.strip_elem_from_frame(f).filename for f in range(fmap.first, fmap.last + 1)]
        mapped = [strip.elements[fmap.media_index(f) - 1].filename for f in range(fmap.first, fmap.last + 1)]
        assert mapped == shown
        a, b = fmap.media_range
        assert b - a + 1 == fmap.count == len(shown)
        assert sorted(shown) == [strip.elements[i - 1].filename for i in range(a, b + 1)]
        assert all(fmap.timeline_frame(fmap.media_index(f)) == f for f in range(fmap.first, fmap.last + 1))
        assert fmap.first - fmap.hold_before == strip.frame_final_start
        assert fmap.last + fmap.hold_after == strip.frame_final_end - 1
    finally:
        scene.sequence_editor.strips.remove(strip)


def test_no_media_visible(scene):
    strip = image_strip(scene, 3, start=1)
    strip.frame_offset_start = -6
    strip.frame_offset_end = 3  # only held frames remain
    if strip.frame_final_end > strip.frame_start:
        pytest.skip("Blender kept some media visible with these offsets")
    with pytest.raises(planning.PlanError, match="shows no frame of its media"):
        planning.frame_map(strip)


def _key(strip, frame, kind='STYLE', builtin=0, interpolation='CONSTANT', image=""):
    key = strip.flowstyle.keyframes.add()
    key.kind, key.frame, key.builtin, key.interpolation = kind, frame, builtin, interpolation
    if image:
        key.source, key.image = 'IMAGE', image
    return key


def test_keyframes_payload_counts_within_range(scene, prefs, tmp_path):
    painted = tmp_path / "painted.png"
    painted.write_bytes(b"png")
    strip = add_style(image_strip(scene, 8, start=1))
    strip.frame_offset_start, strip.frame_offset_end = 3, 1  # media 4..7
    _key(strip, 2, builtin=1, interpolation='LINEAR')
    k = _key(strip, 5, builtin=9)
    k.use_style_weight, k.style_weight = True, 50.0
    _key(strip, 6, kind='OVERRIDE', image=str(painted))
    _key(strip, 8, builtin=4)
    payload = planning.keyframes_payload(strip, planning.frame_map(strip))
    assert payload == {
        "keys": [
            {"frame": 1, "style": "builtin:1", "interpolation": "linear"},
            {"frame": 2, "style": "builtin:9", "interpolation": "constant", "style_weight": 50.0},
        ],
        "overrides": [{"frame": 3, "image": str(painted), "strength": 1.0}],  # no reach: to the next painted key
    }
    plan = planning.make_plan(scene, strip, prefs)
    written = json.loads(open(plan.spec.keyframes, encoding="utf-8").read())
    assert written == payload
    assert "--keyframes" in plan.args


_ENGINE_READS = """
import json, sys
from pathlib import Path
from flowstyle.keyframes import parse_keyframes
path = Path(sys.argv[1])
timeline = parse_keyframes(json.loads(path.read_text(encoding="utf-8")), int(sys.argv[2]), (), path.parent, str(path))
print(json.dumps([[o.frame, o.strength, o.reach] for o in timeline.overrides]))
"""


def test_override_strength_and_reach(scene, prefs, engine, tmp_path):
    painted = tmp_path / "painted.png"
    painted.write_bytes((need(RUBBERWHALE) / "frame_0005.png").read_bytes())  # the engine decodes it
    strip = add_style(image_strip(scene, 8, start=1))
    strip.frame_offset_start, strip.frame_offset_end = 3, 1  # media 4..7: reach stays in frames
    plain = _key(strip, 4, kind='OVERRIDE', image=str(painted))
    assert (plain.strength, plain.use_reach) == (1.0, False)  # defaults: the painting decides, up to the next key
    limited = _key(strip, 6, kind='OVERRIDE', image=str(painted))
    limited.strength, limited.use_reach, limited.reach = 0.4, True, 5
    plan = planning.make_plan(scene, strip, prefs)
    written = json.loads(open(plan.spec.keyframes, encoding="utf-8").read())
    assert written == {"keys": [], "overrides": [
        {"frame": 1, "image": str(painted), "strength": 1.0},
        {"frame": 3, "image": str(painted), "strength": 0.4, "reach": 5},
    ]}
    # The engine takes the file as written (0-based frames there).
    done = subprocess.run([sys.executable, "-c", _ENGINE_READS, plan.spec.keyframes, "4"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [[0, 1.0, None], [2, 0.4, 5]]
    limited.use_reach = False  # the value stays, but the switch decides
    assert "reach" not in planning.keyframes_payload(strip, planning.frame_map(strip))["overrides"][1]


def test_keyframe_without_image(scene, prefs):
    strip = add_style(image_strip(scene, 4))
    _key(strip, 2, kind='OVERRIDE')
    with pytest.raises(planning.PlanError, match="keyframe at source frame 2 of strip 'whale' has no image"):
        planning.make_plan(scene, strip, prefs)


def test_keyframe_add_at_playhead(scene, prefs, fake_engine):
    strip = add_style(image_strip(scene, 8, start=10))
    strip.frame_offset_start = 2
    run_op("stylize_strip", strip)
    scene.frame_current = 14  # media frame 5
    assert run_op("keyframe_add", strip, kind='STYLE') == {'FINISHED'}
    assert run_op("keyframe_add", strip, kind='OVERRIDE') == {'FINISHED'}
    style_key, override = strip.flowstyle.keyframes
    assert (style_key.kind, style_key.frame, style_key.builtin) == ('STYLE', 5, 3)
    assert override.kind == 'OVERRIDE' and override.frame == 5
    # The stylized frame is copied for painting (output frame 3 = media frame 5).
    assert override.image.endswith("paint_00005.png")
    assert open(bpy.path.abspath(override.image), "rb").read()[:4] == b"\x89PNG"
    scene.frame_current = 3
    with pytest.raises(RuntimeError, match=r"playhead \(frame 3\) is not over"):
        run_op("keyframe_add", strip, kind='STYLE')
    strip.flowstyle.active_keyframe = 0
    run_op("keyframe_remove", strip)
    assert [k.kind for k in strip.flowstyle.keyframes] == ['OVERRIDE']


def test_style_specs(scene, prefs, tmp_path):
    image = tmp_path / "starry night.jpg"
    image.write_bytes(b"jpg")
    strip = image_strip(scene, 2)
    run_op("style_add", strip)
    run_op("style_add", strip)
    second = strip.flowstyle.styles[1]
    second.source, second.image, second.weight = 'IMAGE', str(image), 0.25
    plan = planning.make_plan(scene, strip, prefs)
    assert plan.spec.styles == ("builtin:0:1", f"{image}:0.25")
    strip.flowstyle.active_style = 0
    run_op("style_remove", strip)
    assert planning.make_plan(scene, strip, prefs).spec.styles == (str(image),)  # a lone style has no weight
    second = strip.flowstyle.styles[0]
    second.image = str(tmp_path / "gone.jpg")
    with pytest.raises(planning.PlanError, match=r"image '.*gone\.jpg' not found \(style 1 of strip 'whale'\)"):
        planning.make_plan(scene, strip, prefs)


def test_trained_stylizer_reaches_the_engine_in_fast_mode_only(scene, prefs, tmp_path):
    strip = add_style(image_strip(scene, 2))
    assert planning.make_plan(scene, strip, prefs).spec.stylizer is None
    strip.flowstyle.stylizer = str(tmp_path / "stable7.pt")
    plan = planning.make_plan(scene, strip, prefs)
    assert plan.spec.stylizer == str(tmp_path / "stable7.pt")
    assert "--stylizer" in worker.build_args("/py", plan.spec)
    strip.flowstyle.mode = 'QUALITY'
    assert planning.make_plan(scene, strip, prefs).spec.stylizer is None


def test_duplicate_keys(scene, prefs):
    strip = add_style(image_strip(scene, 4))
    _key(strip, 2)
    _key(strip, 2, builtin=5)
    with pytest.raises(planning.PlanError, match="two style keys at source frame 2 of strip 'whale': remove one"):
        planning.make_plan(scene, strip, prefs)


def test_keyframes_reach_the_engine(scene, prefs, engine):
    """The engine accepts the add-on's keyframe file: a style key and a painted override."""
    strip = add_style(image_strip(scene, 5, start=1), size=96)
    strip.frame_offset_start = 1  # media 2..5
    run_op("stylize_strip", strip)
    scene.frame_current = 4  # media frame 4 = output frame 3
    run_op("keyframe_add", strip, kind='OVERRIDE')
    scene.frame_current = 3
    run_op("keyframe_add", strip, kind='STYLE')
    strip.flowstyle.keyframes[1].builtin = 9
    strip.flowstyle.keyframes[1].interpolation = 'LINEAR'
    assert run_op("update", strip) == {'FINISHED'}
    assert strip.flowstyle.status == "Stylized 4 frames of 'whale'"
