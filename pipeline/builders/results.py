"""What a job knows about each wheel's smoke stage, typed: the orchestrator decides on these fields and turns
them into JSON only in build records and at the CLI (`to_json`).

Three kinds, one JSON shape each (kept as they were when these were dicts; extend, never rename):
- SmokeResult (pipeline/smoke.py): smoke ran (passed, failed, cannot-host).
- SmokeNotRun: smoke did not run for this wheel (verify failed, --no-smoke) or its runtime could not be
  prepared here ("error": not a verdict on the wheel).
- RecordedSmoke: an up-to-date job's smoke entry as its build record on disk has it; the record is JSON
  written by any earlier rewheel version, so it is read, never rebuilt into a SmokeResult that could drop keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, Union

if TYPE_CHECKING:
    from pipeline.smoke import SmokeResult

SKIPPED = "skipped"
ERROR = "error"


@dataclass(frozen=True)
class SmokeNotRun:
    status: Literal["skipped", "error"]
    message: str

    @property
    def runtime(self) -> None:
        return None

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "runtime": None, "message": self.message}


@dataclass(frozen=True)
class RecordedSmoke:
    data: dict[str, Any]  # the record's "smoke" object, {} when the record could not be read

    @property
    def status(self) -> str | None:
        status = self.data.get("status")
        return None if status is None else str(status)

    @property
    def runtime(self) -> str | None:
        runtime = self.data.get("runtime")
        return None if runtime is None else str(runtime)

    @property
    def message(self) -> str | None:
        message = self.data.get("message")
        return None if message is None else str(message)

    def to_json(self) -> dict[str, Any]:
        return self.data


# A string at run time: pipeline.smoke is imported only by jobs that smoke (a no-op run stays fast).
SmokeOutcome: TypeAlias = Union["SmokeResult", SmokeNotRun, RecordedSmoke]
