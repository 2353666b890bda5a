"""One channel for progress, as cibuildwheel's single `log`: every stage prints through the module-level `log`.

Lines go to stderr so stdout stays clean for --json consumers. Piped (CI logs, a file), a long step prints a
heartbeat line every 30 s, so a busy build can be told from a hung one. On a terminal the heartbeat would
scroll the screen instead, so there one status line at the bottom lists every step running in any thread
(runtime builds run in background threads while jobs build) with its elapsed time, redrawn about once a
second; plain lines are printed above it. The CLI decides once per command whether anything prints at all
(`configure(enabled=not as_json)`); a caller that wants one step silent wraps it in `muted()`, which holds
for its own thread only, so a background build keeps talking while the foreground is quiet.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TextIO

HEARTBEAT_SECONDS = 30.0
REFRESH_SECONDS = 1.0

_CLEAR_LINE = "\r\x1b[2K"


@dataclass(frozen=True)
class _Running:
    what: str
    step: str
    started: float


class Reporter:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._local = threading.local()
        self._ids = itertools.count()
        self._running: dict[int, _Running] = {}
        self._drawn = False  # a status line is on screen (TTY mode only)
        self._painter: threading.Thread | None = None
        self.configure()

    def configure(
        self,
        enabled: bool = True,
        stream: TextIO | None = None,
        tty: bool | None = None,
        *,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        """`stream` None is whatever sys.stderr is at print time (pytest swaps it); `tty` None asks the stream."""
        with self._lock:
            self._clear_status()
            self.enabled = enabled
            self._stream = stream
            self._tty = tty
            self.heartbeat_seconds = heartbeat_seconds
            self.refresh_seconds = refresh_seconds
            self._status_off = False

    # -- what callers use -------------------------------------------------------------------------------

    def say(self, message: str) -> None:
        """One line on stderr, unless disabled or muted in this thread."""
        if self._silent():
            return
        with self._lock:
            stream = self.stream
            if self._drawn:
                stream.write(_CLEAR_LINE)
                self._drawn = False
            stream.write(message + "\n")
            if self._running and self.is_tty:
                self._draw_status()
            stream.flush()

    @contextmanager
    def step(self, what: str, step: str) -> Iterator[None]:
        """Time a step: `<what>: <step> done in N s` on success; a heartbeat or status line while it runs."""
        started = time.monotonic()
        silent = self._silent()
        with self._activity(what, step, silent):
            yield
        if not silent:
            self.say(f"{what}: {step} done in {time.monotonic() - started:.0f} s")

    @contextmanager
    def activity(self, what: str, step: str, *, heartbeat: bool = True) -> Iterator[None]:
        """A step that prints no line of its own when it ends: only its heartbeat (piped, when `heartbeat`) or
        its place in the status line (terminal) while it runs."""
        with self._activity(what, step, self._silent(), heartbeat=heartbeat):
            yield

    @contextmanager
    def muted(self) -> Iterator[None]:
        """Nothing printed from this thread inside (other threads go on)."""
        self._local.muted = getattr(self._local, "muted", 0) + 1
        try:
            yield
        finally:
            self._local.muted -= 1

    @contextmanager
    def command(self) -> Iterator[None]:
        """One CLI command: when it ends, however it ends, the status line is cleared and stays off (background
        builds may still be running), so the error or summary printed next stands on a line of its own."""
        try:
            yield
        finally:
            with self._lock:
                self._clear_status()
                self._status_off = True

    def run(
        self,
        command: list[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        label: str,
        prefix: str = "zig",
        stdout: IO[str] | int | None = subprocess.PIPE,
        runner: Callable[[], subprocess.CompletedProcess[str]] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """subprocess.run(command) with `<prefix>: <label>: still running, N s` while it runs (a status line on a
        terminal). Its output goes to `stdout` (stderr with it) or is captured. `runner` runs the command
        instead (the sandbox: pipeline/sandbox.py), with the same heartbeat."""
        with self._activity(prefix, label, self._silent()):
            if runner is not None:
                return runner()
            stderr = subprocess.STDOUT if stdout not in (subprocess.PIPE, None) else subprocess.PIPE
            return subprocess.run(command, cwd=cwd, env=dict(env), stdout=stdout, stderr=stderr, text=True)

    # -- state --------------------------------------------------------------------------------------------

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    @property
    def is_tty(self) -> bool:
        if self._tty is not None:
            return self._tty
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def running(self) -> list[tuple[str, str, float]]:
        """(what, step, seconds) of every step running now, in any thread, oldest first."""
        now = time.monotonic()
        with self._lock:
            return [(r.what, r.step, now - r.started) for r in self._running.values()]

    def is_muted(self) -> bool:
        """True inside muted() in this thread."""
        return getattr(self._local, "muted", 0) > 0

    def _silent(self) -> bool:
        return not self.enabled or self.is_muted()

    # -- while a step runs ------------------------------------------------------------------------------

    @contextmanager
    def _activity(self, what: str, step: str, silent: bool, *, heartbeat: bool = True) -> Iterator[None]:
        if silent:
            yield
            return
        key = next(self._ids)
        with self._lock:
            self._running[key] = _Running(what, step, time.monotonic())
            tty = self.is_tty
            if tty:
                self._start_painter()
        done = threading.Event()
        beat = None
        if not tty and heartbeat:
            # The heartbeat thread prints for the step's thread, which was not muted when the step began.
            beat = threading.Thread(target=self._heartbeat, args=(key, done), daemon=True)
            beat.start()
        try:
            yield
        finally:
            done.set()
            with self._lock:
                del self._running[key]
                if tty and self._drawn:
                    if self._running:
                        self._draw_status()  # the others go on: drop this one from the line now
                        self.stream.flush()
                    else:
                        self._clear_status()

    def _heartbeat(self, key: int, done: threading.Event) -> None:
        while not done.wait(self.heartbeat_seconds):
            with self._lock:
                item = self._running.get(key)
                if item is None or not self.enabled:
                    return
                self.stream.write(
                    f"{item.what}: {item.step}: still running, {time.monotonic() - item.started:.0f} s\n"
                )
                self.stream.flush()

    def _start_painter(self) -> None:
        if self._painter is not None and self._painter.is_alive():
            return
        self._draw_status()
        self.stream.flush()
        self._painter = threading.Thread(target=self._paint, daemon=True)
        self._painter.start()

    def _paint(self) -> None:
        while True:
            time.sleep(self.refresh_seconds)
            with self._lock:
                if not self._running:
                    self._clear_status()
                    self._painter = None
                    return
                if self.enabled:
                    self._draw_status()
                    self.stream.flush()

    def status_line(self) -> str:
        parts = [f"{what} {step} {seconds:.0f} s" for what, step, seconds in self.running()]
        return "running: " + " | ".join(parts)

    def _draw_status(self) -> None:
        if self._status_off:
            return
        # One physical line: cut to the terminal's width, or the next \r would redraw only its last row.
        width = shutil.get_terminal_size((100, 24)).columns - 1
        line = self.status_line()
        if len(line) > width:
            line = line[: max(width - 3, 0)] + "..."
        self.stream.write(_CLEAR_LINE + line)
        self._drawn = True

    def _clear_status(self) -> None:
        if self._drawn:
            self.stream.write(_CLEAR_LINE)
            self.stream.flush()
            self._drawn = False


log = Reporter()
