"""report.png (issue 18): made by every run, a real PNG under 1 MB, skippable; time slices show flicker."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import flowstyle
from flowstyle.io import read_image
from flowstyle.io.report_image import Column, draw_report, pick_frames, slice_change, time_slice
from flowstyle.settings import Settings
from shared_data import CLIPS, DATA


def cli(*args):
    proc = subprocess.run([sys.executable, "-m", "flowstyle", *map(str, args)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def decode_png(path: Path) -> np.ndarray:
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert img is not None, f"{path} does not decode"
    return img


def output_slice(out: Path) -> np.ndarray:
    files = sorted(out.glob("frame_*.png"))
    return time_slice(read_image(f)[0] for f in files)


@pytest.fixture
def need_data():
    if not DATA.is_dir():
        pytest.skip(f"real test material not found at {DATA}")


class TestTimeSlice:
    def test_one_middle_row_per_frame_in_order(self):
        frames = [np.full((5, 4, 3), k, np.float32) for k in range(3)]
        frames[1][2] = 7.0  # the middle row of a 5-row frame is row 2
        s = time_slice(iter(frames))
        assert s.shape == (3, 4, 3)
        assert (s[0] == 0).all() and (s[1] == 7).all() and (s[2] == 2).all()

    def test_change_is_zero_for_a_still_and_grows_with_flicker(self):
        still = np.zeros((6, 8, 3), np.float32)
        assert slice_change(still) == 0.0
        flicker = still.copy()
        flicker[1::2] = 0.5
        assert slice_change(flicker) == pytest.approx(0.5)
        assert slice_change(still[:1]) == 0.0

    def test_no_frames_is_an_error(self):
        with pytest.raises(ValueError, match="at least one frame"):
            time_slice([])

    def test_columns_take_frames_in_order_and_thumbnails_at_the_picks(self):
        col = Column("input", pick_frames(5))
        assert pick_frames(5) == (0, 2, 4) and pick_frames(1) == (0,)
        for k in range(5):
            col.add(k, np.full((400, 800, 3), k / 4, np.float32))
        assert sorted(col.thumbs) == [0, 2, 4] and max(col.thumbs[0].shape[:2]) <= 320
        assert col.slice().shape == (5, 800, 3)
        with pytest.raises(ValueError, match="in order"):
            col.add(7, np.zeros((4, 4, 3), np.float32))

    def test_a_flickering_run_has_a_noisier_slice_than_a_stable_one(self, need_data, tmp_path):
        """On real clips: per-frame stylization (temporal weight 0) against flowstyle's default, same network.

        The two calm clips: 1.20x and 1.24x at 256 px with today's defaults (1.33x and 1.26x when this test
        was written; sintel_cave_2's fast motion: only 1.12x, so it is left out; see README)."""
        for name in ("middlebury_rubberwhale", "sintel_raft_demo"):
            slices = {}
            for label, tw in (("flicker", 0.0), ("stable", None)):
                out = tmp_path / name / label
                flowstyle.stylize(CLIPS[name], "builtin:7", out, Settings(size=256, temporal_weight=tw),
                                  report_image=False)
                slices[label] = output_slice(out)
            flicker, stable = slice_change(slices["flicker"]), slice_change(slices["stable"])
            assert flicker > 1.2 * stable, (name, flicker, stable)


def test_draw_report_writes_a_small_png_atomically(tmp_path):
    picks = pick_frames(6)
    cols = [Column(t, picks) for t in ("input", "flowstyle")]
    rng = np.random.default_rng(0)
    for k in range(6):
        for c in cols:
            c.add(k, rng.random((436, 1024, 3), dtype=np.float32))
    cols[1].errors = {k: 0.01 * k for k in range(2, 7)}
    draw_report(tmp_path / "report.png", cols, title="noise", keys=[3], overrides=[5])
    img = decode_png(tmp_path / "report.png")
    assert img.shape[1] >= 1000 and (tmp_path / "report.png").stat().st_size < 1_000_000
    assert [p.name for p in tmp_path.iterdir()] == ["report.png"]  # no temp file left


@pytest.mark.slow
def test_every_run_writes_report_png_and_the_flag_skips_it(need_data, tmp_path):
    clip = CLIPS["middlebury_rubberwhale"]
    cli("stylize", clip, "--out", tmp_path / "a", "--size", 128, "--frames", "1:4")
    img = decode_png(tmp_path / "a" / "report.png")
    assert img.ndim >= 2 and img.shape[0] > 500
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert report["summary"]["extra_seconds"]["report_image"] > 0
    assert not list((tmp_path / "a").glob(".*.tmp"))

    cli("stylize", clip, "--out", tmp_path / "b", "--size", 128, "--frames", "1:4", "--no-report-image")
    assert (tmp_path / "b" / "frame_00004.png").is_file() and not (tmp_path / "b" / "report.png").exists()


@pytest.mark.slow
def test_compare_perframe_at_1024_px_is_under_1_mb_and_says_what_it_cost(need_data, tmp_path):
    out = tmp_path / "cave"
    cli("stylize", CLIPS["sintel_cave_2"], "--out", out, "--size", 1024, "--frames", "1:6", "--compare-perframe")
    img = decode_png(out / "report.png")
    size = (out / "report.png").stat().st_size
    assert size < 1_000_000, size
    assert img.shape[1] >= 1000
    report = json.loads((out / "report.json").read_text())
    summary = report["summary"]
    assert summary["warping_error_perframe_mean"] > summary["warping_error_mean"] > 0
    assert all("warping_error_perframe" in report["frames"][str(i)] for i in range(2, 7))
    assert any("one more network pass per frame" in n for n in report["notes"])
    assert summary["extra_seconds"]["compare_perframe"] > 0


def test_compare_perframe_is_fast_mode_only(tmp_path):
    from flowstyle import FlowstyleError

    with pytest.raises(FlowstyleError, match="--compare-perframe compares fast mode"):
        flowstyle.stylize(tmp_path / "missing.mp4", None, tmp_path / "o", Settings(mode="quality"),
                          compare_perframe=True)


def test_compare_perframe_is_not_for_chunk_jobs():
    from flowstyle import FlowstyleError, RunOptions

    with pytest.raises(FlowstyleError, match="give it to 'flowstyle stitch'"):
        RunOptions(chunk=(1, 2), compare_perframe=True).checked()


@pytest.mark.parametrize("mode", ["fast", "quality"])
def test_report_png_takes_the_frames_the_run_wrote_without_reading_them_back(need_data, tmp_path, monkeypatch, mode,
                                                                           random_vgg):
    """The picture is built from what the run kept of each frame as it wrote it (at 1024 px, 17 ms a frame
    saved on cave_2, in every mode): no output frame is read back, and the PNG is the very one that reading
    the input and the written frames again gives."""
    import flowstyle.pipeline as pipeline
    from flowstyle.io.report_image import SeenFrames

    settings = Settings(size=96, device="cpu", frames=(1, 5), mode=mode, iterations=3, iterations_first=3,
                        vgg_weights=str(random_vgg), styles=(flowstyle.StyleRef(image=str(DATA / "styles" / "starry_night.jpg")),))
    reads, real = [], pipeline.read_image
    monkeypatch.setattr(pipeline, "read_image", lambda path, what="image": reads.append(what) or real(path, what))
    flowstyle.stylize(CLIPS["middlebury_rubberwhale"], None, tmp_path / "kept", settings)
    assert "output frame" not in reads
    monkeypatch.setattr(SeenFrames, "add", lambda self, *args: None)  # nothing kept: everything read back
    flowstyle.stylize(CLIPS["middlebury_rubberwhale"], None, tmp_path / "read", settings)
    assert reads.count("output frame") == 5
    assert (tmp_path / "kept" / "report.png").read_bytes() == (tmp_path / "read" / "report.png").read_bytes()
