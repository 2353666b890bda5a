"""Debian 12's arm64 CPython 3.11 in a plain folder, run on x86_64 with qemu-user (no container, no chroot).

The root is Debian's own arm64 packages (pinned package=version and sha256, fetched with `apt-get download`)
unpacked with `dpkg-deb -x`; nothing is installed system-wide, because python3.11:arm64 would conflict with
the host's python3.11. `qemu-aarch64 -L ROOT` makes the guest's absolute paths (its loader, its libraries)
resolve inside ROOT first and fall back to the host, so wheels unpacked into a host temp folder import fine.
A `bin/python3.11` wrapper makes the runtime look like any other interpreter to callers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

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

PYTHON_VERSION = "3.11"
RECIPE_REVISION = 1

# (package, version, sha256): python3.11 and every shared library its stdlib extension modules load, plus
# libstdc++/libgcc for C++ extensions in wheels. Debian keeps only current versions in its archive, so a
# security update can retire a pin; the download error says so, and the fix is to update this list.
_DEBS = [
    (
        "python3.11-minimal",
        "3.11.2-6+deb12u9",
        "617855dbf3299e03873926c75d61feaf3d36924586aecc1951a0b965a95bc694",
    ),
    (
        "libpython3.11-minimal",
        "3.11.2-6+deb12u9",
        "dd9847d2f77c5a924b1d3dd953b81f161db9374c94d03b9216191925350928c3",
    ),
    (
        "libpython3.11-stdlib",
        "3.11.2-6+deb12u9",
        "9937cbe3f647aa89a590fec647438ce02098c113d1c6f70e4cb1230c368d42a4",
    ),
    ("libc6", "2.36-9+deb12u14", "01f4330719fd4f65580e16ea5a0527f372fca750e8f588d26deaf09f2d3b1cf4"),
    ("zlib1g", "1:1.2.13.dfsg-1", "52b8b8a145bbe1956bba82034f77022cbef0c3d0885c9e32d9817a7932fe1913"),
    ("libexpat1", "2.5.0-1+deb12u5", "4a733e7f636de4a4483e3e5d7b02dc8e788b115361a04dd58df89461ce2ae65a"),
    ("libffi8", "3.4.4-1", "80b5c36177dc0e29d531c7eddbed3cc7355cb490e49f8cfa5959572d161f27b3"),
    ("libssl3", "3.0.22-1~deb12u2", "3d04ecd8d0f57fed50d205abaeedfcc84c1960073ea085719c00add44b0ccd7f"),
    ("libbz2-1.0", "1.0.8-5+b1", "d3a96ece03326498b39ff093a76800dfcbcb1d4049d6ae6e9f6fa1aa7a590ad6"),
    ("liblzma5", "5.4.1-1+deb12u2", "36358d245f246234721e6c1c2ee5d11a46c1c877023c63f7570df02cd79964f5"),
    ("libuuid1", "2.38.1-5+deb12u3", "3b2d19df0f3190108cf54228c4cfc822226c06d8f3615a5ab16a7dffb1f58aed"),
    ("libsqlite3-0", "3.40.1-2+deb12u2", "a690f7f2aa6435bd1fd7cbbd2216acb9acbb8c48c9721f2c195766375439eb13"),
    ("libcrypt1", "1:4.4.33-2", "eea0ad76ea5eb507127fea0c291622ea4ecdbb71c4b9a8ed9c76ae33fc1a0127"),
    ("libgcc-s1", "12.2.0-14+deb12u1", "576926b283613db80168ddf76380a3bd877602778cf0d226caa7bfbfa71eacf3"),
    ("libstdc++6", "12.2.0-14+deb12u1", "26e138c677a985775331373828a6c286c551ff397cb735d00e2383cb273d1cb2"),
    ("libncursesw6", "6.4-4", "cf32cb6751718872c6def448b82211eec494f688e2f1a3e6c71bfdaf6b0722c5"),
    ("libtinfo6", "6.4-4", "baef0f6776f84c7eed4f1146d6e5774689567dad43216894d41da02e6608e4b3"),
    ("libreadline8", "8.2-1.3", "f3b162b7c1e05430607e792ebdbfc417cbd1f1d32cf83664133ae63d811a72d2"),
]


def _deb_filename(package: str, version: str) -> str:
    # apt names files package_version_arch.deb with the epoch's ':' escaped as %3a.
    return f"{package}_{version.replace(':', '%3a')}_arm64.deb"


ARM64_DEBS = [
    DebianFile(
        package=f"{package}:arm64", version=version, filename=_deb_filename(package, version), sha256=sha
    )
    for package, version, sha in _DEBS
]

WRAPPER = """#!/bin/sh
# Debian arm64 python{version} under qemu-user; built by rewheel.
ROOT="$(dirname "$(dirname "$(readlink -f "$0")")")/root"
exec {qemu} -L "$ROOT" "$ROOT/usr/bin/python{version}" "$@"
"""


class DebianArm64Python(CachedInterpreter):
    name = f"debian-arm64-python{PYTHON_VERSION}"
    description = "Debian 12 arm64 python3.11 (glibc 2.36) run with qemu-user; hosts manylinux aarch64 wheels"
    targets: tuple[str, ...] = ("manylinux_2_17_aarch64",)
    python_version = PYTHON_VERSION
    revision = RECIPE_REVISION
    arch = "aarch64"
    libc = "glibc"

    def _still_usable(self, marker: dict[str, object]) -> bool:
        qemu = marker.get("qemu")  # the wrapper starts this qemu-aarch64: it must still be installed
        return isinstance(qemu, str) and Path(qemu).is_file()

    def unavailable_reason(self) -> str | None:
        if os.uname().machine != "x86_64":
            return "built for x86_64 hosts (qemu-user runs the arm64 interpreter)"
        if not shutil.which("qemu-aarch64") and not shutil.which("apt-get"):
            return "needs qemu-aarch64 (Debian qemu-user)"
        return None

    def _build(self, progress: bool) -> None:
        started = time.monotonic()
        ensure_toolset("qemu")
        qemu = shutil.which("qemu-aarch64")
        if not qemu:
            raise RuntimeBuildError(f"{self.name}: qemu-user is installed but qemu-aarch64 is not on PATH")
        debs = debian_binaries(ARM64_DEBS, progress=progress)
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
        # Documentation is most of a .deb's size and nothing here reads it.
        for docs in ("usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/lintian"):
            shutil.rmtree(sysroot / docs, ignore_errors=True)
        wrapper = staging / "bin" / f"python{PYTHON_VERSION}"
        wrapper.parent.mkdir()
        wrapper.write_text(WRAPPER.format(version=PYTHON_VERSION, qemu=qemu), encoding="utf-8")
        wrapper.chmod(0o755)
        (staging / "bin" / "python3").symlink_to(wrapper.name)
        probe = subprocess.run(
            [str(wrapper), "-c", "import platform, ctypes, zlib, ssl, sqlite3; print(platform.machine())"],
            capture_output=True,
            text=True,
        )
        if probe.returncode != 0 or probe.stdout.strip() != "aarch64":
            raise RuntimeBuildError(
                f"{self.name}: the unpacked interpreter does not run: {probe.stderr.strip()}"
            )
        write_marker(
            staging,
            {
                "name": self.name,
                "revision": RECIPE_REVISION,
                "qemu": qemu,
                "packages": [f"{d.package}={d.version}" for d in ARM64_DEBS],
                "build_seconds": round(time.monotonic() - started),
            },
        )
        publish_dir(staging, self.root())
        if progress:
            from pipeline.output import progress as say

            say(f"{self.name}: ready in {time.monotonic() - started:.0f} s")


RUNTIMES = [DebianArm64Python()]
