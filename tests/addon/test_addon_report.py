"""The result's warping error in the panel and report.png in an Image Editor (issue 18), headless."""

import json

import pytest

bpy = pytest.importorskip("bpy")

from .addon_helpers import add_style, image_strip, run_op  # noqa: E402
from .test_addon_panels import draw  # noqa: E402
from blender_addon import panels, results, run_report  # noqa: E402


def _result(scene, strip):
    return results.result_strip(scene.sequence_editor, strip)


def test_real_run_shows_its_warping_error_and_opens_report_png(scene, prefs, engine):
    strip = add_style(image_strip(scene, 3), size=64)
    run_op("stylize_strip", strip)
    result = _result(scene, strip)
    folder = run_report.result_folder(result)
    assert (folder / "report.png").is_file()
    mean = json.loads((folder / "report.json").read_text())["summary"]["warping_error_mean"]
    for shown in (strip, result):  # the source's panel and the result's
        log = draw(panels.FLOWSTYLE_PT_strip, shown)
        assert ("label", f"Warping error {mean:.4f}") in log and ("operator", "flowstyle.open_report") in log

    before = {img.name for img in bpy.data.images}
    run_op("open_report", strip)
    print("A", [(i.name, i.filepath, i.source, i.users) for i in bpy.data.images])
    run_op("open_report", result)  # loaded once, not a second copy
    print("B", [(i.name, i.filepath, i.source, i.users) for i in bpy.data.images])
    loaded = [img for img in bpy.data.images if img.name not in before]
    print([(i.name, i.filepath) for i in loaded])
    assert len(loaded) == 1 and bpy.path.abspath(loaded[0].filepath) == str(folder / "report.png")
    assert tuple(loaded[0].size)[0] > 500  # it decodes: a real picture
    bpy.data.images.remove(loaded[0])


def test_per_frame_figure_is_shown_where_measured(scene, prefs, fake_engine, tmp_path):
    strip = add_style(image_strip(scene, 3))
    run_op("stylize_strip", strip)
    folder = run_report.result_folder(_result(scene, strip))
    report = json.loads((folder / "report.json").read_text())
    report["summary"] = {"warping_error_mean": 0.01, "warping_error_perframe_mean": 0.025}
    (folder / "report.json").write_text(json.dumps(report))
    assert run_report.summary_line(folder) == "Warping error 0.0100 (per-frame 0.0250: 2.5x less)"
    assert ("label", "Warping error 0.0100 (per-frame 0.0250: 2.5x less)") in draw(panels.FLOWSTYLE_PT_strip, strip)
    (folder / "report.json").write_text("{broken")
    assert run_report.summary_line(folder) is None
    assert ("label", "No warping error reported") in draw(panels.FLOWSTYLE_PT_strip, strip)


def test_open_report_without_a_picture_is_one_clear_error(scene, prefs, fake_engine):
    strip = add_style(image_strip(scene, 3))
    with bpy.context.temp_override(active_strip=strip):
        assert not bpy.ops.flowstyle.open_report.poll()  # no result yet
    run_op("stylize_strip", strip)
    (run_report.result_folder(_result(scene, strip)) / "report.png").unlink(missing_ok=True)  # --no-report-image
    with pytest.raises(RuntimeError, match="no report picture at .*report.png"):
        run_op("open_report", strip)


def test_remove_result_deletes_report_png(scene, prefs, fake_engine):
    strip = add_style(image_strip(scene, 3))
    run_op("stylize_strip", strip)
    folder = run_report.result_folder(_result(scene, strip))
    (folder / "report.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    run_op("remove_result", strip)
    assert not (folder / "report.png").exists()
