"""Long compiles say they are alive: a heartbeat line with the elapsed time while a command runs.

A native library (PostgreSQL's libpq: five minutes) or a C++ extension can compile for minutes with its output
going to a log; without a line now and then a user cannot tell a busy build from a hung one.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

HEARTBEAT_SECONDS = 30.0


def run_with_heartbeat(
    command: list[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    label: str,
    progress: bool,
    stdout: IO[str] | int | None = subprocess.PIPE,
    interval: float = HEARTBEAT_SECONDS,
    prefix: str = "zig",
    runner: Callable[[], subprocess.CompletedProcess[str]] | None = None,
) -> subprocess.CompletedProcess[str]:
    """subprocess.run(command) that prints `<prefix>: <label>: still running, N s` every `interval` seconds.

    `runner` runs the command instead (the sandbox: pipeline/sandbox.py), with the same heartbeat."""
    started = time.monotonic()
    done = threading.Event()

    def beat() -> None:
        while not done.wait(interval):
            print(
                f"{prefix}: {label}: still running, {time.monotonic() - started:.0f} s",
                file=sys.stderr,
                flush=True,
            )

    thread = threading.Thread(target=beat, daemon=True)
    if progress:
        thread.start()
    try:
        if runner is not None:
            return runner()
        stderr = subprocess.STDOUT if stdout not in (subprocess.PIPE, None) else subprocess.PIPE
        return subprocess.run(command, cwd=cwd, env=dict(env), stdout=stdout, stderr=stderr, text=True)
    finally:
        done.set()
