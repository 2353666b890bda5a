"""Debian packages a stage needs (musl-tools, qemu-user, podman, ...): check, and install when allowed.

rewheel installs system packages itself only when it runs as root on a Debian-like system; otherwise it
raises MissingTool with the exact apt-get command to run. apt's own lock is waited on, so parallel test
workers and nox sessions do not fail on each other.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from pipeline.errors import MissingTool

_UPDATED_MARKER = Path("/var/lib/apt/lists/.rewheel-updated")


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


def _apt(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(
        ["apt-get", "-o", "DPkg::Lock::Timeout=900", *args], capture_output=True, text=True, env=env
    )


def ensure_debian_packages(packages: list[str], *, purpose: str) -> None:
    """Make sure `packages` are installed, or raise MissingTool naming them and the purpose."""
    missing = missing_packages(packages)
    if not missing:
        return
    command = f"apt-get install -y {' '.join(missing)}"
    if not can_install():
        raise MissingTool(f"{purpose} needs Debian packages {', '.join(missing)}: run `{command}` as root")
    # apt-get update once a day at most: the lists are what makes install find packages at all.
    fresh = _UPDATED_MARKER.exists() and time.time() - _UPDATED_MARKER.stat().st_mtime < 86400
    if not fresh:
        update = _apt(["update", "-q"])
        if update.returncode == 0:
            _UPDATED_MARKER.touch()
    result = _apt(["install", "-y", "-q", "--no-install-recommends", *missing])
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["apt-get failed"])[-1]
        raise MissingTool(f"{purpose} needs Debian packages {', '.join(missing)}; `{command}` failed: {last}")
