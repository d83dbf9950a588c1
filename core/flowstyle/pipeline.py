"""The only module that knows the order of the stages (DESIGN 1):

frames in -> flow -> masks -> per-frame optimization with temporal terms -> frames out.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np

from .errors import Cancelled, FlowstyleError
from .frames import Frame, FrameSource, open_source, read_image, write_png, atomic_write_bytes
from .report import Report
from .settings import Settings
from .stylize import StyleRef, parse_style

__all__ = ["stylize", "RunContext", "frame_name"]

EventFn = Callable[[dict], None]


def frame_name(index: int) -> str:
    """Output file name of frame ``index`` (1-based)."""
    return f"frame_{index:05d}.png"


@dataclass
class RunContext:
    """What a mode's loop needs from the pipeline: the clip, the settings and the sinks.

    Modes read frames from ``source``, flows from ``flows``, and hand every finished frame to
    :meth:`emit_frame`, which writes it atomically, records it for ``--resume`` and reports it.
    """

    source: FrameSource
    settings: Settings
    out: Path
    device: str
    flows: object  # flow.FlowEstimator
    report: Report
    on_event: EventFn
    cancel: Callable[[], bool]
    resume: bool = False
    debug: bool = False
    _settings_key: str = ""

    def _key_path(self, index: int) -> Path:
        return self.out / ".flowstyle" / "keys" / f"{index:05d}.key"

    def check_cancel(self) -> None:
        if self.cancel():
            raise Cancelled()

    def progress(self, stage: str, done: int, total: int) -> None:
        self.on_event({"event": "progress", "stage": stage, "done": done, "total": total})

    def chain_key(self, frame: Frame, previous_key: str) -> str:
        """Resume key of a frame: settings + its input + the key of the frame before (temporal dependency)."""
        return hashlib.blake2b(f"{self._settings_key}|{frame.key}|{previous_key}".encode(), digest_size=16).hexdigest()

    def reusable(self, index: int, key: str) -> Optional[np.ndarray]:
        """The finished output of frame ``index`` (1-based) if ``--resume`` may keep it, else None."""
        path = self.out / frame_name(index)
        try:
            stored = self._key_path(index).read_text()
        except OSError:
            return None
        if not self.resume or stored != key or not path.is_file():
            return None
        try:
            rgb, _, _ = read_image(path, "earlier output")
        except FlowstyleError:
            return None
        return rgb if rgb.shape[:2] == (self.source.height, self.source.width) else None

    def emit_frame(self, frame: Frame, rgb: np.ndarray, key: str, seconds: float, reused: bool = False) -> None:
        index = frame.index + 1
        path = self.out / frame_name(index)
        if not reused:
            t = time.perf_counter()
            write_png(path, rgb, frame.alpha, frame.bit_depth)
            self.report.add_time(index, "write", time.perf_counter() - t)
            atomic_write_bytes(self._key_path(index), key.encode())  # after the frame: a key never vouches for a missing frame
        else:
            self.report.frame(index)["reused"] = True
        self.on_event({"event": "frame", "index": index, "path": str(path), "seconds": round(seconds, 4),
                       "reused": reused})


def _as_styles(style: Union[str, StyleRef, Sequence[Union[str, StyleRef]], None]) -> tuple[StyleRef, ...]:
    if style is None:
        return ()
    items = [style] if isinstance(style, (str, StyleRef)) else list(style)
    return tuple(s if isinstance(s, StyleRef) else parse_style(s) for s in items)


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".flowstyle" / f".probe"
        probe.parent.mkdir(exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise FlowstyleError(f"cannot write to output folder '{out}': {exc.strerror or exc}; choose a writable --out") from None


def stylize(
    source: Union[str, Path],
    style: Union[str, StyleRef, Sequence[Union[str, StyleRef]], None],
    out: Union[str, Path],
    settings: Optional[Settings] = None,
    *,
    on_event: Optional[EventFn] = None,
    cancel: Optional[Callable[[], bool]] = None,
    resume: bool = False,
    preview: Optional[int] = None,
    cache_dir: Optional[Union[str, Path]] = None,
    debug: bool = False,
    keyframes: Optional[Union[str, Path, dict]] = None,
    chunk: Optional[tuple[int, int]] = None,
    chunks: Optional[int] = None,
    margin: int = 8,
    ray: Optional[str] = None,
    stitch: bool = False,
    _lock: bool = True,
) -> Report:
    """Stylize a clip without flicker (DESIGN 3).

    Args:
        source: video file, folder of frames, or printf pattern (``shot_%04d.png``).
        style: image path(s), ``builtin:N``, ``path:weight`` strings or :class:`StyleRef` s;
            None keeps ``settings.styles``.
        out: output folder: ``frame_00001.png``... and ``report.json``.
        settings: :class:`Settings`; defaults to fast mode.
        on_event: receives progress events (dicts); the pipeline never prints.
        cancel: polled between frames and iterations; True stops the run after the current write.
        resume: keep frames whose inputs and settings are unchanged.
        preview: stylize only this frame (1-based within the range) into ``out/preview.png``.
        cache_dir: flow cache folder (default ``out/.flowstyle/flow``).
        debug: also write the masks as images under ``out/debug``.
        keyframes: style keys and painted overrides (DESIGN 4.5), a JSON file or its parsed dict;
            default ``settings.keyframes``.
        chunk: (I, N): run only chunk I of N (1-based) of the range, for render farms; frames keep
            their numbers in the whole range; finish with ``stitch=True`` and the same N.
        chunks: number of chunks (with ``ray`` or ``stitch``); default two per Ray worker.
        margin: lead-in frames run before each chunk to warm its temporal state.
        ray: run the chunks as Ray tasks: "" starts a local cluster, else a cluster address.
        stitch: only re-solve the chunk boundaries of an N-chunk run (farm's last step).

    Returns:
        the run's :class:`Report` (also written as ``out/report.json``).
    """
    from .flow import FlowCache, FlowEstimator
    from ._utils import OutputLock, pick_device

    settings = settings or Settings()
    styles = _as_styles(style)
    if styles:
        settings = dataclasses.replace(settings, styles=styles)
    settings = settings.resolved()
    on_event = on_event or (lambda e: None)
    cancel = cancel or (lambda: False)
    out = Path(out)

    src = open_source(source, settings.frames, settings.size)
    if preview is not None and not 1 <= preview <= len(src):
        raise FlowstyleError(f"--preview {preview} is outside the clip's {len(src)} frames")
    _check_writable(out)
    device = pick_device(settings.device)
    report = Report(settings=settings.fingerprint() | {"device": device}, source=src.describe(), size=src.size,
                    pixels_per_frame=src.width * src.height)
    cache = FlowCache(Path(cache_dir) if cache_dir else out / ".flowstyle" / "flow")
    from .keyframes import load_keyframes

    timeline = load_keyframes(settings, len(src), keyframes)
    _check_styles(timeline)
    src.check_frames()
    (out / ".flowstyle" / "keys").mkdir(parents=True, exist_ok=True)
    ctx = RunContext(source=src, settings=settings, out=out, device=device,
                     flows=FlowEstimator(settings.flow, cache, **({"device": device, "weights": settings.raft_weights}
                                                                 if settings.flow == "raft" else {})), report=report, on_event=on_event,
                     cancel=cancel, resume=resume, debug=debug,
                     _settings_key=json.dumps(settings.fingerprint() | {"keyframes": timeline.fingerprint()},
                                              sort_keys=True))
    parallel = chunk is not None or ray is not None or stitch
    if parallel and settings.mode != "fast":
        raise FlowstyleError("--ray, --chunk and stitch run fast mode; run quality mode in one process")
    report_name = f"report-chunk-{chunk[0]}-of-{chunk[1]}.json" if chunk else ("report-stitch.json" if stitch else "report.json")
    lock = OutputLock(out, f"lock-chunk-{chunk[0]}" if chunk else "lock") if _lock else contextlib.nullcontext()
    with lock:
        if _lock:
            _remove_stale_temps(out)
        try:
            if preview is not None:
                on_event({"event": "start", "protocol": 1, "total": 1})
                _preview(ctx, timeline, preview)
            elif ray is not None:
                from .distributed import run_distributed

                on_event({"event": "start", "protocol": 1, "total": len(src)})
                run_distributed(ctx, timeline, source=source, keyframes=keyframes, address=ray, chunks=chunks,
                                margin=margin, cache_dir=cache_dir)
            elif chunk is not None or stitch:
                from .chunks import plan_chunks
                from .fast import run_fast, stitch_chunks

                plan = plan_chunks(len(src), chunk[1] if chunk else (chunks or 1), margin)
                if chunk is not None:
                    c = plan[chunk[0] - 1]
                    on_event({"event": "start", "protocol": 1, "total": c.end - c.start + 1})
                    run_fast(ctx, timeline, first=c.start, last=c.end, lead=c.lead)
                else:
                    on_event({"event": "start", "protocol": 1, "total": len(plan) - 1})
                    stitch_chunks(ctx, timeline, plan, margin)
            else:
                on_event({"event": "start", "protocol": 1, "total": len(src)})
                if settings.mode == "fast":
                    from .fast import run_fast

                    run_fast(ctx, timeline)
                else:
                    from .quality import run_quality

                    run_quality(ctx, timeline)
            report.status = "ok"
        except Cancelled:
            report.status = "cancelled"
        except MemoryError:
            report.status = "failed"
            raise FlowstyleError(_out_of_memory(src, device)) from None
        except RuntimeError as exc:  # torch / onnxruntime allocation failures
            report.status = "failed"
            if "out of memory" in str(exc).lower() or "failed to allocate" in str(exc).lower():
                raise FlowstyleError(_out_of_memory(src, device)) from None
            raise
        except BaseException:
            report.status = "failed"
            raise
        finally:
            src.close()
            if preview is None:
                report.write(out, report_name)
    return report


def _remove_stale_temps(out: Path) -> None:
    """Temp files left by a killed run (atomic writes that never reached their rename)."""
    for folder in (out, out / ".flowstyle", out / ".flowstyle" / "keys"):
        for p in folder.glob(".*.tmp"):
            p.unlink(missing_ok=True)


def _out_of_memory(src: FrameSource, device: str) -> str:
    side = max(src.size)
    fit = max(64, int(side * 0.7) // 16 * 16)
    return (f"out of memory stylizing {src.width}x{src.height} frames on {device}: "
            f"use a smaller working size, e.g. --size {fit}")


def _check_styles(timeline) -> None:
    """Load every style image the run will use now, so a bad one fails before the first frame."""
    from .stylize import _load_style_image

    seen = set()
    for refs in [timeline.base] + [k.styles for k in timeline.keys]:
        for ref in refs:
            if ref.image and ref.image not in seen:
                seen.add(ref.image)
                _load_style_image(ref.image)


def _preview(ctx: RunContext, timeline, index: int) -> None:
    """One frame, no temporal terms: what the editor sees before committing to a render."""
    frame = ctx.source.read(index - 1)
    t = time.perf_counter()
    if ctx.settings.mode == "fast":
        from .fast import build_stylizer

        rgb = build_stylizer(ctx, timeline.styles_at(index - 1))(frame.rgb)
    else:
        from .quality import preview_quality

        rgb = preview_quality(ctx, timeline, frame)
    path = ctx.out / "preview.png"
    write_png(path, rgb, frame.alpha, frame.bit_depth)
    ctx.on_event({"event": "frame", "index": index, "path": str(path), "seconds": round(time.perf_counter() - t, 4),
                  "preview": True})
