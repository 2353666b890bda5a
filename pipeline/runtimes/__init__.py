"""Target runtimes this machine can build and host: musl CPythons, an aarch64 root run with qemu-user,
local cibuildwheel images for podman.

Each module in this package defines RUNTIMES, a list of objects satisfying `Runtime`; the registry
discovers them, so a new kind of runtime is a new module. Everything a runtime builds lives under
<cache>/runtimes/<name>/ and is reused until removed.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Protocol


class Runtime(Protocol):
    name: str  # e.g. "musl-cpython-3.11-x86_64-dynamic"
    description: str
    targets: tuple[str, ...]  # target names this runtime can host (smoke) or build for (images)

    def root(self) -> Path:
        """Where it lives (under the runtimes cache)."""

    def exists(self) -> bool:
        """True when built and usable."""

    def unavailable_reason(self) -> str | None:
        """None when this machine can build it; otherwise what is missing."""

    def build(self, progress: bool = True) -> None:
        """Build (idempotent; a finished build is reused). Raise RewheelError on failure."""


class HostingRuntime(Runtime, Protocol):
    """A runtime that is an interpreter (the musl CPythons, the qemu root, host CPythons): smoke runs it."""

    python_version: str  # "3.11"

    def python(self) -> Path:
        """The interpreter to run (for the qemu root: a wrapper script that starts qemu-user)."""


def all_runtimes() -> dict[str, Runtime]:
    found: dict[str, Runtime] = {}
    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("_"):
            continue
        loaded = importlib.import_module(f"{__name__}.{module.name}")
        for runtime in getattr(loaded, "RUNTIMES", ()):
            found[runtime.name] = runtime
    return found


def runtimes_for_target(target: str) -> list[Runtime]:
    return [r for r in all_runtimes().values() if target in r.targets]


def get_runtime(name: str) -> Runtime:
    """The runtime called `name`, e.g. get_runtime("musl-cpython-3.11-x86_64-static").python()."""
    from pipeline.errors import RewheelError

    runtimes = all_runtimes()
    try:
        return runtimes[name]
    except KeyError:
        raise RewheelError(
            f"unknown runtime {name!r}; known runtimes: {', '.join(sorted(runtimes))}"
        ) from None
