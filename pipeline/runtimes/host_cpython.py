"""The host's own CPythons (pyenv's, the system's) as runtimes for glibc wheels of the host's architecture.

Nothing is built: a host interpreter exists or it does not. Which versions are looked for is data
(pipeline/runtimes/data/host_cpython.toml). It hosts a manylinux target when the host's
glibc is at least the target policy's version (a manylinux_2_28 wheel cannot be proven on glibc 2.17).
"""

from __future__ import annotations

import os
import platform
import re
from functools import cache
from pathlib import Path
from typing import Any

from pipeline.errors import RewheelError
from pipeline.runtimes._support import RuntimeLimit


def _host_glibc() -> tuple[int, int] | None:
    libc, version = platform.libc_ver()
    if libc != "glibc":
        return None
    major, _, minor = version.partition(".")
    return (int(major), int(minor or 0)) if major.isdigit() else None


def _host_targets() -> tuple[str, ...]:
    from pipeline.targets import glibc_targets

    glibc = _host_glibc()
    return glibc_targets(platform.machine(), glibc) if glibc else ()


def _find_interpreter(version: str) -> Path | None:
    """A real (not shim) interpreter: pyenv's newest patch release of `version`, else the system's."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = sorted(
        (pyenv_root / "versions").glob(f"{version}.*/bin/python{version}"),
        key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.parent.name)],
        reverse=True,
    )
    candidates += [Path(f"/usr/bin/python{version}"), Path(f"/usr/local/bin/python{version}")]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


class HostCPython:
    libc = "glibc"
    host_native = True  # hosts pure-Python ("any") wheels too

    def __init__(self, version: str, provenance: str = "the host") -> None:
        self.python_version = version
        self.provenance = provenance
        self.arch = platform.machine()
        self.name = f"host-cpython-{version}-{self.arch}"
        self.description = f"this machine's own CPython {version} (glibc); nothing to build"

    @property
    def targets(self) -> tuple[str, ...]:
        return (*_cached_host_targets(), "any")

    def root(self) -> Path:
        found = _find_interpreter(self.python_version)
        return found.parent.parent if found else Path("/nonexistent")

    def python(self) -> Path:
        found = _find_interpreter(self.python_version)
        if not found:
            raise RewheelError(f"{self.name}: no CPython {self.python_version} on this machine")
        return found

    def command(self) -> list[str]:
        return [str(self.python())]

    def limits(self) -> list[RuntimeLimit]:
        return []  # the host's own CPython is what it hosts, with nothing emulated

    def prepare_site(self, site: Path) -> None:
        """Nothing to remove: the host is the target it hosts."""

    def sandbox_readable(self) -> list[Path]:
        return [self.root()]

    def sandbox_scratch(self) -> list[Path]:
        return []

    def exists(self) -> bool:
        return _find_interpreter(self.python_version) is not None

    def unavailable_reason(self) -> str | None:
        if self.exists():
            return None
        return f"no CPython {self.python_version} installed (e.g. `pyenv install {self.python_version}`)"

    def build(self) -> None:
        if not self.exists():
            raise RewheelError(
                f"{self.name}: rewheel does not build host interpreters; {self.unavailable_reason()}"
            )


@cache
def _cached_host_targets() -> tuple[str, ...]:
    return _host_targets()


def from_data(entry: dict[str, Any]) -> HostCPython:
    return HostCPython(entry["python"], entry.get("provenance", "the host"))
