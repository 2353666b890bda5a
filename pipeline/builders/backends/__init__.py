"""The build backend protocol: what every backend (cibuildwheel, zig, wheel-source) offers the orchestrator.

A backend turns a prepared source tree (sdist unpacked, source patches applied) or a fetched wheel into
one or more wheels in `out_dir`. It does not repair, verify or publish: the orchestrator does, the same way
for every backend. A backend that cannot run here says why in `unavailable_reason`, so `--backend auto`
can pick another and tell the user which and why.

REGISTRY names every backend once: the CLI's --backend choices, the recipe's [build.backend.*] keys (and
so the recipe schema) and the order `--backend auto` tries them in all derive from it. Adding a backend is
its module plus one line here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from pipeline.plan import Job


@dataclass(frozen=True)
class BackendEntry:
    name: str
    module: str  # imported only when the backend is needed
    cls: str
    source: Literal["sdist", "wheel"]  # the kind of source it takes
    auto_priority: int  # `auto` tries the backends that take a job's source kind lowest first


REGISTRY: tuple[BackendEntry, ...] = (
    # cibuildwheel first: the reference build in the manylinux/musllinux images, when an engine works.
    BackendEntry(
        "cibuildwheel", "pipeline.builders.backends.cibuildwheel", "CibuildwheelBackend", "sdist", 10
    ),
    # zig needs no container, so it is the fallback wherever cibuildwheel cannot run.
    BackendEntry("zig", "pipeline.builders.backends.zig", "ZigBackend", "sdist", 20),
    BackendEntry(
        "wheel-source", "pipeline.builders.backends.wheel_source", "WheelSourceBackend", "wheel", 10
    ),
)
BACKENDS: dict[str, BackendEntry] = {entry.name: entry for entry in REGISTRY}
BACKEND_NAMES: tuple[str, ...] = tuple(BACKENDS)
BACKEND_CHOICES: tuple[str, ...] = ("auto", *BACKEND_NAMES)
# The backends that compile a source tree: the ones a recipe may give build options to.
SOURCE_BACKEND_NAMES: tuple[str, ...] = tuple(e.name for e in REGISTRY if e.source == "sdist")

if TYPE_CHECKING:
    SourceBackendName = str
else:
    # Literal[("a", "b")] is Literal["a", "b"]: the recipe model and its schema take the names from here.
    SourceBackendName = Literal[SOURCE_BACKEND_NAMES]


def auto_order(source: str) -> list[str]:
    """The backends `--backend auto` tries for a source of this kind ("sdist" or "wheel"), in order."""
    entries = sorted((e for e in REGISTRY if e.source == source), key=lambda e: e.auto_priority)
    return [e.name for e in entries]


@dataclass
class BuildRequest:
    job: Job
    source_tree: Path | None  # the prepared sdist tree; None for wheel-source jobs
    source_file: Path  # the verified, cached sdist or wheel
    out_dir: Path  # where the backend leaves its (unrepaired) wheel(s)
    work_dir: Path  # scratch space private to this job


@dataclass
class BuildResult:
    wheels: list[Path]
    commands: list[list[str]] = field(default_factory=list)  # what was run, for the build record
    tool_versions: dict[str, str] = field(default_factory=dict)
    repaired: bool = False  # True when the backend already ran auditwheel/delvewheel (cibuildwheel does)
    log: str = ""
    notes: list[str] = field(default_factory=list)  # e.g. features disabled and what is lost
    # Folders of shared libraries the backend built for the wheel (the zig backend's [[native]] DLLs for Windows):
    # the repair tool bundles from there, so repair need not know where a backend keeps its builds.
    library_dirs: list[Path] = field(default_factory=list)


class Backend(Protocol):
    name: str

    def unavailable_reason(self, job: Job) -> str | None:
        """None when this backend can build `job` here; otherwise one line saying what is missing."""

    def fingerprint(self, job: Job) -> dict[str, str]:
        """Everything about the backend that should invalidate a cached build (tool versions, images)."""

    def build(self, request: BuildRequest) -> BuildResult:
        """Build; raise pipeline.errors.RewheelError (or a subclass) with one line on failure."""
