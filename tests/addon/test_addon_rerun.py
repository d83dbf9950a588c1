"""Re-running a strip: the old result survives until the new one is complete, undo tells the
truth about the disk, channels never overlap, and a running job touches the UI sparingly."""

import time
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")

from .addon_helpers import add_style, image_strip, png_complete, run_op, step_until  # noqa: E402
from blender_addon import jobs, planning, results  # noqa: E402


def frames_on_disk(prefs, source) -> dict:
    """{file name: (width, height)} of the stylized frames in the strip's frames folder."""
    out = planning.strip_folder(source, prefs) / "frames"
    return {p.name: results.png_size(p) for p in sorted(out.glob("frame_*.png"))}


def shown_frames(strip) -> list:
    """(file, (width, height)) the result strip shows, or None where the file is gone."""
    folder = bpy.path.abspath(strip.directory)
    out = []
    for element in strip.elements:
        path = Path(folder) / element.filename
        out.append((element.filename, results.png_size(path) if path.is_file() else None))
    return out


def undo_push(name: str) -> None:
    bpy.ops.ed.undo_push(message=name)


def no_overlaps(scene) -> None:
    strips = list(scene.sequence_editor.strips)
    for a in strips:
        for b in strips:
            if a.name < b.name and a.channel == b.channel:
                assert a.frame_final_end <= b.frame_final_start or b.frame_final_end <= a.frame_final_start, \
                    f"'{a.name}' and '{b.name}' overlap in channel {a.channel}"


def test_cancelled_rerun_keeps_the_old_result_and_undo_shows_it(scene, prefs, fake_engine, monkeypatch):
    """The issue's report: re-stylize, cancel, Ctrl+Z must bring back a result that is all there."""
    source = add_style(image_strip(scene, 6), size=96)
    assert run_op("stylize_strip", source) == {'FINISHED'}
    undo_push("Stylize Strip")
    old = frames_on_disk(prefs, source)
    assert len(old) == 6 and set(old.values()) == {(96, 54)}

    monkeypatch.setenv("FAKE_WORKER_DELAY", "0.3")
    source.flowstyle.size = 128
    job = jobs.start(scene, source, planning.make_plan(scene, source, prefs))
    step_until(job, lambda: job.ready >= 2)
    assert frames_on_disk(prefs, source) == old, "the re-run wrote over the result it has not replaced yet"
    jobs.cancel(job)
    step_until(job, lambda: job.finished)
    undo_push("Stylize Strip (cancelled)")

    assert job.status == "cancelled"
    assert source.flowstyle.status.startswith("Cancelled: the previous result stays; Update continues from the")
    result = results.result_strip(scene.sequence_editor, source)
    assert shown_frames(result) == [(f"frame_{i:05d}.png", (96, 54)) for i in range(1, 7)]

    bpy.ops.ed.undo()
    scene = bpy.context.scene
    source = scene.sequence_editor.strips["whale"]
    result = results.result_strip(scene.sequence_editor, source)
    assert shown_frames(result) == [(f"frame_{i:05d}.png", (96, 54)) for i in range(1, 7)]
    assert source.flowstyle.status == "Stylized 6 frames of 'whale'"

    # Update finishes the re-run from the frames it had made, then swaps the result in.
    source.flowstyle.size = 128
    monkeypatch.setenv("FAKE_WORKER_DELAY", "0.02")
    assert run_op("update", source) == {'FINISHED'}
    result = results.result_strip(scene.sequence_editor, source)
    assert shown_frames(result) == [(f"frame_{i:05d}.png", (128, 72)) for i in range(1, 7)]
    assert all(png_complete(planning.strip_folder(source, prefs) / "frames" / f"frame_{i:05d}.png")
               for i in range(1, 7))
    assert not (planning.strip_folder(source, prefs) / results.STAGING).exists()
    assert source.flowstyle.status == "Stylized 6 frames of 'whale'"


def test_undo_past_a_finished_rerun_says_what_is_missing(scene, prefs, fake_engine):
    source = add_style(image_strip(scene, 6), size=96)
    run_op("stylize_strip", source)
    undo_push("Stylize 6")
    source.frame_offset_end = 3  # the next run makes 3 frames and replaces the 6
    run_op("stylize_strip", source)
    undo_push("Stylize 3")
    assert len(frames_on_disk(prefs, source)) == 3

    bpy.ops.ed.undo()  # the 6-frame result strip comes back; its frames 4-6 are gone from disk
    source = bpy.context.scene.sequence_editor.strips["whale"]
    result = results.result_strip(bpy.context.scene.sequence_editor, source)
    assert len(result.elements) == 6
    assert source.flowstyle.status == "3 of 6 stylized frames of 'whale' are missing on disk: run Update"

    bpy.ops.ed.redo()
    source = bpy.context.scene.sequence_editor.strips["whale"]
    assert source.flowstyle.status == "Stylized 3 frames of 'whale'"


def test_result_goes_to_the_first_free_channel_and_previews_stay_on_top(scene, prefs, fake_engine, monkeypatch):
    source = add_style(image_strip(scene, 8, channel=1, start=1), size=96)
    scene.sequence_editor.strips.new_effect(name="blocker", type='COLOR', channel=2, frame_start=7, length=4)
    scene.frame_current = 3
    run_op("preview_frame", source)
    preview = results.preview_strips(scene.sequence_editor, source)[0]
    assert preview.channel == 2, "a preview goes to the first channel free at its frame"

    monkeypatch.setenv("FAKE_WORKER_DELAY", "0.3")
    job = jobs.start(scene, source, planning.make_plan(scene, source, prefs))
    assert job.channel == 3, "channel 2 is taken at frames 7-8 by the blocker: 3 is the first free over 1-8"
    step_until(job, lambda: job.frames >= 2)
    jobs.cancel(job)
    step_until(job, lambda: job.finished)

    editor = scene.sequence_editor
    result = results.result_strip(editor, source)
    (preview,) = results.preview_strips(editor, source)
    assert result.channel == 3
    assert preview.channel > result.channel, "the result would hide the preview"
    no_overlaps(scene)

    # A new preview goes above the result too.
    scene.frame_current = 1
    run_op("preview_frame", source)
    (preview,) = results.preview_strips(editor, source)
    assert preview.channel == 4
    no_overlaps(scene)


def test_running_job_updates_the_strip_in_batches(scene, prefs, fake_engine, monkeypatch):
    """Each strip change costs Blender a redraw: frames join the strip a few times a second."""
    monkeypatch.setenv("FAKE_WORKER_DELAY", "0.03")
    source = add_style(image_strip(scene, 8), size=64)
    for extra in range(32):  # 40 frames: the 8 whale frames five times over
        source.elements.append(source.elements[extra % 8].filename)
    calls = []
    real_show = results.show_frames
    monkeypatch.setattr(results, "show_frames", lambda *a, **k: calls.append(a[4]) or real_show(*a, **k))
    status_before = source.flowstyle.status
    job = jobs.start(scene, source, planning.make_plan(scene, source, prefs))
    started = time.monotonic()
    statuses = set()
    while not jobs.step(job):
        statuses.add(source.flowstyle.status)
        time.sleep(0.01)
    seconds = time.monotonic() - started
    assert job.status == "ok" and job.frames == 40
    assert statuses == {status_before}, "strip properties were written while the job ran"
    assert len(calls) <= seconds / jobs.SHOW_EVERY + 2, (calls, seconds)
    assert calls[-1] == 40
