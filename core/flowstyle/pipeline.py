"""The only module that knows the order of the stages (DESIGN 1):

frames in -> flow -> masks -> per-frame optimization with temporal terms -> frames out.

:func:`stylize` checks everything a user can get wrong before the first frame, builds the
run's :class:`~flowstyle.context.RunContext`, takes the output folder's lock and hands the clip
to the mode (or to the chunk, stitch and Ray runners), then reviews the whole shot (``--compare-perframe``,
report.png) and writes the report.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np

from .base.device import pick_device
from .base.errors import Cancelled, FlowstyleError
from .context import EventFn, RunContext
from .fast.perframe import NOTE as PERFRAME_NOTE
from .fast.perframe import compare_perframe
from .fast.run import preview_fast, run_fast
from .fast.video_net import load_video_network
from .io import names
from .io.frames import FrameSource, open_source
from .io.images import read_image, write_png
from .io.lock import OutputLock
from .io.report import Report
from .io.report_image import Column, SeenFrames, draw_report, pick_frames
from .io.styles import StyleRef, parse_style, read_style_image
from .keyframes.timeline import Timeline, load_keyframes
from .motion.flow import FlowEstimator
from .motion.flow_cache import FlowCache
from .quality.run import preview_quality, run_quality
from .scale.chunks import plan_chunks
from .scale.ray import run_distributed
from .scale.stitch import check_chunks_written, stitch_chunks
from .settings import RunOptions, Settings

__all__ = ["stylize", "run"]

OOM_FLOOR = 64  # the smallest --size the out-of-memory advice suggests

StyleArg = Union[str, StyleRef, Sequence[Union[str, StyleRef]], None]
KeyframesArg = Union[str, Path, dict, None]


def stylize(source: Union[str, Path], style: StyleArg, out: Union[str, Path], settings: Optional[Settings] = None, *,
            keyframes: KeyframesArg = None, on_event: Optional[EventFn] = None,
            cancel: Optional[Callable[[], bool]] = None, **options) -> Report:
    """Stylize a clip without flicker (DESIGN 3).

    Args:
        source: video file, folder of frames, or printf pattern (``shot_%04d.png``).
        style: image path(s), ``builtin:N``, ``path:weight`` strings or :class:`StyleRef` s;
            None keeps ``settings.styles``.
        out: output folder: ``frame_00001.png``... and ``report.json``.
        settings: :class:`Settings`; defaults to fast mode.
        keyframes: style keys and painted overrides (DESIGN 4.5), a JSON file or its parsed dict;
            default ``settings.keyframes``.
        on_event: receives progress events (dicts); the pipeline never prints.
        cancel: polled between frames and iterations; True stops the run after the current write.
        options: the fields of :class:`~flowstyle.settings.RunOptions` (``resume``, ``preview``,
            ``cache_dir``, ``debug``, ``chunk``, ``chunks``, ``margin``, ``ray``, ``stitch``).

    Returns:
        the run's :class:`Report` (also written as ``out/report.json``).
    """
    settings = settings or Settings()
    styles = _as_styles(style)
    if styles:
        settings = dataclasses.replace(settings, styles=styles)
    return run(source, settings, out, RunOptions(**options), keyframes=keyframes, on_event=on_event, cancel=cancel)


def run(source: Union[str, Path], settings: Settings, out: Union[str, Path], options: RunOptions, *,
        keyframes: KeyframesArg = None, on_event: Optional[EventFn] = None,
        cancel: Optional[Callable[[], bool]] = None) -> Report:
    """:func:`stylize` with its options as a :class:`RunOptions` (the CLI's and the Ray tasks' entry)."""
    settings, options, out = settings.resolved(), options.checked(), Path(out)
    if options.ray is not None or options.chunk is not None or options.stitch:
        if settings.mode != "fast":
            raise FlowstyleError("--ray, --chunk and stitch run fast mode; run quality mode in one process")
    if options.compare_perframe and settings.mode != "fast":
        raise FlowstyleError("--compare-perframe compares fast mode with its own network run frame by frame; for "
                             "quality mode, run again with --temporal-weight 0 into another folder")
    src = open_source(source, settings.frames, settings.size)
    if options.preview is not None and not 1 <= options.preview <= len(src):
        raise FlowstyleError(f"--preview {options.preview} is outside the clip's {len(src)} frames")
    device = pick_device(settings.device)
    timeline = load_keyframes(settings, len(src), keyframes)
    _check_styles(timeline)
    _check_stylizer(settings, timeline)
    src.check_frames()
    _check_chunks(options, len(src))
    _check_no_overwrite(out, src, timeline, settings.keyframes if keyframes is None else keyframes)
    if options.stitch:
        check_chunks_written(out, len(src), options.chunks)
    if options.cache_dir:  # first: a refused run leaves no output folder behind
        _check_writable(Path(options.cache_dir), "--cache")
    _check_writable(out)
    ctx = _context(src, settings, out, device, timeline, options, on_event or (lambda e: None), cancel or (lambda: False))
    with OutputLock(out, options.chunk) if options.lock else contextlib.nullcontext():
        if options.lock:
            _remove_stale_temps(out, Path(options.cache_dir) if options.cache_dir else names.flow_cache_dir(out))
        try:
            for message in src.warnings:
                ctx.report.warnings.append(message)
                ctx.on_event({"event": "warning", "message": message})
            _dispatch(ctx, timeline, options, source, keyframes)
            if options.preview is None and options.chunk is None:  # a whole shot: the plain run, Ray, stitch
                _review(ctx, timeline, options)
            ctx.report.status = "ok"
        except Cancelled:
            ctx.report.status = "cancelled"
        except MemoryError:
            ctx.report.status = "failed"
            raise FlowstyleError(_out_of_memory(src, ctx.device)) from None
        except RuntimeError as exc:  # torch allocation failures
            ctx.report.status = "failed"
            if "out of memory" in str(exc).lower() or "failed to allocate" in str(exc).lower():
                raise FlowstyleError(_out_of_memory(src, ctx.device)) from None
            raise
        except BaseException:
            ctx.report.status = "failed"
            raise
        finally:
            src.close()
            if options.preview is None:
                ctx.report.write(out, names.report_name(options.chunk, options.stitch))
    return ctx.report


def _as_styles(style: StyleArg) -> tuple[StyleRef, ...]:
    if style is None:
        return ()
    items = [style] if isinstance(style, (str, StyleRef)) else list(style)
    return tuple(s if isinstance(s, StyleRef) else parse_style(s) for s in items)


def _check_writable(folder: Path, flag: str = "--out") -> None:
    """Make the folder (``--out``: its state folder) and write a probe into it; the probe's name is
    this process's own, since the chunk jobs of a farm or Ray run probe the same folder at the same time."""
    what = "output folder" if flag == "--out" else "flow cache folder"
    if folder.exists() and not folder.is_dir():
        raise FlowstyleError(f"{flag} '{folder}' is a file, not a folder: give a folder ({what})")
    inside = names.state_dir(folder) if flag == "--out" else folder
    try:
        inside.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=inside, prefix=".probe-"):
            pass
    except OSError as exc:
        raise FlowstyleError(f"cannot write to {what} '{folder}': {exc.strerror or exc}; "
                             f"choose a writable {flag}") from None


def _check_chunks(options: RunOptions, length: int) -> None:
    """A farm's chunk count must fit the clip: each chunk needs a frame."""
    n = options.chunk[1] if options.chunk else options.chunks if options.stitch else None
    if n is not None and n > length:
        flag = f"--chunk {options.chunk[0]}/{n}" if options.chunk else f"--chunks {n}"
        raise FlowstyleError(f"{flag}: the clip has only {length} frames, so at most {length} chunks; "
                             f"split it into {length} or fewer (and stitch with the same --chunks)")


def _key(path: Path) -> str:
    """A path as the file system sees it: links followed, case folded (case-insensitive disks)."""
    return os.path.normcase(str(Path(path).resolve())).casefold()


def _check_no_overwrite(out: Path, src: FrameSource, timeline: Timeline, keyframes: KeyframesArg) -> None:
    """Refuse an output folder where the run would write over (or later read back) a file it reads.

    Whatever the paths, links or case-insensitive file systems do: every input is compared by its
    resolved, case-folded path with the files the run writes, and by inode with those that exist.
    """
    reads = [(f, "input frame") for f in src.files] + [(Path(src.path), "input")] * (src.kind in ("video", "image"))
    reads += [(Path(r.image), "style image") for refs in [timeline.base] + [k.styles for k in timeline.keys]
              for r in refs if r.image]
    reads += [(Path(o.image), "painted frame") for o in timeline.overrides]
    if isinstance(keyframes, (str, Path)):
        reads.append((Path(keyframes), "keyframe file"))
    out_key = _key(out)
    state = (_key(names.state_dir(out)), _key(out / "debug"))
    if src.kind in ("folder", "pattern") and _key(src.files[0].parent) == out_key:
        raise FlowstyleError(f"--out '{out}' is the folder the input frames are in: the stylized frames would mix "
                             "with (and could replace) them; choose another output folder")
    written = {_key(out / names.frame_name(k + 1)) for k in range(len(src))}
    existing = _output_inodes(out)
    for path, what in reads:
        k = _key(path)
        inside = k.startswith(state[0] + os.sep.casefold()) or k.startswith(state[1] + os.sep.casefold())
        mine = _key(path.parent) == out_key and names.is_output_name(path.name)
        if k in written or inside or mine or _inode(path) in existing:
            raise FlowstyleError(f"--out '{out}' would overwrite the {what} '{path}': choose an output folder that "
                                 "holds none of the run's inputs")


def _inode(path: Path) -> Optional[tuple[int, int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _output_inodes(out: Path) -> set:
    """(device, inode) of the files in ``out`` the run writes: an input that is one of them (a hard
    link, say) would be replaced. One listing of the folder, however many inputs there are."""
    if not out.is_dir():
        return set()
    found = {_inode(p) for p in out.iterdir() if names.is_output_name(p.name)}
    return found - {None}


def _check_styles(timeline: Timeline) -> None:
    """Read every style image the run will use now, so a bad one fails before the first frame."""
    seen = set()
    for refs in [timeline.base] + [k.styles for k in timeline.keys]:
        for ref in refs:
            if ref.image and ref.image not in seen:
                seen.add(ref.image)
                read_style_image(ref.image)


def _check_stylizer(settings: Settings, timeline: Timeline) -> None:
    """Read the ``--stylizer`` file now, so a bad one fails before the first frame; it has one style of its own."""
    if not settings.stylizer:
        return
    load_video_network(settings.stylizer)
    if timeline.keys or timeline.overrides:
        raise FlowstyleError(f"--stylizer '{settings.stylizer}' runs one trained style: style keys and painted "
                             "overrides (--keyframes) need the shipped networks; drop one of the two")


def _context(src: FrameSource, settings: Settings, out: Path, device: str, timeline: Timeline, options: RunOptions,
             on_event: EventFn, cancel: Callable[[], bool]) -> RunContext:
    report = Report(settings=settings.fingerprint() | {"device": device}, source=src.describe(), size=src.size,
                    pixels_per_frame=src.width * src.height)
    cache = FlowCache(Path(options.cache_dir) if options.cache_dir else names.flow_cache_dir(out))
    flow_options = {"device": device, "weights": settings.raft_weights} if settings.flow == "raft" else {}
    names.keys_dir(out).mkdir(parents=True, exist_ok=True)
    key = json.dumps(settings.fingerprint() | {"keyframes": timeline.fingerprint()}, sort_keys=True)
    whole = options.preview is None and options.chunk is None  # a run that draws report.png at its end
    return RunContext(source=src, settings=settings, out=out, device=device,
                      flows=FlowEstimator(settings.flow, cache, scales=settings.flow_scales, **flow_options),
                      report=report, on_event=on_event,
                      cancel=cancel, resume=options.resume, debug=options.debug, settings_key=key,
                      seen=SeenFrames(pick_frames(len(src))) if options.report_image and whole else None)


def _dispatch(ctx: RunContext, timeline: Timeline, options: RunOptions, source, keyframes: KeyframesArg) -> None:
    """Hand the clip to what this invocation runs: a preview, Ray, one farm chunk, the stitch, or a mode."""
    def start(total: int) -> None:
        ctx.on_event({"event": "start", "protocol": 1, "total": total})

    n = len(ctx.source)
    if options.preview is not None:
        start(1)
        _preview(ctx, timeline, options.preview)
    elif options.ray is not None:
        start(n)
        run_distributed(ctx, timeline, _chunk_job, source=source, keyframes=keyframes, options=options)
    elif options.chunk is not None:
        c = plan_chunks(n, options.chunk[1], options.margin)[options.chunk[0] - 1]
        start(c.end - c.start + 1)
        run_fast(ctx, timeline, first=c.start, last=c.end, lead=c.lead)
    elif options.stitch:
        plan = plan_chunks(n, options.chunks, options.margin)
        start(len(plan) - 1)
        stitch_chunks(ctx, timeline, plan, options.margin)
    else:
        start(n)
        (run_fast if ctx.settings.mode == "fast" else run_quality)(ctx, timeline)


def _chunk_job(source: str, settings: Settings, out: str, options: RunOptions, keyframes: KeyframesArg) -> dict:
    """Body of one Ray task: the engine's own chunk mode in the worker process."""
    import cv2

    cv2.setNumThreads(1)
    report = run(source, settings, out, options, keyframes=keyframes)
    return {"status": report.status, "frames": report.frames}


def _review(ctx: RunContext, timeline: Timeline, options: RunOptions) -> None:
    """After the frames: ``--compare-perframe``'s pass, then report.png (issue 18).

    Streams the input (and the per-frame stylization) and then the written frames through
    :class:`Column` s, which keep one row and three thumbnails each. Frames this process wrote come from
    what it kept as it wrote them (``ctx.seen``); the rest (Ray's and the farm's chunks) are read back.
    """
    if not (options.report_image or options.compare_perframe):
        return
    n, picks = len(ctx.source), pick_frames(len(ctx.source))
    columns = [Column("input", picks), Column("flowstyle", picks, errors=_output_errors(ctx, options))]
    if options.compare_perframe:
        columns.append(Column("per-frame", picks))
        compare_perframe(ctx, timeline, lambda frame, out: (columns[0].add(frame.index, frame.rgb),
                                                            columns[2].add(frame.index, out)))
        columns[2].errors = {i: r.get("warping_error_perframe") for i, r in ctx.report.frames.items()}
    if not options.report_image:
        return
    t = time.perf_counter()
    seen = ctx.seen or SeenFrames(picks)  # what the run kept of the frames it wrote; the rest is read back
    if not options.compare_perframe:
        if len(seen.input) == n:
            for k in range(n):
                columns[0].take(k, *seen.input[k])
        else:
            for frame in ctx.source:
                ctx.check_cancel()
                columns[0].add(frame.index, frame.rgb)
    for k in range(n):
        ctx.check_cancel()
        if k in seen.output:
            columns[1].take(k, *seen.output[k])
        else:
            columns[1].add(k, read_image(ctx.out / names.frame_name(k + 1), "output frame")[0])
    means = [f"{c.title} {np.mean([v for v in c.errors.values() if v is not None]):.4g}"
             for c in columns[1:] if any(v is not None for v in c.errors.values())]
    title = (f"{Path(str(ctx.source.path)).name}: {ctx.settings.mode} mode, {n} frames at {ctx.source.width}x"
             f"{ctx.source.height}" + (f"; mean warping error: {', '.join(means)}" if means else ""))
    draw_report(ctx.out / names.REPORT_IMAGE_NAME, columns, title=title, keys=[k.frame + 1 for k in timeline.keys],
                overrides=[o.frame + 1 for o in timeline.overrides],
                note=PERFRAME_NOTE if options.compare_perframe else "")
    ctx.report.extra_seconds["report_image"] = time.perf_counter() - t


def _output_errors(ctx: RunContext, options: RunOptions) -> dict[int, Optional[float]]:
    """1-based frame -> warping error of the written frame; a stitch takes the chunk jobs' reports and
    overlays the frames it re-solved."""
    errors: dict[int, Optional[float]] = {}
    if options.stitch:
        for i in range(1, options.chunks + 1):
            try:
                frames = json.loads((ctx.out / names.report_name((i, options.chunks))).read_text())["frames"]
            except (OSError, ValueError, KeyError):
                continue  # a chunk report lost: its frames have no figure on the plot
            errors.update({int(k): v.get("warping_error") for k, v in frames.items()})
    errors.update({i: r.get("warping_error") for i, r in ctx.report.frames.items() if "warping_error" in r})
    return errors


def _remove_stale_temps(out: Path, cache: Path) -> None:
    """Temp files left by a killed run (atomic writes that never reached their rename), and only those;
    in the flow cache, which other jobs may share, only those old enough to be orphans."""
    for p in names.stale_temp_files(out):
        p.unlink(missing_ok=True)
    FlowCache(cache).remove_stale_temps()


def _out_of_memory(src: FrameSource, device: str) -> str:
    """Advice that converges: a smaller --size (about half the pixels) while one above the floor
    helps, then, at the floor, what else frees memory (never the same --size again)."""
    where = f"out of memory stylizing {src.width}x{src.height} frames on {device}"
    side = max(src.size)
    fit = int(side * 0.7) // 16 * 16
    if fit >= OOM_FLOOR:
        return f"{where}: use a smaller working size, e.g. --size {fit}"
    other = "--device cpu (slower, uses RAM)" if device != "cpu" else "a machine with more memory"
    return f"{where}, already near the smallest useful size: close other programs using memory, or use {other}"


def _preview(ctx: RunContext, timeline: Timeline, index: int) -> None:
    """One frame, no temporal terms: what the editor sees before committing to a render."""
    frame = ctx.source.read(index - 1)
    t = time.perf_counter()
    rgb = (preview_fast if ctx.settings.mode == "fast" else preview_quality)(ctx, timeline, frame)
    path = ctx.out / names.PREVIEW_NAME
    write_png(path, rgb, frame.alpha, frame.bit_depth)
    ctx.on_event({"event": "frame", "index": index, "path": str(path), "seconds": round(time.perf_counter() - t, 4),
                  "preview": True})
