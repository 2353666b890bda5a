"""musl CPython 3.11 for aarch64: cross-built here with Zig (ziglang from PyPI), run with qemu-user.

The same pinned Debian sources as the x86_64 musl CPython (CPython 3.11.2, zlib, libffi), compiled with
`python -m ziglang cc -target aarch64-linux-musl` (Zig ships musl and the kernel headers for the target).
Zig links musl executables statically unless told `-dynamic`, and a static interpreter cannot load extension
modules, so the compiler wrapper asks for a dynamic link whenever it links a program. The musl dynamic loader
itself comes from Debian's musl:arm64 package (pinned), unpacked into a small root for `qemu-aarch64 -L`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from pipeline.output import progress as say
from pipeline.paths import runtimes_root
from pipeline.runtimes._support import (
    CachedInterpreter,
    DebianFile,
    RuntimeBuildError,
    StepRunner,
    debian_binaries,
    debian_source_orig,
    fresh_dir,
    publish_dir,
    write_marker,
)
from pipeline.runtimes.musl_cpython import (
    CPYTHON_SOURCE,
    JOBS,
    LIBFFI_SOURCE,
    PYTHON_VERSION,
    ZLIB_SOURCE,
    MuslCPython,
    _log_dir,
    _unpacked,
)
from pipeline.system_packages import ensure_toolset

RECIPE_REVISION = 1
TRIPLET = "aarch64-linux-musl"

MUSL_ARM64 = DebianFile(
    package="musl:arm64",
    version="1.2.3-1",
    filename="musl_1.2.3-1_arm64.deb",
    sha256="6ccf2bf0f479b00411cb8e1eeb048e648718170db5d63bbb4bf4a89350b81468",
)

CC_WRAPPER = """#!/bin/sh
# zig cc for {triplet}; links programs dynamically (zig's default for musl is static).
case "$1" in
  --print-multiarch) echo {triplet}; exit 0;;
esac
for arg in "$@"; do
  case "$arg" in
    -c|-E|-S|-M|-MM|-shared) exec "{python}" -m ziglang cc -target {triplet} "$@";;
  esac
done
exec "{python}" -m ziglang cc -target {triplet} -dynamic "$@"
"""
TOOL_WRAPPER = """#!/bin/sh
exec "{python}" -m ziglang {tool} "$@"
"""
QEMU_WRAPPER = """#!/bin/sh
# musl CPython {version} for aarch64 under qemu-user; built by rewheel.
HERE="$(dirname "$(dirname "$(readlink -f "$0")")")"
exec {qemu} -L "$HERE/sysroot" "$HERE/bin/python{version}" "$@"
"""


def _write_script(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755)
    return path


def _build_python() -> Path | None:
    """A host CPython of the same minor version: a cross build runs it to build the stdlib."""
    from pipeline.runtimes.host_cpython import _find_interpreter

    return _find_interpreter(PYTHON_VERSION)


class MuslCPythonAarch64(CachedInterpreter):
    python_version = PYTHON_VERSION
    revision = RECIPE_REVISION
    arch = "aarch64"
    libc = "musl"
    name = f"musl-cpython-{PYTHON_VERSION}-aarch64"
    description = "EXPERIMENTAL musl CPython 3.11.2 for aarch64, cross-built with Zig, run with qemu-user"

    @property
    def targets(self) -> tuple[str, ...]:
        # Experimental: the cross build is slow (every configure check runs zig) and not yet proven end to
        # end, so smoke only uses it once someone built it explicitly (`rewheel runtimes build NAME`);
        # it never starts this build on its own.
        return ("musllinux_1_2_aarch64",) if self.exists() else ()

    def python(self) -> Path:
        """A host-runnable wrapper that starts the aarch64 interpreter under qemu-aarch64."""
        return self.root() / "host-bin" / f"python{PYTHON_VERSION}"

    def unavailable_reason(self) -> str | None:
        if os.uname().machine != "x86_64":
            return "built on x86_64 hosts"
        if importlib.util.find_spec("ziglang") is None:
            return "needs ziglang in rewheel's Python (pip install 'rewheel[zig]')"
        if _build_python() is None:
            return f"needs a host CPython {PYTHON_VERSION} to cross-build with"
        return None

    def _build(self, progress: bool) -> None:
        started = time.monotonic()
        ensure_toolset("qemu", "musl")
        qemu = shutil.which("qemu-aarch64")
        build_python = _build_python()
        if not qemu or not build_python:
            raise RuntimeBuildError(f"{self.name}: qemu-aarch64 or a host python{PYTHON_VERSION} is missing")
        sources = [
            debian_source_orig(s, progress=progress) for s in (ZLIB_SOURCE, LIBFFI_SOURCE, CPYTHON_SOURCE)
        ]
        (musl_deb,) = debian_binaries([MUSL_ARM64], progress=progress)
        work = fresh_dir(runtimes_root() / ".work" / self.name)
        steps = StepRunner(self.name, _log_dir() / f"{self.name}.log", progress)
        steps.log.unlink(missing_ok=True)
        final = self.root()
        staging = work / "destdir" / final.relative_to("/")
        tools = work / "tools"
        cc = _write_script(tools / "cc", CC_WRAPPER.format(triplet=TRIPLET, python=sys.executable))
        for tool in ("ar", "ranlib"):
            _write_script(tools / tool, TOOL_WRAPPER.format(python=sys.executable, tool=tool))
        deps = work / "deps"
        # CPython 3.11's configure names the platform musl only when the *build* OS is linux-musl (it
        # checks $build_os, not $host_os), so a cross build to musl must say its build side is musl too.
        host = ["--host=" + TRIPLET, "--build=x86_64-pc-linux-musl"]
        env = {
            "CC": str(cc),
            "AR": str(tools / "ar"),
            "RANLIB": str(tools / "ranlib"),
            "CFLAGS": "-O2 -fPIC",
            "PKG_CONFIG_LIBDIR": str(deps / "lib" / "pkgconfig"),
            "PKG_CONFIG_PATH": "",
        }
        zlib_dir = _unpacked(sources[0], work / "zlib")
        steps.run("zlib configure", ["./configure", "--static", f"--prefix={deps}"], cwd=zlib_dir, env=env)
        steps.run("zlib make", ["make", f"-j{JOBS}", "libz.a"], cwd=zlib_dir, env=env)
        steps.run("zlib install", ["make", "install"], cwd=zlib_dir, env=env)
        ffi_dir = _unpacked(sources[1], work / "libffi")
        ffi_configure = [
            "./configure", *host, f"--prefix={deps}", "--disable-shared", "--enable-static", "--with-pic",
            "--disable-docs", "--disable-multi-os-directory",
        ]  # fmt: skip
        # libffi 3.4.4's tramp.c calls a function it never declares; Zig's clang makes that an error.
        ffi_env = {**env, "CFLAGS": env["CFLAGS"] + " -Wno-error=implicit-function-declaration"}
        steps.run("libffi configure", ffi_configure, cwd=ffi_dir, env=ffi_env)
        steps.run("libffi make", ["make", f"-j{JOBS}"], cwd=ffi_dir, env=ffi_env)
        steps.run("libffi install", ["make", "install"], cwd=ffi_dir, env=ffi_env)
        if progress:
            say(f"{self.name}: unpacking {sources[2].name}")
        source = _unpacked(sources[2], work / "src")
        cpython_env = {
            **env,
            # Zig's clang turns __DATE__/__TIME__ (Modules/getbuildinfo.c) into an error by default.
            "CFLAGS": env["CFLAGS"] + " -Wno-error=date-time",
            "CPPFLAGS": f"-I{deps / 'include'}",
            "LDFLAGS": f"-L{deps / 'lib'}",
            # Cross builds cannot probe the target's /dev; these are the answers for Linux.
            "ac_cv_file__dev_ptmx": "yes",
            "ac_cv_file__dev_ptc": "no",
            # Zig's musl headers are newer (1.2.5) than the loader it runs with (Debian's musl 1.2.3):
            # these calls compile but do not resolve at run time.
            "ac_cv_func_preadv2": "no",
            "ac_cv_func_pwritev2": "no",
            # GNU readelf reads any ELF; configure only insists on one being named for cross builds.
            "READELF": shutil.which("readelf") or "readelf",
        }
        configure = [
            "./configure", *host, f"--prefix={final}", f"--with-build-python={build_python}",
            "--with-ensurepip=no", "--disable-test-modules", "--without-doc-strings", "--disable-ipv6",
        ]  # fmt: skip
        steps.run("configure", configure, cwd=source, env=cpython_env)
        steps.run("make", ["make", f"-j{JOBS}"], cwd=source, env=cpython_env)
        steps.run("install", ["make", "install", f"DESTDIR={work / 'destdir'}"], cwd=source, env=cpython_env)
        MuslCPython._trim(staging)
        sysroot = staging / "sysroot"
        result = subprocess.run(
            ["dpkg-deb", "-x", str(musl_deb), str(sysroot)], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise RuntimeBuildError(
                f"{self.name}: dpkg-deb -x {musl_deb.name} failed: {result.stderr.strip()}"
            )
        shutil.rmtree(sysroot / "usr" / "share", ignore_errors=True)
        wrapper = _write_script(
            staging / "host-bin" / f"python{PYTHON_VERSION}",
            QEMU_WRAPPER.format(version=PYTHON_VERSION, qemu=qemu),
        )
        check = "import sysconfig, platform, ctypes, zlib, _socket; print(platform.machine(), sysconfig.get_config_var('EXT_SUFFIX'))"
        probe = subprocess.run([str(wrapper), "-c", check], capture_output=True, text=True)
        if probe.returncode != 0 or probe.stdout.split() != ["aarch64", ".cpython-311-aarch64-linux-musl.so"]:
            raise RuntimeBuildError(
                f"{self.name}: the built interpreter fails its check: {probe.stderr.strip()}"
            )
        write_marker(
            staging,
            {
                "name": self.name,
                "revision": RECIPE_REVISION,
                "python": "3.11.2",
                "qemu": qemu,
                "build_seconds": round(time.monotonic() - started),
            },
        )
        shutil.copy(steps.log, staging / "build.log")
        publish_dir(staging, final)
        shutil.rmtree(work, ignore_errors=True)


RUNTIMES = [MuslCPythonAarch64()]
