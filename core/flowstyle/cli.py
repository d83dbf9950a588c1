"""Command line: ``flowstyle stylize INPUT --style STYLE --out DIR [...]`` (DESIGN 3), ``flowstyle stitch``
after farm chunks, and ``flowstyle train --style STYLE --out FILE.pt [...]`` (a video network for ``--stylizer``).

The options are built from the fields of :class:`~flowstyle.settings.Settings` and
:class:`~flowstyle.settings.RunOptions`, so every setting is reachable here and its default is
written once, there. Progress goes to stderr: a progress bar for people, or with
``--json-progress`` one JSON object per line for the Blender add-on (``done`` is always the
last). Exit codes: 0 done, 1 a problem the user can fix (one line on stderr), 2 usage error,
130 cancelled.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Optional, Sequence

from .base import VERSION
from .base.errors import Cancelled, FlowstyleError
from .io.progress import Progress
from .io.report import EXIT_CANCELLED, EXIT_ERROR, EXIT_OK, EXIT_TERMINATED, EXIT_USAGE
from .settings import RunOptions, Settings, describe_default
from .train import TrainSettings

__all__ = ["main", "build_parser", "UsageError"]


def _add_field(parser: argparse.ArgumentParser, groups: dict, f: dataclasses.Field) -> None:
    """One option for a settings field, from the field's metadata."""
    m = f.metadata
    target = groups.setdefault(m["group"], parser if m["group"] == "general" else parser.add_argument_group(m["group"]))
    flag = m["flag"] or "--" + f.name.replace("_", "-")
    kw: dict = dict(dest=f.name, default=argparse.SUPPRESS, help=f"{m['help']} (default: {describe_default(f)})")
    if isinstance(f.default, bool):
        kw["action"] = "store_false" if f.default else "store_true"  # an option on by default has a --no- flag
    else:
        kw["type"] = m["kind"] or (str if f.default is None else type(f.default))
        if m["const"] is not None:
            kw.update(nargs="?", const=m["const"])
        if m["repeat"]:
            kw["action"] = "append"
        if m["choices"]:
            kw["choices"] = m["choices"]
        kw["metavar"] = m["metavar"] or {int: "N", float: "X"}.get(kw["type"])
    target.add_argument(flag, **kw)


def build_parser(json_errors: bool = False) -> argparse.ArgumentParser:
    """The ``flowstyle`` parser; with ``json_errors`` a usage error raises :class:`UsageError`."""
    p = (_JsonErrorParser if json_errors else argparse.ArgumentParser)(prog="flowstyle", description="Temporally coherent neural style transfer for video.")
    p.add_argument("--version", action="version", version=f"flowstyle {VERSION}")
    sub = p.add_subparsers(dest="command", required=True)

    s = argparse.ArgumentParser(add_help=False)  # options shared by stylize and stitch
    s.add_argument("input", help="video file, folder of frames, or printf pattern like shot_%%04d.png")
    s.add_argument("--out", required=True, help="output folder for frame_00001.png... and report.json")
    s.add_argument("--json-progress", action="store_true", help="progress as JSON lines on stderr (for the add-on)")
    groups: dict = {"general": s}
    for f in dataclasses.fields(Settings) + dataclasses.fields(RunOptions):
        if f.metadata.get("cli", True):
            _add_field(s, groups, f)
    sub.add_parser("stylize", parents=[s], help="stylize a clip into a folder of frames")
    sub.add_parser("stitch", parents=[s], help="after farm chunk jobs (--chunk I/N): make the chunk boundaries consistent")
    t = sub.add_parser("train", help="fine-tune a stylizer into a video network for fast mode's --stylizer")
    t.add_argument("--out", required=True, help="the network file to write, e.g. stable7.pt")
    t.add_argument("--resume", action="store_true", help="continue from OUT.ckpt when it exists (default: off)")
    train_groups: dict = {"general": t}
    for f in dataclasses.fields(TrainSettings):
        _add_field(t, train_groups, f)
    return p


def _values(cls, args: argparse.Namespace) -> dict:
    """The fields of ``cls`` the user gave, each through its field's parser (FlowstyleError on bad text)."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.name in vars(args):
            value = getattr(args, f.name)
            out[f.name] = f.metadata["parse"](value) if f.metadata.get("parse") else value
    return out


def settings_from_args(args: argparse.Namespace) -> tuple[Settings, RunOptions]:
    """The run's settings and options from parsed arguments; unset fields keep their defaults."""
    settings = Settings(**_values(Settings, args)).resolved()
    options = RunOptions(**_values(RunOptions, args), stitch=args.command == "stitch").checked()
    return settings, options


def _stylize(args: argparse.Namespace, emit: Progress, cancelled: threading.Event) -> tuple[str, int]:
    """``flowstyle stylize`` and ``stitch``: the run, and its summary line for people."""
    from .pipeline import run

    settings, options = settings_from_args(args)
    report = run(args.input, settings, args.out, options, on_event=emit, cancel=cancelled.is_set)
    if not emit.json_lines and options.preview is None:
        summ = report.summary()
        print(f"{summ['frames_total']} frames in {args.out} ({summ['seconds_per_frame']:.2f} s/frame, "
              f"warping error {summ['warping_error_mean']})", file=sys.stderr)
    return report.status, report.return_code


def _train(args: argparse.Namespace, emit: Progress, cancelled: threading.Event) -> tuple[str, int]:
    """``flowstyle train``: the network file, and one line saying what was made (or where it stopped)."""
    from .train.loop import checkpoint_path, train

    try:
        header = train(TrainSettings(**_values(TrainSettings, args)), args.out, resume=args.resume,
                       progress=not emit.json_lines, cancel=cancelled.is_set)
    except Cancelled:
        print(f"stopped; 'flowstyle train ... --resume' continues from {checkpoint_path(Path(args.out))}",
              file=sys.stderr)
        return "cancelled", EXIT_CANCELLED
    print(f"{header['variant']} network for {header['style']} in {args.out}: {header['steps']} steps, "
          f"{header['seconds']:.0f} s of training ({header['data']})", file=sys.stderr)
    return "ok", EXIT_OK


class UsageError(Exception):
    """A command line argparse refused (exit 2); raised instead of printing when events are JSON lines."""


class _JsonErrorParser(argparse.ArgumentParser):
    """argparse, but a usage error is an exception the caller turns into JSON events."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


def _wants_json(argv: Sequence[str]) -> bool:
    """Whether the command line asks for JSON lines (also when it is otherwise wrong, and abbreviated)."""
    return any(len(a) > 3 and "--json-progress".startswith(a.split("=")[0]) for a in argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    emit = Progress(_wants_json(argv)).start()
    cancelled = threading.Event()
    received: list[int] = []

    def on_signal(signum, frame):  # SIGINT/SIGTERM only set a flag; the run stops after the current write
        received.append(signum)
        cancelled.set()

    stops = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGBREAK] if hasattr(signal, "SIGBREAK") else [])
    old = {sig: signal.signal(sig, on_signal) for sig in stops}
    status, code = "failed", EXIT_ERROR
    try:
        args = build_parser(json_errors=emit.json_lines).parse_args(argv)
        if args.command == "train":
            status, code = _train(args, emit, cancelled)
        else:
            status, code = _stylize(args, emit, cancelled)
    except UsageError as exc:
        emit({"event": "error", "message": str(exc)})
        code = EXIT_USAGE
    except SystemExit as exc:  # argparse: --help, --version (stdout), or a usage error (printed, exit 2)
        status, code = ("ok", EXIT_OK) if not exc.code else ("failed", exc.code)
    except FlowstyleError as exc:
        emit({"event": "error", "message": str(exc)})
    except MemoryError:
        emit({"event": "error", "message": "out of memory: use a smaller --size"})
    except KeyboardInterrupt:
        status, code = "cancelled", EXIT_CANCELLED
    except Exception as exc:  # a bug, not the user's doing: one line, and still a well-formed stream
        emit({"event": "error", "message": f"internal error: {type(exc).__name__}: {exc} (please report it with report.json)"})
        if os.environ.get("FLOWSTYLE_DEBUG"):
            raise
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        emit.finish(status)
    if status == "cancelled" and received and received[0] == signal.SIGTERM:
        return EXIT_TERMINATED  # stopped by the system (a farm's kill), after the current frame was written
    return code if status != "ok" else EXIT_OK
