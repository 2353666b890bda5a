"""Debian packages a stage needs (musl-tools, qemu-user, podman, ...): check, and install when allowed.

Which packages make up which tool is data (pipeline/resources/system-packages.toml): the installer here
and the fresh-machine rehearsal (scripts/rehearse-fresh-machine) read the same list. rewheel installs system
packages itself only when it runs as root on a Debian-like system; otherwise it raises MissingTool with the
exact apt-get command to run. apt's own lock is waited on, so parallel test workers and nox sessions do not
fail on each other.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pipeline.errors import MissingTool
from pipeline.toml import loads as toml_loads
from pipeline.util import error_line

_UPDATED_MARKER = Path("/var/lib/apt/lists/.rewheel-updated")


@dataclass(frozen=True)
class Toolset:
    name: str
    purpose: str
    packages: tuple[str, ...]


@functools.cache
def toolsets() -> dict[str, Toolset]:
    data = _data()["toolsets"]
    return {
        name: Toolset(name=name, purpose=entry["purpose"], packages=tuple(entry["packages"]))
        for name, entry in data.items()
    }


def _data() -> dict[str, Any]:
    text = resources.files("pipeline").joinpath("resources/system-packages.toml").read_text(encoding="utf-8")
    return toml_loads(text)


def all_project_packages() -> list[str]:
    """Every Debian package any toolset names."""
    return sorted({package for toolset in toolsets().values() for package in toolset.packages})


def rehearsal_removals() -> list[str]:
    """What the fresh-machine rehearsal removes: every toolset package a new machine does not already have."""
    keep = set(_data().get("rehearsal", {}).get("keep", []))
    return [package for package in all_project_packages() if package not in keep]


def ensure_toolset(*names: str) -> None:
    """Make sure the named toolsets are installed (see system-packages.toml), or raise MissingTool."""
    unknown = [name for name in names if name not in toolsets()]
    if unknown:
        raise KeyError(f"unknown toolset(s) {unknown}; add them to pipeline/resources/system-packages.toml")
    for name in names:
        toolset = toolsets()[name]
        ensure_debian_packages(list(toolset.packages), purpose=toolset.purpose)


def missing_packages(packages: list[str]) -> list[str]:
    if not shutil.which("dpkg-query"):
        return list(packages)
    missing = []
    for package in packages:
        result = subprocess.run(
            ["dpkg-query", "-W", "-f=${db:Status-Abbrev}", package], capture_output=True, text=True
        )
        if not result.stdout.startswith("ii"):
            missing.append(package)
    return missing


def can_install() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get") is not None


# How long apt, and rewheel for dpkg, wait on dpkg's lock held by another install.
_DPKG_LOCK_WAIT = 900


def _noninteractive() -> dict[str, str]:
    return {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}


def _apt(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["apt-get", "-o", f"DPkg::Lock::Timeout={_DPKG_LOCK_WAIT}", *args],
        capture_output=True,
        text=True,
        env=_noninteractive(),
    )


# What apt says when an earlier dpkg run was killed half-way (a run or a rehearsal stopped mid-install): it
# refuses every install until `dpkg --configure -a` finishes the pending work.
_DPKG_INTERRUPTED = "dpkg was interrupted"


def finish_interrupted_dpkg() -> bool:
    """Finish what a killed dpkg left half-done (`dpkg --configure -a`), as apt itself asks; True if that worked.

    Only called when apt has refused with _DPKG_INTERRUPTED, as root: the same privilege the install needs."""
    command = ["dpkg", "--force-confdef", "--force-confold", "--configure", "-a"]
    deadline = time.monotonic() + _DPKG_LOCK_WAIT
    while True:
        result = subprocess.run(command, capture_output=True, text=True, env=_noninteractive())
        # dpkg has no lock timeout of its own (apt's DPkg::Lock::Timeout is apt's): wait as apt would.
        if result.returncode == 0 or "lock" not in result.stderr or time.monotonic() > deadline:
            return result.returncode == 0
        time.sleep(5)


def _lists_are_fresh() -> bool:
    # A brand-new machine may have empty package lists; a marker older than a day means stale ones.
    return _UPDATED_MARKER.exists() and time.time() - _UPDATED_MARKER.stat().st_mtime < 86400


# A run's runtime builds (one thread per architecture) and its jobs may each ask for a toolset at once; apt
# waits on dpkg's lock, but two threads would both see a package missing and both update the lists.
_INSTALLING = threading.Lock()


def ensure_debian_packages(packages: list[str], *, purpose: str) -> None:
    """Make sure `packages` are installed, or raise MissingTool naming them and the purpose.

    Prefer ensure_toolset(NAME): packages named here directly escape the rehearsal's list."""
    with _INSTALLING:
        _ensure_debian_packages(packages, purpose=purpose)


def _ensure_debian_packages(packages: list[str], *, purpose: str) -> None:
    missing = missing_packages(packages)
    if not missing:
        return
    command = f"apt-get update && apt-get install -y {' '.join(missing)}"
    if not can_install():
        raise MissingTool(f"{purpose} needs Debian packages {', '.join(missing)}: run `{command}` as root")
    if not _lists_are_fresh():
        update = _apt(["update", "-q"])
        if update.returncode == 0:
            _UPDATED_MARKER.touch()
    result = _apt(["install", "-y", "-q", "--no-install-recommends", *missing])
    if result.returncode != 0 and _DPKG_INTERRUPTED in result.stderr and finish_interrupted_dpkg():
        result = _apt(["install", "-y", "-q", "--no-install-recommends", *missing])
    if result.returncode != 0 and _lists_are_fresh():
        # Lists updated today can still be behind a mirror that just replaced a package: update once more.
        if _apt(["update", "-q"]).returncode == 0:
            _UPDATED_MARKER.touch()
        result = _apt(["install", "-y", "-q", "--no-install-recommends", *missing])
    if result.returncode != 0:
        last = error_line(result.stderr, default="apt-get failed")
        raise MissingTool(f"{purpose} needs Debian packages {', '.join(missing)}; `{command}` failed: {last}")
