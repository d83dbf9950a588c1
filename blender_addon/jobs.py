"""Running engine jobs: start one, step it on the main thread, finish it (STYLE 13-14).

Jobs sit in :data:`JOBS`, keyed by (scene name, strip name), so the panel's Cancel button
and the modal operator reach the same job. :func:`step` is the whole per-tick body: it
drains the bridge's events and applies them to strips. The modal operator calls it from
its timer, :func:`run_to_end` calls it in a loop (``blender -b``, scripts, tests), and tests
may call it directly. Nothing from the worker's threads ever touches ``bpy`` data.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import bpy

from . import compat, results, worker
from .planning import Plan, PlanError

__all__ = ["JOBS", "Job", "find", "start", "step", "run_to_end", "cancel", "redraw", "SHOW_EVERY"]

SHOW_EVERY = 0.5
"""Seconds between UI updates of a running job: new frames into the strip, progress redraws."""


@dataclass(eq=False)
class Job:
    """One running (or just finished) engine job for one strip."""

    plan: Plan
    proc: worker.EngineProcess
    channel: int  # fixed when the job is queued (DESIGN 5)
    final_dir: Path | None = None  # where the result lives; out_dir differs while a result is replaced
    messages: list = field(default_factory=list)  # (level, text): 'INFO' | 'WARNING' | 'ERROR'
    stage: str = ""
    done: int = 0
    total: int | None = None
    frames: int = 0  # frames shown in the result strip
    status: str | None = None  # "ok" | "cancelled" | "failed" once finished
    summary: str = ""
    log: collections.deque = field(default_factory=lambda: collections.deque(maxlen=50))
    ready: int = 0  # frames the engine reported written (shown at most every SHOW_EVERY seconds)
    shown_at: float = 0.0
    drawn_at: float = 0.0
    drawn_progress: float = -1.0

    @property
    def staged(self) -> bool:
        """True while a result already on disk is being replaced (it stays until this run completes)."""
        return self.final_dir is not None and self.final_dir != self.plan.out_dir

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
            return min(1.0, max(self.frames, self.ready, self.done if self.stage != "flow" else 0) / total)
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


def start(scene, source, plan: Plan) -> Job:
    """Queue ``plan``: fix the channel, prepare the output folder, start the engine.

    A result already on disk is never touched while the run goes: the run then writes
    beside it (``frames.new``) and :func:`step` swaps it in once complete.
    """
    if find(plan.scene_name, plan.strip_name) is not None:
        raise PlanError(f"a flowstyle job is already running for '{plan.strip_name}': cancel it first")
    editor = scene.sequence_editor
    existing = results.result_strip(editor, source)
    final_dir = None
    if plan.kind == "stylize":
        final_dir = plan.out_dir
        channel = results.free_channel(editor, source, ignore=[existing, *results.preview_strips(editor, source)])
        if results.has_frames(final_dir):
            plan.out_dir = final_dir.with_name(results.STAGING)
            plan.spec = dataclasses.replace(plan.spec, out=str(plan.out_dir))
    else:
        channel = results.preview_channel(editor, source, plan.preview_frame,
                                          above=existing.channel if existing is not None else 0)
    try:
        if plan.kind == "stylize" and plan.out_dir != final_dir:
            results.prepare_staging(final_dir, plan.out_dir, resume=plan.spec.resume)
        plan.out_dir.mkdir(parents=True, exist_ok=True)
        probe = plan.out_dir / ".flowstyle-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise PlanError(
            f"cannot write to '{plan.out_dir}' ({exc.strerror or exc}): "
            "save the .blend somewhere writable or set a cache folder in the add-on preferences"
        ) from None
    if plan.kind == "stylize":
        with compat.prefetch_paused(scene):
            if existing is not None and plan.out_dir == final_dir:  # its frames are gone: nothing to keep
                compat.remove_strip(editor, existing)
            results.lift_previews(editor, source, channel)
    # cwd: the strip's own folder, so no 'flowstyle' folder in Blender's cwd shadows the engine.
    proc = worker.EngineProcess(plan.args, cwd=str(plan.folder))
    job = Job(plan=plan, proc=proc, channel=channel, final_dir=final_dir,
              total=plan.fmap.count if plan.kind == "stylize" else 1)
    JOBS[job.key] = job
    source.flowstyle.enabled = True
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
    status = None
    for event in job.proc.poll():
        kind = event.get("event")
        if kind == "start":
            job.total = event.get("total") or job.total
        elif kind == "progress":
            job.stage = str(event.get("stage", ""))
            job.done = int(event.get("done") or 0)
            job.total = event.get("total") or job.total
        elif kind == "frame":
            job.ready += 1
        elif kind in ("warning", "error"):
            text = job.plan.explain(str(event.get("message", "")))
            job.messages.append(('WARNING' if kind == "warning" else 'ERROR', text))
        elif kind == "log":
            job.log.append(str(event.get("message", "")))
        elif kind == "done":
            status = event.get("status", "failed")
    if status is not None:
        scene, editor, source = _lookup(job)
        if source is not None:
            with compat.prefetch_paused(scene):
                _finish(job, editor, source, status)
            source.flowstyle.progress = job.progress
            source.flowstyle.status = job.status_line()
        else:
            _finish(job, None, None, status)
        redraw(timeline=True)
        return True
    # Until the end, strip properties stay untouched (each write redraws every window) and the
    # UI hears from the job at most every SHOW_EVERY seconds: new frames, then the progress bar.
    now = time.monotonic()
    shown = None
    if job.plan.kind == "stylize" and not job.staged and job.ready > job.frames and now - job.shown_at >= SHOW_EVERY:
        shown = _show(job)
        job.shown_at = now
    if shown is not None or (job.progress != job.drawn_progress and now - job.drawn_at >= SHOW_EVERY):
        job.drawn_at, job.drawn_progress = now, job.progress
        redraw(timeline=shown is not None, frames=shown)
    return False


def _show(job: Job) -> tuple[int, int] | None:
    """Extend the result strip to the frames on disk; returns the timeline frames added."""
    scene, editor, source = _lookup(job)
    count = results.ready_count(job.plan.out_dir, job.plan.fmap.count)
    if source is None or count == job.frames:
        return None
    with compat.prefetch_paused(scene):
        results.show_frames(editor, source, job.plan.out_dir, job.plan.fmap, count, job.channel, shrink=False)
    added = (job.plan.fmap.first + job.frames, job.plan.fmap.first + count - 1)
    job.frames = count
    return added


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
    elif status == "cancelled" and job.staged:
        job.summary = (f"Cancelled: the previous result stays; Update continues from the {job.ready} of "
                       f"{plan.fmap.count} new frames")
    elif status == "cancelled":
        job.summary = f"Cancelled: {job.frames} of {plan.fmap.count} frames kept"
    elif plan.kind == "preview":
        job.summary = f"Preview of frame {plan.preview_frame} ready"
    else:
        job.summary = f"Stylized {job.frames} frames of '{plan.strip_name}'"


def _finish_stylize(job: Job, editor, source, status: str) -> str:
    plan = job.plan
    count = results.ready_count(plan.out_dir, plan.fmap.count)
    if status == "ok" and count < plan.fmap.count:
        job.messages.append(('ERROR', f"the engine finished but '{results.frame_name(count + 1)}' is missing in "
                                      f"'{plan.out_dir}': run Update to stylize the rest"))
        status = "failed"
    frames_dir = plan.out_dir
    if job.staged:
        job.ready = count
        if status != "ok":
            return status  # the previous result stays as it is; Update resumes from the new frames
        try:
            results.swap_in(plan.out_dir, job.final_dir)
        except OSError as exc:
            raise PlanError(f"cannot replace the previous result in '{job.final_dir}' ({exc.strerror or exc}): "
                            "close programs using those files, then run Update") from None
        old = results.result_strip(editor, source)
        if old is not None:
            compat.remove_strip(editor, old)
        frames_dir = job.final_dir
    strip = results.show_frames(editor, source, frames_dir, plan.fmap, count, job.channel)
    job.frames = count
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


def redraw(timeline: bool = False, frames: tuple[int, int] | None = None) -> None:
    """Redraw only what a job changed: the sidebar (progress), and with ``timeline`` the strips;
    the sequencer preview only when the frame it shows is among ``frames`` (timeline frames).

    Nothing to do without a UI. The status bar redraws itself on ``status_text_set``.
    """
    wm = getattr(bpy.context, "window_manager", None)
    if wm is None or bpy.app.background:
        return
    for window in wm.windows:
        scene = window.scene
        shows_new = frames is not None and frames[0] <= scene.frame_current <= frames[1]
        for area in window.screen.areas:
            if area.type != 'SEQUENCE_EDITOR':
                continue
            view = getattr(area.spaces.active, "view_type", 'SEQUENCER')
            for region in area.regions:
                if region.type == 'UI':
                    region.tag_redraw()
                elif region.type == 'PREVIEW' or (region.type == 'WINDOW' and view == 'PREVIEW'):
                    if shows_new or (timeline and frames is None):
                        region.tag_redraw()
                elif region.type == 'WINDOW' and timeline:
                    region.tag_redraw()
