"""The add-on's engine bridge (blender_addon/worker.py) against tests/fake_worker.py; no bpy."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FAKE = ROOT / "tests" / "fake_worker.py"


def _load_worker():
    # Load by path: importing the package would import bpy (its __init__ registers classes).
    spec = importlib.util.spec_from_file_location("flowstyle_addon_worker", ROOT / "blender_addon" / "worker.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


worker = _load_worker()


def fake_args(tmp_path: Path, *extra: str, **spec_fields) -> list[str]:
    """build_args(...) with ``-m flowstyle`` swapped for the fake worker script."""
    source = tmp_path / "in.mp4"
    source.write_bytes(b"not really a movie")
    fields = {"input": str(source), "out": str(tmp_path / "out"), "styles": ("builtin:3",)}
    fields.update(spec_fields)
    fields["extra_args"] = tuple(extra)
    args = worker.build_args(sys.executable, worker.JobSpec(**fields))
    assert args[1:3] == ["-m", "flowstyle"]
    return [args[0], str(FAKE)] + args[3:]


def collect(proc, timeout: float = 20.0) -> list[dict]:
    events = proc.wait(timeout=timeout)
    assert proc.finished, "engine process did not finish in time"
    return events


class TestBuildArgs:
    def test_smoke(self):
        args = worker.build_args("/py", worker.JobSpec(input="/in.mp4", out="/o", styles=("a.jpg",)))
        assert args == ["/py", "-m", "flowstyle", "stylize", "/in.mp4", "--style", "a.jpg", "--out", "/o", "--json-progress"]

    def test_every_option(self):
        spec = worker.JobSpec(
            input="/ä/shot_%04d.png", out="/o", styles=("a.jpg:0.7", "builtin:4:0.3"), mode="quality",
            frames=(3, 9), size=256, flow="deepflow", temporal_weight=1000.0, long_term=(1, 2, 4),
            passes=3, keyframes="/k.json", device="cpu", resume=True, preview=2, recipe="fast",
            stylizer="/n/stable7.pt",
        )
        args = worker.build_args("/py", spec)
        text = " ".join(args)
        for piece in ("--style a.jpg:0.7 --style builtin:4:0.3", "--mode quality", "--frames 3:9",
                      "--size 256", "--flow deepflow", "--temporal-weight 1000", "--long-term 1,2,4",
                      "--passes 3", "--keyframes /k.json", "--device cpu", "--resume", "--preview 2",
                      "--recipe fast", "--stylizer /n/stable7.pt"):
            assert piece in text
        assert args[4] == "/ä/shot_%04d.png"  # one list item, never split or quoted
        assert args[-1] == "--json-progress"

    def test_exception(self):
        with pytest.raises(ValueError, match="at least one style"):
            worker.build_args("/py", worker.JobSpec(input="i", out="o", styles=()))
        with pytest.raises(ValueError, match="start <= end"):
            worker.build_args("/py", worker.JobSpec(input="i", out="o", styles=("s",), frames=(5, 2)))
        with pytest.raises(ValueError, match="start <= end"):
            worker.build_args("/py", worker.JobSpec(input="i", out="o", styles=("s",), frames=(0, 2)))

    def test_format_weight(self):
        assert worker.format_weight(1.0) == "1"
        assert worker.format_weight(0.25) == "0.25"
        assert worker.format_weight(1e-3) == "0.001"


class TestParseLine:
    def test_json_event(self):
        assert worker._parse_line(b'{"event":"frame","index":3}\n') == {"event": "frame", "index": 3}

    def test_non_json_becomes_log(self):
        assert worker._parse_line(b"[ WARN:0] opencv\n") == {"event": "log", "message": "[ WARN:0] opencv"}
        assert worker._parse_line(b"{broken\n")["event"] == "log"
        assert worker._parse_line(b'{"no_event": 1}\n')["event"] == "log"
        assert worker._parse_line(b"[1, 2]\n")["event"] == "log"

    def test_blank_and_bad_bytes(self):
        assert worker._parse_line(b"   \n") is None
        assert worker._parse_line(b"caf\xe9 \xff\n")["event"] == "log"


class TestEngineProcess:
    def test_run_to_end(self, tmp_path):
        proc = worker.EngineProcess(fake_args(tmp_path, "--fake-total", "4", "--fake-delay", "0.01")).start()
        events = collect(proc)
        kinds = [e["event"] for e in events]
        assert kinds[0] == "start" and kinds[-1] == "done"
        assert kinds.count("done") == 1
        assert [e["index"] for e in events if e["event"] == "frame"] == [1, 2, 3, 4]
        assert proc.status == "ok" and proc.returncode == 0 and proc.total == 4
        assert sorted(p.name for p in (tmp_path / "out").glob("frame_*.png")) == [
            f"frame_{i:05d}.png" for i in range(1, 5)
        ]

    def test_frames_range_and_run_blocking(self, tmp_path):
        seen = []
        proc = worker.EngineProcess(fake_args(tmp_path, "--fake-delay", "0.01", frames=(3, 5)))
        status = worker.run_blocking(proc, seen.append)
        assert status == "ok"
        assert [e["index"] for e in seen if e["event"] == "frame"] == [1, 2, 3]
        assert seen[-1]["event"] == "done"

    def test_noise_lines_become_log(self, tmp_path):
        proc = worker.EngineProcess(fake_args(tmp_path, "--fake-total", "2", "--fake-scenario", "noise")).start()
        events = collect(proc)
        logs = [e["message"] for e in events if e["event"] == "log"]
        assert any("OpenCV noise" in m for m in logs) and any(m.startswith("{not json") for m in logs)
        assert proc.status == "ok"

    def test_user_error(self, tmp_path):
        args = fake_args(tmp_path, "--fake-scenario", "user-error")
        proc = worker.EngineProcess(args).start()
        events = collect(proc)
        assert proc.status == "failed" and proc.returncode == 1
        assert [e["event"] for e in events] == ["error", "done"]
        assert "cannot read input" in proc.errors[0]

    def test_crash_without_done(self, tmp_path):
        proc = worker.EngineProcess(fake_args(tmp_path, "--fake-total", "5", "--fake-scenario", "crash")).start()
        events = collect(proc)
        assert events[-1] == {"event": "done", "status": "failed", "returncode": 139}
        assert events[-2]["event"] == "error"
        assert "exited with code 139" in events[-2]["message"]
        assert "Segmentation fault (pretend)" in events[-2]["message"]

    def test_bad_protocol_warns(self, tmp_path):
        proc = worker.EngineProcess(fake_args(tmp_path, "--fake-total", "1", "--fake-scenario", "bad-protocol")).start()
        events = collect(proc)
        warnings = [e["message"] for e in events if e["event"] == "warning"]
        assert warnings and "protocol 99" in warnings[0]

    def test_missing_program(self, tmp_path):
        proc = worker.EngineProcess([str(tmp_path / "no-python"), "-m", "flowstyle"]).start()
        events = collect(proc)
        assert proc.status == "failed"
        assert [e["event"] for e in events] == ["error", "done"]
        assert "not found" in events[0]["message"] and "preferences" in events[0]["message"]

    def test_start_twice(self, tmp_path):
        proc = worker.EngineProcess(fake_args(tmp_path, "--fake-total", "1")).start()
        with pytest.raises(RuntimeError, match="already started"):
            proc.start()
        collect(proc)

    def test_poll_never_blocks(self, tmp_path):
        proc = worker.EngineProcess(fake_args(tmp_path, "--fake-total", "3", "--fake-delay", "0.5")).start()
        t0 = time.monotonic()
        proc.poll()
        assert time.monotonic() - t0 < 0.2
        proc.cancel()
        collect(proc)


class TestCancel:
    def test_cancel_leaves_only_complete_frames(self, tmp_path):
        # Slow writes make it likely that SIGINT lands during a write; the frame must still complete.
        args = fake_args(tmp_path, "--fake-total", "50", "--fake-delay", "0.05", "--fake-write-delay", "0.2")
        proc = worker.EngineProcess(args).start()
        frames = []
        deadline = time.monotonic() + 20
        while len(frames) < 2 and time.monotonic() < deadline:
            frames += [e for e in proc.poll() if e["event"] == "frame"]
            time.sleep(0.02)
        assert len(frames) >= 2
        proc.cancel()
        events = collect(proc)
        assert proc.status == "cancelled" and proc.returncode == 130
        assert events[-1]["event"] == "done" and events[-1]["status"] == "cancelled"
        out = tmp_path / "out"
        assert not list(out.glob("*.tmp")), "a half-written frame was left behind"
        written = sorted(out.glob("frame_*.png"))
        assert 2 <= len(written) < 50
        for i, path in enumerate(written, start=1):
            data = path.read_bytes()
            assert path.name == f"frame_{i:05d}.png"
            assert data.startswith(b"\x89PNG") and data.endswith(b"IEND\xaeB`\x82")

    def test_cancel_while_waiting(self, tmp_path):
        proc = worker.EngineProcess(fake_args(tmp_path, "--fake-scenario", "hang")).start()
        deadline = time.monotonic() + 20
        while not any(e["event"] == "frame" for e in proc.poll()) and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.cancel()
        collect(proc, timeout=10)
        assert proc.status == "cancelled" and proc.returncode == 130

    def test_escalates_to_terminate(self, tmp_path):
        args = fake_args(tmp_path, "--fake-total", "1000", "--fake-delay", "0.05", "--fake-scenario", "ignore-sigint")
        proc = worker.EngineProcess(args, grace=0.5).start()
        deadline = time.monotonic() + 20
        while not any(e["event"] == "frame" for e in proc.poll()) and time.monotonic() < deadline:
            time.sleep(0.02)
        t0 = time.monotonic()
        proc.cancel()
        events = collect(proc, timeout=10)
        assert 0.4 < time.monotonic() - t0 < 5
        assert proc.status == "cancelled"
        assert proc.returncode is not None and proc.returncode != 0
        assert events[-1]["event"] == "done"

    def test_cancel_after_finish_is_harmless(self, tmp_path):
        proc = worker.EngineProcess(fake_args(tmp_path, "--fake-total", "1")).start()
        collect(proc)
        proc.cancel()
        assert proc.poll() == [] and proc.status == "ok"


def test_fake_worker_speaks_the_protocol(tmp_path):
    """The fake's events are what DESIGN 3 promises: start first, done last, JSON per line."""
    import subprocess

    args = fake_args(tmp_path, "--fake-total", "2", "--fake-delay", "0")
    result = subprocess.run(args, capture_output=True, text=True, timeout=30)
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert lines[0]["event"] == "start" and lines[0]["protocol"] == worker.PROTOCOL
    assert lines[-1] == {"event": "done", "status": "ok"}
    assert result.returncode == 0
