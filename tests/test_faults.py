"""Fault suite (DESIGN 8, issue 6): hostile inputs, kills, locks, and the source never touched."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

SIZE = "160"


def fingerprint(path):
    """Content hash and mtime of every file under path (or of the file)."""
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    return {str(f): (hashlib.sha256(f.read_bytes()).hexdigest(), f.stat().st_mtime_ns) for f in files if f.is_file()}


def flowstyle(*args, **kw):
    return subprocess.run([sys.executable, "-m", "flowstyle", "stylize", *map(str, args)], capture_output=True,
                          text=True, timeout=300, **kw)


def outputs(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("frame_*.png"))}


def leftovers(folder):
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


@pytest.fixture
def raft(data_dir):
    return data_dir / "clips" / "sintel_raft_demo"


def make_case(tmp_path, data_dir, case):
    """Build one hostile input; returns (argv after 'stylize', expected message part)."""
    clip = data_dir / "clips" / "middlebury_rubberwhale"
    out = tmp_path / "out"
    if case == "missing_video":
        return [tmp_path / "gone.mp4", "--out", out], "does not exist"
    if case == "corrupt_video":
        bad = tmp_path / "bad.mp4"
        bad.write_bytes(os.urandom(4096))
        return [bad, "--out", out], "cannot read video"
    if case == "truncated_video":
        src = (data_dir / "clips" / "sintel_cave_2" / "sintel_cave_2_clean.mp4").read_bytes()
        bad = tmp_path / "cut.mp4"
        bad.write_bytes(src[: len(src) // 3])
        return [bad, "--out", out], "cannot read video"
    if case == "empty_folder":
        (tmp_path / "empty").mkdir()
        return [tmp_path / "empty", "--out", out], "holds no image frames"
    if case == "mixed_sizes":
        d = tmp_path / "mixed"
        d.mkdir()
        for i, p in enumerate(sorted(clip.glob("*.png"))[:4]):
            img = cv2.imread(str(p))
            cv2.imwrite(str(d / f"f{i}.png"), img if i != 3 else img[:100, :100])
        return [d, "--out", out], "must have one size"
    if case == "zero_range":
        return [clip, "--out", out, "--frames", "4:3"], "empty"
    if case == "range_outside":
        return [clip, "--out", out, "--frames", "5:20"], "runs past the end"
    if case == "unreadable_style":
        bad = tmp_path / "style.jpg"
        bad.write_bytes(b"this is not a jpeg")
        return [clip, "--out", out, "--style", bad], "cannot read style image"
    if case == "tiny_style":
        tiny = tmp_path / "tiny.png"
        cv2.imwrite(str(tiny), np.zeros((1, 1, 3), np.uint8))
        return [clip, "--out", out, "--style", tiny], "too small to carry a style"
    if case == "unwritable_out":
        blocker = tmp_path / "file"
        blocker.write_text("x")
        return [clip, "--out", blocker / "sub"], "cannot write to output folder"
    if case == "bad_keyframes":
        kf = tmp_path / "k.json"
        kf.write_text("{'keys': oops}")
        return [clip, "--out", out, "--keyframes", kf], "not valid JSON"
    raise AssertionError(case)


CASES = ["missing_video", "corrupt_video", "truncated_video", "empty_folder", "mixed_sizes", "zero_range",
         "range_outside", "unreadable_style", "tiny_style", "unwritable_out", "bad_keyframes"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_one_clear_line_nothing_written(tmp_path, data_dir, case):
    argv, needle = make_case(tmp_path, data_dir, case)
    before = fingerprint(data_dir / "clips")
    style = [] if "--style" in map(str, argv) else ["--style", "builtin:2"]
    proc = flowstyle(*argv, "--size", SIZE, *style)
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert any(needle in l for l in lines) and len(lines) <= 2, lines  # the message, and the progress sink's nothing else
    out = tmp_path / "out"
    assert not out.exists() or not list(out.glob("frame_*.png"))
    assert fingerprint(data_dir / "clips") == before


def test_kill_at_random_points_then_resume_is_byte_identical(tmp_path, raft):
    ref = tmp_path / "ref"
    base = [raft, "--size", "320", "--style", "builtin:5"]
    t = time.perf_counter()
    assert flowstyle(*base, "--out", ref).returncode == 0
    duration = time.perf_counter() - t
    before = fingerprint(raft)
    out = tmp_path / "killed"
    rng = np.random.default_rng(7)
    points = sorted(rng.uniform(0.25, 0.95, 6) * duration)  # spread over start-up, flow, stylize and write
    for delay in points:
        proc = subprocess.Popen([sys.executable, "-m", "flowstyle", "stylize", *map(str, base), "--out", str(out), "--resume"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for p in out.glob("frame_*.png"):  # whatever is there under a final name is a complete PNG
            assert cv2.imread(str(p)) is not None, p
    assert flowstyle(*base, "--out", out, "--resume").returncode == 0
    assert outputs(out) == outputs(ref)
    assert leftovers(out) == []
    assert fingerprint(raft) == before


def test_second_job_on_same_output_is_refused(tmp_path, data_dir):
    cave = data_dir / "clips" / "sintel_cave_2" / "sintel_cave_2_clean.mp4"
    out = tmp_path / "o"
    first = subprocess.Popen([sys.executable, "-m", "flowstyle", "stylize", str(cave), "--out", str(out), "--size", "1024",
                              "--json-progress"], stderr=subprocess.PIPE, text=True)  # full size: it runs long enough
    for line in first.stderr:
        if '"frame"' in line:
            break
    second = flowstyle(cave, "--out", out, "--size", SIZE)
    assert second.returncode == 1 and "another flowstyle job" in second.stderr and "choose another --out" in second.stderr
    assert first.poll() is None, "the first job finished before the second started: the test proves nothing"
    first.send_signal(signal.SIGINT)
    first.stderr.read()
    assert first.wait(timeout=120) == 130
    frames = sorted(out.glob("frame_*.png"))
    assert frames and all(cv2.imread(str(p)).shape == (436, 1024, 3) for p in frames)  # the first job's, undisturbed


def test_two_jobs_on_different_outputs_run_side_by_side(tmp_path, data_dir):
    clip = data_dir / "clips" / "middlebury_rubberwhale"
    procs = [subprocess.Popen([sys.executable, "-m", "flowstyle", "stylize", str(clip), "--out", str(tmp_path / n),
                               "--size", SIZE, "--style", f"builtin:{i}"], stderr=subprocess.PIPE)
             for i, n in enumerate(("a", "b"))]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    assert len(outputs(tmp_path / "a")) == len(outputs(tmp_path / "b")) == 8
    assert outputs(tmp_path / "a") != outputs(tmp_path / "b")


@pytest.mark.parametrize("content", ["999999", "1"])  # a dead job's PID, and one reused by a live process
def test_lock_file_of_a_dead_job_does_not_block(tmp_path, data_dir, content):
    out = tmp_path / "o"
    (out / ".flowstyle").mkdir(parents=True)
    (out / ".flowstyle" / "lock").write_text(content)
    proc = flowstyle(data_dir / "clips" / "middlebury_rubberwhale", "--out", out, "--size", "96", "--frames", "1:2")
    assert proc.returncode == 0, proc.stderr


def test_out_of_memory_names_a_size_that_fits(tmp_path, data_dir, monkeypatch):
    import importlib

    import flowstyle as fs
    from flowstyle import FlowstyleError

    stylize_mod = importlib.import_module("flowstyle.fast.magenta")

    def boom(self, rgb):
        raise MemoryError

    monkeypatch.setattr(stylize_mod.MagentaStylizer, "__call__", boom)
    with pytest.raises(FlowstyleError, match=r"out of memory stylizing 584x388 frames on cpu: use a smaller working size, e.g. --size \d+"):
        fs.stylize(data_dir / "clips" / "middlebury_rubberwhale", "builtin:1", tmp_path, fs.Settings(size=None, device="cpu"))
    assert not list(tmp_path.glob("frame_*.png"))


def test_full_disk_is_one_clear_line(tmp_path, monkeypatch):
    import errno

    from flowstyle.io import images as frames
    from flowstyle import FlowstyleError

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(frames.os, "replace", full)
    with pytest.raises(FlowstyleError, match="No space left on device; check the output folder is writable and has space"):
        frames.write_png(tmp_path / "x.png", np.zeros((4, 4, 3), np.float32))
    assert list(tmp_path.iterdir()) == []  # the temp file went too


# ---- issue 14: nothing overwritten, nothing mixed ----------------------------------------------

def copy_frames(src, dst, n=3, name="frame_{:05d}.png"):
    dst.mkdir(parents=True, exist_ok=True)
    for k, f in enumerate(sorted(src.glob("*.png"))[:n]):
        (dst / name.format(k + 1)).write_bytes(f.read_bytes())
    return dst


@pytest.mark.parametrize("how", ["same", "link", "dotted"])
def test_output_into_the_input_folder_is_refused(tmp_path, data_dir, how):
    clip = copy_frames(data_dir / "clips" / "middlebury_rubberwhale", tmp_path / "shot")  # named like outputs
    before = fingerprint(clip)
    out = {"same": clip, "dotted": clip / ".." / "shot"}.get(how)
    if how == "link":
        out = tmp_path / "alias"
        out.symlink_to(clip, target_is_directory=True)
    proc = flowstyle(clip, "--out", out, "--size", "96")
    assert proc.returncode == 1 and "choose another output folder" in proc.stderr, proc.stderr
    assert fingerprint(clip) == before


def test_pattern_input_named_like_the_outputs_is_refused(tmp_path, data_dir):
    clip = copy_frames(data_dir / "clips" / "middlebury_rubberwhale", tmp_path / "shot")
    before = fingerprint(clip)
    proc = flowstyle(clip / "frame_%05d.png", "--out", clip, "--size", "96")
    assert proc.returncode == 1 and fingerprint(clip) == before


@pytest.mark.parametrize("how", ["named", "hardlink", "keyframes"])
def test_style_and_keyframe_files_in_the_output_are_never_replaced(tmp_path, data_dir, how):
    out = tmp_path / "out"
    out.mkdir()
    painting = data_dir / "styles" / "starry_night.jpg"
    style = out / "preview.png"  # a file the run writes
    if how == "hardlink":
        style = tmp_path / "starry.png"
        style.write_bytes(cv2.imencode(".png", cv2.imread(str(painting)))[1].tobytes())
        os.link(style, out / "frame_00001.png")
    else:
        style.write_bytes(cv2.imencode(".png", cv2.imread(str(painting)))[1].tobytes())
    args = ["--style", style]
    if how == "keyframes":
        keys = out / "report.json"
        keys.write_text(json.dumps({"keys": [{"frame": 1, "style": "builtin:2"}]}))
        args = ["--keyframes", keys]
    before = fingerprint(tmp_path)
    proc = flowstyle(data_dir / "clips" / "middlebury_rubberwhale", "--out", out, "--size", "96", *args)
    assert proc.returncode == 1 and "would overwrite" in proc.stderr, proc.stderr
    assert fingerprint(tmp_path) == before


def test_two_jobs_in_one_process_exclude_each_other(tmp_path):
    from flowstyle.base.errors import FlowstyleError
    from flowstyle.io.lock import OutputLock

    with OutputLock(tmp_path):
        with pytest.raises(FlowstyleError, match="another flowstyle job"):
            OutputLock(tmp_path).__enter__()
        with pytest.raises(FlowstyleError, match="another flowstyle job"):
            OutputLock(tmp_path, (1, 4)).__enter__()  # a farm chunk beside a plain job
    with OutputLock(tmp_path, (1, 4)), OutputLock(tmp_path, (2, 4)):  # chunks of one shot side by side
        with pytest.raises(FlowstyleError, match="chunk 2/4"):
            OutputLock(tmp_path, (2, 4)).__enter__()
        with pytest.raises(FlowstyleError, match="another flowstyle job"):
            OutputLock(tmp_path).__enter__()
    with OutputLock(tmp_path):  # all released
        pass


def test_only_the_runs_own_temp_files_are_cleaned(tmp_path, data_dir):
    out = tmp_path / "out"
    out.mkdir()
    mine = out / ".frame_00001.png.k3j2h1.tmp"
    theirs = [out / ".notes.txt.tmp", out / ".frame_notes.tmp", out / "x.tmp"]
    for p in [mine, *theirs]:
        p.write_text("x")
    proc = flowstyle(data_dir / "clips" / "middlebury_rubberwhale", "--out", out, "--size", "96", "--frames", "1:2")
    assert proc.returncode == 0, proc.stderr
    assert not mine.exists() and all(p.read_text() == "x" for p in theirs)


@pytest.mark.parametrize("args, message", [
    (["--temporal-weight", "inf"], "finite"),
    (["--temporal-weight", "nan"], "finite"),
    (["--style", "builtin:3:nan"], "positive number"),
    (["--style", "builtin:3:inf"], "positive number"),
    (["--margin", "-5"], "--margin must be 0 or more"),
])
def test_non_finite_and_out_of_range_numbers_are_refused(tmp_path, data_dir, args, message):
    proc = flowstyle(data_dir / "clips" / "middlebury_rubberwhale", "--out", tmp_path / "o", "--size", "96", *args)
    assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not list((tmp_path / "o").glob("frame_*.png")) if (tmp_path / "o").exists() else True


def test_keyframe_style_weight_nan_is_refused(tmp_path, data_dir):
    keys = tmp_path / "k.json"
    keys.write_text('{"keys": [{"frame": 1, "style": "builtin:2:nan"}]}')
    proc = flowstyle(data_dir / "clips" / "middlebury_rubberwhale", "--out", tmp_path / "o", "--size", "96",
                     "--keyframes", keys)
    assert proc.returncode == 1 and "positive number" in proc.stderr, proc.stderr


def test_gap_in_a_pattern_is_said(tmp_path, data_dir):
    clip = copy_frames(data_dir / "clips" / "middlebury_rubberwhale", tmp_path / "shot", n=5, name="s_{:04d}.png")
    (clip / "s_0004.png").unlink()
    proc = flowstyle(clip / "s_%04d.png", "--out", tmp_path / "o", "--size", "96")
    assert proc.returncode == 0 and "has a gap" in proc.stderr and "s_0005.png" not in proc.stderr.split("gap")[0]
    assert len(outputs(tmp_path / "o")) == 3


def test_chunk_jobs_probing_one_folder_at_once_do_not_trip_each_other(tmp_path):
    """Farm and Ray chunk jobs start together on one output folder; each checks it can write there."""
    import threading

    from flowstyle.pipeline import _check_writable

    errors = []

    def probe():
        for _ in range(200):
            try:
                _check_writable(tmp_path / "out")
            except Exception as exc:  # noqa: BLE001 - any error is the failure
                errors.append(exc)

    threads = [threading.Thread(target=probe) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_sigterm_stops_after_a_frame_with_done_last_and_the_report_written(tmp_path, data_dir):
    cave = data_dir / "clips" / "sintel_cave_2" / "sintel_cave_2_clean.mp4"
    out = tmp_path / "o"
    proc = subprocess.Popen([sys.executable, "-m", "flowstyle", "stylize", str(cave), "--out", str(out), "--size", "320",
                             "--json-progress"], stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if '"frame"' in line:
            break
    proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read().strip().splitlines()
    assert proc.wait(timeout=120) == 143
    assert all(json.loads(l) for l in rest) and json.loads(rest[-1]) == {"event": "done", "status": "cancelled"}
    assert json.loads((out / "report.json").read_text())["status"] == "cancelled"
    assert all(cv2.imread(str(p)) is not None for p in out.glob("frame_*.png"))


FAIL_AT_FRAME_3 = """
import sys
from flowstyle.base.errors import FlowstyleError
import flowstyle.context as fast
real, calls = fast.write_png, []
def write_png(*a, **k):
    calls.append(1)
    if len(calls) == 3:
        raise FlowstyleError("cannot write frame 3: disk full (injected)")
    return real(*a, **k)
fast.write_png = write_png
from flowstyle.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_errors_after_the_progress_bar_starts_go_to_stderr(tmp_path, data_dir):
    clip = copy_frames(data_dir / "clips" / "middlebury_rubberwhale", tmp_path / "shot", n=5)
    proc = subprocess.run([sys.executable, "-c", FAIL_AT_FRAME_3, "stylize", str(clip), "--out", str(tmp_path / "o"),
                           "--size", "96"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "cannot write frame 3" in proc.stderr and "%|" in proc.stderr, proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("shape", [(3, 3), (2, 200), (200, 12)])
def test_frames_too_small_for_the_flow_are_one_line(tmp_path, shape):
    d = tmp_path / "tiny"
    d.mkdir()
    for k in range(3):
        cv2.imwrite(str(d / f"f{k}.png"), np.full(shape + (3,), 40 * k, np.uint8))
    proc = flowstyle(d, "--out", tmp_path / "o")
    assert proc.returncode == 1 and "too small to stylize" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_a_working_size_too_small_for_a_long_thin_frame_is_one_line(tmp_path):
    d = tmp_path / "strip"
    d.mkdir()
    cv2.imwrite(str(d / "f1.png"), np.zeros((40, 4000, 3), np.uint8))
    proc = flowstyle(d, "--out", tmp_path / "o", "--size", "256")
    assert proc.returncode == 1 and "use a larger --size" in proc.stderr, proc.stderr


def test_an_existing_path_with_a_percent_sign_is_not_a_pattern(tmp_path, data_dir):
    clip = copy_frames(data_dir / "clips" / "middlebury_rubberwhale", tmp_path / "shot 100%", n=3)
    proc = flowstyle(clip, "--out", tmp_path / "o", "--size", "96")
    assert proc.returncode == 0, proc.stderr
    assert len(outputs(tmp_path / "o")) == 3


# ---- issue 14, round two: every error on stderr, as JSON lines when asked ---------------------

NOISY_RUN = """
import logging, os, sys, warnings
import flowstyle.pipeline as pipeline
real = pipeline.run
def noisy(*a, **k):
    os.write(2, b"[ WARN:0@0.1] a native library's line\\n")
    print("a line on Python's stderr", file=sys.stderr)
    warnings.warn("a library warning")
    logging.getLogger("ray").warning("a Ray notice")
    return real(*a, **k)
pipeline.run = noisy
from flowstyle.cli import main
sys.exit(main(sys.argv[1:]))
"""


def json_lines(text):
    """Every line parsed as JSON (fails on any other line)."""
    return [json.loads(l) for l in text.splitlines()]


@pytest.mark.parametrize("extra, code", [([], 0), (["--frames", "9:12"], 1), (["--no-such-flag"], 2), (["--json"], 0)])
def test_json_progress_stream_holds_only_json_lines_done_last(tmp_path, data_dir, extra, code):
    clip = copy_frames(data_dir / "clips" / "middlebury_rubberwhale", tmp_path / "shot", n=3)
    json_flag = [] if extra == ["--json"] else ["--json-progress"]  # an abbreviation counts too
    proc = subprocess.run([sys.executable, "-c", NOISY_RUN, "stylize", str(clip), "--out", str(tmp_path / "o"),
                           "--size", "64", *json_flag, *extra], capture_output=True, text=True, timeout=300)
    events = json_lines(proc.stderr)
    assert proc.returncode == code, proc.stderr
    assert events[-1] == {"event": "done", "status": "ok" if code == 0 else "failed"}
    assert [e for e in events if e["event"] == "done"] == [events[-1]]
    if code != 2:  # the run started: its noise came through as events, not as raw text
        logs = " ".join(e.get("message", "") for e in events if e["event"] in ("log", "warning"))
        assert all(s in logs for s in ("native library", "Python's stderr", "a library warning", "a Ray notice")), events
    else:
        assert events[0]["event"] == "error" and "--no-such-flag" in events[0]["message"]


def _damage(path, how):
    data = bytearray(path.read_bytes())
    if how == "truncated":
        data = data[: len(data) // 2]
    else:  # one flipped byte in the middle of the pixel data
        data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("ext, how", [(".png", "truncated"), (".png", "flipped"), (".jpg", "truncated")])
def test_a_damaged_frame_mid_shot_is_found_before_anything_is_written(tmp_path, data_dir, ext, how):
    shot = tmp_path / "shot"
    shot.mkdir()
    for k, f in enumerate(sorted((data_dir / "clips" / "middlebury_rubberwhale").glob("*.png"))[:6]):
        cv2.imwrite(str(shot / f"s_{k + 1:04d}{ext}"), cv2.imread(str(f)))
    _damage(shot / f"s_0005{ext}", how)
    proc = flowstyle(shot, "--out", tmp_path / "o", "--size", "96")
    assert proc.returncode == 1 and f"frame '{shot / f's_0005{ext}'}' is damaged" in proc.stderr, proc.stderr
    assert not (tmp_path / "o").exists()


def test_a_truncated_video_is_found_before_anything_is_written(tmp_path):
    video = tmp_path / "v.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 64))
    rng = np.random.default_rng(0)
    for _ in range(12):
        writer.write(rng.integers(0, 255, (64, 96, 3), np.uint8))
    writer.release()
    video.write_bytes(video.read_bytes()[: video.stat().st_size * 6 // 10])  # the header still says 12 frames
    proc = flowstyle(video, "--out", tmp_path / "o")
    assert proc.returncode == 1 and "ends after 7 decodable frames" in proc.stderr and "--frames 1:7" in proc.stderr, proc.stderr
    assert not (tmp_path / "o").exists()


def fixable_case(tmp_path, data_dir, case):
    """Causes a user can fix that used to end as internal errors: (argv after the command, message part)."""
    shot = copy_frames(data_dir / "clips" / "middlebury_rubberwhale", tmp_path / "shot", n=3)
    out, keys = tmp_path / "o", tmp_path / "k.json"
    (tmp_path / "afile").write_text("x")
    base = ["stylize", shot, "--out", out, "--size", "64"]
    if case == "cache_is_a_file":
        return base + ["--cache", tmp_path / "afile"], "--cache '%s' is a file" % (tmp_path / "afile")
    if case == "cache_under_a_file":
        return base + ["--cache", tmp_path / "afile" / "c"], "cannot write to flow cache folder"
    if case == "lock_is_a_folder":
        (out / ".flowstyle" / "lock").mkdir(parents=True)
        return base, "is a folder: remove it"
    if case == "more_chunks_than_frames":
        return base + ["--chunk", "5/8"], "--chunk 5/8: the clip has only 3 frames"
    if case == "stitch_before_the_chunks":
        return ["stitch", *base[1:], "--chunks", "2"], "run all 2 chunk jobs"
    texts = {"keys_null": '{"keys": null}', "overrides_null": '{"overrides": null}',
             "image_null": '{"overrides": [{"frame": 1, "image": null}]}',
             "nested": '{"keys": ' + "[" * 100000 + "]" * 100000 + "}",
             "huge_number": '{"keys": [{"frame": ' + "1" * 5000 + "}]}"}
    keys.write_text(texts[case])
    needle = {"keys_null": "'keys' must be a list", "overrides_null": "'overrides' must be a list",
              "image_null": "'image' must be a file name", "nested": "nested too deeply",
              "huge_number": "cannot read"}[case]
    return base + ["--keyframes", keys], needle


@pytest.mark.parametrize("case", ["cache_is_a_file", "cache_under_a_file", "lock_is_a_folder",
                                  "more_chunks_than_frames", "stitch_before_the_chunks", "keys_null", "overrides_null",
                                  "image_null", "nested", "huge_number"])
def test_user_fixable_causes_are_one_line_not_internal_errors(tmp_path, data_dir, case):
    argv, needle = fixable_case(tmp_path, data_dir, case)
    proc = subprocess.run([sys.executable, "-m", "flowstyle", *map(str, argv)], capture_output=True, text=True,
                          timeout=300)
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and needle in lines[0], proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    assert not list((tmp_path / "o").glob("frame_*.png"))
    if case != "lock_is_a_folder":
        assert not (tmp_path / "o").exists()  # a refused run leaves no output folder


def test_a_full_flow_cache_disk_is_one_line(tmp_path, monkeypatch):
    import errno

    from flowstyle import FlowstyleError
    from flowstyle.io.frames import Frame
    from flowstyle.motion import flow_cache

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(flow_cache.os, "replace", full)
    frame = Frame(0, np.zeros((16, 16, 3), np.float32), None, 8, "k")
    with pytest.raises(FlowstyleError, match="cannot write the flow cache in .*No space left on device; free space"):
        flow_cache.FlowCache(tmp_path).put("dis", frame, frame, np.zeros((16, 16, 2), np.float32))
    assert leftovers(tmp_path) == []


def test_frame_names_with_digits_of_any_script_sort_as_numbers(tmp_path):
    from flowstyle.io.frames import _list_folder

    names = ["f_\u0661\u0660.png", "f_\u0662.png", "f_\u0661.png", "\u00b23.png", "f_3.png"]  # 10, 2, 1 Arabic-Indic; ²
    for n in names:
        cv2.imwrite(str(tmp_path / "x.png"), np.zeros((16, 16, 3), np.uint8))
        (tmp_path / "x.png").rename(tmp_path / n)
    assert [p.name for p in _list_folder(tmp_path)] == ["f_\u0661.png", "f_\u0662.png", "f_3.png", "f_\u0661\u0660.png",
                                                         "\u00b23.png"]


def test_exr_frames_are_read_as_scene_linear(tmp_path, data_dir):
    os.environ["OPENCV_IO_ENABLE_OPENEXR"] = "1"  # to write the test's own EXR files
    shot = copy_frames(data_dir / "clips" / "middlebury_rubberwhale", tmp_path / "png", n=3)
    exr = tmp_path / "exr"
    exr.mkdir()
    for k, f in enumerate(sorted(shot.glob("*.png"))):
        srgb = cv2.imread(str(f)).astype(np.float32) / 255
        linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4).astype(np.float32)
        assert cv2.imwrite(str(exr / f"s_{k + 1:04d}.exr"), linear)
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_IO_ENABLE_OPENEXR"}  # the engine switches it on
    a = subprocess.run([sys.executable, "-m", "flowstyle", "stylize", str(exr), "--out", str(tmp_path / "a"),
                        "--size", "96"], capture_output=True, text=True, timeout=300, env=env)
    assert a.returncode == 0, a.stderr
    assert flowstyle(shot, "--out", tmp_path / "b", "--size", "96").returncode == 0
    for k in (1, 3):
        x = cv2.imread(str(tmp_path / "a" / f"frame_{k:05d}.png"), cv2.IMREAD_UNCHANGED)
        y = cv2.imread(str(tmp_path / "b" / f"frame_{k:05d}.png"))
        # the 8-bit run's rounding differs from the 16-bit one's and fast mode carries it from frame to frame
        # (measured: 0.93 on frame 1, 1.02 on frame 3); EXR read as if it were sRGB is 8.4 levels off
        assert x.dtype == np.uint16 and np.abs(x / 257.0 - y).mean() < 1.5


@pytest.mark.parametrize("ext, budget_mb", [(".jpg", 40), (".png", 260)])
def test_a_huge_frame_is_decoded_reduced_and_never_held_as_full_size_floats(tmp_path, ext, budget_mb):
    """8000x8000 at --size 256: a JPEG decodes at 1/8 (never full size), a PNG (no reduced decode)
    is resized while still 8 bit: never the 8000x8000 float copies (2.3 GB before)."""
    import tracemalloc

    from flowstyle.io.frames import open_source

    img = np.zeros((8000, 8000, 3), np.uint8)
    img[:4000, :, 2] = 255  # red top half
    assert cv2.imwrite(str(tmp_path / f"huge{ext}"), img)
    del img
    src = open_source(tmp_path / f"huge{ext}", None, 256)
    tracemalloc.start()
    frame = src.read(0)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    assert frame.rgb.shape == (256, 256, 3) and frame.rgb[:120, :, 0].min() > 0.95 and frame.rgb[136:, :, 0].max() < 0.05
    assert peak < budget_mb, f"{peak:.0f} MB"


def test_out_of_memory_advice_converges(data_dir):
    from flowstyle.io.frames import open_source
    from flowstyle.pipeline import _out_of_memory

    clip = data_dir / "clips" / "middlebury_rubberwhale"
    size, seen = 1024, []
    for _ in range(20):
        message = _out_of_memory(open_source(clip, (1, 2), size), "cuda")
        seen.append(message)
        if "--size" not in message:
            break
        size = int(message.rsplit("--size ", 1)[1])
    assert "--size" not in seen[-1] and "--device cpu" in seen[-1], seen
    assert len(seen) < 8 and len(set(seen)) == len(seen), seen  # each piece of advice new, and an end to it


EXIF_ORIENTATIONS = [1, 2, 3, 4, 5, 6, 7, 8]


@pytest.mark.parametrize("orientation", EXIF_ORIENTATIONS)
@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_exif_orientation_is_applied_like_pillow(tmp_path, orientation, ext):
    from PIL import Image, ImageOps

    from flowstyle.io.frames import open_source

    stored = np.zeros((96, 192, 3), np.uint8)
    stored[:32, :48] = 255  # a white corner patch, top left as stored
    im = Image.fromarray(stored)
    exif = Image.Exif()
    exif[0x0112] = orientation
    im.save(tmp_path / f"f{ext}", exif=exif.tobytes(), **({"quality": 95} if ext == ".jpg" else {}))
    with Image.open(tmp_path / f"f{ext}") as ref:
        upright = np.asarray(ImageOps.exif_transpose(ref).convert("L")) > 128
    for size in (None, 48):  # full decode, and the reduced JPEG decode (1/4)
        frame = open_source(tmp_path / f"f{ext}", None, size).read(0)
        got = frame.rgb.mean(axis=2) > 0.5
        want = cv2.resize(upright.astype(np.uint8), got.shape[::-1], interpolation=cv2.INTER_AREA) > 0
        assert got.shape == want.shape and (got == want).mean() > 0.97, (orientation, size)


def test_video_rotation_metadata_is_applied(tmp_path):
    video = tmp_path / "v.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 64))
    for _ in range(4):
        f = np.zeros((64, 96, 3), np.uint8)
        f[:10, :30] = 255
        writer.write(f)
    writer.release()
    data = video.read_bytes()
    identity = bytes.fromhex("00010000" + "00000000" * 3 + "00010000" + "00000000" * 3 + "40000000")
    turn90 = bytes.fromhex("00000000" + "00010000" + "00000000" + "FFFF0000" + "00000000" * 4 + "40000000")
    i = data.rfind(identity)  # the track header's display matrix: a phone's portrait clip
    video.write_bytes(data[:i] + turn90 + data[i + len(turn90):])
    proc = flowstyle(video, "--out", tmp_path / "o", "--style", "builtin:1")
    assert proc.returncode == 0, proc.stderr
    assert cv2.imread(str(tmp_path / "o" / "frame_00001.png")).shape == (96, 64, 3)


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_output_files_get_the_mode_the_umask_gives(tmp_path, data_dir, umask):
    clip = copy_frames(data_dir / "clips" / "middlebury_rubberwhale", tmp_path / "shot", n=2)
    proc = subprocess.run([sys.executable, "-c", f"import os, sys; os.umask({umask}); from flowstyle.cli import main; "
                           "sys.exit(main(sys.argv[1:]))", "stylize", str(clip), "--out", str(tmp_path / "o"),
                           "--size", "64"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    written = [*(tmp_path / "o").glob("frame_*.png"), tmp_path / "o" / "report.json",
               *(tmp_path / "o" / ".flowstyle" / "keys").iterdir()]
    assert {oct(p.stat().st_mode & 0o777) for p in written} == {oct(0o666 & ~umask)}


def test_flow_cache_temp_files_of_killed_runs_are_removed_and_only_those(tmp_path, data_dir):
    from flowstyle.motion.flow_cache import STALE_TEMP_SECONDS

    cache = tmp_path / "cache"
    (cache / "ab").mkdir(parents=True)
    orphan, live = cache / "ab" / ".abcd.flow.4242.tmp", cache / "ab" / ".abce.flow.4243.tmp"
    theirs = cache / "ab" / ".notes.tmp"
    old_format = cache / "ab" / ("ab" + "0" * 30 + ".npy")  # an entry of the format before the digest
    their_arrays = [cache / "ab" / "weights.npy", cache / "cd" / ("ab" + "0" * 30 + ".npy")]
    their_arrays[1].parent.mkdir()
    for p in (orphan, live, theirs, old_format, *their_arrays):
        p.write_bytes(b"x")
    old = time.time() - STALE_TEMP_SECONDS - 60
    for p in (orphan, theirs):
        os.utime(p, (old, old))
    proc = flowstyle(data_dir / "clips" / "middlebury_rubberwhale", "--out", tmp_path / "o", "--size", "64",
                     "--frames", "1:2", "--cache", cache)
    assert proc.returncode == 0, proc.stderr
    assert not orphan.exists() and live.exists() and theirs.exists()  # a live writer's (maybe another job's) stays
    assert not old_format.exists() and all(p.exists() for p in their_arrays)


@pytest.mark.skipif(os.name == "nt", reason="the writer's PID is asked with signal 0, which Windows lacks")
def test_flow_cache_temp_of_a_dead_writer_on_this_host_goes_at_once(tmp_path):
    from flowstyle.motion.flow_cache import _HOST, FlowCache

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    key = "ab" + "0" * 30
    (tmp_path / "ab").mkdir()
    gone = tmp_path / "ab" / f".{key}.flow.{_HOST}.{dead.pid}.tmp"  # killed mid-write, seconds ago
    alive = tmp_path / "ab" / f".{key}.flow.{_HOST}.{os.getpid()}.tmp"  # a writer still at work
    elsewhere = tmp_path / "ab" / f".{key}.flow.{_HOST}x.{dead.pid}.tmp"  # another host's: its PIDs mean nothing here
    for p in (gone, alive, elsewhere):
        p.write_bytes(b"x")
    assert FlowCache(tmp_path).remove_stale_temps() == 1
    assert not gone.exists() and alive.exists() and elsewhere.exists()


def test_a_changed_flow_cache_entry_of_the_right_size_is_recomputed(tmp_path):
    from flowstyle.io.frames import Frame
    from flowstyle.motion.flow import FlowEstimator
    from flowstyle.motion.flow_cache import FlowCache

    rng = np.random.default_rng(3)
    base = cv2.GaussianBlur(rng.random((64, 64, 3), np.float32), (0, 0), 2)
    a, b = Frame(0, base, None, 8, "a"), Frame(1, np.roll(base, 2, axis=1), None, 8, "b")
    first = FlowEstimator("dis", FlowCache(tmp_path)).flow(a, b)
    (entry,) = [p for p in tmp_path.rglob("*.flow")]
    data = bytearray(entry.read_bytes())
    data[-200:] = bytes(200)  # same size, other numbers
    entry.write_bytes(bytes(data))
    assert FlowCache(tmp_path).get("dis", a, b) is None
    again = FlowEstimator("dis", FlowCache(tmp_path)).flow(a, b)
    assert np.array_equal(again, first) and FlowCache(tmp_path).get("dis", a, b) is not None


@pytest.fixture
def ray_env(monkeypatch, tmp_path):
    """No Ray auth variables and a HOME without a saved token; whatever the engine sets in os.environ
    is undone after the test (it sets RAY_AUTH_MODE for the process: left behind, the later Ray
    cluster tests would start a token-mode GCS that their driver cannot talk to)."""
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.setenv(name, "")  # recorded, so it is restored after the test ...
        monkeypatch.delenv(name)  # ... and it starts unset (a delenv of an unset name records nothing)
    monkeypatch.setenv("HOME", str(tmp_path))


@pytest.fixture
def fake_ray(monkeypatch, ray_env):
    """Ray's module with init replaced: records the auth mode the driver would connect with."""
    ray = pytest.importorskip("ray")
    seen = {}

    def init(**kw):
        seen["mode"] = os.environ.get("RAY_AUTH_MODE")
        if seen.get("refuse"):
            raise ray.exceptions.AuthenticationError("Authentication failed")

    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    return seen


def test_a_token_cluster_is_reached_with_the_saved_token(fake_ray, tmp_path):
    from flowstyle.scale.ray import _connect

    _connect("127.0.0.1:6390")
    assert fake_ray["mode"] is None  # no token: Ray's own default
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("t0ken")  # what 'ray start --head' saves
    _connect("127.0.0.1:6390")
    assert fake_ray["mode"] == "token"


def test_a_refused_token_is_said_as_such(fake_ray):
    from flowstyle import FlowstyleError
    from flowstyle.scale.ray import _connect

    fake_ray["refuse"] = True
    with pytest.raises(FlowstyleError, match="uses token authentication.*RAY_AUTH_TOKEN"):
        _connect("127.0.0.1:6390")


def test_ray_client_address_without_the_client_is_one_line(monkeypatch, ray_env):
    import importlib.util

    pytest.importorskip("ray")
    from flowstyle import FlowstyleError
    from flowstyle.scale.ray import _connect

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "grpc" else real(name, *a))
    with pytest.raises(FlowstyleError, match=r"needs Ray's client \(grpcio\): run 'pip install \"ray\[client\]==2.60.0\"'"):
        _connect("ray://head:10001")


def test_a_frame_that_fails_mid_run_keeps_every_frame_before_it(tmp_path, data_dir, monkeypatch):
    """When a frame cannot be read mid-run (the disk went away after the up-front check), every frame
    before it is on disk and the error is the read's own line."""
    import flowstyle as fs
    from flowstyle import FlowstyleError
    from flowstyle.io.frames import FrameSource

    real = FrameSource.read

    def read(self, k):
        if k == 3:
            raise FlowstyleError("cannot read frame 4: the disk went away")
        return real(self, k)

    monkeypatch.setattr(FrameSource, "read", read)
    with pytest.raises(FlowstyleError, match="cannot read frame 4"):
        fs.stylize(data_dir / "clips" / "middlebury_rubberwhale", "builtin:7", tmp_path / "o",
                   fs.Settings(size=96, device="cpu"))
    assert list(outputs(tmp_path / "o")) == [f"frame_0000{i}.png" for i in (1, 2, 3)]
