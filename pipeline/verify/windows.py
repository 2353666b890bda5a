"""PE checks against a Windows target: machine, imported DLLs and functions, delay loads, python DLL.

Each check mirrors a loader error users meet:
- "DLL load failed: The specified module could not be found"      -> missing-dll
- "DLL load failed: The specified procedure could not be found"   -> missing-function / missing-ordinal
- "%1 is not a valid Win32 application"                           -> wrong-machine
- a cp311 module importing python312.dll                           -> python-dll-mismatch
Delay-loaded imports are resolved on first call, not at import: problems there are warnings.

Where the loader looks: the importing module's own folder (after installation: members under
`<name>.data/platlib/` or `purelib/` install into site-packages, beside the rest), the `*.libs` folders
delvewheel adds with os.add_dll_directory, the Python install (vcruntime140*.dll), then System32 (the
profile). A DLL the wheel ships in another site-packages folder (pywin32's pywin32_system32) is found only if
the package adds that folder at run time (os.add_dll_directory, PATH): accepted with a warning. Visual C++
redistributable DLLs (msvcp140, mfc140u, concrt140, vcomp140, ...) are installed by the VC++ redistributable,
which most desktops have and containers may not: a warning, not an error.
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

# python3.dll, python311.dll, python313t.dll (free-threaded), python3t.dll, debug builds' _d variants
PYTHON_DLL = re.compile(r"^python(?:(?P<digits>3\d+)|3)(?P<threaded>t?)(?:_d)?\.dll$", re.IGNORECASE)
# The Visual C++ redistributable's DLLs (installed system-wide by vc_redist, not part of Windows itself).
VC_REDIST_DLL = re.compile(
    r"^(msvcp140(_\d|_atomic_wait|_codecvt_ids)?|vcruntime140(_1|_threads)?|concrt140|vcomp140|vccorlib140|"
    r"vcamp140|mfcm?140[a-z]*)\.dll$",
    re.IGNORECASE,
)
# Where members of <name>.data/<scheme>/ install: only platlib and purelib land in site-packages.
_DATA_SCHEME = re.compile(r"^[^/]+\.data/(?P<scheme>[^/]+)/(?P<rest>.*)$")
TARGET_MACHINES = {"AMD64": {0x8664}, "ARM64": {0xAA64, 0xA641}, "x86": {0x14C}}
# Next to python.exe on every CPython install (the installer and the embeddable zip ship them).
PYTHON_SHIPPED = {"vcruntime140.dll", "vcruntime140_1.dll"}
MAX_FORWARD_HOPS = 8


def install_path(member: str) -> str | None:
    """Where a wheel member lands relative to site-packages; None when it installs elsewhere (scripts,
    headers, data go under the prefix, where the loader does not look for a module's DLLs)."""
    match = _DATA_SCHEME.match(member)
    if not match:
        return member
    return match["rest"] if match["scheme"] in ("platlib", "purelib") else None


def _bundled_dlls(path: str, contents: WheelContents) -> tuple[dict[str, str], dict[str, str]]:
    """(on the search path, elsewhere in site-packages): lower-case DLL name -> wheel member, for the DLLs
    the loader finds for `path`: its own install folder and the *.libs folders delvewheel adds with
    os.add_dll_directory; and the DLLs installed into other site-packages folders (found only when the
    package adds that folder itself, as pywin32 does for pywin32_system32)."""
    here = posixpath.dirname(install_path(path) or path)
    found: dict[str, str] = {}
    elsewhere: dict[str, str] = {}
    for other in sorted(contents.pe):
        installed = install_path(other)
        if installed is None:
            continue
        folder = posixpath.dirname(installed)
        key = posixpath.basename(other).lower()
        if folder == here or posixpath.basename(folder).endswith(".libs"):
            found.setdefault(key, other)
        else:
            elsewhere.setdefault(key, other)
    return found, elsewhere


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
        bundled, elsewhere = _bundled_dlls(path, contents)
        for delayed, table in ((False, info.imports), (True, info.delay_imports)):
            for dll, functions in table.items():
                key = dll.lower()
                if key not in bundled and key in elsewhere and profile.resolve_dll(key) is None:
                    report.add(
                        "dll-outside-search-path",
                        f"{path} imports {dll}, which the wheel installs at {install_path(elsewhere[key])}, "
                        "outside the module's folder: it loads only if the package adds that folder "
                        "(os.add_dll_directory or PATH) before the import",
                        file=path, library=dll, severity="warning",
                    )  # fmt: skip
                    bundled = {**bundled, key: elsewhere[key]}
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
        threaded = bool(python_dll["threaded"])
        _check_python_dll(path, dll, python_dll["digits"], threaded, functions, claim, report)
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
        if resolved is None and VC_REDIST_DLL.match(key):
            report.add(
                prefix + "vc-redist-dll",
                f"{path} imports {dll}, a Visual C++ redistributable DLL the wheel does not bundle: it loads "
                f"where the VC++ redistributable is installed (most desktops), not on a bare {target.name}{lazily}",
                file=path, library=dll, severity="warning",
            )  # fmt: skip
            return
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
    threaded: bool,
    functions: list[PeImport],
    claim: PythonClaim,
    report: WheelReport,
) -> None:
    from pipeline.profiles import (
        cpython_exports,
        cpython_windows_exports,
        stable_abi,
        windows_only_python_names,
    )

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
        names: frozenset[str] | None = stable_abi(claim.minimum)
        label, code = f"the stable ABI of CPython {claim.minimum}", "abi3-violation"
    else:
        if not digits:
            return
        version = f"{digits[0]}.{digits[1:]}"
        wanted = ", ".join(claim.abi_versions)
        if version not in claim.versions or threaded != claim.free_threaded:
            build = "free-threaded " if threaded else ""
            report.add(
                "python-dll-mismatch",
                f"{path} imports {dll} ({build}CPython {version}{'t' if threaded else ''}), but the wheel is "
                f"tagged for CPython {wanted}: \"DLL load failed\" or a crash at import",
                file=path, library=dll,
            )  # fmt: skip
            return
        key = version + ("t" if threaded else "")
        names = cpython_windows_exports(key)  # the real python3X.dll's exports, where the profile has them
        if names is None:
            linux = cpython_exports(key)
            names = linux | windows_only_python_names() if linux is not None else None
        if names is None:
            report.add(
                "python-symbols-unchecked",
                f"{path} imports {dll}: no CPython profile for {key}, its Python C-API imports were not checked",
                file=path, library=dll, severity="warning",
            )  # fmt: skip
            return
        label, code = f"CPython {key}", "missing-python-symbol"
    if names is None:
        return
    for function in functions:
        if function.name and function.name not in names:
            report.add(
                code,
                f"{path} imports {function.name} from {dll}, which is not part of {label}",
                file=path, library=dll, symbol=function.name,
            )  # fmt: skip
