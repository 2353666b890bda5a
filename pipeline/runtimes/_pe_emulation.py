"""A poorer Windows edition under wine, per wheel: make the wheel's imports fail where the edition lacks what they need.

Wine implements desktop Windows. Nano Server lacks most of USER32 and all of GDI32's exports (and more); switching
those DLLs off in wine breaks wine's own shell32/ole32, and then stdlib modules (_ctypes) fail. Instead, after
smoke has unpacked a wheel into its throwaway site folder, each import table entry of the wheel's .pyd/.dll
that the edition's profile (pipeline/profiles, the data `verify` checks against, with its API-set and
forwarder resolution) cannot satisfy - a DLL the edition does not have, or one it has that lacks a function
imported by name - gets, in that throwaway copy, a DLL name of the same length that no folder holds.

Why the DLL name and not the function's: Windows fails a module whose by-name import is missing ("The
specified procedure could not be found"), but wine's loader binds a missing function to a stub that aborts
only when called (measured: renamed function names load fine), so an import would pass that fails on the
edition. A missing DLL, wine fails at load time like Windows does, with "DLL load failed while importing X:
The specified module could not be found." The verdict is the edition's (the module does not load); the
message names the module rather than the procedure. Wine's own DLLs stay whole.

Delay-load imports are left alone: they are resolved on first call on the real target too. Not the edition's
business either: DLLs the site itself ships (bundled or from a requirement), the python DLLs and vcruntime140
next to python.exe, and the Visual C++ redistributable (which verify treats as "present where installed")."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pefile

from pipeline.profiles import WindowsProfile, windows_profile
from pipeline.verify.windows import PYTHON_DLL, PYTHON_SHIPPED, VC_REDIST_DLL, _follow_forwarder

PE_SUFFIXES = (".pyd", ".dll")
# What a removed DLL's name is made of (same length, `.dll` kept): no DLL file is called ~~~~~~.dll.
FILLER = b"~"


@dataclass(frozen=True)
class RemovedImport:
    file: str  # relative to the site folder
    dll: str  # as the import table names it
    missing: tuple[str, ...]  # the functions the edition's DLL lacks; () when it lacks the DLL itself


def strip_to_profile(site: Path, profile_name: str) -> list[RemovedImport]:
    """Rename, in place, each DLL import of the PE files under `site` that `profile_name` cannot satisfy."""
    profile = windows_profile(profile_name)
    files = sorted(p for p in site.rglob("*") if p.suffix.lower() in PE_SUFFIXES and p.is_file())
    shipped = {p.name.lower() for p in files}
    removed: list[RemovedImport] = []
    for path in files:
        removed += _strip_file(path, site, profile, shipped)
    return removed


def _strip_file(path: Path, site: Path, profile: WindowsProfile, shipped: set[str]) -> list[RemovedImport]:
    data = bytearray(path.read_bytes())
    try:
        pe = pefile.PE(data=bytes(data), fast_load=True)
        pe.parse_data_directories(directories=[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_IMPORT"]])
    except pefile.PEFormatError:
        return []  # not a PE file after all: nothing the Windows loader would read
    relative = path.relative_to(site).as_posix()
    applied: list[RemovedImport] = []
    for entry in getattr(pe, "DIRECTORY_ENTRY_IMPORT", []):
        dll = entry.dll.decode("ascii", "replace")
        key = dll.lower()
        if key in shipped or key in PYTHON_SHIPPED or PYTHON_DLL.match(key) or VC_REDIST_DLL.match(key):
            continue
        resolved = profile.resolve_dll(key)
        if resolved is None:
            missing: tuple[str, ...] = ()
        else:
            missing = tuple(_missing_functions(entry.imports, resolved, profile))
            if not missing:
                continue
        offset = pe.get_offset_from_rva(entry.struct.Name)
        if bytes(data[offset : offset + len(entry.dll)]) != entry.dll:
            continue  # the name is not where pefile says: leave that import as it was built
        stem, dot, suffix = dll.rpartition(".")
        renamed = (FILLER * len(stem) + f".{suffix}".encode()) if dot else FILLER * len(dll)
        data[offset : offset + len(renamed)] = renamed
        applied.append(RemovedImport(relative, dll, missing))
    if applied:
        path.write_bytes(bytes(data))
    return applied


def _missing_functions(imports: list[pefile.ImportData], dll: str, profile: WindowsProfile) -> list[str]:
    exports = profile.dlls[dll]
    forwarders = profile.forwarders.get(dll, {})
    missing = []
    for imp in imports:
        if imp.name is None or len(imp.name) >= pefile.MAX_IMPORT_NAME_LENGTH:
            continue  # by ordinal, or cut by pefile: nothing a profile can look up
        name = imp.name.decode("ascii", "replace")
        forward = forwarders.get(name)
        if name not in exports or (forward and _follow_forwarder(forward, profile)):
            missing.append(name)
    return missing
