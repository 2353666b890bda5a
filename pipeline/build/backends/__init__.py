"""The build backend protocol: what every backend (cibuildwheel, zig, wheel-source) offers the orchestrator.

A backend turns a prepared source tree (sdist unpacked, source patches applied) or a fetched wheel into
one or more wheels in `out_dir`. It does not repair, verify or publish: the orchestrator does, the same way
for every backend. A backend that cannot run here says why in `unavailable_reason`, so `--backend auto`
can pick another and tell the user which and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pipeline.plan import Job


@dataclass
class BuildRequest:
    job: Job
    source_tree: Path | None  # the prepared sdist tree; None for wheel-source jobs
    source_file: Path  # the verified, cached sdist or wheel
    out_dir: Path  # where the backend leaves its (unrepaired) wheel(s)
    work_dir: Path  # scratch space private to this job
    progress: bool = True


@dataclass
class BuildResult:
    wheels: list[Path]
    commands: list[list[str]] = field(default_factory=list)  # what was run, for the build record
    tool_versions: dict[str, str] = field(default_factory=dict)
    repaired: bool = False  # True when the backend already ran auditwheel/delvewheel (cibuildwheel does)
    log: str = ""
    notes: list[str] = field(default_factory=list)  # e.g. features disabled and what is lost


class Backend(Protocol):
    name: str

    def unavailable_reason(self, job: Job) -> str | None:
        """None when this backend can build `job` here; otherwise one line saying what is missing."""

    def fingerprint(self, job: Job) -> dict[str, str]:
        """Everything about the backend that should invalidate a cached build (tool versions, images)."""

    def build(self, request: BuildRequest) -> BuildResult:
        """Build; raise pipeline.errors.RewheelError (or a subclass) with one line on failure."""
