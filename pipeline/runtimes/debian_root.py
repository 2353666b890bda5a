"""Debian's arm64 and armhf CPythons in a plain folder, run on x86_64 with qemu-user (no container, no chroot).

Which roots exist is data (pipeline/runtimes/data/debian_root.toml): the suite, the Python version and the
pinned package list of each (Debian 12's python3.11, Debian 13's python3.13).

The root is Debian's own arm64 packages (pinned package=version and sha256, fetched with `apt-get download`)
unpacked with `dpkg-deb -x`; nothing is installed system-wide, because python3.11:arm64 would conflict with
the host's python3.11 (and trixie's packages do not belong on a bookworm machine). `qemu-aarch64 -L ROOT` makes the guest's absolute paths (its loader, its libraries)
resolve inside ROOT first and fall back to the host, so wheels unpacked into a host temp folder import fine.
A `bin/python3.11` wrapper makes the runtime look like any other interpreter to callers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from pipeline.paths import runtimes_root
from pipeline.runtimes._support import (
    CachedInterpreter,
    DebianFile,
    RuntimeBuildError,
    debian_binaries,
    fresh_dir,
    publish_dir,
    write_marker,
)
from pipeline.system_packages import ensure_toolset
from pipeline.targets import glibc_targets
from pipeline.util import fill_placeholders

# A root's arch (the wheel tag's spelling) as Debian and qemu-user name it: arm64 / qemu-aarch64, and armhf /
# qemu-arm for armv7l (Debian's armhf is ARMv7-A hard-float, what manylinux armv7l wheels target).
DEBIAN_ARCH = {"aarch64": "arm64", "armv7l": "armhf"}
QEMU = {"aarch64": "qemu-aarch64", "armv7l": "qemu-arm"}


def _deb_filename(package: str, version: str, debian_arch: str = "arm64") -> str:
    # apt names files package_version_arch.deb with the epoch's ':' escaped as %3a.
    return f"{package}_{version.replace(':', '%3a')}_{debian_arch}.deb"


# bin/python3.X: a file with @placeholders@ (pipeline.util.fill_placeholders); not part of the runtime's key.
WRAPPER = Path(__file__).parent.parent / "resources" / "debian-root" / "qemu-python.sh"


def wrapper_text(version: str, qemu: str, debian_arch: str) -> str:
    """bin/python<version> of a root: runs the root's interpreter with `qemu` -L the root."""
    return fill_placeholders(WRAPPER, version=version, qemu=qemu, debian_arch=debian_arch)


class DebianArm64Python(CachedInterpreter):
    arch = "aarch64"
    libc = "glibc"

    def __init__(self, entry: dict[str, Any]) -> None:
        self.name = entry["name"]
        self.python_version = entry["python"]
        self.suite = entry["suite"]
        self.glibc = entry["glibc"]
        self.revision = int(entry.get("revision", 1))
        self.provenance = entry.get("provenance", "")
        self.arch = entry.get("arch", "aarch64")
        # The data's targets, and every manylinux level the root's glibc loads (bookworm's 2.36 hosts
        # manylinux_2_28_aarch64 wheels too, as a real Debian 12 arm64 machine does).
        major, _, minor = str(self.glibc).partition(".")
        derived = glibc_targets(self.arch, (int(major), int(minor or 0)))
        self.targets: tuple[str, ...] = tuple(dict.fromkeys([*entry["targets"], *derived]))
        self.debian_arch = DEBIAN_ARCH[self.arch]
        self.qemu = QEMU[self.arch]
        self.description = (
            f"Debian {self.suite} {self.debian_arch} python{self.python_version} (glibc {self.glibc}) run with "
            f"qemu-user; hosts manylinux {self.arch} wheels"
        )
        self.debs = [
            DebianFile(
                package=f"{package}:{self.debian_arch}",
                version=version,
                filename=_deb_filename(package, version, self.debian_arch),
                sha256=sha256,
                suite=self.suite,
            )
            for package, version, sha256 in entry["packages"]
        ]

    def _still_usable(self, marker: dict[str, object]) -> bool:
        qemu = marker.get("qemu")  # the wrapper starts this qemu: it must still be installed
        return isinstance(qemu, str) and Path(qemu).is_file()

    def unavailable_reason(self) -> str | None:
        if os.uname().machine != "x86_64":
            return f"built for x86_64 hosts (qemu-user runs the {self.debian_arch} interpreter)"
        if not shutil.which(self.qemu) and not shutil.which("apt-get"):
            return f"needs {self.qemu} (Debian qemu-user)"
        return None

    def _build(self) -> None:
        started = time.monotonic()
        ensure_toolset("qemu")
        qemu = shutil.which(self.qemu)
        if not qemu:
            raise RuntimeBuildError(f"{self.name}: qemu-user is installed but {self.qemu} is not on PATH")
        debs = debian_binaries(self.debs)
        staging = fresh_dir(runtimes_root() / ".work" / self.name)
        sysroot = staging / "root"
        sysroot.mkdir()
        for deb in debs:
            result = subprocess.run(
                ["dpkg-deb", "-x", str(deb), str(sysroot)], capture_output=True, text=True
            )
            if result.returncode != 0:
                raise RuntimeBuildError(
                    f"{self.name}: dpkg-deb -x {deb.name} failed: {result.stderr.strip()}"
                )
        # Debian 13 is merged-/usr: its packages install under usr/lib only, and the /lib -> usr/lib link
        # (where the program interpreter /lib/ld-linux-aarch64.so.1 is looked up) comes from base-files.
        for merged in ("lib", "bin", "sbin"):
            if not (sysroot / merged).exists() and (sysroot / "usr" / merged).is_dir():
                (sysroot / merged).symlink_to(f"usr/{merged}")
        # Documentation is most of a .deb's size and nothing here reads it.
        for docs in ("usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/lintian"):
            shutil.rmtree(sysroot / docs, ignore_errors=True)
        wrapper = staging / "bin" / f"python{self.python_version}"
        wrapper.parent.mkdir()
        wrapper.write_text(wrapper_text(self.python_version, qemu, self.debian_arch), encoding="utf-8")
        wrapper.chmod(0o755)
        (staging / "bin" / "python3").symlink_to(wrapper.name)
        probe = subprocess.run(
            [str(wrapper), "-c", "import platform, ctypes, zlib, ssl, sqlite3; print(platform.machine())"],
            capture_output=True,
            text=True,
        )
        if probe.returncode != 0 or probe.stdout.strip() != self.arch:
            raise RuntimeBuildError(
                f"{self.name}: the unpacked interpreter does not run: {probe.stderr.strip()}"
            )
        write_marker(
            staging,
            {
                "name": self.name,
                "revision": self.revision,
                "qemu": qemu,
                "packages": [f"{d.package}={d.version}" for d in self.debs],
                "build_seconds": round(time.monotonic() - started),
            },
        )
        publish_dir(staging, self.root())
        from pipeline.log import log

        log.say(f"{self.name}: ready in {time.monotonic() - started:.0f} s")


def from_data(entry: dict[str, Any]) -> DebianArm64Python:
    return DebianArm64Python(entry)
