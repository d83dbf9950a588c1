"""Command line: ``flowstyle stylize INPUT --style STYLE --out DIR [...]`` (DESIGN 3).

Progress goes to stderr: a progress bar for people, or with ``--json-progress`` one JSON
object per line for the Blender add-on (``done`` is always the last). Exit codes: 0 done,
1 a problem the user can fix (one line on stderr), 2 usage error, 130 cancelled.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Optional, Sequence

from .errors import FlowstyleError
from .report import EXIT_CANCELLED, EXIT_ERROR, EXIT_OK

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flowstyle", description="Temporally coherent neural style transfer for video.")
    sub = p.add_subparsers(dest="command", required=True)

    s = argparse.ArgumentParser(add_help=False)  # options shared by stylize and stitch
    s.add_argument("input", help="video file, folder of frames, or printf pattern like shot_%%04d.png")
    s.add_argument("--style", action="append", default=[], metavar="STYLE",
                   help="style image path, PATH:WEIGHT, or builtin:N (0-25); repeat to blend (default: builtin:7)")
    s.add_argument("--out", required=True, help="output folder for frame_00001.png... and report.json")
    s.add_argument("--mode", choices=("fast", "quality"), default="fast",
                   help="fast: feed-forward network + temporal solve (default); quality: Ruder et al. optimization on VGG-19")
    s.add_argument("--frames", metavar="START:END", help="1-based inclusive range in the input's own order (default: all)")
    s.add_argument("--size", type=int, default=1024, metavar="MAX_SIDE",
                   help="working size, longest side in pixels, never upscaled (default: 1024; 0 keeps the input's)")
    s.add_argument("--flow", choices=("dis", "dis-fast", "deepflow", "raft"),
                   help="optical flow backend (default: dis-fast in fast mode, dis in quality mode)")
    s.add_argument("--raft-weights", metavar="PATH", help="local torchvision RAFT state dict for --flow raft (default: download)")
    s.add_argument("--temporal-weight", type=float, metavar="G",
                   help="weight of the temporal term; 0 = per-frame stylization (default: 1 fast, 1000 quality)")
    s.add_argument("--long-term", metavar="1,2,4", help="earlier frames tied by the temporal term (default: 1 fast, 1,2,4 quality)")
    s.add_argument("--passes", type=int, help="multi-pass processing, quality mode (default: 1)")
    s.add_argument("--keyframes", metavar="FILE.json", help="style keys and painted overrides (DESIGN 4.5)")
    s.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto", help="compute device (default: auto)")
    s.add_argument("--resume", action="store_true", help="keep frames whose inputs and settings are unchanged")
    s.add_argument("--preview", type=int, metavar="FRAME", help="stylize only this frame into OUT/preview.png")
    s.add_argument("--mask", choices=("hard", "soft"), default="hard", help="flow reliability masks (default: hard)")
    s.add_argument("--solver", choices=("band", "cg"), default="band", help="fast mode temporal solver (default: band)")
    s.add_argument("--cache", metavar="DIR", help="flow cache folder (default: OUT/.flowstyle/flow)")
    s.add_argument("--debug", action="store_true", help="also write the flow masks to OUT/debug")
    s.add_argument("--json-progress", action="store_true", help="progress as JSON lines on stderr (for the add-on)")
    d = s.add_argument_group("parallel runs (fast mode)")
    d.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="run chunks as Ray tasks: a local cluster without ADDRESS, else that cluster's address")
    d.add_argument("--chunks", type=int, metavar="N", help="number of chunks (default: two per Ray worker)")
    d.add_argument("--chunk", metavar="I/N", help="render-farm job: only chunk I of N; then run 'flowstyle stitch ... --chunks N'")
    d.add_argument("--margin", type=int, default=8, help="lead-in frames before each chunk (default: 8)")
    q = s.add_argument_group("quality mode")
    q.add_argument("--content-weight", type=float, default=5.0, help="α (default: 5)")
    q.add_argument("--style-weight", type=float, default=100.0, help="β (default: 100)")
    q.add_argument("--tv-weight", type=float, default=1e-3, help="total variation (default: 0.001)")
    q.add_argument("--iterations", type=int, default=500, help="iterations per frame after the first (default: 500)")
    q.add_argument("--iterations-first", type=int, default=1000, help="iterations for the first frame (default: 1000)")
    q.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs", help="(default: lbfgs)")
    q.add_argument("--init", choices=("prev-warped", "prev", "content", "random"), default="prev-warped",
                   help="initialization of frames after the first (default: prev-warped)")
    q.add_argument("--vgg-weights", metavar="PATH", help="local torchvision VGG-19 state dict (default: torchvision's download)")
    q.add_argument("--style-scale", type=float, default=1.0, help="size of the style image relative to the frame (default: 1)")
    q.add_argument("--keep-colors", action="store_true", help="transfer luminance only, keep the input's colours")
    q.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    sub.add_parser("stylize", parents=[s], help="stylize a clip into a folder of frames")
    sub.add_parser("stitch", parents=[s], help="after farm chunk jobs (--chunk I/N): make the chunk boundaries consistent")
    return p


def _settings(args):
    from .settings import Settings, parse_offsets, parse_range
    from .stylize import parse_style

    styles = tuple(parse_style(t) for t in (args.style or ["builtin:7"]))
    return Settings(
        styles=styles, mode=args.mode, frames=parse_range(args.frames) if args.frames else None,
        size=args.size or None, flow=args.flow, temporal_weight=args.temporal_weight,
        long_term=parse_offsets(args.long_term) if args.long_term else None, passes=args.passes,
        mask=args.mask, device=args.device, raft_weights=args.raft_weights, keyframes=args.keyframes, solver=args.solver,
        content_weight=args.content_weight, style_weight=args.style_weight, tv_weight=args.tv_weight,
        iterations=args.iterations, iterations_first=args.iterations_first, optimizer=args.optimizer,
        init=args.init, vgg_weights=args.vgg_weights, style_scale=args.style_scale,
        keep_colors=args.keep_colors, seed=args.seed,
    ).resolved()


class _Progress:
    """Event sink: JSON lines, or a tqdm bar, on stderr."""

    def __init__(self, json_lines: bool):
        self.json_lines = json_lines
        self._bar = None
        self._lock = threading.Lock()

    def __call__(self, event: dict) -> None:
        with self._lock:
            if self.json_lines:
                sys.stderr.write(json.dumps(event) + "\n")
                sys.stderr.flush()
                return
            kind = event.get("event")
            if kind == "start":
                from tqdm import tqdm

                self._bar = tqdm(total=event["total"], unit="frame", desc="flowstyle", file=sys.stderr)
            elif kind == "frame" and self._bar is not None and not event.get("stitched"):
                self._bar.update(1)
            elif kind in ("warning", "error"):
                (self._bar.write if self._bar else lambda m: print(m, file=sys.stderr))(f"{kind}: {event['message']}")
            elif kind == "done" and self._bar is not None:
                self._bar.close()


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    emit = _Progress(getattr(args, "json_progress", False))
    cancelled = threading.Event()

    def on_signal(signum, frame):  # SIGINT only sets a flag; the run stops after the current write
        cancelled.set()

    old = signal.signal(signal.SIGINT, on_signal)
    if hasattr(signal, "SIGBREAK"):
        signal.signal(signal.SIGBREAK, on_signal)
    status, code = "failed", EXIT_ERROR
    try:
        from .pipeline import stylize

        settings = _settings(args)
        from .chunks import parse_chunk

        if args.command == "stitch" and not args.chunks:
            raise FlowstyleError("flowstyle stitch needs --chunks N, the N the chunk jobs used")
        report = stylize(args.input, None, args.out, settings, on_event=emit, cancel=cancelled.is_set,
                         resume=args.resume, preview=args.preview, cache_dir=args.cache, debug=args.debug,
                         chunk=parse_chunk(args.chunk) if args.chunk else None, chunks=args.chunks,
                         margin=args.margin, ray=args.ray, stitch=args.command == "stitch")
        status, code = report.status, report.return_code
        if not emit.json_lines and args.preview is None:
            summ = report.summary()
            print(f"{summ['frames_total']} frames in {args.out} ({summ['seconds_per_frame']:.2f} s/frame, "
                  f"warping error {summ['warping_error_mean']})", file=sys.stderr)
    except FlowstyleError as exc:
        emit({"event": "error", "message": str(exc)})
        if not emit.json_lines:
            pass  # already printed by the sink
    except MemoryError:
        emit({"event": "error", "message": "out of memory: use a smaller --size"})
    except KeyboardInterrupt:
        status, code = "cancelled", EXIT_CANCELLED
    except Exception as exc:  # a bug, not the user's doing: one line, and still a well-formed stream
        emit({"event": "error", "message": f"internal error: {type(exc).__name__}: {exc} (please report it with report.json)"})
        if os.environ.get("FLOWSTYLE_DEBUG"):
            raise
    finally:
        signal.signal(signal.SIGINT, old)
    emit({"event": "done", "status": status})
    return code if status != "ok" else EXIT_OK
