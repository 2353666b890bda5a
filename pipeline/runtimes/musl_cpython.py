"""musl CPython 3.11 for x86_64, built here from Debian's CPython source with musl-gcc (no container, no registry).

Two flavours from the same pinned sources:
- dynamic (`musl-cpython-3.11-x86_64`): what Alpine users run. It loads musllinux extension modules, so
  `rewheel smoke` uses it for musllinux_1_2_x86_64 wheels, and a glibc wheel fails on it with musl's own
  "Error relocating ...: symbol not found" message.
- static (`musl-cpython-3.11-x86_64-static`): every module linked into one static executable, like
  python-build-standalone's musl builds. It has no dynamic loader, so `ctypes.CDLL(None)` raises
  `OSError: Dynamic loading not supported` - the crash pip <= 24.1.2 hits during `python -m venv`.
  ctypes gets the guard python-build-standalone applies (bpo-37060) so that `import ctypes` itself works.

zlib and libffi are built for musl too (static PIC archives from Debian's sources), shared by both flavours
under <cache>/runtimes/.musl-deps-x86_64/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from pipeline.output import progress as say
from pipeline.paths import runtimes_root
from pipeline.runtimes._support import (
    CachedInterpreter,
    DebianFile,
    RuntimeBuildError,
    StepRunner,
    build_lock,
    debian_source_orig,
    fresh_dir,
    publish_dir,
    read_marker,
    write_marker,
)
from pipeline.system_packages import ensure_toolset
from pipeline.unpack import unpack

PYTHON_VERSION = "3.11"
JOBS = "2"  # the machines this runs on are small and shared; more jobs only thrash

CPYTHON_SOURCE = DebianFile(
    package="python3.11",
    filename="python3.11_3.11.2.orig.tar.gz",
    sha256="2411c74bda5bbcfcddaf4531f66d1adc73f247f529aee981b029513aefdbf849",
)
ZLIB_SOURCE = DebianFile(
    package="zlib",
    filename="zlib_1.2.13.dfsg.orig.tar.bz2",
    sha256="71feb7947e3c00ef125f83b79a4e529bde31171e5babe48b391f06758d1ab0a1",
)
LIBFFI_SOURCE = DebianFile(
    package="libffi",
    filename="libffi_3.4.4.orig.tar.gz",
    sha256="d66c56ad259a82cf2a9dfc408b32bf5da52371500b84745f7fb8b645712df676",
)

# Bumped whenever the build recipe below changes, so a cached runtime from an older recipe is rebuilt.
RECIPE_REVISION = 1

# configure compares `$CC --print-multiarch` with the triplet it derives from the C library; musl-gcc
# answers with gcc's glibc triplet, so the wrapper answers for musl.
CC_WRAPPER = """#!/bin/sh
case "$1" in
  -print-multiarch|--print-multiarch) echo x86_64-linux-musl; exit 0;;
esac
exec musl-gcc "$@"
"""

# setup.py asks dpkg-architecture (Debian's dpkg-dev) for the multiarch folder and adds
# /usr/include/x86_64-linux-gnu to every extension's -I: glibc's headers then shadow musl's and nothing
# compiles. This stand-in, first on PATH during the build, answers for musl instead.
DPKG_ARCHITECTURE_STUB = """#!/bin/sh
echo x86_64-linux-musl
"""

# bpo-37060: a static interpreter cannot dlopen(NULL); python-build-standalone guards ctypes the same way.
CTYPES_UNGUARDED = "else:\n    pythonapi = PyDLL(None)\n"
CTYPES_GUARDED = (
    "else:\n"
    "    try:\n"
    "        pythonapi = PyDLL(None)\n"
    "    except OSError:\n"
    "        # statically linked interpreter: no dynamic loader (bpo-37060)\n"
    "        pythonapi = None\n"
)

CTYPES_SOURCES = "_ctypes/_ctypes.c _ctypes/callbacks.c _ctypes/callproc.c _ctypes/stgdict.c _ctypes/cfield.c"


def _log_dir() -> Path:
    return runtimes_root() / ".logs"


class MuslDependencies:
    """zlib + libffi as static PIC archives for musl, and the kernel headers musl-gcc cannot see."""

    name = "musl-deps-x86_64"

    def root(self) -> Path:
        return runtimes_root() / f".{self.name}"

    def exists(self) -> bool:
        marker = read_marker(self.root())
        return bool(marker and marker.get("revision") == RECIPE_REVISION)

    def compiler(self) -> Path:
        return self.root() / "bin" / "musl-cc"

    def build(self, progress: bool = True) -> None:
        if self.exists():
            return
        with build_lock(self.name, progress=progress):
            if not self.exists():
                self._build(progress)

    def _build(self, progress: bool) -> None:
        ensure_toolset("musl")
        zlib_tar = debian_source_orig(ZLIB_SOURCE, progress=progress)
        libffi_tar = debian_source_orig(LIBFFI_SOURCE, progress=progress)
        work = fresh_dir(runtimes_root() / ".work" / self.name)
        staging = fresh_dir(work / "prefix")
        steps = StepRunner(self.name, _log_dir() / f"{self.name}.log", progress)
        steps.log.unlink(missing_ok=True)
        wrapper = staging / "bin" / "musl-cc"
        wrapper.parent.mkdir()
        wrapper.write_text(CC_WRAPPER, encoding="utf-8")
        wrapper.chmod(0o755)
        include = staging / "include"
        include.mkdir()
        # libffi and _socket include <linux/...> and <asm/...>; setup.py drops -isystem, so they must sit
        # in an -I directory: link Debian's kernel headers (linux-libc-dev) in.
        for name, source in (
            ("linux", "/usr/include/linux"),
            ("asm", "/usr/include/x86_64-linux-gnu/asm"),
            ("asm-generic", "/usr/include/asm-generic"),
        ):
            if not Path(source).is_dir():
                raise RuntimeBuildError(
                    f"{self.name}: kernel headers {source} missing (Debian linux-libc-dev)"
                )
            (include / name).symlink_to(source)
        final = self.root()
        env = {
            "CC": str(final / "bin" / "musl-cc"),
            "CFLAGS": "-O2 -fPIC",
            "PKG_CONFIG_LIBDIR": str(final / "lib" / "pkgconfig"),
        }
        # The wrapper path baked into the deps is the final one; use the staging copy meanwhile.
        build_env = {**env, "CC": str(wrapper), "CPPFLAGS": f"-I{include}"}
        zlib_dir = _unpacked(zlib_tar, work / "zlib")
        steps.run(
            "zlib configure", ["./configure", "--static", f"--prefix={staging}"], cwd=zlib_dir, env=build_env
        )
        steps.run("zlib make", ["make", f"-j{JOBS}", "libz.a"], cwd=zlib_dir, env=build_env)
        steps.run("zlib install", ["make", "install"], cwd=zlib_dir, env=build_env)
        ffi_dir = _unpacked(libffi_tar, work / "libffi")
        ffi_configure = [
            "./configure", f"--prefix={staging}", "--disable-shared", "--enable-static", "--with-pic",
            "--disable-docs", "--disable-multi-os-directory",
        ]  # fmt: skip
        steps.run("libffi configure", ffi_configure, cwd=ffi_dir, env=build_env)
        steps.run("libffi make", ["make", f"-j{JOBS}"], cwd=ffi_dir, env=build_env)
        steps.run("libffi install", ["make", "install"], cwd=ffi_dir, env=build_env)
        for archive in ("libz.a", "libffi.a"):
            if not (staging / "lib" / archive).is_file():
                raise RuntimeBuildError(f"{self.name}: {archive} was not installed into {staging / 'lib'}")
        write_marker(staging, {"name": self.name, "revision": RECIPE_REVISION})
        publish_dir(staging, final)
        self.relocate(str(staging))
        shutil.rmtree(work, ignore_errors=True)

    def relocate(self, built_prefix: str | None = None) -> None:
        """Point the .pc/.la files at the published folder instead of the staging one they were built in.

        CPython's configure reads libffi's include dir from libffi.pc; a stale path there silently drops
        _ctypes from the dynamic build (setup.py then links it without -lffi)."""
        root = self.root()
        old = built_prefix or str(runtimes_root() / ".work" / self.name / "prefix")
        for file in [*root.glob("lib/pkgconfig/*.pc"), *root.glob("lib/*.la")]:
            text = file.read_text(encoding="utf-8")
            if old in text:
                file.write_text(text.replace(old, str(root)), encoding="utf-8")


def _write_tool(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755)


def _load_json(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_json(path: Path, data: dict[str, object]) -> None:
    path.write_text(json.dumps(data), encoding="utf-8")


def _unpacked(archive: Path, dest: Path) -> Path:
    """Unpack a source tarball and return its single top-level folder."""
    unpack(archive, dest)
    entries = [p for p in dest.iterdir() if p.is_dir()]
    if len(entries) != 1:
        raise RuntimeBuildError(f"{archive.name}: expected one top-level folder, found {len(entries)}")
    return entries[0]


class MuslCPython(CachedInterpreter):
    """A musl-linked CPython 3.11 for x86_64, dynamic or fully static."""

    python_version = PYTHON_VERSION
    revision = RECIPE_REVISION
    arch = "x86_64"
    libc = "musl"

    def __init__(self, *, static: bool) -> None:
        self.static = static
        self.name = f"musl-cpython-{PYTHON_VERSION}-x86_64" + ("-static" if static else "")
        if static:
            self.description = (
                "static musl CPython 3.11.2 (like python-build-standalone): no dlopen; reproduces pip's "
                "'Dynamic loading not supported' venv crash"
            )
            # It cannot load extension modules at all, so it hosts no wheel target.
            self.targets: tuple[str, ...] = ()
        else:
            self.description = (
                "musl CPython 3.11.2 (dynamic, like Alpine's): loads musllinux extension modules"
            )
            self.targets = ("musllinux_1_2_x86_64",)
        self.dependencies = MuslDependencies()

    def unavailable_reason(self) -> str | None:
        if os.uname().machine != "x86_64":
            return "needs an x86_64 Linux host"
        if not shutil.which("musl-gcc") and not shutil.which("apt-get"):
            return "needs musl-gcc (Debian musl-tools)"
        return None

    def _prepare(self, progress: bool) -> None:
        # Both musl CPythons link the same musl-built zlib and libffi, which have a lock of their own.
        self.dependencies.build(progress)

    def _build(self, progress: bool) -> None:
        started = time.monotonic()
        self.dependencies.relocate()  # caches from before this fix carry staging paths
        deps = self.dependencies.root()
        source_tar = debian_source_orig(CPYTHON_SOURCE, progress=progress)
        work = runtimes_root() / ".work" / self.name
        steps = StepRunner(self.name, _log_dir() / f"{self.name}.log", progress)
        final = self.root()
        env = {
            # configure asks `--print-multiarch`, setup.py `-print-multiarch`; both must hear musl.
            "CC": str(work / "tools" / "musl-cc"),
            "CPPFLAGS": f"-I{deps / 'include'}",
            "LDFLAGS": f"-L{deps / 'lib'}",
            # Only our musl libraries: the host's .pc files describe glibc builds.
            "PKG_CONFIG_LIBDIR": str(deps / "lib" / "pkgconfig"),
            "PKG_CONFIG_PATH": "",
            # No -g and -O2 rather than CPython's "-g -O3": half the compile time, same behaviour to import.
            "OPT": "-DNDEBUG -fwrapv -O2 -Wall",
            "PATH": f"{work / 'tools'}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        configure = [
            "./configure", f"--prefix={final}", "--with-ensurepip=no", "--disable-test-modules",
            "--without-doc-strings",
        ]  # fmt: skip
        if self.static:
            env["LDFLAGS"] += " -static"
            env["MODULE_BUILDTYPE"] = "static"  # Modules/Setup.stdlib: every module linked in
            configure.append("--disable-shared")
        # An interrupted build (a test timeout, Ctrl-C) resumes: same recipe, already configured -> make
        # continues where it stopped instead of starting the 5-minute compile again.
        state_file = work / "resume.json"
        state = _load_json(state_file)
        source = work / "src" / "Python-3.11.2"
        if (
            state.get("revision") != RECIPE_REVISION
            or state.get("configure") != configure
            or not source.is_dir()
        ):
            fresh_dir(work)
            steps.log.unlink(missing_ok=True)
            if progress:
                say(f"{self.name}: unpacking {source_tar.name}")
            source = _unpacked(source_tar, work / "src")
            if self.static:
                self._prepare_static(source, deps)
            state = {"revision": RECIPE_REVISION, "configure": configure, "configured": False}
            _save_json(state_file, state)
        elif progress:
            say(f"{self.name}: resuming the interrupted build in {work}")
        _write_tool(work / "tools" / "dpkg-architecture", DPKG_ARCHITECTURE_STUB)
        _write_tool(work / "tools" / "musl-cc", CC_WRAPPER)
        if not state.get("configured"):
            steps.run("configure", configure, cwd=source, env=env)
            state["configured"] = True
            _save_json(state_file, state)
        if self.static:
            # make regenerates the Makefile when Setup.local changes, so this may follow configure.
            self._static_setup_local(source, deps)
        steps.run("make", ["make", f"-j{JOBS}"], cwd=source, env=env)
        fresh_dir(work / "destdir")
        staging = work / "destdir"
        steps.run("install", ["make", "install", f"DESTDIR={staging}"], cwd=source, env=env)
        installed = staging / final.relative_to("/")
        self._trim(installed)
        self._check(installed, steps)
        write_marker(
            installed,
            {
                "name": self.name,
                "revision": RECIPE_REVISION,
                "python": "3.11.2",
                "static": self.static,
                "source": CPYTHON_SOURCE.filename,
                "source_sha256": CPYTHON_SOURCE.sha256,
                "build_seconds": round(time.monotonic() - started),
            },
        )
        shutil.copy(steps.log, installed / "build.log")
        publish_dir(installed, final)
        shutil.rmtree(work, ignore_errors=True)

    @staticmethod
    def _ctypes_setup_line(deps: Path) -> str:
        # makesetup accepts -DNAME but not -DNAME=1.
        return (
            f"_ctypes {CTYPES_SOURCES} -I{deps / 'include'} -DHAVE_FFI_PREP_CIF_VAR -DHAVE_FFI_PREP_CLOSURE_LOC "
            f"-DHAVE_FFI_CLOSURE_ALLOC -L{deps / 'lib'} -lffi\n"
        )

    def _static_setup_local(self, source: Path, deps: Path) -> None:
        """Link every stdlib extension module into the interpreter.

        On Linux 3.11 reads Modules/Setup.stdlib only for WASM; elsewhere setup.py builds those modules
        as shared libraries, which a static interpreter cannot load. configure has already written
        Setup.stdlib with the modules it found usable; its static part goes into Setup.local."""
        stdlib = (source / "Modules" / "Setup.stdlib").read_text(encoding="utf-8")
        static_part = stdlib.split("\n*shared*", 1)[0]
        lines = [
            ln for ln in static_part.splitlines() if ln.strip() and not ln.lstrip().startswith(("#", "*"))
        ]
        if not any(ln.startswith("_struct ") for ln in lines):
            raise RuntimeBuildError(
                f"{self.name}: Modules/Setup.stdlib lists no _struct; cannot link modules in"
            )
        text = "*static*\n" + self._ctypes_setup_line(deps) + "\n".join(lines) + "\n"
        setup_local = source / "Modules" / "Setup.local"
        if setup_local.read_text(encoding="utf-8") != text:
            setup_local.write_text(text, encoding="utf-8")

    def _prepare_static(self, source: Path, deps: Path) -> None:
        ctypes_init = source / "Lib" / "ctypes" / "__init__.py"
        text = ctypes_init.read_text(encoding="utf-8")
        if text.count(CTYPES_UNGUARDED) != 1:
            raise RuntimeBuildError(
                f"{self.name}: ctypes/__init__.py no longer has the expected PyDLL(None) line"
            )
        ctypes_init.write_text(text.replace(CTYPES_UNGUARDED, CTYPES_GUARDED), encoding="utf-8")
        # 3.11 still builds _ctypes through setup.py (always shared); Setup.local makes it static.
        (source / "Modules" / "Setup.local").write_text(
            "*static*\n" + self._ctypes_setup_line(deps), encoding="utf-8"
        )

    @staticmethod
    def _trim(prefix: Path) -> None:
        """Drop what no smoke test runs (idle, tkinter, the static library), keeping the runtime small."""
        lib = prefix / "lib" / f"python{PYTHON_VERSION}"
        for name in ("idlelib", "tkinter", "turtledemo", "lib2to3/tests"):
            shutil.rmtree(lib / name, ignore_errors=True)
        for archive in lib.glob("config-*/libpython*.a"):
            archive.unlink()

    def _check(self, prefix: Path, steps: StepRunner) -> None:
        python = prefix / "bin" / f"python{PYTHON_VERSION}"
        probe = "import sysconfig, ctypes, zlib, _socket, math, json, hashlib\nprint(sysconfig.get_config_var('EXT_SUFFIX'))"
        result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeBuildError(
                f"{self.name}: the built interpreter fails its own check: {result.stderr.strip()}"
            )
        suffix = result.stdout.strip()
        if suffix != ".cpython-311-x86_64-linux-musl.so":
            raise RuntimeBuildError(f"{self.name}: unexpected EXT_SUFFIX {suffix!r} (not a musl build?)")
        with steps.log.open("a", encoding="utf-8") as log:
            log.write(f"\n### check passed: EXT_SUFFIX {suffix}\n")


RUNTIMES = [MuslCPython(static=False), MuslCPython(static=True)]
