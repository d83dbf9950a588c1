"""The stylized strip renders like any other; Render All stylizes and renders headless."""

from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from .addon_helpers import add_style, image_strip, movie_strip, run_op  # noqa: E402
from blender_addon import results  # noqa: E402


def render_frame(scene, frame: int, path: Path) -> np.ndarray:
    """Render one sequencer frame to ``path`` and return its RGB pixels."""
    scene.frame_set(frame)
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    image = bpy.data.images.load(str(path))
    try:
        pixels = np.array(image.pixels[:], dtype=np.float32).reshape(image.size[1], image.size[0], 4)
    finally:
        bpy.data.images.remove(image)
    return pixels[..., :3]


def test_render_of_result_differs_from_source(scene, prefs, engine, tmp_path):
    source = add_style(movie_strip(scene), builtin=11)
    source.frame_offset_start, source.frame_offset_end = 20, 27  # 3 frames: 21..23
    run_op("stylize_strip", source)
    result = results.result_strip(scene.sequence_editor, source)

    stylized = render_frame(scene, 22, tmp_path / "stylized.png")
    result.mute = True
    plain = render_frame(scene, 22, tmp_path / "plain.png")

    assert stylized.shape == plain.shape == (90, 160, 3)
    assert plain.std() > 0.02, "the source frame rendered blank"
    assert stylized.std() > 0.02, "the stylized frame rendered blank"
    assert np.abs(stylized - plain).mean() > 0.03


def test_invoke_in_background_runs_blocking(scene, prefs, fake_engine):
    source = add_style(image_strip(scene, 3))
    with bpy.context.temp_override(active_strip=source):
        assert bpy.ops.flowstyle.stylize_strip('INVOKE_DEFAULT') == {'FINISHED'}
    assert len(results.result_strip(scene.sequence_editor, source).elements) == 3


def test_render_all(scene, prefs, engine, tmp_path):
    whale = add_style(image_strip(scene, 4, channel=1, start=1))
    cave = add_style(movie_strip(scene, channel=3, start=3), builtin=20)
    cave.frame_offset_end = 46  # frames 3..6
    skipped = image_strip(scene, 2, channel=6, start=1, name="untouched")
    scene.frame_current = 2
    run_op("preview_frame", whale)
    scene.frame_start, scene.frame_end = 1, 4
    scene.render.filepath = str(tmp_path / "render" / "shot_")

    with bpy.context.temp_override(active_strip=None):
        assert bpy.ops.flowstyle.render_all() == {'FINISHED'}

    editor = scene.sequence_editor
    assert len(results.result_strip(editor, whale).elements) == 4
    assert len(results.result_strip(editor, cave).elements) == 4
    assert results.result_strip(editor, skipped) is None
    assert not results.preview_strips(editor, whale), "previews must not reach the final render"
    assert sorted(p.name for p in (tmp_path / "render").iterdir()) == [f"shot_{i:04d}.png" for i in range(1, 5)]


def test_render_all_stops_on_a_broken_strip(scene, prefs, fake_engine, tmp_path):
    add_style(image_strip(scene, 2))
    broken = add_style(scene.sequence_editor.strips.new_movie("lost", str(tmp_path / "gone.mp4"), 3, 1))
    assert broken.flowstyle.enabled
    scene.render.filepath = str(tmp_path / "render" / "shot_")
    with pytest.raises(RuntimeError, match=r"1 of 2 strips not stylized, nothing rendered: cannot stylize 'lost'"):
        bpy.ops.flowstyle.render_all()
    assert not (tmp_path / "render").exists()


def test_render_all_names_its_scene(scene, prefs, fake_engine, tmp_path):
    with pytest.raises(RuntimeError, match=r"no scene named 'Nope' in this file: use one of .*Scene"):
        bpy.ops.flowstyle.render_all(scene="Nope")
    strip = add_style(image_strip(scene, 2))
    other = bpy.data.scenes.new("Other")
    try:
        with bpy.context.temp_override(scene=other):
            assert bpy.ops.flowstyle.render_all(scene=scene.name, render=False) == {'FINISHED'}
    finally:
        bpy.data.scenes.remove(other)
    assert results.result_strip(scene.sequence_editor, strip) is not None
