"""PE checks against a Windows target: machine, imported DLLs and functions, delay loads, python DLL.

Each check mirrors a loader error users meet:
- "DLL load failed: The specified module could not be found"      -> missing-dll
- "DLL load failed: The specified procedure could not be found"   -> missing-function / missing-ordinal
- "%1 is not a valid Win32 application"                           -> wrong-machine
- a cp311 module importing python312.dll                           -> python-dll-mismatch
Delay-loaded imports are resolved on first call, not at import: problems there are warnings.
"""

from __future__ import annotations

import posixpath
import re

from pipeline.profiles import WindowsProfile
from pipeline.targets import Target
from pipeline.verify.archive import WheelContents
from pipeline.verify.pe import PeImport
from pipeline.verify.report import Severity, WheelReport
from pipeline.verify.tags import PythonClaim

PYTHON_DLL = re.compile(r"^python(3\d+)?3?(_d)?\.dll$", re.IGNORECASE)
TARGET_MACHINES = {"AMD64": {0x8664}, "ARM64": {0xAA64, 0xA641}, "x86": {0x14C}}
# Next to python.exe on every CPython install (the installer and the embeddable zip ship them).
PYTHON_SHIPPED = {"vcruntime140.dll", "vcruntime140_1.dll"}
MAX_FORWARD_HOPS = 8


def _installed_path(folder: str) -> str:
    """Where a wheel folder lands once installed: <name>.data/platlib/x and purelib/x go to site-packages/x
    (delvewheel puts the DLLs of top-level extension modules in <name>.data/platlib/)."""
    parts = folder.split("/")
    if len(parts) >= 2 and parts[0].endswith(".data") and parts[1] in ("platlib", "purelib"):
        return "/".join(parts[2:])
    return folder


def _bundled_dlls(path: str, contents: WheelContents) -> dict[str, str]:
    """lower-case DLL name -> wheel path for DLLs the loader finds for `path`: its own folder, and the
    *.libs folders delvewheel adds with os.add_dll_directory."""
    here = _installed_path(posixpath.dirname(path))
    found: dict[str, str] = {}
    for other in contents.pe:
        folder = _installed_path(posixpath.dirname(other))
        if folder == here or folder.endswith(".libs") or posixpath.basename(folder).endswith(".libs"):
            found.setdefault(posixpath.basename(other).lower(), other)
    return found


def check_pe_binaries(
    target: Target, contents: WheelContents, claim: PythonClaim, report: WheelReport
) -> None:
    from pipeline.profiles import windows_profile

    profile = windows_profile(target.profile)
    allowed_machines = TARGET_MACHINES.get(target.arch, set())
    for path, info in sorted(contents.pe.items()):
        if info.machine not in allowed_machines:
            report.add(
                "wrong-machine",
                f'{path} is built for {info.arch}, the target {target.name} runs {target.arch}: "not a valid Win32 application"',
                file=path,
            )
            continue
        bundled = _bundled_dlls(path, contents)
        for delayed, table in ((False, info.imports), (True, info.delay_imports)):
            for dll, functions in table.items():
                _check_import(
                    path, dll, functions, delayed, target, profile, bundled, contents, claim, report
                )


def _check_import(
    path: str,
    dll: str,
    functions: list[PeImport],
    delayed: bool,
    target: Target,
    profile: WindowsProfile,
    bundled: dict[str, str],
    contents: WheelContents,
    claim: PythonClaim,
    report: WheelReport,
) -> None:
    severity: Severity = "warning" if delayed else "error"
    prefix = "delay-load-" if delayed else ""
    lazily = " (delay-loaded: fails when first called, not at import)" if delayed else ""
    key = dll.lower()
    python_dll = PYTHON_DLL.match(key)
    if python_dll:
        _check_python_dll(path, dll, python_dll.group(1), functions, claim, report)
        return
    if key in bundled:
        other = contents.pe[bundled[key]]
        exports: set[str] | frozenset[str] = other.exports
        ordinals = other.export_ordinals
        forwarders = other.forwarders
        where = bundled[key]
    elif key in PYTHON_SHIPPED and profile.resolve_dll(key) is None:
        return  # shipped with CPython; no export list to check against
    else:
        resolved = profile.resolve_dll(key)
        if resolved is None:
            report.add(
                prefix + "missing-dll",
                f"{path} imports {dll}, which is neither in the wheel nor present on {target.name}{lazily}: "
                f"\"DLL load failed: The specified module could not be found\"",
                file=path, library=dll, severity=severity,
            )  # fmt: skip
            return
        exports = profile.dlls[resolved]
        ordinals = profile.ordinals.get(resolved, {})
        forwarders = profile.forwarders.get(resolved, {})
        where = f"{target.name}'s {resolved}"
    unchecked: list[str] = []
    for function in functions:
        if function.name is None:
            if not ordinals:
                unchecked.append(f"#{function.ordinal}")
            elif function.ordinal not in ordinals:
                report.add(
                    prefix + "missing-ordinal",
                    f"{path} imports ordinal {function.ordinal} of {dll}, which {where} does not export{lazily}",
                    file=path,
                    library=dll,
                    symbol=f"#{function.ordinal}",
                    severity=severity,
                )
            continue
        if function.name not in exports:
            report.add(
                prefix + "missing-function",
                f"{path} imports {function.name} from {dll}, which {where} does not export{lazily}: "
                f"\"DLL load failed: The specified procedure could not be found\"",
                file=path, library=dll, symbol=function.name, severity=severity,
            )  # fmt: skip
            continue
        forward = forwarders.get(function.name)
        if forward:
            problem = _follow_forwarder(forward, profile)
            if problem:
                report.add(
                    prefix + "missing-function",
                    f"{path} imports {function.name} from {dll}, forwarded to {forward}, {problem}{lazily}",
                    file=path, library=dll, symbol=function.name, severity=severity,
                )  # fmt: skip
    _report_unchecked(path, dll, where, unchecked, report)


def _report_unchecked(path: str, dll: str, where: str, unchecked: list[str], report: WheelReport) -> None:
    if unchecked:
        report.add(
            "unchecked-ordinal",
            f"{path} imports {len(unchecked)} functions of {dll} by ordinal ({', '.join(unchecked)}); "
            f"{where} has no ordinal table to check them against",
            file=path,
            library=dll,
            symbol=", ".join(unchecked),
            severity="warning",
        )


def _follow_forwarder(forward: str, profile: WindowsProfile) -> str | None:
    for _ in range(MAX_FORWARD_HOPS):
        dll, _, name = forward.partition("!")
        resolved = profile.resolve_dll(dll)
        if resolved is None:
            return f"and {dll} is not present"
        if name.startswith("#"):
            return None
        if name not in profile.dlls[resolved]:
            return f"and {dll} does not export {name}"
        nxt = profile.forwarders.get(resolved, {}).get(name)
        if not nxt:
            return None
        forward = nxt
    return "through too many forwarders"


def _check_python_dll(
    path: str,
    dll: str,
    digits: str | None,
    functions: list[PeImport],
    claim: PythonClaim,
    report: WheelReport,
) -> None:
    from pipeline.profiles import cpython_exports, stable_abi

    if not claim.versions:
        return
    if claim.abi3:
        if digits:
            report.add(
                "python-dll-mismatch",
                f"{path} imports {dll}, but the wheel is tagged abi3: a stable-ABI module must import python3.dll "
                f"only, or it fails on every CPython but {digits[0]}.{digits[1:]}",
                file=path, library=dll,
            )  # fmt: skip
            return
        names = stable_abi(claim.minimum)
        label, code = f"the stable ABI of CPython {claim.minimum}", "abi3-violation"
    else:
        if not digits:
            names = None
            label, code = "", ""
        else:
            version = f"{digits[0]}.{digits[1:]}"
            if version not in claim.versions:
                report.add(
                    "python-dll-mismatch",
                    f"{path} imports {dll} (CPython {version}), but the wheel is tagged for CPython "
                    f"{', '.join(claim.versions)}: \"DLL load failed\" or a crash at import",
                    file=path, library=dll,
                )  # fmt: skip
                return
            names = cpython_exports(version)
            if names is not None:
                from pipeline.profiles import windows_only_python_names

                names = names | windows_only_python_names()
            label, code = f"CPython {version}", "missing-python-symbol"
    if names is None:
        return
    for function in functions:
        if function.name and function.name not in names:
            report.add(
                code,
                f"{path} imports {function.name} from {dll}, which is not part of {label}",
                file=path, library=dll, symbol=function.name,
            )  # fmt: skip
