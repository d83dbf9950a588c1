"""The bridge to the flowstyle engine: run it as a subprocess and read its JSON progress.

This module never imports ``bpy``, ``torch`` or ``flowstyle``: it is plain Python, so it is
tested without Blender (``tests/test_bridge.py`` against ``tests/fake_worker.py``).

Protocol (DESIGN 3, STYLE 14): the engine runs as
``[engine_python, "-m", "flowstyle", "stylize", INPUT, ..., "--json-progress"]`` in its own
process group and writes one JSON object per line on stderr::

    {"event": "start", "protocol": 1, "total": 48}
    {"event": "progress", "stage": "stylize", "done": 12, "total": 48}
    {"event": "frame", "index": 7, "path": ".../frame_00007.png", "seconds": 0.41}
    {"event": "warning", "message": "..."}     {"event": "error", "message": "..."}
    {"event": "done", "status": "ok" | "cancelled" | "failed"}          <- always last

A reader thread only parses lines into a :class:`queue.Queue`; :meth:`EngineProcess.poll`
drains it on the caller's thread. Lines that are not protocol JSON (OpenCV and CUDA write to
stderr too) become ``{"event": "log", "message": line}``. When the process ends without a
``done`` event (a crash, a kill), the bridge adds an ``error`` and a ``done`` itself, so a
caller always sees exactly one ``done``, last.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

__all__ = [
    "PROTOCOL",
    "JobSpec",
    "EngineProcess",
    "build_args",
    "run_blocking",
    "format_weight",
]

PROTOCOL = 1
"""The version of the JSON progress protocol this bridge speaks."""

_EXIT_CANCELLED = 130
_LOG_TAIL = 20  # non-JSON lines kept to explain a crash


@dataclass(frozen=True)
class JobSpec:
    """Everything one engine run needs, as plain values (the operator fills it from a strip).

    ``None`` means "not passed": the engine's own default applies.
    """

    input: str
    out: str
    styles: tuple[str, ...]
    mode: str | None = None
    frames: tuple[int, int] | None = None  # 1-based, inclusive, in the input's own order
    size: int | None = None
    flow: str | None = None
    temporal_weight: float | None = None
    long_term: tuple[int, ...] | None = None
    passes: int | None = None
    keyframes: str | None = None
    device: str | None = None
    content_weight: float | None = None  # quality mode
    style_weight: float | None = None  # quality mode
    recipe: str | None = None  # quality mode: default or fast
    vgg_weights: str | None = None  # quality mode: local VGG-19 file
    stylizer: str | None = None  # fast mode: a video network from 'flowstyle train'
    resume: bool = False
    preview: int | None = None  # 1-based within ``frames``
    extra_args: tuple[str, ...] = ()


def format_weight(value: float) -> str:
    """A float as the shortest text that reads back the same (``1.0`` -> ``"1"``)."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def build_args(engine_python: str, spec: JobSpec) -> list[str]:
    """The engine's command line for ``spec``: a list for ``Popen``, never a shell string."""
    if not spec.styles:
        raise ValueError("a job needs at least one style; got none")
    args = [engine_python, "-m", "flowstyle", "stylize", spec.input]
    for style in spec.styles:
        args += ["--style", style]
    args += ["--out", spec.out]
    if spec.mode is not None:
        args += ["--mode", spec.mode]
    if spec.frames is not None:
        start, end = spec.frames
        if not 1 <= start <= end:
            raise ValueError(f"frames must be 1 <= start <= end; got {start}:{end}")
        args += ["--frames", f"{start}:{end}"]
    if spec.size is not None:
        args += ["--size", str(int(spec.size))]
    if spec.flow is not None:
        args += ["--flow", spec.flow]
    if spec.temporal_weight is not None:
        args += ["--temporal-weight", format_weight(spec.temporal_weight)]
    if spec.long_term is not None:
        args += ["--long-term", ",".join(str(int(j)) for j in spec.long_term)]
    if spec.passes is not None:
        args += ["--passes", str(int(spec.passes))]
    if spec.keyframes is not None:
        args += ["--keyframes", spec.keyframes]
    if spec.device is not None:
        args += ["--device", spec.device]
    if spec.content_weight is not None:
        args += ["--content-weight", format_weight(spec.content_weight)]
    if spec.style_weight is not None:
        args += ["--style-weight", format_weight(spec.style_weight)]
    if spec.vgg_weights is not None:
        args += ["--vgg-weights", spec.vgg_weights]
    if spec.recipe is not None:
        args += ["--recipe", spec.recipe]
    if spec.stylizer is not None:
        args += ["--stylizer", spec.stylizer]
    if spec.resume:
        args.append("--resume")
    if spec.preview is not None:
        args += ["--preview", str(int(spec.preview))]
    args += list(spec.extra_args)
    args.append("--json-progress")
    return args


def _parse_line(raw: bytes) -> dict | None:
    """One line of engine output as an event dict; ``None`` for a blank line."""
    text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
    if not text.strip():
        return None
    if text.lstrip().startswith("{"):
        try:
            event = json.loads(text)
        except ValueError:
            event = None
        if isinstance(event, dict) and isinstance(event.get("event"), str):
            return event
    return {"event": "log", "message": text}


@dataclass
class _CancelState:
    requested_at: float | None = None
    terminated: bool = False
    killed: bool = False


@dataclass(eq=False)
class EngineProcess:
    """One engine subprocess, its reader threads and its event queue.

    Use::

        proc = EngineProcess(args).start()
        while not proc.finished:
            for event in proc.poll():
                ...
            time.sleep(0.1)

    ``poll()`` never blocks and is meant for one thread (Blender's main thread); the reader
    threads only touch the queue. ``cancel()`` never blocks either: it sends SIGINT
    (CTRL_BREAK_EVENT on Windows) at once, and later ``poll()`` calls escalate to
    ``terminate()`` after ``grace`` seconds and to ``kill()`` after twice that.
    """

    args: list[str]
    env: dict[str, str] | None = None
    cwd: str | None = None
    grace: float = 10.0
    status: str | None = None  # "ok" | "cancelled" | "failed" once finished
    returncode: int | None = None
    total: int | None = None
    errors: list[str] = field(default_factory=list)
    _popen: subprocess.Popen | None = field(default=None, repr=False)
    _queue: queue.Queue = field(default_factory=queue.Queue, repr=False)
    _threads: list[threading.Thread] = field(default_factory=list, repr=False)
    _log_tail: collections.deque = field(
        default_factory=lambda: collections.deque(maxlen=_LOG_TAIL), repr=False
    )
    _cancel: _CancelState = field(default_factory=_CancelState, repr=False)
    _started: bool = field(default=False, repr=False)
    _saw_done: bool = field(default=False, repr=False)
    _finished: bool = field(default=False, repr=False)

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> "EngineProcess":
        """Start the process in its own process group, and the reader threads."""
        if self._started:
            raise RuntimeError("this engine process was already started")
        self._started = True
        env = dict(os.environ if self.env is None else self.env)
        env.pop("PYTHONHOME", None)  # Blender's own Python must not leak into the engine's
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONIOENCODING"] = "utf-8"
        kwargs: dict = {}
        if sys.platform == "win32":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        else:
            kwargs["start_new_session"] = True
        try:
            self._popen = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=self.cwd,
                **kwargs,
            )
        except OSError as exc:
            # Report like a run that failed at once: the caller has one path for errors.
            self._queue.put({"event": "error", "message": _start_error(self.args[0], exc)})
            self._queue.put({"event": "exit", "returncode": None})
            return self
        out = threading.Thread(target=self._read, args=(self._popen.stdout,), daemon=True)
        err = threading.Thread(target=self._read_then_wait, args=(self._popen.stderr, out), daemon=True)
        self._threads = [out, err]
        out.start()
        err.start()
        return self

    def _read(self, stream) -> None:
        for raw in iter(stream.readline, b""):
            event = _parse_line(raw)
            if event is not None:
                self._queue.put(event)
        stream.close()

    def _read_then_wait(self, stream, other: threading.Thread) -> None:
        self._read(stream)
        other.join()
        self._queue.put({"event": "exit", "returncode": self._popen.wait()})

    @property
    def started(self) -> bool:
        """True once :meth:`start` was called (even when the program could not start)."""
        return self._started

    @property
    def pid(self) -> int | None:
        """The engine's process id (``None`` before start or when it could not start)."""
        return None if self._popen is None else self._popen.pid

    @property
    def finished(self) -> bool:
        """True once the process has exited and every event has been handed out."""
        return self._finished

    @property
    def cancel_requested(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self._cancel.requested_at is not None

    # -- events -------------------------------------------------------------------------

    def poll(self) -> list[dict]:
        """Return the events that arrived since the last call (never blocks)."""
        self._escalate_cancel()
        events: list[dict] = []
        while not self._finished:
            try:
                event = self._queue.get_nowait()
            except queue.Empty:
                break
            events.extend(self._handle(event))
        return events

    def _handle(self, event: dict) -> list[dict]:
        kind = event["event"]
        if kind == "exit":
            return self._on_exit(event["returncode"])
        if self._saw_done:
            # Anything after "done" is noise (the protocol puts done last): keep it as log.
            return [{"event": "log", "message": json.dumps(event)}] if kind != "log" else [event]
        if kind == "log":
            self._log_tail.append(str(event.get("message", "")))
        elif kind == "start":
            self.total = event.get("total")
            if event.get("protocol") != PROTOCOL:
                return [
                    event,
                    {
                        "event": "warning",
                        "message": f"engine speaks progress protocol {event.get('protocol')!r}, "
                        f"this add-on expects {PROTOCOL}: update the add-on and the engine together "
                        "(run install.py again)",
                    },
                ]
        elif kind == "error":
            self.errors.append(str(event.get("message", "")))
        elif kind == "done":
            self._saw_done = True
            status = event.get("status")
            self.status = status if status in ("ok", "cancelled", "failed") else "failed"
            return []  # handed out on exit, so "done" is always the last event
        return [event]

    def _on_exit(self, returncode: int | None) -> list[dict]:
        self.returncode = returncode
        self._finished = True
        events: list[dict] = []
        if not self._saw_done:
            if returncode == _EXIT_CANCELLED or (self.cancel_requested and returncode != 0):
                self.status = "cancelled"
            else:
                self.status = "failed"
                if returncode is not None:
                    message = self._crash_message(returncode)
                    self.errors.append(message)
                    events.append({"event": "error", "message": message})
        elif self.status == "ok" and returncode not in (0, None):
            self.status = "failed"
            message = f"engine reported success but exited with code {returncode}"
            self.errors.append(message)
            events.append({"event": "error", "message": message})
        events.append({"event": "done", "status": self.status, "returncode": returncode})
        return events

    def _crash_message(self, returncode: int) -> str:
        last = [line for line in self._log_tail if line.strip()]
        detail = last[-1].strip() if last else "no output"
        if returncode < 0:
            how = f"was stopped by signal {-returncode}"
        else:
            how = f"exited with code {returncode}"
        hint = ""
        if "No module named" in detail or "ImportError" in detail:
            hint = ": its environment is incomplete, run 'python install.py' again"
        return f"flowstyle engine {how} without finishing ({detail}){hint}"

    # -- cancel -------------------------------------------------------------------------

    def cancel(self) -> None:
        """Ask the engine to stop after the frame it is writing (never blocks)."""
        if self._cancel.requested_at is not None or self._popen is None:
            return
        self._cancel.requested_at = time.monotonic()
        self._signal("interrupt")

    def _escalate_cancel(self) -> None:
        state = self._cancel
        if state.requested_at is None or self._popen is None or self._popen.poll() is not None:
            return
        waited = time.monotonic() - state.requested_at
        if waited >= 2 * self.grace and not state.killed:
            state.killed = True
            self._signal("kill")
        elif waited >= self.grace and not state.terminated:
            state.terminated = True
            self._signal("terminate")

    def _signal(self, how: str) -> None:
        popen = self._popen
        if popen is None or popen.poll() is not None:
            return
        try:
            if sys.platform == "win32":
                if how == "interrupt":
                    popen.send_signal(signal.CTRL_BREAK_EVENT)
                elif how == "terminate":
                    popen.terminate()
                else:
                    popen.kill()
            else:
                sig = {"interrupt": signal.SIGINT, "terminate": signal.SIGTERM, "kill": signal.SIGKILL}[how]
                os.killpg(popen.pid, sig)  # the engine leads its own group (start_new_session)
        except (ProcessLookupError, PermissionError, OSError):
            pass  # it ended meanwhile

    def wait(self, timeout: float | None = None, interval: float = 0.05) -> list[dict]:
        """Block until finished (or ``timeout``), returning every event seen meanwhile."""
        deadline = None if timeout is None else time.monotonic() + timeout
        events: list[dict] = []
        while not self._finished:
            events.extend(self.poll())
            if deadline is not None and time.monotonic() >= deadline:
                break
            if not self._finished:
                time.sleep(interval)
        return events


def _start_error(program: str, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return (
            f"cannot start the flowstyle engine: '{program}' not found "
            "(set the engine Python in the add-on preferences, or run install.py)"
        )
    if isinstance(exc, PermissionError):
        return f"cannot start the flowstyle engine: '{program}' is not executable (check the engine Python in the add-on preferences)"
    return f"cannot start the flowstyle engine '{program}': {exc}"


def run_blocking(proc: EngineProcess, on_event, *, interval: float = 0.05) -> str:
    """Run ``proc`` to the end on this thread, calling ``on_event(event)`` for each event.

    The blocking path for scripts, render farms and tests (no event loop in ``blender -b``).
    Starts ``proc`` if needed and returns its final status. ``KeyboardInterrupt`` cancels the
    engine and keeps reading until it is done.
    """
    if not proc.started:
        proc.start()
    while not proc.finished:
        try:
            for event in proc.poll():
                on_event(event)
            if not proc.finished:
                time.sleep(interval)
        except KeyboardInterrupt:
            proc.cancel()
    return proc.status or "failed"
