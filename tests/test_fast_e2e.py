"""Fast mode end to end on the real clips, through the CLI and the Python API (issue 2)."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import flowstyle
from flowstyle.io import read_image
from flowstyle.settings import Settings

SIZE = 256


def cli(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "flowstyle", *map(str, args)], capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Per-frame and fast-mode runs of every shared clip, made once for the module."""
    from shared_data import CLIPS, DATA

    if not DATA.is_dir():
        pytest.skip(f"real test material not found at {DATA}")
    base = tmp_path_factory.mktemp("runs")
    out = {}
    for name, clip in CLIPS.items():
        for mode, tw in (("per_frame", "0"), ("fast", None)):
            d = base / name / mode
            args = [clip, "--out", d, "--size", SIZE, "--style", "builtin:7"] + (["--temporal-weight", tw] if tw else [])
            cli("stylize", *args)
            out[name, mode] = d
    return out


@pytest.mark.parametrize("name,count,size", [("sintel_raft_demo", 10, (256, 109)), ("middlebury_rubberwhale", 8, (256, 170)),
                                             ("sintel_cave_2", 50, (256, 109))])
def test_frames_written_with_count_and_size(runs, name, count, size):
    d = runs[name, "fast"]
    files = sorted(d.glob("frame_*.png"))
    assert [f.name for f in files] == [f"frame_{i:05d}.png" for i in range(1, count + 1)]
    rgb = read_image(files[-1])[0]
    assert (rgb.shape[1], rgb.shape[0]) == size
    assert not list(d.glob("*.tmp")) and not list(d.glob(".*.tmp"))
    report = json.loads((d / "report.json").read_text())
    assert report["status"] == "ok" and report["summary"]["frames_total"] == count
    stages = report["summary"]["seconds_per_frame_by_stage"]
    assert stages["stylize"] > 0 and stages["flow"] > 0 and stages["temporal"] > 0
    assert report["settings"]["mode"] == "fast" and "torch" in report["versions"]
    assert report["summary"]["peak_memory_mb"]["cpu_rss_mb"] > 0


@pytest.mark.parametrize("name", ["sintel_raft_demo", "middlebury_rubberwhale", "sintel_cave_2"])
def test_fast_mode_cuts_warping_error_on_every_clip(runs, name):
    pf = json.loads((runs[name, "per_frame"] / "report.json").read_text())["summary"]["warping_error_mean"]
    fast = json.loads((runs[name, "fast"] / "report.json").read_text())["summary"]["warping_error_mean"]
    assert fast < 0.7 * pf, (fast, pf)


@pytest.mark.parametrize("name", ["sintel_raft_demo", "sintel_cave_2"])
def test_fast_mode_keeps_the_style(runs, name):
    """The output stays stylized: far from the input, close to the per-frame stylization."""
    from shared_data import CLIPS
    from flowstyle.io import open_source

    src = open_source(CLIPS[name], max_side=SIZE)
    last = len(src)
    original = src.read(last - 1).rgb
    fast = read_image(runs[name, "fast"] / f"frame_{last:05d}.png")[0]
    pf = read_image(runs[name, "per_frame"] / f"frame_{last:05d}.png")[0]
    assert np.abs(fast - pf).mean() < 0.5 * np.abs(fast - original).mean()


@pytest.mark.parametrize("clip_path", ["clips/sintel_raft_demo", "clips/sintel_cave_2/sintel_cave_2_clean.mp4"])
def test_decode_and_flow_ahead_change_no_pixel(tmp_path, data_dir, monkeypatch, clip_path):
    """On a GPU the next frame's decode and flow run in threads beside the network; forced on here,
    every frame is byte-identical to the run without (a folder, and a video's shared reader)."""
    from flowstyle.fast import run as fast_run

    plain = fast_run.FrameSolver.__init__

    def ahead(self, ctx, timeline):
        plain(self, ctx, timeline)
        assert not self.decode_ahead  # on the CPU it is off: the network takes every core
        self.decode_ahead = self.flow_ahead = True
    settings = Settings(size=128, frames=(1, 8), device="cpu")
    flowstyle.stylize(data_dir / clip_path, "builtin:7", tmp_path / "plain", settings)
    monkeypatch.setattr(fast_run.FrameSolver, "__init__", ahead)
    flowstyle.stylize(data_dir / clip_path, "builtin:7", tmp_path / "ahead", settings)
    written = sorted((tmp_path / "plain").glob("frame_*.png"))
    assert len(written) == 8
    for p in written:
        assert (tmp_path / "ahead" / p.name).read_bytes() == p.read_bytes(), p.name


def test_resume_keeps_unchanged_frames_and_redoes_changed(tmp_path, data_dir):
    clip = data_dir / "clips" / "middlebury_rubberwhale"
    out = tmp_path / "o"
    cli("stylize", clip, "--out", out, "--size", 128)
    before = {p.name: p.read_bytes() for p in out.glob("frame_*.png")}
    proc = cli("stylize", clip, "--out", out, "--size", 128, "--resume", "--json-progress")
    events = [json.loads(l) for l in proc.stderr.splitlines() if l.startswith("{")]
    frames = [e for e in events if e["event"] == "frame"]
    assert len(frames) == 8 and all(e["reused"] for e in frames)
    assert {p.name: p.read_bytes() for p in out.glob("frame_*.png")} == before
    proc = cli("stylize", clip, "--out", out, "--size", 128, "--resume", "--temporal-weight", 3, "--json-progress")
    frames = [json.loads(l) for l in proc.stderr.splitlines() if '"frame"' in l]
    assert not frames[0]["reused"] or not frames[1]["reused"]
    assert sum(e["reused"] for e in frames) <= 1  # frame 1 has no temporal term, so only it may be kept


@pytest.mark.parametrize("options", [(), ("--stroke-sources", 4), ("--incremental-mask", 4)],
                         ids=["defaults", "stroke-sources", "incremental-mask"])
def test_resume_after_partial_run_is_byte_identical(tmp_path, data_dir, options):
    """With state carried from frame to frame (stroke sources, the incremental mask) the kept frames
    step it again, so the frames after them match a run never stopped."""
    clip = data_dir / "clips" / "sintel_raft_demo"
    full, part = tmp_path / "full", tmp_path / "part"
    cli("stylize", clip, "--out", full, "--size", 128, *options)
    cli("stylize", clip, "--out", part, "--size", 128, *options)
    for p in sorted(part.glob("frame_*.png"))[6:]:
        p.unlink()  # as if the run had stopped after frame 6
    cli("stylize", clip, "--out", part, "--size", 128, "--resume", *options)
    frames = json.loads((part / "report.json").read_text())["frames"]
    assert [k for k, f in frames.items() if f.get("reused")] == [str(i) for i in range(1, 7)]  # kept, not redone
    for p in sorted(full.glob("frame_*.png")):
        assert (part / p.name).read_bytes() == p.read_bytes(), p.name


def test_json_progress_protocol(tmp_path, data_dir):
    proc = cli("stylize", data_dir / "clips" / "middlebury_rubberwhale", "--out", tmp_path, "--size", 96,
               "--frames", "2:4", "--json-progress")
    events = [json.loads(l) for l in proc.stderr.splitlines()]
    assert events[0] == {"event": "start", "protocol": 1, "total": 3}
    assert events[-1] == {"event": "done", "status": "ok"}
    assert [e["index"] for e in events if e["event"] == "frame"] == [1, 2, 3]
    assert sorted(p.name for p in tmp_path.glob("frame_*.png")) == ["frame_00001.png", "frame_00002.png", "frame_00003.png"]


def test_preview_writes_one_frame(tmp_path, data_dir):
    cli("stylize", data_dir / "clips" / "sintel_raft_demo", "--out", tmp_path, "--size", 128, "--preview", 4)
    assert (tmp_path / "preview.png").is_file() and not list(tmp_path.glob("frame_*.png"))


def test_style_image_and_blend(tmp_path, data_dir):
    styles = data_dir / "styles"
    report = flowstyle.stylize(data_dir / "clips" / "middlebury_rubberwhale", [f"{styles / 'starry_night.jpg'}:0.7", "builtin:3:0.3"],
                               tmp_path, Settings(size=96, frames=(1, 3)))
    assert report.status == "ok" and len(list(tmp_path.glob("frame_*.png"))) == 3


def test_alpha_passes_through(tmp_path):
    import cv2

    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        img = rng.integers(0, 255, (40, 48, 4), dtype=np.uint8)
        img[..., 3] = 0
        img[10:30, 10:30, 3] = 255
        cv2.imwrite(str(src / f"f{i}.png"), img)
    flowstyle.stylize(src, "builtin:1", tmp_path / "out", Settings(size=None))
    _, alpha, _ = read_image(tmp_path / "out" / "frame_00002.png")
    assert alpha is not None and alpha[20, 20] == 1.0 and alpha[2, 2] == 0.0


@pytest.mark.parametrize("args,needle", [
    (["missing.mp4"], "does not exist"),
    (["{clip}", "--style", "nope.jpg"], "cannot read style image"),
    (["{clip}", "--style", "builtin:99"], "builtin:0 to builtin:25"),
    (["{clip}", "--frames", "5:2"], "empty"),
    (["{clip}", "--frames", "1:99"], "runs past the end"),
])
def test_user_errors_one_clear_line(tmp_path, data_dir, args, needle):
    clip = str(data_dir / "clips" / "middlebury_rubberwhale")
    proc = cli("stylize", *[a.format(clip=clip) for a in args], "--out", tmp_path / "o", check=False)
    assert proc.returncode == 1
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert not list((tmp_path / "o").glob("frame_*.png")) if (tmp_path / "o").exists() else True


def test_sigint_stops_after_complete_frames(tmp_path, data_dir):
    out = tmp_path / "o"
    proc = subprocess.Popen([sys.executable, "-m", "flowstyle", "stylize", str(data_dir / "clips" / "sintel_cave_2" / "sintel_cave_2_clean.mp4"),
                             "--out", str(out), "--size", "256", "--json-progress"], stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if '"frame"' in line and '"index": 3' in line:
            break
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130
    assert '"status": "cancelled"' in rest.splitlines()[-1]
    written = sorted(out.glob("frame_*.png"))
    assert 3 <= len(written) < 50
    for p in written:
        assert read_image(p)[0].shape == (109, 256, 3)
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
