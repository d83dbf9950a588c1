"""The command line's event sink on stderr: a progress bar for people, or JSON lines for the add-on.

With JSON lines the stream carries nothing else (STYLE 14): while the run lasts, file descriptor 2
is a pipe read by a thread, so whatever writes there (OpenCV's and CUDA's native messages, Ray,
Python's own ``sys.stderr``, ``logging``) comes out as ``{"event": "log", "message": line}``, and
Python warnings as ``{"event": "warning"}``. :meth:`Progress.finish` drains the pipe before it
writes ``done``, so ``done`` is always the last line.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import warnings
from typing import Optional, TextIO

__all__ = ["Progress"]


class _StderrPipe:
    """File descriptor 2 redirected into a pipe whose lines go to ``sink`` (one call per line)."""

    def __init__(self, sink):
        self._sink = sink
        self._token = b"\0flowstyle-drained-%d\0\n" % id(self)

    def start(self) -> TextIO:
        """Redirect fd 2; returns a stream on the original stderr for the events themselves."""
        sys.stderr.flush()
        self._saved = os.dup(2)
        r, self._w = os.pipe()
        os.dup2(self._w, 2)
        self._drained = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(r,), name="flowstyle-stderr", daemon=True)
        self._thread.start()
        return os.fdopen(os.dup(self._saved), "w", encoding="utf-8", errors="replace", buffering=1)

    def _read(self, r: int) -> None:
        with os.fdopen(r, "rb") as pipe:
            for raw in pipe:  # until every writer is gone; lines after the drain token are dropped
                if self._drained.is_set():
                    continue
                if raw.endswith(self._token):
                    raw = raw[: -len(self._token)]
                    self._drained.set()
                text = raw.decode("utf-8", errors="replace").rstrip()
                if text.strip():
                    self._sink(text)

    def stop(self) -> None:
        """Pass on what is in the pipe, then give fd 2 back."""
        sys.stderr.flush()
        os.write(self._w, self._token)
        self._drained.wait(timeout=5.0)
        os.dup2(self._saved, 2)
        os.close(self._w)
        os.close(self._saved)


class Progress:
    """Event sink: JSON lines, or a tqdm bar, on stderr (call it with each event dict)."""

    def __init__(self, json_lines: bool):
        self.json_lines = json_lines
        self._bar = None
        self._lock = threading.RLock()
        self._pipe: Optional[_StderrPipe] = None
        self._out: TextIO = sys.stderr
        self._showwarning = None

    def start(self) -> "Progress":
        """With JSON lines: take over fd 2 and Python's warnings until :meth:`finish`."""
        if self.json_lines and self._pipe is None:
            self._pipe = _StderrPipe(lambda line: self({"event": "log", "message": line}))
            self._out = self._pipe.start()
            self._showwarning = warnings.showwarning
            warnings.showwarning = self._warning
        return self

    def _warning(self, message, category, filename, lineno, file=None, line=None) -> None:
        self({"event": "warning", "message": f"{category.__name__}: {message} ({os.path.basename(filename)}:{lineno})"})

    def finish(self, status: str) -> None:
        """Drain and restore stderr, then the last event: ``done`` with ``status``."""
        if self._pipe is not None:
            warnings.showwarning = self._showwarning
            self._pipe.stop()
            self._pipe = None
        self({"event": "done", "status": status})
        if self._out is not sys.stderr:
            self._out.close()
            self._out = sys.stderr

    def __call__(self, event: dict) -> None:
        with self._lock:
            if self.json_lines:
                self._out.write(json.dumps(event) + "\n")
                self._out.flush()
                return
            kind = event.get("event")
            if kind == "start":
                from tqdm import tqdm

                self._bar = tqdm(total=event["total"], unit="frame", desc="flowstyle", file=sys.stderr)
            elif kind == "frame" and self._bar is not None and not event.get("stitched"):
                self._bar.update(1)
            elif kind in ("warning", "error"):
                message = f"{kind}: {event['message']}"
                if self._bar is not None:
                    self._bar.write(message, file=sys.stderr)  # tqdm.write goes to stdout unless told
                else:
                    print(message, file=sys.stderr)
            elif kind == "done" and self._bar is not None:
                self._bar.close()
