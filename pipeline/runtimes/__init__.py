"""Target runtimes this machine can build and host: musl CPythons, Debian roots run with qemu-user, the
host's own CPythons, local cibuildwheel images for podman.

Runtimes are described once, as data: pipeline/runtimes/data/<kind>.toml holds `[[runtime]]` entries (name,
Python version, arch, libc, source and its sha256, provenance), and the module of the same name,
pipeline/runtimes/<kind>.py, builds one runtime object per entry with `from_data(entry)`. A new kind of
runtime is a data file plus a module; nothing here changes. Modules that describe their runtimes in code (the
podman images) still list them in a module-level RUNTIMES. Everything a runtime builds lives under
<cache>/runtimes/<name>/ and is reused until removed.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from pipeline import toml
from pipeline.errors import RewheelError
from pipeline.runtimes._support import RuntimeLimit, matching_limit

DATA_DIR = Path(__file__).parent / "data"

__all__ = ["RuntimeLimit", "matching_limit"]  # what smoke classifies a runtime's failures with

# Python versions no runtime here can have. Empty: CPython 3.12 is a runtime entry of its own now (python.org's
# source, pinned), whose unavailable_reason says what this machine lacks. Kept for smoke's import.
UNHOSTED_PYTHONS: dict[str, str] = {}


class Runtime(Protocol):
    name: str  # e.g. "musl-cpython-3.11-x86_64"
    description: str
    targets: tuple[str, ...]  # target names this runtime can host (smoke) or build for (images)

    def root(self) -> Path:
        """Where it lives (under the runtimes cache)."""

    def exists(self) -> bool:
        """True when built and usable."""

    def unavailable_reason(self) -> str | None:
        """None when this machine can build it; otherwise what is missing."""

    def build(self) -> None:
        """Build (idempotent; a finished build is reused). Raise RewheelError on failure."""


class HostingRuntime(Runtime, Protocol):
    """A runtime that is an interpreter (the musl CPythons, the qemu roots, host CPythons): smoke runs it."""

    python_version: str  # "3.11"

    def python(self) -> Path:
        """The interpreter to run (for the qemu roots: a wrapper script that starts qemu-user)."""

    def limits(self) -> list[RuntimeLimit]:
        """What this runtime lacks that its targets have (smoke: a failure matching one is cannot-host)."""

    def prepare_site(self, site: Path) -> None:
        """Adjust smoke's throwaway site folder after the wheel is installed there (a no-op for most)."""

    def sandbox_readable(self) -> list[Path]:
        """The folders running this interpreter reads beyond the host's read-only root (bound back into the
        sandbox smoke runs it in): its root, and whatever else it runs from (a base build, a wine prefix)."""

    def sandbox_scratch(self) -> list[Path]:
        """Folders inside those that the interpreter writes on the real target (a Windows user's Temp): smoke's
        sandbox puts a fresh, empty, writable tmpfs at each, so nothing written there outlives the run."""


@cache
def runtime_entries() -> dict[str, list[dict[str, Any]]]:
    """kind -> its data file's [[runtime]] entries."""
    found = {}
    for data_file in sorted(DATA_DIR.glob("*.toml")):
        try:
            data = toml.loads(data_file.read_text(encoding="utf-8"))
        except toml.TOMLDecodeError as exc:
            raise RewheelError(f"{data_file}: not valid TOML: {exc}") from None
        found[data_file.stem] = list(data.get("runtime", []))
    return found


def all_runtimes() -> dict[str, Runtime]:
    found: dict[str, Runtime] = {}
    described = runtime_entries()
    for kind, entries in described.items():
        module = importlib.import_module(f"{__name__}.{kind}")
        for entry in entries:
            runtime = module.from_data(entry)
            found[runtime.name] = runtime
    for module_info in pkgutil.iter_modules(__path__):
        if module_info.name.startswith("_") or module_info.name in described:
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for runtime in getattr(module, "RUNTIMES", ()):
            found.setdefault(runtime.name, runtime)
    return found


def runtimes_for_target(target: str) -> list[Runtime]:
    return [r for r in all_runtimes().values() if target in r.targets]


def get_runtime(name: str) -> Runtime:
    """The runtime called `name`, e.g. get_runtime("musl-cpython-3.11-x86_64-static").python()."""
    runtimes = all_runtimes()
    try:
        return runtimes[name]
    except KeyError:
        raise RewheelError(
            f"unknown runtime {name!r}; known runtimes: {', '.join(sorted(runtimes))}"
        ) from None
