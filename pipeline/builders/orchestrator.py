"""Run build jobs: select a backend, prepare, build, repair, verify, smoke, then install into the wheelhouse.

One job = recipe x target x Python, run in plan order. Each job works in its own folder under the cache, so a
job that fails (bad patch, compiler error, a bug in a backend) is recorded and the next job starts clean; a
job's wheels reach the wheelhouse only at the very end, each by an atomic rename, followed by its build
record. A wheel that fails verify or smoke goes to <wheelhouse>/quarantine/ with its report, never to the
wheelhouse. Jobs whose key matches an intact build record are skipped (see records.py).

A job runs in two halves: select-prepare-build-repair-verify on the calling thread, then smoke-record-install
on one finisher thread, in job order. On a cold machine a smoke may wait minutes for its runtime (built by
builders/prefetch.py in the background); the next jobs build meanwhile instead of waiting with it.

Backend choice (`auto`): the backends that take the job's source kind, in the order of their priority in
pipeline/builders/backends' REGISTRY (wheel sources -> wheel-source; sdists -> cibuildwheel when a container
engine works and the backend says it can build the target here, else zig). The choice and the reason are
printed and recorded.
"""

from __future__ import annotations

import contextlib
import importlib
import platform
import queue
import shutil
import tempfile
import threading
import time
import traceback
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.builders.backends import BACKEND_CHOICES, BACKENDS, auto_order
from pipeline.errors import RewheelError
from pipeline.log import log

if TYPE_CHECKING:
    from pipeline.builders.backends import Backend, BuildResult
    from pipeline.builders.prefetch import RuntimePrefetch
    from pipeline.builders.prepare import PreparedSource
    from pipeline.builders.records import BuildRecord, RecordIndex
    from pipeline.builders.repair import RepairResult
    from pipeline.builders.results import RecordedSmoke, SmokeNotRun, SmokeOutcome
    from pipeline.plan import Job
    from pipeline.verify.report import WheelReport

QUARANTINE = "quarantine"


class BackendUnavailable(RewheelError):
    """No backend (or not the requested one) can build this job here; the message says why."""


class BackendSelector:
    """Loads backends once per run and remembers the container-engine probe (it runs a subprocess)."""

    def __init__(self) -> None:
        self._backends: dict[str, Backend | str] = {}
        self._engine_probe: tuple[object | None, str] | None = None

    def load(self, name: str) -> Backend | str:
        """The backend instance, or one line saying why it cannot be loaded."""
        if name not in BACKENDS:
            return f"unknown backend {name!r} (choose from {', '.join(BACKEND_CHOICES)})"
        if name not in self._backends:
            entry = BACKENDS[name]
            self._backends[name] = getattr(importlib.import_module(entry.module), entry.cls)()
        return self._backends[name]

    def engine(self) -> tuple[object | None, str]:
        """(engine or None, a description or the reason there is none)."""
        if self._engine_probe is None:
            from pipeline.engines import detect_engine, engine_problem

            engine = detect_engine()
            if engine is None:
                self._engine_probe = (None, engine_problem())
            else:
                name, version = getattr(engine, "name", engine), getattr(engine, "version", "")
                self._engine_probe = (engine, f"{name} {version}".strip())
        return self._engine_probe

    def select(self, job: Job, requested: str) -> tuple[Backend, str]:
        from pipeline.targets import get_target

        if requested != "auto":
            return self._explicit(job, requested)
        problems: list[str] = []  # "name: why not", for the backends tried before the chosen one
        for name in auto_order(job.kind):
            backend = self._usable(name, job)
            if not isinstance(backend, str) and name == "cibuildwheel" and get_target(job.target).is_linux:
                backend = self._unbuilt_local_image(job) or backend
            if isinstance(backend, str):
                problems.append(f"{name}: {backend}")
                continue
            return backend, self._auto_reason(name, job, problems)
        raise BackendUnavailable(f"{job.id}: no backend can build it here: {'; '.join(problems)}")

    def _auto_reason(self, name: str, job: Job, passed_over: list[str]) -> str:
        from pipeline.targets import get_target

        if name == "wheel-source":
            why = "the source is a wheel: patch and re-pack, nothing to compile"
        elif name == "cibuildwheel" and get_target(job.target).is_linux:
            why = f"container engine {self.engine()[1]} works and cibuildwheel can build {job.target}"
        elif name == "cibuildwheel":
            why = f"cibuildwheel builds {job.target} natively on this host"
        elif name == "zig":
            why = "zig needs no container"
        else:
            why = f"{name} can build {job.target} here"
        return f"{why}; cannot build here: {'; '.join(passed_over)}" if passed_over else why

    def _unbuilt_local_image(self, job: Job) -> str | None:
        """auto uses cibuildwheel only with an image that exists: a local podman image not built yet takes
        minutes to make (`rewheel runtimes build`), where zig builds in seconds. --backend cibuildwheel
        builds it."""
        engine, _ = self.engine()
        if getattr(engine, "name", None) != "podman":
            return None
        from pipeline.runtimes.podman_images import image_for_target

        image = image_for_target(job.target, job.recipe.python)
        if image is None or image.exists():
            return None
        return f"its local podman image {image.name} is not built yet (`rewheel runtimes build {image.name}`)"

    def _usable(self, name: str, job: Job) -> Backend | str:
        backend = self.load(name)
        if isinstance(backend, str):
            return backend
        try:
            reason = backend.unavailable_reason(job)
        except RewheelError as exc:
            return str(exc)
        except Exception as exc:
            # A backend whose own check crashes cannot be trusted to build; auto moves on to the next one.
            return f"its availability check failed: {type(exc).__name__}: {exc}"
        return reason if reason else backend

    def _provision(self, job: Job, name: str) -> None:
        """A backend asked for by name installs what it needs here first (cibuildwheel: podman as root)."""
        provision = getattr(self.load(name), "provision", None)
        if provision is None:
            return
        try:
            provision(job)
        except RewheelError as exc:
            raise BackendUnavailable(f"{job.id}: backend {name} cannot build it here: {exc}") from None
        self._engine_probe = None  # an engine installed just now must be seen

    def _explicit(self, job: Job, name: str) -> tuple[Backend, str]:
        if name == "wheel-source" and job.kind != "wheel":
            raise BackendUnavailable(
                f"{job.id}: backend wheel-source only re-packs wheel sources; this source is an sdist"
            )
        if name != "wheel-source" and job.kind == "wheel":
            raise BackendUnavailable(f"{job.id}: the source is a wheel; only backend wheel-source handles it")
        self._provision(job, name)
        backend = self._usable(name, job)
        if isinstance(backend, str):
            raise BackendUnavailable(f"{job.id}: backend {name} cannot build it here: {backend}")
        return backend, f"requested with --backend {name}"


def select_backend(job: Job, requested: str) -> tuple[Backend, str]:
    """The backend for `job` and why it was chosen; BackendUnavailable (one line) when none can build it."""
    return BackendSelector().select(job, requested)


@dataclass
class JobOutcome:
    job: Job
    status: str  # "built" | "up-to-date" | "failed" | "quarantined"
    backend: str | None = None
    reason: str = ""  # why this backend
    wheels: list[Path] = field(default_factory=list)  # in the wheelhouse (or quarantine when quarantined)
    records: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    message: str = ""  # the failure, one line
    stage: str | None = None  # the stage that failed
    work_dir: Path | None = None  # kept after a failure, for the logs
    smoke: list[SmokeOutcome] = field(default_factory=list)  # one per wheel, in the order of wheels
    side_files: list[Path] = field(default_factory=list)  # e.g. the ensurepip copy of a patched pip

    @property
    def ok(self) -> bool:
        return self.status in ("built", "up-to-date")

    def to_json(self) -> dict[str, Any]:
        return {
            "job": self.job.id,
            "recipe": self.job.recipe.name,
            "version": self.job.version,
            "target": self.job.target,
            "python": self.job.python,
            "status": self.status,
            "ok": self.ok,
            "backend": self.backend,
            "reason": self.reason,
            "wheels": [str(w) for w in self.wheels],
            "records": [str(r) for r in self.records],
            "seconds": round(self.seconds, 3),
            "stage": self.stage,
            "message": self.message,
            "work_dir": str(self.work_dir) if self.work_dir else None,
            "smoke": [s.to_json() for s in self.smoke],
            "side_files": [str(p) for p in self.side_files],
        }


def _python_label(python: str) -> str:
    """cp313 for "3.13"; wheel-source jobs (any Python) keep their word."""
    return "cp" + python.replace(".", "") if python[:1].isdigit() else python


@dataclass
class ImportCounts:
    """What became of a run's wheels; `rewheel build` prints it as its closing lines and in --json."""

    built: int = 0
    up_to_date: int = 0
    verified: int = 0
    imported: int = 0
    not_imported: int = 0
    quarantined: int = 0
    reasons: dict[str, list[str]] = field(default_factory=dict)  # why not imported here -> wheel names
    # (target, python) -> [imported, wheels]: "every cp313 aarch64 wheel imported" at a glance
    by_target: dict[tuple[str, str], list[int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": {
                "built": self.built,
                "up_to_date": self.up_to_date,
                "verified": self.verified,
                "imported": self.imported,
                "not_imported": self.not_imported,
                "quarantined": self.quarantined,
            },
            "not_imported": [
                {"reason": r, "count": len(w), "wheels": w} for r, w in sorted(self.reasons.items())
            ],
            "imported_by_target": [
                {"target": target, "python": python, "imported": imported, "wheels": total}
                for (target, python), (imported, total) in sorted(self.by_target.items())
            ],
        }


@dataclass
class RunSummary:
    outcomes: list[JobOutcome]
    wheelhouse: Path
    seconds: float

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    @property
    def failed(self) -> list[JobOutcome]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def wheels(self) -> list[Path]:
        """Every wheel in the wheelhouse from this run's jobs (built now or up to date)."""
        return [w for o in self.outcomes if o.ok for w in o.wheels]

    def import_counts(self) -> ImportCounts:
        """What became of this run's wheels: built now or up to date, verified, imported on their target
        (smoke passed), and the ones that could not be imported here grouped by reason."""
        counts = ImportCounts()
        for outcome in self.outcomes:
            if outcome.status == "quarantined":
                counts.quarantined += len(outcome.wheels)
            if not outcome.ok:
                continue
            if outcome.status == "built":
                counts.built += len(outcome.wheels)
            else:
                counts.up_to_date += len(outcome.wheels)
            counts.verified += len(outcome.wheels)  # only verified wheels reach the wheelhouse
            smokes: list[SmokeOutcome | None] = [*outcome.smoke] or [None for _ in outcome.wheels]
            for wheel, smoke in zip(outcome.wheels, smokes, strict=False):
                group = counts.by_target.setdefault((outcome.job.target, outcome.job.python), [0, 0])
                group[1] += 1
                if smoke is not None and smoke.status == "passed":
                    counts.imported += 1
                    group[0] += 1
                    continue
                counts.not_imported += 1
                said = (smoke.message or smoke.status) if smoke is not None else None
                reason = " ".join(str(said or "not smoke-tested").split())
                counts.reasons.setdefault(reason, []).append(wheel.name)
        return counts

    def summary_lines(self) -> list[str]:
        """The run's closing lines for people: wheel counts, then one line per reason a wheel was not imported."""
        counts = self.import_counts()
        lines = [
            f"wheels: {counts.built} built, {counts.up_to_date} up to date, {counts.verified} verified, "
            f"{counts.imported} imported on their target, {counts.not_imported} not imported here"
            + (f", {counts.quarantined} quarantined" if counts.quarantined else "")
        ]
        if counts.by_target:
            lines.append(
                "imported: "
                + ", ".join(
                    f"{target} {_python_label(python)} {imported}/{total}"
                    for (target, python), (imported, total) in sorted(counts.by_target.items())
                )
            )
        for reason, wheels in sorted(counts.reasons.items()):
            lines.append(f"not imported here: {len(wheels)} wheel(s): {reason}")
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "wheelhouse": str(self.wheelhouse),
            "seconds": round(self.seconds, 3),
            "jobs": [o.to_json() for o in self.outcomes],
            "failed": [o.job.id for o in self.failed],
            **self.import_counts().to_json(),
        }


class StageFailed(RewheelError):
    def __init__(self, stage: str, message: str) -> None:
        super().__init__(message)
        self.stage = stage


@dataclass
class _Run:
    requested: str
    wheelhouse: Path
    smoke: bool
    force: bool
    selector: BackendSelector
    work_root: Path
    require_import: bool = False  # --require-import: a wheel not imported on its target fails its job
    announced: tuple[str, str] | None = None  # the backend and reason said for the run

    def announce(self, counter: str, job: Job, backend: str, reason: str) -> None:
        """Say the backend choice once per run, and again only for a job whose choice differs."""
        if self.announced is None:
            self.announced = (backend, reason)
            log.say(f"backend {backend}: {reason}")
        elif self.announced != (backend, reason):
            log.say(f"{counter} {job.id}: backend {backend}: {reason}")


def run_jobs(
    jobs: list[Job],
    *,
    backend: str = "auto",
    wheelhouse: Path,
    smoke: bool = True,
    force: bool = False,
    work_root: Path | None = None,
    require_import: bool = False,
) -> RunSummary:
    """Run every job in order; a failing job is recorded and never stops the others."""
    from pipeline.builders.records import RecordIndex

    if backend not in BACKEND_CHOICES:
        raise RewheelError(f"unknown backend {backend!r}; choose from {', '.join(BACKEND_CHOICES)}")
    started = time.monotonic()
    wheelhouse = Path(wheelhouse).resolve()
    if work_root is None:
        from pipeline.paths import cache_root

        work_root = cache_root() / "build-work"
    run = _Run(backend, wheelhouse, smoke, force, BackendSelector(), work_root, require_import)
    index = RecordIndex(wheelhouse)
    # The runtimes smoke will need build in a background thread meanwhile (pipeline/builders/prefetch.py),
    # and each job's smoke, record and install run in a second one (the finisher), in job order, so the next
    # jobs build while a smoke waits for its runtime: nothing waits but the smoke itself.
    prefetch = _start_prefetch(jobs) if smoke else None
    finisher = _Finisher(run, prefetch) if smoke else None
    results: list[JobOutcome | Future[JobOutcome]] = []
    try:
        for number, job in enumerate(jobs, 1):
            counter = f"[{number}/{len(jobs)}]"
            job_started = time.monotonic()
            outcome = _up_to_date(job, run, index)
            if outcome is not None:
                log.say(f"{counter} {job.id}: up to date")
            else:
                step = _build_job(job, run, counter)
                if isinstance(step, _Built):
                    step.seconds = time.monotonic() - job_started
                    if finisher is not None:
                        results.append(finisher.submit(step))
                        continue
                    outcome = _finish_job(step, run)
                else:
                    outcome = step
            outcome.seconds = outcome.seconds or time.monotonic() - job_started
            results.append(outcome)
        outcomes = [r.result() if isinstance(r, Future) else r for r in results]
    finally:
        if finisher is not None:
            finisher.close()
    if prefetch is not None:
        prefetch.join()
    return RunSummary(outcomes, wheelhouse, time.monotonic() - started)


class _Finisher:
    """One worker thread running the jobs' second half (smoke, record, install) in the order they were
    submitted: a later job's smoke may install an earlier job's wheel from the wheelhouse (find_links).

    A daemon thread with a queue rather than a ThreadPoolExecutor: after Ctrl-C the process must not stay
    behind waiting for a smoke that waits minutes for its runtime (an executor's worker is joined at exit)."""

    def __init__(self, run: _Run, prefetch: RuntimePrefetch | None) -> None:
        self.run = run
        self.prefetch = prefetch
        self.queue: queue.SimpleQueue[tuple[_Built, Future[JobOutcome], bool] | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._work, name="rewheel-finish", daemon=True)
        self.thread.start()

    def submit(self, built: _Built) -> Future[JobOutcome]:
        waiting = self.prefetch.waiting_for(built.outcome.job) if self.prefetch is not None else None
        if waiting is not None:
            log.say(
                f"{built.counter} {built.outcome.job.id}: verified; its smoke waits for runtime {waiting} "
                "(building in the background) while the next jobs build (parallel)"
            )
        future: Future[JobOutcome] = Future()
        self.queue.put((built, future, log.is_muted()))  # a muted caller keeps its jobs' second halves quiet
        return future

    def _work(self) -> None:
        while (item := self.queue.get()) is not None:
            built, future, muted = item
            try:
                with log.muted() if muted else contextlib.nullcontext():
                    future.set_result(_finish_job(built, self.run))
            except BaseException as exc:  # _finish_job records failures itself; this is a bug, for the caller
                future.set_exception(exc)

    def close(self) -> None:
        self.queue.put(None)


def _start_prefetch(jobs: list[Job]) -> RuntimePrefetch:
    from pipeline.builders import prefetch

    return prefetch.start(jobs)


def _up_to_date(job: Job, run: _Run, index: RecordIndex) -> JobOutcome | None:
    """The outcome for a job whose recorded key still matches, computed without fetching or building."""
    from pipeline.builders.records import job_key, job_key_inputs

    if run.force:
        return None
    recorded = index.recorded_backends(job.id)
    candidates = recorded if run.requested == "auto" else [b for b in recorded if b == run.requested]
    for name in candidates:
        backend = run.selector.load(name)
        if isinstance(backend, str):
            continue
        key = job_key(job_key_inputs(job, name, backend.fingerprint(job)))
        wheels = index.up_to_date(job.id, key, need_smoke=run.smoke)
        if wheels is not None:
            records = [w.with_name(w.name + ".build.json") for w in wheels]
            smokes: list[SmokeOutcome] = [_recorded_smoke(r) for r in records]
            if run.require_import and not all(s.status == "passed" for s in smokes):
                continue  # recorded without an import here; --require-import wants one, so run it again
            return JobOutcome(
                job, "up-to-date", name, "build record matches", wheels=wheels, records=records, smoke=smokes
            )
    return None


def _recorded_smoke(record: Path) -> RecordedSmoke:
    import json

    from pipeline.builders.results import RecordedSmoke

    try:
        smoke: dict[str, Any] = json.loads(record.read_text(encoding="utf-8")).get("smoke", {})
        return RecordedSmoke(smoke)
    except (OSError, ValueError):
        return RecordedSmoke({})


FAILED_MARKER = "failed-attempt"  # written into a failed job's kept work dir


def _forget_older_work_dirs(work_root: Path, job: Job, current: Path) -> None:
    """Only the latest failed attempt of a job is kept for its logs; older ones would pile up in the cache.
    Only finished attempts (FAILED_MARKER) go: the cache is shared, and another run may be building the same job
    in its own work dir right now."""
    prefix = f"{job.id}-"
    for old in work_root.iterdir():
        # mkdtemp's suffix is 8 characters, so another job whose id merely starts with this one is never hit.
        if (
            old != current
            and old.name.startswith(prefix)
            and len(old.name) == len(prefix) + 8
            and (old / FAILED_MARKER).is_file()
        ):
            shutil.rmtree(old, ignore_errors=True)


@dataclass
class _Built:
    """A job through build, repair and verify: what its second half (smoke, record, install) needs."""

    outcome: JobOutcome
    counter: str
    work_dir: Path
    backend: Backend
    reason: str
    key_inputs: dict[str, Any]
    prepared: PreparedSource
    result: BuildResult
    built_dir: Path
    repairs: list[RepairResult]
    reports: list[WheelReport]
    timings: dict[str, float]
    seconds: float = 0.0  # the first half's wall time


def _build_job(job: Job, run: _Run, counter: str) -> _Built | JobOutcome:
    """The job's first half: select, prepare, build, repair, verify. A failure is the job's outcome."""
    from pipeline.builders.records import job_key_inputs

    outcome = JobOutcome(job, "failed")
    timings: dict[str, float] = {}
    run.work_root.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix=f"{job.id}-", dir=run.work_root))
    outcome.work_dir = work_dir
    _forget_older_work_dirs(run.work_root, job, work_dir)
    stage = "select"
    try:
        clock = time.monotonic()
        backend, reason = run.selector.select(job, run.requested)
        outcome.backend, outcome.reason = backend.name, reason
        run.announce(counter, job, backend.name, reason)
        key_inputs = job_key_inputs(job, backend.name, backend.fingerprint(job))
        timings["select"] = time.monotonic() - clock

        stage = "prepare"
        clock = time.monotonic()
        from pipeline.builders.prepare import prepare

        prepared = prepare(job, work_dir)
        timings["prepare"] = time.monotonic() - clock

        stage = "build"
        clock = time.monotonic()
        from pipeline.builders.backends import BuildRequest

        built_dir = work_dir / "built"
        built_dir.mkdir()
        with log.activity(job.id, "build", heartbeat=False):  # the status line; backends beat themselves
            result = backend.build(
                BuildRequest(
                    job=job,
                    source_tree=prepared.tree,
                    source_file=prepared.source_file,
                    out_dir=built_dir,
                    work_dir=work_dir,
                )
            )
        if not result.wheels:
            raise RewheelError(f"{job.id}: backend {backend.name} produced no wheel")
        timings["build"] = time.monotonic() - clock

        stage = "repair"
        clock = time.monotonic()
        repairs = _repair_all(job, result, work_dir)
        timings["repair"] = time.monotonic() - clock

        stage = "verify"
        clock = time.monotonic()
        reports = [_verify(r.wheel, job) for r in repairs]
        timings["verify"] = time.monotonic() - clock
        return _Built(
            outcome, counter, work_dir, backend, reason, key_inputs, prepared, result, built_dir, repairs,
            reports, timings,
        )  # fmt: skip
    except Exception as exc:
        return _failed(outcome, exc, stage, work_dir, counter)


def _finish_job(built: _Built, run: _Run) -> JobOutcome:
    """The job's second half: smoke, record, then install into the wheelhouse (or quarantine)."""
    outcome, counter, work_dir = built.outcome, built.counter, built.work_dir
    job = outcome.job
    started = time.monotonic()
    stage = "smoke"
    try:
        clock = time.monotonic()
        with log.activity(job.id, "smoke", heartbeat=False):
            smokes = [
                _smoke(r.wheel, job, run) if report.ok else _not_run("verify failed")
                for r, report in zip(built.repairs, built.reports, strict=True)
            ]
        built.timings["smoke"] = time.monotonic() - clock
        outcome.smoke = smokes

        stage = "install"
        records = [
            _record(built, r, report, smoke)
            for r, report, smoke in zip(built.repairs, built.reports, smokes, strict=True)
        ]
        failures = _rejections(built.reports, smokes, require_import=run.require_import)
        if failures:
            outcome.status = "quarantined"
            outcome.stage = "verify" if any(not r.ok for r in built.reports) else "smoke"
            outcome.message = f"{job.id}: {failures}"
            outcome.wheels, outcome.records = _quarantine(job, built.repairs, records, run.wheelhouse)
            log.say(f"{counter} {job.id}: QUARANTINED: {failures}")
            (work_dir / FAILED_MARKER).write_text(outcome.message + "\n", encoding="utf-8")
            return outcome
        outcome.wheels, outcome.records = _install(job, built.repairs, records, run.wheelhouse)
        outcome.side_files = _install_side_files(built.built_dir, built.result, run.wheelhouse)
        outcome.status = "built"
        log.say(f"{counter} {job.id}: built {', '.join(w.name for w in outcome.wheels)}")
        shutil.rmtree(work_dir, ignore_errors=True)
        outcome.work_dir = None
        return outcome
    except Exception as exc:
        return _failed(outcome, exc, stage, work_dir, counter)
    finally:
        # The job's own time: its first half and this one, not the time it sat queued behind other smokes.
        outcome.seconds = built.seconds + (time.monotonic() - started)


def _failed(outcome: JobOutcome, exc: Exception, stage: str, work_dir: Path, counter: str) -> JobOutcome:
    """The outcome of a job that failed in `stage`; its work dir is kept, marked, for the logs."""
    job = outcome.job
    if isinstance(exc, RewheelError):
        outcome.stage = getattr(exc, "stage", stage)
        outcome.message = str(exc)
    else:
        # A bug in a backend or tool wrapper must not stop the other jobs; the traceback goes to the log.
        outcome.stage = stage
        outcome.message = f"{job.id}: internal error in stage {stage}: {type(exc).__name__}: {exc}"
        work_dir.mkdir(parents=True, exist_ok=True)
        (work_dir / "traceback.txt").write_text(
            "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)), encoding="utf-8"
        )
    outcome.message = " ".join(outcome.message.split())
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / FAILED_MARKER).write_text(outcome.message + "\n", encoding="utf-8")
    log.say(f"{counter} {job.id}: FAILED at {outcome.stage}: {outcome.message} (work dir kept: {work_dir})")
    return outcome


def _repair_all(job: Job, result: BuildResult, work_dir: Path) -> list[RepairResult]:
    from pipeline.builders.repair import RepairError, RepairResult, repair_wheel, wheel_platform_tags
    from pipeline.targets import get_target

    repairs = []
    for number, wheel in enumerate(result.wheels):
        if result.repaired:
            # The backend ran auditwheel/delvewheel itself (cibuildwheel); still hold its tag to the target.
            if not get_target(job.target).accepts_any(wheel_platform_tags(wheel)):
                raise RepairError(
                    f"{job.id}: backend's repaired wheel {wheel.name} does not install on {job.target}"
                )
            repairs.append(RepairResult(wheel=wheel, skipped="repaired by the backend"))
        else:
            out = work_dir / "repaired" / str(number)
            repairs.append(repair_wheel(wheel, job, out, library_dirs=result.library_dirs))
    names = [r.wheel.name for r in repairs]
    if len(set(names)) != len(names):
        raise RepairError(
            f"{job.id}: the backend produced wheels with the same file name: {', '.join(names)}"
        )
    return repairs


def _verify(wheel: Path, job: Job) -> WheelReport:
    from pipeline.verify import verify_wheel

    return verify_wheel(wheel, job.target)


def _not_run(why: str) -> SmokeNotRun:
    from pipeline.builders.results import SmokeNotRun

    return SmokeNotRun("skipped", why)


def _smoke(wheel: Path, job: Job, run: _Run) -> SmokeOutcome:
    if not run.smoke:
        return _not_run("--no-smoke")
    from pipeline.smoke import smoke_wheel

    test = job.recipe.test
    try:
        result = smoke_wheel(
            wheel,
            job.target,
            imports=test.imports or None,
            command=test.command,
            requires=test.requires or None,
            find_links=run.wheelhouse,  # dependencies rewheel built come from the wheelhouse
        )
    except RewheelError as exc:
        from pipeline.builders.results import SmokeNotRun

        # The runtime could not be prepared here: not a verdict on the wheel, so recorded, not failed.
        return SmokeNotRun("error", str(exc))
    return result


def _rejections(
    reports: list[WheelReport], smokes: list[SmokeOutcome], *, require_import: bool = False
) -> str:
    problems = []
    for report in reports:
        if not report.ok:
            errors = report.errors  # never empty: a report is not ok only through an error
            first = errors[0]
            detail = f": {first.code} {first.file} {first.symbol or first.library or ''}".rstrip()
            problems.append(f"{report.wheel} failed verify ({len(errors)} error(s){detail})")
    for smoke in smokes:
        if smoke.status == "failed":
            problems.append(f"smoke failed on {smoke.runtime}: {smoke.message}")
        elif require_import and smoke.status != "passed" and smoke.status != "skipped":
            problems.append(f"not imported (--require-import): {smoke.status}: {smoke.message}")
    return "; ".join(problems)


def _features_disabled(job: Job) -> list[dict[str, str]]:
    options = job.recipe.build.for_target(job.target)
    return [
        {
            "name": name,
            "description": job.recipe.features[name].description,
            "lost": job.recipe.features[name].lost,
        }
        for name in options.disable_features
    ]


def _record(built: _Built, repair: RepairResult, report: WheelReport, smoke: SmokeOutcome) -> BuildRecord:
    from pipeline import __version__
    from pipeline.builders.records import BuildRecord, job_key, wheel_facts
    from pipeline.builders.repair import repair_tool_versions
    from pipeline.util import sha256_file

    job, prepared, result, key_inputs = built.outcome.job, built.prepared, built.result, built.key_inputs
    recipe = job.recipe
    source = recipe.source_for(job.version)
    patches = []
    applied = {p.resolve() for p in prepared.patches_applied}
    for patch in recipe.patch:
        if not patch.applies_to(job.version, job.target):
            continue
        file = (recipe.patch_dir / patch.file).resolve()
        patches.append({
            "file": patch.file, "sha256": patch.sha256, "stage": patch.stage, "strip": patch.strip,
            "applied_by": "prepare" if file in applied else ("backend" if patch.stage == "wheel" else "not applied"),
        })  # fmt: skip
    tools = {
        "python": platform.python_version(),
        "rewheel": __version__,
        **repair_tool_versions(),
        **result.tool_versions,
    }
    commands = [*result.commands, *([repair.command] if repair.command else [])]
    return BuildRecord(
        wheel=wheel_facts(repair.wheel),
        job=job,
        key=job_key(key_inputs),
        key_inputs=key_inputs,
        inputs={
            "recipe": {
                "path": str(recipe.path) if recipe.path else None,
                "sha256": sha256_file(recipe.path) if recipe.path and recipe.path.is_file() else None,
            },
            "source": {
                "filename": source.filename,
                "sha256": prepared.source_sha256,
                "kind": source.kind,
                "url": source.url,
                "project": source.project or recipe.name,
                "version": source.version,
            },
            "patches": patches,
            "native": [n.model_dump(mode="json") for n in recipe.native],
        },
        backend=built.backend.name,
        reason=built.reason,
        tool_versions=tools,
        commands=[[str(part) for part in command] for command in commands],
        repair=repair,
        verify=report,
        smoke=smoke,
        timings=built.timings,
        features_disabled=_features_disabled(job),
        notes=[*result.notes, *repair.notes],
        built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        host={"system": platform.system(), "machine": platform.machine(), "node": platform.node()},
    )


def _destination(wheelhouse: Path, job: Job) -> Path:
    """Targets with a channel (e.g. nanoserver) share a wheel tag with others: they get their own folder."""
    from pipeline.targets import get_target

    channel = get_target(job.target).channel
    return wheelhouse / channel if channel else wheelhouse


def _move_in(source: Path, destination: Path) -> None:
    """Copy beside the destination, then rename: a reader never sees half a wheel, whatever the filesystems."""
    from pipeline.util import atomic_path, shareable_mode

    with atomic_path(destination, mode=shareable_mode()) as temporary:
        shutil.copyfile(source, temporary)


def _install(
    job: Job, repairs: list[RepairResult], records: list[BuildRecord], wheelhouse: Path
) -> tuple[list[Path], list[Path]]:
    from pipeline.builders.records import RecordIndex, record_path, write_json_atomically

    destination = _destination(wheelhouse, job)
    destination.mkdir(parents=True, exist_ok=True)
    names = [r.wheel.name for r in repairs]
    # Wheels this job produced before under other names (an older key) would otherwise linger as stale builds.
    for old in RecordIndex(wheelhouse).by_job.get(job.id, []):
        if old.path.parent == destination and old.wheel.name not in names:
            old.wheel.unlink(missing_ok=True)
            old.path.unlink(missing_ok=True)
    wheels, record_files = [], []
    for repair, record in zip(repairs, records, strict=True):
        wheel = destination / repair.wheel.name
        _move_in(repair.wheel, wheel)
        record.job_wheels = names
        write_json_atomically(record_path(wheel), record.to_json())
        wheels.append(wheel)
        record_files.append(record_path(wheel))
    _clear_quarantine(job, wheelhouse)
    return wheels, record_files


def _clear_quarantine(job: Job, wheelhouse: Path) -> None:
    """A good build of a job supersedes its quarantined copies: left there, they would be verified and
    reported again as if they were current."""
    import json

    from pipeline.builders.records import RECORD_SUFFIX

    folder = wheelhouse / QUARANTINE
    channel = _destination(wheelhouse, job)
    if channel != wheelhouse:
        folder = folder / channel.name
    for record in folder.glob("*" + RECORD_SUFFIX) if folder.is_dir() else []:
        try:
            job_id = json.loads(record.read_text(encoding="utf-8")).get("job", {}).get("id")
        except (OSError, ValueError):
            continue
        if job_id != job.id:
            continue
        wheel = record.with_name(record.name[: -len(RECORD_SUFFIX)])
        for stale in (wheel, wheel.with_name(wheel.name + ".verify.json"), record):
            stale.unlink(missing_ok=True)


def _install_side_files(built_dir: Path, result: BuildResult, wheelhouse: Path) -> list[Path]:
    """Wheels a backend left in a subfolder of its out_dir besides the ones it returned (the wheel-source
    backend's exact-upstream-name copy for ensurepip, in ensurepip/) keep that subfolder in the wheelhouse.
    They are not verified or indexed: the returned wheel is, and they carry the same content."""
    returned = {w.resolve() for w in result.wheels}
    installed = []
    for extra in sorted(built_dir.glob("*/*.whl")):
        if extra.resolve() in returned:
            continue
        destination = wheelhouse / extra.parent.name / extra.name
        destination.parent.mkdir(parents=True, exist_ok=True)
        _move_in(extra, destination)
        installed.append(destination)
    return installed


def _quarantine(
    job: Job, repairs: list[RepairResult], records: list[BuildRecord], wheelhouse: Path
) -> tuple[list[Path], list[Path]]:
    """The job's wheels and their reports go to quarantine/, as a unit: a job is published whole or not at all."""
    from pipeline.builders.records import record_path, write_json_atomically

    destination = wheelhouse / QUARANTINE
    channel = _destination(wheelhouse, job)
    if channel != wheelhouse:
        destination = destination / channel.name
    destination.mkdir(parents=True, exist_ok=True)
    wheels, files = [], []
    for repair, record in zip(repairs, records, strict=True):
        wheel = destination / repair.wheel.name
        _move_in(repair.wheel, wheel)
        record.job_wheels = [r.wheel.name for r in repairs]
        report_file = wheel.with_name(wheel.name + ".verify.json")
        write_json_atomically(
            report_file, {"results": [record.verify.to_json()], "smoke": record.smoke.to_json()}
        )
        write_json_atomically(record_path(wheel), record.to_json())
        wheels.append(wheel)
        files.append(report_file)
    return wheels, files
