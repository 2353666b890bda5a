"""Runtimes built in the background while a run's jobs build (issue #26: the first run pipelined).

A cold run used to build each target runtime when the first wheel of its target reached smoke, with every
other step waiting: the wheels' own builds (seconds to minutes each) and the runtimes' configure steps (one
core each) never overlapped. Now the runtimes a run's jobs will smoke on are known at plan time; background
threads build the missing ones in the order the jobs need them (or take them from the configured runtime
source), one thread per architecture, while the jobs build on the main thread and their smokes wait in the
orchestrator's finisher thread. Most of a runtime build is single-core (configure, qemu-run steps, one-file
compiles), as are most wheel builds, so three such streams keep a 2-core machine busy where two left a core
idle. Smoke waits only for its own runtime: its `runtime.build()` takes that runtime's build lock, which the
background builder holds while building it (flock locks open files, so threads exclude each other as
processes do), and then finds it finished.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pipeline.log import log
from pipeline.plan import Job


def needed_runtimes(jobs: Sequence[Job]) -> list[Any]:
    """The runtimes smoke will use for these jobs and that are not built yet, in the jobs' order."""
    return _distinct(_runtime_by_job(jobs).values())


def _distinct(runtimes: Iterable[Any]) -> list[Any]:
    return list({r.name: r for r in runtimes}.values())


def _runtime_by_job(jobs: Sequence[Job]) -> dict[str, Any]:
    """job id -> the not-yet-built runtime its smoke will use, for the jobs that have one."""
    from pipeline.smoke import choose_runtime

    found: dict[str, Any] = {}
    by_job: dict[str, Any] = {}
    for job in jobs:
        if not job.python[:1].isdigit():
            continue  # a wheel-source job: its wheels say which Python they need
        try:
            runtime, _why_not = choose_runtime(job.target, job.python, True)
        except Exception:  # an unknown target is the job's error to report, not the prefetch's
            continue
        if runtime is None:
            continue
        if runtime.name not in found and not runtime.exists():
            found[runtime.name] = runtime
        if runtime.name in found:
            by_job[job.id] = found[runtime.name]
    return by_job


class RuntimePrefetch:
    """Background threads, one per architecture, each building its `runtimes` one after another; failures are
    said in one line each and left to smoke, which builds (and reports) the runtime itself when it is still
    missing."""

    def __init__(self, by_job: Mapping[str, Any]) -> None:
        """`by_job`: job id -> the not-yet-built runtime its smoke needs (_runtime_by_job)."""
        self.runtimes = _distinct(by_job.values())
        self.by_job = {job: runtime.name for job, runtime in by_job.items()}
        self.finished: set[str] = set()  # built or failed: nothing more to wait for in the background
        self.muted = log.is_muted()  # a caller muted when it starts the builds keeps them quiet too
        self.seconds: dict[str, float] = {}
        chains: dict[str, list[Any]] = {}
        for runtime in self.runtimes:  # the jobs' order within each architecture
            chains.setdefault(str(getattr(runtime, "arch", runtime.name)), []).append(runtime)
        self.threads = [
            threading.Thread(target=self._run, args=(chain,), name=f"rewheel-runtimes-{arch}", daemon=True)
            for arch, chain in chains.items()
        ]

    def start(self) -> RuntimePrefetch:
        if self.runtimes:
            names = ", ".join(r.name for r in self.runtimes)
            log.say(
                f"runtimes: building {names} in the background while the jobs build "
                f"(parallel: {len(self.threads)} thread(s), one per architecture)"
            )
            for thread in self.threads:
                thread.start()
        return self

    def _run(self, chain: list[Any]) -> None:
        if self.muted:
            with log.muted():
                self._build_all(chain)
        else:
            self._build_all(chain)

    def _build_all(self, chain: list[Any]) -> None:
        for runtime in chain:
            started = time.monotonic()
            try:
                runtime.build()
            except Exception as exc:  # smoke retries and reports it on the job it belongs to
                log.say(f"runtimes: background build of {runtime.name} failed: {exc}")
                self.finished.add(runtime.name)
                continue
            self.finished.add(runtime.name)
            self.seconds[runtime.name] = round(time.monotonic() - started, 1)
            log.say(f"runtimes: {runtime.name} ready (background, {self.seconds[runtime.name]:.0f} s)")

    def waiting_for(self, job: Job) -> str | None:
        """The runtime this job's smoke will wait for, while the background thread still has it to build."""
        name = self.by_job.get(job.id)
        if name is None or name in self.finished or not any(t.is_alive() for t in self.threads):
            return None
        return name

    def join(self) -> None:
        for thread in self.threads:
            if thread.is_alive():
                thread.join()


def start(jobs: Sequence[Job]) -> RuntimePrefetch:
    return RuntimePrefetch(_runtime_by_job(jobs)).start()
