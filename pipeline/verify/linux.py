"""ELF checks against a Linux target: machine, DT_NEEDED, symbol versions, musl names, Python ABI.

Each check mirrors a loader error users meet:
- "version `GLIBC_2.28' not found"            -> too-new-symbol-version
- "Error relocating X: Y: symbol not found"   -> missing-symbol / glibc-on-musl
- "libfoo.so.1: cannot open shared object"   -> missing-library
- "undefined symbol: PyFoo"                   -> missing-python-symbol / abi3-violation
- "wrong ELF class" / "cannot open ... wrong machine" -> wrong-machine
- a segfault at load on musl < 1.2.4 (DT_RELR left unapplied)  -> relr-unsupported
"""

from __future__ import annotations

import posixpath
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.profiles import LinuxPolicy
from pipeline.targets import Target
from pipeline.util import version_key
from pipeline.verify.archive import WheelContents
from pipeline.verify.elf import ElfInfo
from pipeline.verify.report import WheelReport
from pipeline.verify.tags import PythonClaim

PYTHON_SYMBOL = re.compile(r"^_?Py|^PY")
GLIBC_LIBRARIES = re.compile(
    r"^(libc\.so\.6|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|libutil\.so\.1|libresolv\.so\.2|"
    r"libnsl\.so\.1|libanl\.so\.1|libmvec\.so\.1|ld-linux[-\w.]*\.so\.\d)$"
)
MUSL_LIBC = re.compile(r"^(libc\.musl-[\w]+\.so\.1|ld-musl-[\w]+\.so\.1|libc\.so)$")
LIBPYTHON = re.compile(r"^libpython\d")
# Names a C++ or GCC runtime exports (libstdc++, libgcc_s): their export lists are not part of any profile.
CXX_RUNTIME_SYMBOL = re.compile(
    r"^(_Z|__cxa_|__gxx_|_Unwind_|__gcc_|__dynamic_cast|__popcount|__divti|__udivti|__modti|__umodti|__mul|__floattidf)"
)
# Names glibc exports that musl never has; named in the message so the reader sees why it is glibc.
GLIBC_ONLY_HINT = (
    "__cxa_thread_atexit_impl",
    "gnu_get_libc_version",
    "__libc_",
    "__isoc99_",
    "__xpg_",
    "__ctype_b_loc",
)


GLIBC_LOADER = re.compile(r"^ld-linux[-\w.]*\.so\.\d$|^ld64\.so\.\d$")
# musl applies DT_RELR (packed relative relocations) from 1.2.4 on (its WHATSNEW for 1.2.4); an older
# loader ignores the entry and runs code whose pointers were never relocated: a segfault, not an error.
# glibc needs no such check: its linker adds a GLIBC_ABI_DT_RELR version need, checked like any version.
MUSL_RELR_SINCE = (1, 2, 4)


def _origin_dirs(path: str, entries: list[str]) -> list[str]:
    origin = posixpath.dirname(path)
    dirs = []
    for entry in entries:
        expanded = entry.replace("${ORIGIN}", "$ORIGIN")
        if "$ORIGIN" not in expanded:
            continue  # absolute build-machine paths do not exist on the target
        dirs.append(posixpath.normpath(expanded.replace("$ORIGIN", origin or ".")))
    return dirs


class ProvidedBy:
    """Names defined by any of the loaded objects: membership is checked per object, never by building a
    union (pyarrow's libraries export tens of thousands of C++ names, and every extension loads them)."""

    def __init__(self, sets: list[set[str]]) -> None:
        self.sets = sets

    def __contains__(self, name: object) -> bool:
        return any(name in names for names in self.sets)


@dataclass
class LoadResult:
    """What the loader does for one root binary: what it loads, in order, and what it cannot find."""

    loaded: list[str] = field(default_factory=list)  # wheel paths, root first
    unresolved: list[tuple[str, str]] = field(default_factory=list)  # (binary, needed name)


def simulate_load(root: str, contents: WheelContents, is_system: Callable[[str], bool]) -> LoadResult:
    """Follow DT_NEEDED from `root` inside the wheel the way ld.so does: a name already loaded (by file
    name or SONAME) is reused; DT_RUNPATH applies to an object's own needs only, DT_RPATH also to the
    needs of everything it loads (as long as those have no DT_RUNPATH of their own)."""
    result = LoadResult(loaded=[root])
    loaded_names: dict[str, str] = {posixpath.basename(root): root}
    root_info = contents.elf[root]
    if root_info.soname:
        loaded_names[root_info.soname] = root
    queue: list[tuple[str, list[str]]] = [(root, [])]
    while queue:
        current, inherited = queue.pop(0)
        info = contents.elf[current]
        if info.runpath:
            dirs = _origin_dirs(current, info.runpath)
            passed_on = inherited
        else:
            own = _origin_dirs(current, info.rpath)
            dirs = own + inherited
            passed_on = dirs
        for needed in info.needed:
            base = posixpath.basename(needed)
            if base in loaded_names:
                continue
            found = None
            for directory in dirs:
                candidate = posixpath.normpath(posixpath.join(directory, base))
                if candidate in contents.elf:
                    found = candidate
                    break
            if found is None:
                if not is_system(base):
                    result.unresolved.append((current, base))
                continue
            loaded_names[base] = found
            soname = contents.elf[found].soname
            if soname:
                loaded_names.setdefault(soname, found)
            result.loaded.append(found)
            queue.append((found, passed_on))
    return result


def _roots(contents: WheelContents) -> list[str]:
    """Binaries nothing else in the wheel asks for (extension modules, executables), then the rest."""
    wanted = {posixpath.basename(n) for info in contents.elf.values() for n in info.needed}
    roots = []
    for path, info in sorted(contents.elf.items()):
        if posixpath.basename(path) in wanted or (info.soname and info.soname in wanted):
            continue
        roots.append(path)
    return roots


def check_elf_binaries(
    target: Target, contents: WheelContents, claim: PythonClaim, policy_name: str | None, report: WheelReport
) -> None:
    from pipeline.profiles import linux_policy, musl_exports, stable_abi

    policy = linux_policy(policy_name, target.arch) if policy_name else None
    musl = musl_exports(target.profile, target.arch) if target.is_musl else frozenset()
    python_names: frozenset[str] | None = None
    python_label = ""
    if claim.abi3 and claim.minimum:
        python_names, python_label = (
            stable_abi(claim.minimum),
            f"the stable ABI (abi3) of CPython {claim.minimum}",
        )
    elif claim.versions:
        python_names, python_label = claim_exports(claim, report)

    def is_system(base: str) -> bool:
        if target.is_musl:
            return bool(MUSL_LIBC.match(base)) or bool(policy and base in policy.allowed_libraries)
        return bool(GLIBC_LOADER.match(base)) or bool(policy and base in policy.allowed_libraries)

    usable: dict[str, ElfInfo] = {}
    for path, info in sorted(contents.elf.items()):
        if info.arch != target.arch:
            report.add(
                "wrong-machine",
                f"{path} is built for {info.arch}, the target {target.name} runs {target.arch}: the loader refuses it",
                file=path,
            )
        elif not info.has_dynamic:
            if path.endswith(".so") or ".so." in path:
                report.add(
                    "no-dynamic-info",
                    f"{path} has no dynamic section or section headers; not checked",
                    file=path,
                    severity="warning",
                )
        else:
            usable[path] = info
            _check_relr(path, info, target, report)
    if len(usable) != len(contents.elf):
        contents = WheelContents(contents.filename_tags, contents.wheel_file_tags, contents.root_is_purelib,
                                 contents.members, usable, contents.pe, contents.dist_info)  # fmt: skip
    by_name = {posixpath.basename(p): p for p in contents.elf}
    checked: set[str] = set()
    reported: set[tuple[str, str]] = set()
    pending = _roots(contents)
    remaining = sorted(contents.elf)
    while pending or remaining:
        root = pending.pop(0) if pending else remaining.pop(0)
        if root in checked:
            continue
        load = simulate_load(root, contents, is_system)
        for binary, base in load.unresolved:
            if (binary, base) in reported:
                continue
            reported.add((binary, base))
            _report_unresolved(binary, base, contents.elf[binary], target, policy, by_name, report)
        provided = ProvidedBy([contents.elf[lib].defined for lib in load.loaded])
        bundled_versions: dict[str, set[str]] = {}
        for lib in load.loaded:
            for label in (posixpath.basename(lib), contents.elf[lib].soname):
                if label:
                    bundled_versions[label] = contents.elf[lib].version_definitions
        for binary in load.loaded:
            if binary in checked:
                continue
            checked.add(binary)
            info = contents.elf[binary]
            own = {k: v for k, v in bundled_versions.items() if k != posixpath.basename(binary)}
            _check_versions(binary, info, target, policy, own, report)
            _check_symbols(
                binary, info, target, musl, provided, python_names, python_label, claim, report,
                system_libraries=_allowed_system_libraries(load.loaded, contents, target, policy),
            )  # fmt: skip


def _check_relr(path: str, info: ElfInfo, target: Target, report: WheelReport) -> None:
    """DT_RELR is an error only where the target's musl profile cannot load it (< 1.2.4): the legacy musl
    1.2.3 targets. The default musl targets stand for the supported Alpine releases, whose musl does."""
    version = target.musl_version_key
    if not info.uses_relr or version is None or version >= MUSL_RELR_SINCE:
        return
    since = ".".join(map(str, MUSL_RELR_SINCE))
    report.add(
        "relr-unsupported",
        f"{path} uses DT_RELR (packed relative relocations): musl loads these from {since}, but {target.name} "
        f"stands for musl {target.musl_version} (Alpine 3.17 and older crash at load)",
        file=path, symbol="DT_RELR",
    )  # fmt: skip


def claim_exports(claim: PythonClaim, report: WheelReport) -> tuple[frozenset[str] | None, str]:
    """The names the interpreters a cpXY (or cpXYt) wheel claims all export, and a label for messages.
    A version no profile knows is said aloud: its Python symbols are not checked."""
    from pipeline.profiles import cpython_exports

    known: list[frozenset[str]] = []
    unknown: list[str] = []
    for version in claim.abi_versions:
        names = cpython_exports(version)
        if names is None:
            unknown.append(version)
        else:
            known.append(names)
    if unknown:
        report.add(
            "python-symbols-unchecked",
            f"no CPython profile for {', '.join(unknown)}: the extensions' Python C-API symbols were not checked "
            "for it (`rewheel profiles list` shows the versions known)",
            library="python", severity="warning",
        )  # fmt: skip
    if not known:
        return None, ""
    label = ", ".join(v for v in claim.abi_versions if v not in unknown)
    return frozenset.intersection(*known), f"CPython {label}"


def _allowed_system_libraries(
    loaded: list[str], contents: WheelContents, target: Target, policy: LinuxPolicy | None
) -> frozenset[str]:
    """Non-libc libraries the policy lets these binaries take from the system (musllinux: libz.so.1):
    their export lists are in no profile, so names they may define are accepted, as auditwheel does."""
    if policy is None:
        return frozenset()
    needed = {posixpath.basename(n) for path in loaded for n in contents.elf[path].needed}
    return frozenset(
        n
        for n in needed & policy.allowed_libraries
        if not MUSL_LIBC.match(n) and not GLIBC_LIBRARIES.match(n)
    )


def _report_unresolved(
    path: str,
    base: str,
    info: ElfInfo,
    target: Target,
    policy: LinuxPolicy | None,
    by_name: dict[str, str],
    report: WheelReport,
) -> None:
    if target.is_musl and (GLIBC_LIBRARIES.match(base) or GLIBC_LOADER.match(base)):
        report.add(
            "glibc-on-musl",
            f"{path} needs {base}, a glibc library that musl systems do not have: it was built against glibc",
            file=path,
            library=base,
        )
    elif LIBPYTHON.match(base):
        report.add(
            "links-libpython",
            f"{path} links {base}: extensions must take Python symbols from the interpreter; fails where Python is static",
            file=path, library=base, severity="warning",
        )  # fmt: skip
    else:
        where = by_name.get(base)
        hint = (
            f"; a copy is in the wheel at {where} but not on the RPATH/RUNPATH ({':'.join(info.runpath or info.rpath) or 'none'})"
            if where
            else f"; it is neither in the wheel nor a system library {policy.name if policy else target.name} allows"
        )
        report.add(
            "missing-library",
            f'{path} needs {base}{hint}: "cannot open shared object file"',
            file=path,
            library=base,
        )


def _check_versions(
    path: str,
    info: ElfInfo,
    target: Target,
    policy: LinuxPolicy | None,
    bundled_versions: dict[str, set[str]],
    report: WheelReport,
) -> None:
    symbols_by_version: dict[str, list[str]] = defaultdict(list)
    for symbol in info.undefined:
        if symbol.version:
            symbols_by_version[symbol.version].append(symbol.name)
    glibc_versions: list[str] = []
    for file, versions in info.version_needs.items():
        for version, _weak in versions:
            names = sorted(symbols_by_version.get(version, []))
            if file in bundled_versions:
                if version not in bundled_versions[file]:
                    report.add(
                        "missing-version",
                        f"{path} needs version {version} of {file}, which the bundled copy does not define",
                        file=path,
                        library=file,
                        symbol=version,
                    )
                continue
            prefix, _, number = version.partition("_")
            if target.is_musl:
                if prefix == "GLIBC" or GLIBC_LIBRARIES.match(file):
                    glibc_versions.append(version)
                continue
            if policy is None or prefix not in policy.symbol_versions:
                continue
            if number not in policy.symbol_versions[prefix]:
                allowed = sorted(policy.symbol_versions[prefix], key=version_key)
                newest = allowed[-1] if allowed else "none"
                if names:
                    for name in names:
                        report.add(
                            "too-new-symbol-version",
                            f"{path} uses {name}@{version} from {file}; {policy.name} provides {prefix} up to {newest}: "
                            f"the loader says \"version `{version}' not found\"",
                            file=path, library=file, symbol=f"{name}@{version}",
                        )  # fmt: skip
                else:
                    report.add(
                        "too-new-symbol-version",
                        f"{path} requires {version} from {file}; {policy.name} provides {prefix} up to {newest}",
                        file=path, library=file, symbol=version,
                    )  # fmt: skip
    if glibc_versions:
        names = sorted({f"{n}@{v}" for v in glibc_versions for n in symbols_by_version.get(v, [])})
        shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
        report.add(
            "glibc-on-musl",
            f"{path} was built against glibc: it requires glibc symbol versions ({', '.join(sorted(set(glibc_versions), key=version_key))}) "
            f"that musl does not provide: {shown or 'no symbols named'}",
            file=path, library="libc.so.6", symbol=", ".join(names[:50]) or None,
        )  # fmt: skip


def _check_symbols(
    path: str,
    info: ElfInfo,
    target: Target,
    musl: frozenset[str],
    provided: ProvidedBy,
    python_names: frozenset[str] | None,
    python_label: str,
    claim: PythonClaim,
    report: WheelReport,
    system_libraries: frozenset[str] = frozenset(),
) -> None:
    missing_musl: list[str] = []
    glibc_only: list[str] = []
    needs_cxx_runtime = any(n.startswith(("libstdc++", "libgcc_s")) for n in info.needed)
    for symbol in info.undefined:
        name = symbol.name
        if symbol.weak or name in provided:
            continue
        if PYTHON_SYMBOL.match(name):
            if python_names is not None and name not in python_names:
                code = "abi3-violation" if claim.abi3 else "missing-python-symbol"
                what = "is not part of" if claim.abi3 else "is not exported by"
                report.add(
                    code,
                    f"{path} uses {name}, which {what} {python_label}: \"undefined symbol: {name}\" at import",
                    file=path, library="python", symbol=name,
                )  # fmt: skip
            continue
        if not target.is_musl:
            continue  # glibc names: versions were checked above; glibc's own export list is not in any policy
        if symbol.version and symbol.version.startswith("GLIBC"):
            continue  # reported once per binary as glibc-on-musl
        if symbol.version_file and not GLIBC_LIBRARIES.match(symbol.version_file):
            continue  # bound to a named non-libc library (libgcc_s GCC_*, libstdc++ GLIBCXX_*): checked as a library
        if name in musl:
            continue
        if needs_cxx_runtime and CXX_RUNTIME_SYMBOL.match(name):
            continue
        if name.startswith(GLIBC_ONLY_HINT) or name.endswith("_chk"):
            glibc_only.append(name)
        elif not system_libraries:
            missing_musl.append(name)
        # else: a library the policy allows from the system (libz.so.1) is loaded too; its exports are no
        # profile's data, so the name may be its own (inflate, crc32): accepted like auditwheel accepts it
    if glibc_only:
        report.add(
            "glibc-on-musl",
            f"{path} uses glibc-only functions musl does not export: {', '.join(sorted(glibc_only))}: built against glibc",
            file=path, library="libc", symbol=", ".join(sorted(glibc_only)),
        )  # fmt: skip
    for name in sorted(missing_musl):
        report.add(
            "missing-symbol",
            f"{path} uses {name}, which neither musl {target.musl_version}'s libc nor any bundled library exports: "
            f"\"Error relocating {posixpath.basename(path)}: {name}: symbol not found\"",
            file=path, library="libc", symbol=name,
        )  # fmt: skip
