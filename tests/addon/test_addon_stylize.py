"""Stylize, preview, update, remove and cancel through the add-on, headless (blocking paths)."""

import shutil
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")

from .addon_helpers import (  # noqa: E402
    add_style,
    image_strip,
    movie_strip,
    need,
    png_complete,
    run_op,
    step_until,
    strip_snapshot,
    RUBBERWHALE,
)
from blender_addon import jobs, planning, results  # noqa: E402


def result_of(scene, source):
    strip = results.result_strip(scene.sequence_editor, source)
    assert strip is not None, f"no result strip for '{source.name}': {source.flowstyle.status}"
    return strip


def frames_dir(prefs, source) -> Path:
    return planning.strip_folder(source, prefs) / "frames"


def test_stylize_trimmed_image_strip(scene, prefs, any_engine):
    source = add_style(image_strip(scene, 8, start=3))
    source.frame_offset_start, source.frame_offset_end = 1, 2  # visible: elements 2..6 at frames 4..8
    before = strip_snapshot(source)

    assert run_op("stylize_strip", source) == {'FINISHED'}

    result = result_of(scene, source)
    assert result.channel == source.channel + 1
    assert (result.frame_final_start, result.frame_final_end) == (4, 9)
    assert [e.filename for e in result.elements] == [f"frame_{i:05d}.png" for i in range(1, 6)]
    assert result.name == "whale (flowstyle)" and result.flowstyle.role == 'RESULT'
    out = frames_dir(prefs, source)
    assert all((out / e.filename).is_file() for e in result.elements)
    assert strip_snapshot(source) == before
    assert source.flowstyle.status == "Stylized 5 frames of 'whale'"
    # The staged input is exactly the visible frames, in order, as links to the media.
    staged = sorted((planning.strip_folder(source, prefs) / "input").iterdir())
    assert [p.resolve().name for p in staged] == [f"frame_{i:04d}.png" for i in range(2, 7)]
    # The result covers the source: same displayed size whatever the working size.
    src_w = source.elements[0].orig_width * source.transform.scale_x
    res_w = results.png_size(out / "frame_00001.png")[0] * result.transform.scale_x
    assert res_w == pytest.approx(src_w, rel=1e-3)


def test_stylize_trimmed_movie_strip(scene, prefs, engine):
    source = add_style(movie_strip(scene, channel=2, start=1), builtin=5)
    source.frame_offset_start, source.frame_offset_end = 10, 34  # media frames 11..16 at timeline 11..16
    plan = planning.make_plan(scene, source, prefs)
    assert plan.spec.frames == (11, 16) and plan.spec.size == 128
    assert plan.args[:5] == [prefs.engine_python, "-m", "flowstyle", "stylize", str(need(plan.spec.input and Path(plan.spec.input)))]

    assert run_op("stylize_strip", source) == {'FINISHED'}

    result = result_of(scene, source)
    assert result.channel == 3
    assert (result.frame_final_start, result.frame_final_end) == (11, 17)
    assert len(result.elements) == 6
    assert not (frames_dir(prefs, source) / "frame_00007.png").exists()


def test_channel_above_is_taken(scene, prefs, fake_engine):
    source = add_style(image_strip(scene, 4, channel=1))
    scene.sequence_editor.strips.new_effect(name="blocker", type='COLOR', channel=2, frame_start=3, length=10)
    run_op("stylize_strip", source)
    assert result_of(scene, source).channel == 3


def test_preview_frame(scene, prefs, any_engine):
    source = add_style(image_strip(scene, 6, start=1))
    scene.frame_current = 4
    assert run_op("preview_frame", source) == {'FINISHED'}
    previews = results.preview_strips(scene.sequence_editor, source)
    assert len(previews) == 1
    preview = previews[0]
    assert (preview.frame_final_start, preview.frame_final_duration) == (4, 1)
    assert preview.channel > source.channel
    image = Path(bpy.path.abspath(preview.directory)) / preview.elements[0].filename
    assert image.is_file() and max(results.png_size(image)) <= prefs.preview_size
    # A second preview replaces the first (new file name: Blender caches images by path).
    scene.frame_current = 5
    run_op("preview_frame", source)
    previews = results.preview_strips(scene.sequence_editor, source)
    assert len(previews) == 1 and previews[0].frame_final_start == 5
    assert not image.exists()


def test_preview_needs_playhead_on_strip(scene, prefs, fake_engine):
    source = add_style(image_strip(scene, 4, start=1))
    scene.frame_current = 12
    with pytest.raises(RuntimeError, match=r"playhead \(frame 12\) is not over the media of 'whale' \(frames 1-4\)"):
        run_op("preview_frame", source)


def test_update_fills_in_and_keeps_strip(scene, prefs, engine):
    source = add_style(image_strip(scene, 4))
    run_op("stylize_strip", source)
    out = frames_dir(prefs, source)
    (out / "frame_00003.png").unlink()
    assert run_op("update", source) == {'FINISHED'}
    result = result_of(scene, source)
    assert len(result.elements) == 4 and (out / "frame_00003.png").is_file()
    assert "--resume" in planning.make_plan(scene, source, prefs, resume=True).args


def test_quality_recipe_reaches_the_engine_and_previews_use_fast(scene, prefs, fake_engine):
    source = add_style(image_strip(scene, 4, start=1))
    scene.frame_current = 2
    assert "--recipe" not in planning.make_plan(scene, source, prefs).args  # fast mode: no budgets to pass
    source.flowstyle.mode = 'QUALITY'
    args = planning.make_plan(scene, source, prefs).args
    assert args[args.index("--recipe") + 1] == "default"
    args = planning.make_plan(scene, source, prefs, kind="preview").args
    assert args[args.index("--recipe") + 1] == "fast"
    source.flowstyle.recipe = 'FAST'
    args = planning.make_plan(scene, source, prefs).args
    assert args[args.index("--recipe") + 1] == "fast"


def test_remove_result(scene, prefs, fake_engine):
    source = add_style(image_strip(scene, 3))
    before = strip_snapshot(source)
    run_op("stylize_strip", source)
    scene.frame_current = 2
    run_op("preview_frame", source)
    folder = planning.strip_folder(source, prefs)
    assert run_op("remove_result", source) == {'FINISHED'}
    assert [s.name for s in scene.sequence_editor.strips] == ["whale"]
    assert not list(folder.rglob("*.png"))
    assert strip_snapshot(source) == before
    assert all((RUBBERWHALE / f"frame_{i:04d}.png").is_file() for i in range(1, 4))


def test_missing_movie(scene, prefs, fake_engine, tmp_path):
    missing = tmp_path / "gone.mp4"
    source = add_style(scene.sequence_editor.strips.new_movie("lost", str(missing), 1, 1))
    with pytest.raises(RuntimeError, match=r"cannot stylize 'lost': movie '.*gone\.mp4' not found"):
        run_op("stylize_strip", source)
    assert len(scene.sequence_editor.strips) == 1


def test_missing_image_frames(scene, prefs, fake_engine, tmp_path):
    folder = tmp_path / "shot"
    folder.mkdir()
    for i in (1, 2, 3):
        shutil.copy(need(RUBBERWHALE) / f"frame_{i:04d}.png", folder / f"f{i}.png")
    source = add_style(image_strip(scene, folder=folder, names=["f1.png", "f2.png", "f3.png"]))
    (folder / "f2.png").unlink()
    with pytest.raises(RuntimeError, match=r"1 of 3 frames missing in .*shot.* \(first: f2\.png\)"):
        run_op("stylize_strip", source)


def test_no_style(scene, prefs, fake_engine):
    source = image_strip(scene, 2)
    with pytest.raises(RuntimeError, match="has no style: add a built-in style"):
        run_op("stylize_strip", source)


def test_missing_engine(scene, prefs, tmp_path):
    source = add_style(image_strip(scene, 2))
    prefs.engine_python = str(tmp_path / "nowhere" / "python")
    with pytest.raises(RuntimeError, match="engine Python .* not found: fix it in Preferences"):
        run_op("stylize_strip", source)


def test_engine_error_is_one_clear_line(scene, prefs, engine, tmp_path):
    bad = tmp_path / "style.png"
    bad.write_text("this is not an image")
    source = add_style(image_strip(scene, 2))
    source.flowstyle.styles[0].source = 'IMAGE'
    source.flowstyle.styles[0].image = str(bad)
    with pytest.raises(RuntimeError) as info:
        run_op("stylize_strip", source)
    message = str(info.value)
    assert "style.png" in message and "Traceback" not in message and len(message.splitlines()) == 1


def test_engine_crash_is_reported(scene, prefs, fake_engine, monkeypatch):
    monkeypatch.setenv("FAKE_WORKER_SCENARIO", "crash")
    source = add_style(image_strip(scene, 5))
    with pytest.raises(RuntimeError, match=r"exited with code 139 without finishing \(Segmentation fault"):
        run_op("stylize_strip", source)
    # The frames that were complete stay visible.
    assert len(result_of(scene, source).elements) == 2


def test_relative_and_non_ascii_paths(scene, prefs, engine, tmp_path):
    project = tmp_path / "projekt ü"
    media = project / "Aufnahmen – straße"
    media.mkdir(parents=True)
    for i in (1, 2, 3):
        shutil.copy(need(RUBBERWHALE) / f"frame_{i:04d}.png", media / f"bild_{i:02d}.png")
    prefs.cache_dir = ""
    bpy.ops.wm.save_as_mainfile(filepath=str(project / "schnitt.blend"))
    source = add_style(image_strip(scene, folder=media, names=[f"bild_{i:02d}.png" for i in (1, 2, 3)],
                                   name="Straße 🎬"))
    source.directory = bpy.path.relpath(str(media)) + "/"
    assert source.directory.startswith("//")

    assert run_op("stylize_strip", source) == {'FINISHED'}

    result = result_of(scene, source)
    assert result.directory.startswith("//flowstyle")
    out = Path(bpy.path.abspath(result.directory))
    assert out == project / "flowstyle" / "Straße 🎬" / "frames"
    assert [p.name for p in sorted(out.glob("frame_*.png"))] == [f"frame_{i:05d}.png" for i in (1, 2, 3)]


def test_cancel_mid_job_keeps_complete_frames(scene, prefs, any_engine, monkeypatch):
    """The modal timer body (jobs.step) with a cancel in the middle, as Esc would do."""
    monkeypatch.setenv("FAKE_WORKER_DELAY", "0.3")
    monkeypatch.setenv("FAKE_WORKER_WRITE_DELAY", "0.1")
    # The real engine gets no scripted delay: at 96 px it can finish all 50 frames before the
    # cancel arrives, so it works at a size where the rest of the clip takes seconds.
    source = add_style(movie_strip(scene), size=96 if any_engine == "fake" else 384)
    plan = planning.make_plan(scene, source, prefs)
    job = jobs.start(scene, source, plan)
    assert jobs.find(scene.name, source.name) is job
    with bpy.context.temp_override(active_strip=source):
        assert bpy.ops.flowstyle.cancel.poll()
        assert not bpy.ops.flowstyle.stylize_strip.poll()

    step_until(job, lambda: job.frames >= 2)
    with bpy.context.temp_override(active_strip=source):
        assert bpy.ops.flowstyle.cancel() == {'FINISHED'}
    step_until(job, lambda: job.finished, timeout=30)

    assert job.status == "cancelled", job.messages
    assert jobs.find(scene.name, source.name) is None
    out = plan.out_dir
    written = sorted(out.glob("frame_*.png"))
    assert 2 <= len(written) < 50
    assert [p.name for p in written] == [f"frame_{i:05d}.png" for i in range(1, len(written) + 1)]
    assert all(png_complete(p) for p in written)
    assert not [p for p in out.iterdir() if p.is_file() and not p.name.startswith("frame_")
                and p.name != "report.json"], "temp files left behind"
    result = result_of(scene, source)
    assert len(result.elements) == len(written)
    assert source.flowstyle.status == f"Cancelled: {len(written)} of 50 frames kept"


def test_corrupt_frame_is_named_by_its_own_file(scene, prefs, engine, tmp_path):
    folder = tmp_path / "shot"
    folder.mkdir()
    shutil.copy(need(RUBBERWHALE) / "frame_0001.png", folder / "a.png")
    (folder / "b.png").write_bytes(b"not a png at all")
    source = add_style(image_strip(scene, folder=folder, names=["a.png", "b.png"]))
    plan = planning.make_plan(scene, source, prefs)
    staged = str(plan.folder / "input" / "00002.png")
    assert plan.explain(f"cannot decode frame '{staged}': damaged") == f"cannot decode frame '{folder / 'b.png'}': damaged"
    with pytest.raises(RuntimeError, match=r"frame '.*shot/b\.png' is damaged"):  # found before any frame is written
        run_op("stylize_strip", source)
