"""Runtimes built in the background while a run's jobs build (issue #26: the first run pipelined).

A cold run used to build each target runtime when the first wheel of its target reached smoke, with every
other step waiting: the wheels' own builds (seconds to minutes each) and the runtimes' configure steps (one
core each) never overlapped. Now the runtimes a run's jobs will smoke on are known at plan time; one background
thread builds the missing ones in the order the jobs need them (or takes them from the configured runtime
source), while the jobs build on the main thread: at most two CPU-heavy steps at once, the machine's two
cores. Smoke waits only for its own runtime: its `runtime.build()` takes that runtime's build lock, which the
background builder holds while building it (flock locks open files, so threads exclude each other as
processes do), and then finds it finished.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from pipeline.log import log
from pipeline.plan import Job


def needed_runtimes(jobs: Sequence[Job]) -> list[Any]:
    """The runtimes smoke will use for these jobs and that are not built yet, in the jobs' order."""
    from pipeline.smoke import choose_runtime

    found: dict[str, Any] = {}
    for job in jobs:
        if not job.python[:1].isdigit():
            continue  # a wheel-source job: its wheels say which Python they need
        try:
            runtime, _why_not = choose_runtime(job.target, job.python, True)
        except Exception:  # an unknown target is the job's error to report, not the prefetch's
            continue
        if runtime is not None and runtime.name not in found and not runtime.exists():
            found[runtime.name] = runtime
    return list(found.values())


class RuntimePrefetch:
    """One background thread building `runtimes` one after another; failures are said in one line each and
    left to smoke, which builds (and reports) the runtime itself when it is still missing."""

    def __init__(self, runtimes: Sequence[Any]) -> None:
        self.runtimes = list(runtimes)
        self.muted = log.is_muted()  # a caller muted when it starts the builds keeps them quiet too
        self.seconds: dict[str, float] = {}
        self.thread = threading.Thread(target=self._run, name="rewheel-runtimes", daemon=True)

    def start(self) -> RuntimePrefetch:
        if self.runtimes:
            names = ", ".join(r.name for r in self.runtimes)
            log.say(f"runtimes: building {names} in the background while the jobs build (parallel)")
            self.thread.start()
        return self

    def _run(self) -> None:
        if self.muted:
            with log.muted():
                self._build_all()
        else:
            self._build_all()

    def _build_all(self) -> None:
        for runtime in self.runtimes:
            started = time.monotonic()
            try:
                runtime.build()
            except Exception as exc:  # smoke retries and reports it on the job it belongs to
                log.say(f"runtimes: background build of {runtime.name} failed: {exc}")
                continue
            self.seconds[runtime.name] = round(time.monotonic() - started, 1)
            log.say(f"runtimes: {runtime.name} ready (background, {self.seconds[runtime.name]:.0f} s)")

    def join(self) -> None:
        if self.thread.is_alive():
            self.thread.join()


def start(jobs: Sequence[Job]) -> RuntimePrefetch:
    return RuntimePrefetch(needed_runtimes(jobs)).start()
