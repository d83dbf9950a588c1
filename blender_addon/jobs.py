"""Running engine jobs: start one, step it on the main thread, finish it (STYLE 13-14).

Jobs sit in :data:`JOBS`, keyed by (scene name, strip name), so the panel's Cancel button
and the modal operator reach the same job. :func:`step` is the whole per-tick body: it
drains the bridge's events and applies them to strips. The modal operator calls it from
its timer, :func:`run_to_end` calls it in a loop (``blender -b``, scripts, tests), and tests
may call it directly. Nothing from the worker's threads ever touches ``bpy`` data.
"""

from __future__ import annotations

import collections
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import bpy

from . import compat, results, worker
from .planning import Plan, PlanError

__all__ = ["JOBS", "Job", "find", "start", "step", "run_to_end", "cancel", "redraw"]


@dataclass(eq=False)
class Job:
    """One running (or just finished) engine job for one strip."""

    plan: Plan
    proc: worker.EngineProcess
    channel: int  # fixed when the job is queued (DESIGN 5)
    messages: list = field(default_factory=list)  # (level, text): 'INFO' | 'WARNING' | 'ERROR'
    stage: str = ""
    done: int = 0
    total: int | None = None
    frames: int = 0  # frames shown in the result strip
    status: str | None = None  # "ok" | "cancelled" | "failed" once finished
    summary: str = ""
    log: collections.deque = field(default_factory=lambda: collections.deque(maxlen=50))

    @property
    def key(self) -> tuple[str, str]:
        return (self.plan.scene_name, self.plan.strip_name)

    @property
    def finished(self) -> bool:
        return self.status is not None

    @property
    def progress(self) -> float:
        """0..1 for the progress bar."""
        total = self.total or self.plan.fmap.count
        if self.plan.kind == "stylize" and total:
            return min(1.0, max(self.frames, self.done if self.stage != "flow" else 0) / total)
        return min(1.0, self.done / total) if total else 0.0

    def status_line(self) -> str:
        """One line for the status bar and panel."""
        what = "Preview" if self.plan.kind == "preview" else "Stylize"
        if self.finished:
            return self.summary
        if self.proc.cancel_requested:
            return f"{what} '{self.plan.strip_name}': cancelling..."
        if self.stage and self.total:
            return f"{what} '{self.plan.strip_name}': {self.stage} {self.done}/{self.total}"
        return f"{what} '{self.plan.strip_name}': starting the engine..."


JOBS: dict[tuple[str, str], Job] = {}


def find(scene_name: str, strip_name: str) -> Job | None:
    """The running job of a strip, if any."""
    return JOBS.get((scene_name, strip_name))


def _lookup(job: Job):
    scene = bpy.data.scenes.get(job.plan.scene_name)
    editor = scene.sequence_editor if scene is not None else None
    source = compat.all_strips(editor).get(job.plan.strip_name) if editor is not None else None
    return scene, editor, source


_OLD_FRAME = re.compile(r"^frame_\d{5}\.png$")


def _clear_frames(folder: Path) -> None:
    """Remove a previous run's frames (a fresh run must never show stale ones)."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if _OLD_FRAME.match(path.name) or path.name == "report.json":
            path.unlink()


def start(scene, source, plan: Plan) -> Job:
    """Queue ``plan``: fix the channel, prepare the output folder, start the engine."""
    if find(plan.scene_name, plan.strip_name) is not None:
        raise PlanError(f"a flowstyle job is already running for '{plan.strip_name}': cancel it first")
    editor = scene.sequence_editor
    with compat.prefetch_paused(scene):
        previews = results.preview_strips(editor, source)
        existing = results.result_strip(editor, source)
        if plan.kind == "stylize" and existing is not None and not plan.spec.resume:
            compat.remove_strip(editor, existing)
            existing = None
        if plan.kind == "stylize" and existing is not None:
            channel = existing.channel
        else:
            channel = results.free_channel(editor, source, ignore=previews)
    try:
        plan.out_dir.mkdir(parents=True, exist_ok=True)
        if plan.kind == "stylize" and not plan.spec.resume:
            _clear_frames(plan.out_dir)
        probe = plan.out_dir / ".flowstyle-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise PlanError(
            f"cannot write to '{plan.out_dir}' ({exc.strerror or exc}): "
            "save the .blend somewhere writable or set a cache folder in the add-on preferences"
        ) from None
    # cwd: the strip's own folder, so no 'flowstyle' folder in Blender's cwd shadows the engine.
    proc = worker.EngineProcess(plan.args, cwd=str(plan.folder))
    job = Job(plan=plan, proc=proc, channel=channel, total=plan.fmap.count if plan.kind == "stylize" else 1)
    JOBS[job.key] = job
    settings = source.flowstyle
    settings.enabled = True
    settings.progress = 0.0
    settings.status = job.status_line()
    proc.start()
    return job


def step(job: Job) -> bool:
    """Apply the events that arrived since the last call; True once the job has finished.

    Main thread only. While a render runs, events wait in the queue (strips must not change
    under the renderer).
    """
    if job.finished:
        return True
    if compat.is_rendering():
        return False
    try:
        return _step(job)
    except BaseException:
        # A bug here must not leave an engine running with nobody reading it.
        job.proc.cancel()
        job.proc.wait(timeout=3 * job.proc.grace)
        JOBS.pop(job.key, None)
        job.status = "failed"
        raise


def _step(job: Job) -> bool:
    events = job.proc.poll()
    if not events:
        return False
    new_frames = False
    status = None
    for event in events:
        kind = event.get("event")
        if kind == "start":
            job.total = event.get("total") or job.total
        elif kind == "progress":
            job.stage = str(event.get("stage", ""))
            job.done = int(event.get("done") or 0)
            job.total = event.get("total") or job.total
        elif kind == "frame":
            new_frames = True
        elif kind in ("warning", "error"):
            text = job.plan.explain(str(event.get("message", "")))
            job.messages.append(('WARNING' if kind == "warning" else 'ERROR', text))
        elif kind == "log":
            job.log.append(str(event.get("message", "")))
        elif kind == "done":
            status = event.get("status", "failed")
    scene, editor, source = _lookup(job)
    if source is not None:
        with compat.prefetch_paused(scene):
            if new_frames and job.plan.kind == "stylize":
                _show(job, editor, source)
            if status is not None:
                _finish(job, editor, source, status)
        source.flowstyle.progress = job.progress
        source.flowstyle.status = job.status_line()
    elif status is not None:
        _finish(job, None, None, status)
    redraw()
    return job.finished


def _show(job: Job, editor, source) -> None:
    count = results.ready_count(job.plan.out_dir, job.plan.fmap.count)
    if count != job.frames:
        results.show_frames(editor, source, job.plan.out_dir, job.plan.fmap, count, job.channel, shrink=False)
        job.frames = count


def _finish(job: Job, editor, source, status: str) -> None:
    plan = job.plan
    try:
        if source is not None and plan.kind == "stylize":
            status = _finish_stylize(job, editor, source, status)
        elif source is not None and plan.kind == "preview":
            status = _finish_preview(job, editor, source, status)
    except PlanError as exc:
        job.messages.append(('ERROR', str(exc)))
        status = "failed"
    finally:
        JOBS.pop(job.key, None)
    if status == "failed" and not any(level == 'ERROR' for level, _ in job.messages):
        last = next((line for line in reversed(job.log) if line.strip()), "no message")
        job.messages.append(('ERROR', f"flowstyle engine failed on '{plan.strip_name}' ({last.strip()})"))
    job.status = status
    if status == "failed":
        job.summary = f"Failed: {next(text for level, text in job.messages if level == 'ERROR')}"
    elif status == "cancelled" and plan.kind == "preview":
        job.summary = "Preview cancelled"
    elif status == "cancelled":
        job.summary = f"Cancelled: {job.frames} of {plan.fmap.count} frames kept"
    elif plan.kind == "preview":
        job.summary = f"Preview of frame {plan.preview_frame} ready"
    else:
        job.summary = f"Stylized {job.frames} frames of '{plan.strip_name}'"


def _finish_stylize(job: Job, editor, source, status: str) -> str:
    plan = job.plan
    count = results.ready_count(plan.out_dir, plan.fmap.count)
    strip = results.show_frames(editor, source, plan.out_dir, plan.fmap, count, job.channel)
    job.frames = count
    if status == "ok" and count < plan.fmap.count:
        job.messages.append(('ERROR', f"the engine finished but '{results.frame_name(count + 1)}' is missing in "
                                      f"'{plan.out_dir}': run Update to stylize the rest"))
        status = "failed"
    if strip is not None:
        results.finish_result(strip, plan.fmap, complete=count == plan.fmap.count)
    if status == "ok":
        for old in results.preview_strips(editor, source):
            compat.remove_strip(editor, old)
    return status


def _finish_preview(job: Job, editor, source, status: str) -> str:
    plan = job.plan
    produced = plan.out_dir / "preview.png"
    if status != "ok":
        return status
    if not produced.is_file():
        job.messages.append(('ERROR', f"the engine finished but wrote no preview in '{plan.out_dir}'"))
        return "failed"
    for old in plan.out_dir.glob("preview_f*.png"):
        old.unlink()
    # A new name each time: Blender caches images by path.
    kept = plan.out_dir / f"preview_f{plan.preview_frame:06d}_{time.time_ns() % 10**9:09d}.png"
    os.replace(produced, kept)
    results.place_preview(editor, source, kept, plan.preview_frame, job.channel)
    return status


def run_to_end(job: Job, interval: float = 0.05) -> str:
    """Step ``job`` until it finishes (the blocking path); Ctrl+C cancels the engine."""
    while not step(job):
        try:
            time.sleep(interval)
        except KeyboardInterrupt:
            cancel(job)
    return job.status


def cancel(job: Job) -> None:
    """Ask the engine to stop after the frame it is writing; frames done so far stay."""
    job.proc.cancel()


def cancel_all() -> None:
    """Cancel every job and wait for them (add-on unregister, file load)."""
    for job in list(JOBS.values()):
        job.proc.cancel()
    for job in list(JOBS.values()):
        job.proc.wait(timeout=3 * job.proc.grace)
        JOBS.pop(job.key, None)


def redraw() -> None:
    """Redraw Sequencer areas (progress, new frames); nothing to do without a UI."""
    wm = getattr(bpy.context, "window_manager", None)
    if wm is None or bpy.app.background:
        return
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type in {'SEQUENCE_EDITOR', 'STATUSBAR'}:
                area.tag_redraw()
