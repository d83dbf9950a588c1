"""A stand-in for ``flowstyle stylize`` that speaks the JSON progress protocol (stdlib only).

Takes the engine's own command line (DESIGN 3) so the add-on's argument builder is checked
against it, plus ``--fake-*`` options that script its behaviour:

    python tests/fake_worker.py stylize INPUT --style builtin:3 --out DIR --json-progress \
        --fake-total 6 --fake-delay 0.2 --fake-scenario ok

Scenarios: ``ok`` (every frame, done/ok), ``crash`` (dies after two frames without "done"),
``ignore-sigint`` (SIGINT does nothing; needs terminate), ``noise`` (non-JSON lines between
events), ``bad-protocol`` (start event with protocol 99), ``user-error`` (one error line, exit 1),
``hang`` (writes one frame then sleeps; SIGINT stops it).

Like the engine, SIGINT only sets a flag; the frame being written is finished (written to a
temp file and renamed), then it emits ``{"event":"done","status":"cancelled"}`` and exits 130.
Frames are real PNGs of a solid colour, ``--size`` pixels wide, so Blender can load them.
The same file serves as ``python -m flowstyle`` for the add-on tests (a shim package on
PYTHONPATH runs it); FAKE_WORKER_DELAY / FAKE_WORKER_WRITE_DELAY / FAKE_WORKER_SCENARIO
set the ``--fake-*`` defaults there.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import struct
import sys
import time
import zlib

_STOP = False


def _on_sigint(signum, frame):  # noqa: ARG001 - signal handler signature
    global _STOP
    _STOP = True


def emit(**event) -> None:
    """Write one protocol event as a JSON line on stderr."""
    sys.stderr.write(json.dumps(event) + "\n")
    sys.stderr.flush()


def png_bytes(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid-colour 8-bit RGB PNG."""
    row = b"\x00" + bytes(rgb) * width
    raw = row * height

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def write_atomic(path: str, data: bytes, slow: float = 0.0) -> None:
    """Write through a temp file and rename; ``slow`` stretches the write to widen races."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        half = len(data) // 2
        fh.write(data[:half])
        fh.flush()
        time.sleep(slow)
        fh.write(data[half:])
    os.replace(tmp, path)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="flowstyle")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("stylize")
    p.add_argument("input")
    p.add_argument("--style", action="append", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--mode", choices=["fast", "quality"])
    p.add_argument("--frames")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--content-weight", type=float)
    p.add_argument("--style-weight", type=float)
    p.add_argument("--vgg-weights")
    p.add_argument("--flow", choices=["dis", "deepflow", "raft"])
    p.add_argument("--temporal-weight", type=float)
    p.add_argument("--long-term")
    p.add_argument("--passes", type=int)
    p.add_argument("--keyframes")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--resume", action="store_true")
    p.add_argument("--preview", type=int)
    p.add_argument("--json-progress", action="store_true")
    # Defaults come from the environment too, so tests that go through the add-on can script it.
    env = os.environ.get
    p.add_argument("--fake-total", type=int, default=None)
    p.add_argument("--fake-delay", type=float, default=float(env("FAKE_WORKER_DELAY", "0.02")))
    p.add_argument("--fake-write-delay", type=float, default=float(env("FAKE_WORKER_WRITE_DELAY", "0")))
    p.add_argument("--fake-scenario", default=env("FAKE_WORKER_SCENARIO", "ok"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGINT, _on_sigint)
    if hasattr(signal, "SIGBREAK"):
        signal.signal(signal.SIGBREAK, _on_sigint)
    scenario = args.fake_scenario
    if scenario == "ignore-sigint":
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    if scenario == "user-error" or not os.path.exists(args.input):
        emit(event="error", message=f"cannot read input '{args.input}': no such file or folder")
        emit(event="done", status="failed")
        return 1

    if args.frames:
        start, end = (int(v) for v in args.frames.split(":"))
    elif os.path.isdir(args.input):
        start, end = 1, len([n for n in os.listdir(args.input) if not n.startswith(".")])
    else:
        start, end = 1, args.fake_total or 6
    total = end - start + 1 if args.fake_total is None else args.fake_total
    os.makedirs(args.out, exist_ok=True)
    width = max(8, args.size or 64)
    height = max(8, width * 9 // 16)

    emit(event="start", protocol=99 if scenario == "bad-protocol" else 1, total=total)
    if args.preview is not None:
        write_atomic(os.path.join(args.out, "preview.png"), png_bytes(width, height, (200, 40, 160)))
        emit(event="frame", index=args.preview, path=os.path.join(args.out, "preview.png"), seconds=0.01)
        emit(event="done", status="ok")
        return 0

    for i in range(1, total + 1):
        if _STOP:
            emit(event="done", status="cancelled")
            return 130
        emit(event="progress", stage="stylize", done=i - 1, total=total)
        if scenario == "noise":
            sys.stderr.write(f"[ WARN:0@{i}] OpenCV noise line {i}\n")
            sys.stderr.write("{not json either\n")
            sys.stderr.flush()
        path = os.path.join(args.out, f"frame_{i:05d}.png")
        write_atomic(path, png_bytes(width, height, (40 * i % 256, 200, 90)), args.fake_write_delay)
        emit(event="frame", index=i, path=path, seconds=args.fake_delay)
        if scenario == "crash" and i == 2:
            sys.stderr.write("Segmentation fault (pretend)\n")
            sys.stderr.flush()
            os._exit(139)
        if scenario == "hang":
            while not _STOP:
                time.sleep(0.02)
            continue
        deadline = time.monotonic() + args.fake_delay
        while time.monotonic() < deadline and not (_STOP and scenario != "ignore-sigint"):
            time.sleep(0.01)
    emit(event="progress", stage="stylize", done=total, total=total)
    with open(os.path.join(args.out, "report.json"), "w", encoding="utf-8") as fh:
        json.dump({"frames": total, "fake": True}, fh)
    emit(event="done", status="ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
