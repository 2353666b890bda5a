"""Smoke test: import a wheel's modules on its target's own runtime, and report the interpreter's own words.

A wheel is "installed" by unpacking it into a throwaway site folder (no pip, no network): its purelib and
platlib data folders are merged in, exactly where an installer would put them. The runtime's interpreter
then imports every top-level module and every extension module in one process and reports each import as
JSON; a failure keeps the loader's own message, e.g. musl's "Error relocating ...: symbol not found" or
glibc's "version `GLIBC_2.38' not found".

Which runtime: the target's (musllinux_1_2_x86_64 -> the musl CPython built here; manylinux x86_64 -> a
host CPython; manylinux aarch64 -> Debian's arm64 CPython under qemu-user), of the Python version the wheel's
tag demands. When no runtime here can host it (Windows; a Python version with no runtime), the result is
"cannot-host" with the reason - not a failure of the wheel.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from pipeline.errors import RewheelError
from pipeline.log import log
from pipeline.paths import cache_root
from pipeline.runtimes import HostingRuntime, RuntimeLimit, matching_limit
from pipeline.sandbox import run_sandboxed
from pipeline.targets import Target
from pipeline.util import version_key

PASSED = "passed"
FAILED = "failed"
CANNOT_HOST = "cannot-host"

IMPORT_TIMEOUT = 600  # seconds; an import under qemu is ~5x slower than native, and a hang is a failure

# Run inside the target's interpreter (a file: stdlib only, for every target Python); _run_imports copies it
# next to the site folder, which the sandbox and a Windows interpreter under wine both see.
IMPORTER = Path(__file__).with_name("smoke_importer.py")
IMPORTER_COPY = "rewheel_smoke_importer.py"


@dataclass
class CommandRun:
    """The recipe's (or --command's) test command: whether it ran and how it ended."""

    command: str | None = None
    ran: bool = False
    ok: bool | None = None  # None: not run
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"command": self.command, "ran": self.ran, "ok": self.ok, "error": self.error}


@dataclass
class SmokeResult:
    wheel: str
    target: str
    status: str  # "passed" | "failed" | "cannot-host"
    runtime: str | None = None
    message: str = ""
    imported: list[str] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)  # {"module" or "command": ..., "error": ...}
    python: str | None = None  # the interpreter that ran the imports
    output: str = ""  # the end of the test command's stdout and stderr (proof records show it)
    # modules smoke chose itself that need an optional extra the wheel does not declare: {"module", "reason"}
    skipped: list[dict[str, str]] = field(default_factory=list)
    # failures that a known limit of the runtime explains: {"module" or "command", "missing", "reason", "error"}
    runtime_limits: list[dict[str, str]] = field(default_factory=list)
    dependencies: list[str] = field(default_factory=list)  # name==version of each wheel installed beside it
    command: CommandRun = field(default_factory=CommandRun)
    attempted: int = 0  # modules whose import was tried

    @property
    def ok(self) -> bool:
        return self.status == PASSED

    @property
    def import_failures(self) -> list[dict[str, str]]:
        return [f for f in self.failures if "module" in f]

    def to_json(self) -> dict[str, Any]:
        return {
            "wheel": self.wheel,
            "target": self.target,
            "status": self.status,
            "ok": self.ok,
            "runtime": self.runtime,
            "python": self.python,
            "message": self.message,
            "imported": list(self.imported),
            "failures": list(self.failures),
            "output": self.output,
            "skipped": list(self.skipped),
            "runtime_limits": list(self.runtime_limits),
            "dependencies": list(self.dependencies),
            "command": self.command.to_json(),
        }


# ---------------------------------------------------------------------------------------------------------
# What the wheel is and needs


def wheel_tags(wheel: Path) -> frozenset[Tag]:
    try:
        _, _, _, tags = parse_wheel_filename(wheel.name)
    except InvalidWheelFilename as exc:
        raise RewheelError(f"{wheel.name}: not a wheel file name: {exc}") from None
    return tags


def required_python(tags: frozenset[Tag]) -> tuple[str | None, bool]:
    """("3.11", exact) for cp311 wheels; ("3.8", False) for cp38-abi3 (that version or newer); None: any 3.x."""
    versions = []
    for tag in tags:
        if tag.interpreter.startswith("cp") and tag.interpreter[2:].isdigit():
            digits = tag.interpreter[2:]
            versions.append((f"{digits[0]}.{digits[1:]}", tag.abi != "abi3"))
    if not versions:
        return None, False  # py3 / py2.py3: any interpreter
    return min(versions, key=lambda v: version_key(v[0]))


def _hosts(runtime: Any, spec: Target) -> bool:
    """The runtime hosts `spec` when one of its targets does (pipeline.targets.hosts: a musl 1.2 interpreter
    loads musllinux_1_1 wheels of its own musl profile, as a newer glibc loads older manylinux ones)."""
    from pipeline.targets import get_target, hosts

    return any(hosts(get_target(t), spec) for t in runtime.targets)


def choose_runtime(target: str, python: str | None, exact: bool) -> tuple[Any | None, str]:
    """A runtime that hosts `target` with a matching Python, or (None, why not)."""
    from pipeline.runtimes import UNHOSTED_PYTHONS, all_runtimes
    from pipeline.targets import get_target

    spec = get_target(target)
    if spec.is_windows and not any(target in r.targets for r in all_runtimes().values()):
        return (
            None,
            f"{target} is a Windows target no runtime here hosts (Windows CPythons run under wine for "
            "win_amd64 targets only; use a Windows runner)",
        )
    candidates: list[Any] = []
    for runtime in all_runtimes().values():
        version = getattr(runtime, "python_version", None)
        if version is None or not hasattr(runtime, "python"):
            continue  # an image or build environment, not an interpreter
        if _hosts(runtime, spec):
            candidates.append(runtime)
    if not candidates:
        return None, f"no runtime on this machine hosts {target}"

    def fits(runtime: Any) -> bool:
        if python is None:
            return True
        if exact:
            return bool(runtime.python_version == python)
        return version_key(runtime.python_version) >= version_key(python)

    fitting = [r for r in candidates if fits(r)]
    if not fitting and python in UNHOSTED_PYTHONS:
        return None, f"the wheel needs Python {python}: {UNHOSTED_PYTHONS[python]}"
    if not fitting:
        have = ", ".join(f"{r.name} (Python {r.python_version})" for r in candidates)
        need = f"Python {python}" + ("" if exact else " or newer")
        return None, f"the wheel needs {need} and no {target} runtime here has it; available: {have}"
    # Prefer one already built, then one this machine can build; then the oldest fitting Python (closest to
    # the tag's minimum, which is what an abi3 wheel promises).
    fitting.sort(
        key=lambda r: (not r.exists(), r.unavailable_reason() is not None, version_key(r.python_version))
    )
    chosen = fitting[0]
    if not chosen.exists() and chosen.unavailable_reason():
        return None, f"{chosen.name} cannot be built here: {chosen.unavailable_reason()}"
    return chosen, ""


# ---------------------------------------------------------------------------------------------------------
# Installing into a throwaway site folder


def install_into(wheel: Path, site: Path) -> list[str]:
    """Unpack `wheel` into `site` as an installer would; return the wheel's files relative to site."""
    from pipeline.unpack import unpack

    unpacked = unpack(wheel, site / ".unpacked")
    for entry in list(unpacked.iterdir()):
        if entry.name.endswith(".data") and entry.is_dir():
            for scheme in ("purelib", "platlib"):
                if (entry / scheme).is_dir():
                    _merge(entry / scheme, unpacked, collide=True)
            shutil.rmtree(entry)
    for entry in list(unpacked.iterdir()):
        _merge_entry(entry, site / entry.name)
    unpacked.rmdir()
    return [p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()]


def _merge(source: Path, dest: Path, *, collide: bool = False) -> None:
    for entry in list(source.iterdir()):
        _merge_entry(entry, dest / entry.name, collide=collide)


def _merge_entry(entry: Path, dest: Path, *, collide: bool = False) -> None:
    """Move entry to dest, merging folders. With `collide` (a wheel's .data schemes into its own top
    level) a path already there is an error; without it (wheels into one site) a later wheel's file wins,
    as with pip installing one after the other (namespace packages' shared files)."""
    if entry.is_dir() and dest.is_dir():
        _merge(entry, dest, collide=collide)
        entry.rmdir()
    elif (dest.exists() or dest.is_symlink()) and (collide or entry.is_dir() or dest.is_dir()):
        # One path from two places of the wheel (a .data/purelib entry over a top-level file, or a folder
        # over a file): an installer cannot place both, and silently keeping either would test other code.
        from pipeline.errors import UnsafeArchive

        raise UnsafeArchive(
            f"{dest.name!r} is installed twice (from a wheel's .data/purelib or platlib and its top level, "
            "or as a file and a folder): an installer cannot place both"
        )
    else:
        os.replace(entry, dest)


def pth_roots(site: Path, files: list[str]) -> list[str]:
    """Folders the wheel's top-level .pth files put on sys.path (pywin32: win32, win32/lib, Pythonwin), as paths
    relative to the site folder, spelled as in the wheel (a .pth written for Windows may differ in case)."""
    folders = {str(PurePosixPath(f).parent).lower(): str(PurePosixPath(f).parent) for f in files if "/" in f}
    roots = []
    for name in files:
        if "/" in name or not name.endswith(".pth"):
            continue
        for line in (site / name).read_text(encoding="utf-8", errors="replace").splitlines():
            entry = line.strip().replace("\\", "/").strip("/")
            if not entry or entry.startswith(("#", "import ", "import\t")) or ".." in entry.split("/"):
                continue
            if entry.lower() in folders:
                roots.append(folders[entry.lower()])
    return roots


def _under_root(path: PurePosixPath, roots: list[str]) -> PurePosixPath | None:
    """`path` relative to the deepest .pth root holding it, or None."""
    holding = [r for r in roots if path.parts[: len(PurePosixPath(r).parts)] == PurePosixPath(r).parts]
    if not holding:
        return None
    root = max(holding, key=lambda r: len(PurePosixPath(r).parts))
    return PurePosixPath(*path.parts[len(PurePosixPath(root).parts) :])


def modules_to_import(files: list[str], roots: list[str] | None = None) -> list[str]:
    """Top-level modules and packages, then every extension module (by dotted name), in a stable order.
    `roots`: folders a .pth file puts on sys.path: their extension modules import by their name there."""
    top: set[str] = set()
    extensions: set[str] = set()
    for name in files:
        path = PurePosixPath(name)
        inside = _under_root(path, roots or [])
        if inside is not None:
            stem = _module_stem(inside.name)
            if stem and _is_extension(inside.name) and _is_package_path(inside.parts[:-1], files):
                extensions.add(".".join([*inside.parts[:-1], stem]))
            continue
        first = path.parts[0]
        if first.endswith((".dist-info", ".data", ".libs")) or first.startswith("."):
            continue
        if len(path.parts) == 1:
            stem = _module_stem(path.name)
            if stem:
                top.add(stem)
            continue
        if path.parts[1:] == ("__init__.py",) or (path.name.startswith("__init__.") and len(path.parts) == 2):
            top.add(first)
        stem = _module_stem(path.name)
        if stem and _is_extension(path.name) and _is_package_path(path.parts[:-1], files):
            extensions.add(".".join([*path.parts[:-1], stem]))
    # Test packages need the project's test dependencies (pytest, objgraph, ...), which no user installs.
    extensions = {e for e in extensions if not is_test_module(e)}
    # A namespace package (no __init__) still imports by its folder name when it holds extensions.
    for ext in extensions:
        head = ext.split(".")[0]
        if head not in top:
            top.add(head)
    return sorted(top) + sorted(extensions - top)


def is_test_module(name: str) -> bool:
    """greenlet.tests, numpy._core.tests._ext, foo.testing: a project's own test suite, not its API."""
    return any(part in ("tests", "testing") for part in name.split(".")[1:])


def extension_files(files: list[str], roots: list[str] | None = None) -> dict[str, str]:
    """Dotted module name -> path (relative to the site folder) of each extension module in the wheel."""
    found = {}
    for name in files:
        path = PurePosixPath(name)
        if path.parts[0].endswith((".dist-info", ".data", ".libs")) or not _is_extension(path.name):
            continue
        stem = _module_stem(path.name)
        parts = (_under_root(path, roots or []) or path).parts[:-1]
        if stem and all(part.isidentifier() for part in parts):
            found[".".join([*parts, stem])] = name
    return found


def _is_extension(filename: str) -> bool:
    return filename.endswith((".so", ".pyd")) or ".so." in filename


def _module_stem(filename: str) -> str | None:
    if filename.endswith(".py"):
        stem = filename[:-3]
    elif _is_extension(filename):
        stem = filename.split(".", 1)[0]  # _speedups.cpython-311-x86_64-linux-musl.so -> _speedups
    else:
        return None
    return stem if stem.isidentifier() and stem != "__init__" else None


def _is_package_path(parts: tuple[str, ...], files: list[str]) -> bool:
    return all(part.isidentifier() for part in parts)


# ---------------------------------------------------------------------------------------------------------
# Running


def smoke_wheel(
    wheel: Path,
    target: str | None = None,
    *,
    imports: list[str] | None = None,
    command: str | None = None,
    requires: list[str] | None = None,
    find_links: Path | None = None,
    constraints: list[str] | None = None,
) -> SmokeResult:
    """Install `wheel` and its dependencies into a throwaway folder on `target`'s runtime and import its
    modules there.

    `imports`: modules to import, strictly (default: every top-level and extension module in the wheel but
    its test packages; then a module that needs an optional extra the wheel does not declare is skipped);
    `command`: a shell command run afterwards with the wheel on PYTHONPATH and the runtime's interpreter
    first on PATH as `python` (a recipe's test command); `requires`: more requirements: lines pinned with
    `--hash` (a recipe's `[test] requires`, e.g. numpy) are fetched by hash, other lines are resolved with the
    wheel's own dependencies; `find_links`: a wheelhouse folder searched for dependencies before the index.
    `constraints`: name==version pins its dependencies must take (a `build -r` wheelhouse's resolved set).
    Raises RewheelError for an unusable wheel or a pinned requirement that cannot be had."""
    wheel = Path(wheel)
    if not wheel.is_file():
        raise RewheelError(f"{wheel}: no such wheel file")
    tags = wheel_tags(wheel)
    from pipeline.targets import get_target, target_for_tags

    target = target or target_for_tags(tags).name  # the one rule verify and the index use

    spec = get_target(target)
    platforms = {t.platform for t in tags}
    fits = spec.accepts_any(platforms)
    if "any" not in platforms and target != "any" and not fits:
        # A glibc wheel on a musl target is exactly what smoke must expose, so run it anyway; only warn.
        log.say(f"smoke: {wheel.name} is tagged {', '.join(sorted(platforms))}, not {spec.platform_tag}")
    python, exact = required_python(tags)
    runtime, why_not = choose_runtime(target, python, exact)
    if runtime is None:
        return SmokeResult(wheel=wheel.name, target=target, status=CANNOT_HOST, message=why_not)
    if not runtime.exists():
        log.say(f"smoke: building runtime {runtime.name} (first use; cached afterwards)")
        runtime.build()
    interpreter = Path(runtime.python())
    result = SmokeResult(
        wheel=wheel.name, target=target, status=FAILED, runtime=runtime.name, python=str(interpreter)
    )
    result.command.command = command
    pinned_lines = [r for r in requires or [] if "--hash" in r]
    unpinned = [r for r in requires or [] if "--hash" not in r]
    with tempfile.TemporaryDirectory(prefix="rewheel-smoke-") as tmp:
        site = Path(tmp) / "site"
        site.mkdir()
        files = install_into(wheel, site)
        pinned = required_wheels(pinned_lines, spec, python)
        dependencies = _dependencies(wheel, spec, runtime, unpinned, pinned, find_links, constraints)
        provided: set[str] = set()
        for needed in [*pinned, *dependencies.wheels]:
            before = set(_top_level_names(_site_files(site)))
            install_into(needed, site)
            provided |= set(_top_level_names(_site_files(site))) - before
        result.dependencies = [_wheel_id(w) for w in [*pinned, *dependencies.wheels]]
        if result.dependencies:
            log.say(f"smoke: {wheel.name}: added dependencies {', '.join(result.dependencies)}")
        if dependencies.problem:
            log.say(f"smoke: {wheel.name}: some dependencies could not be installed: {dependencies.problem}")
        runtime.prepare_site(site)  # e.g. Nano Server: cut the wheel's imports to what the edition exports
        chosen_here = not imports
        roots = pth_roots(site, files)
        modules = imports if imports else modules_to_import(files, roots)
        if not modules:
            raise RewheelError(f"{wheel.name}: no importable module found; pass --import")
        log.say(f"smoke: {wheel.name} on {runtime.name}: importing {', '.join(modules)}")
        result.attempted = len(modules)
        _import_each(interpreter, site, modules, extension_files(files, roots), result)
        _retry_after_the_others(interpreter, site, modules, extension_files(files, roots), result)
        own = set(_top_level_names(files))
        _judge_imports(result, runtime, own, provided, chosen_here, dependencies.problem)
        if command and not result.failures:
            _run_command(interpreter, site, Path(tmp), command, result)
            _judge_command(result, runtime)
    _conclude(result, runtime.name)
    return result


def _import_each(
    interpreter: Path, site: Path, modules: list[str], extensions: dict[str, str], result: SmokeResult
) -> None:
    """Import `modules` in one process; when the interpreter dies at one of them, that one is the failure and
    a fresh process goes on with the rest, so one crash does not hide the verdict on every later module."""
    remaining = list(modules)
    while remaining:
        _run_imports(interpreter, site, remaining, extensions, result)
        if any(f["error"].startswith("timed out") for f in result.failures):
            return  # a hang is the verdict; another process would only hang again
        # _run_imports charged a crash to the first module with no report; the ones after it were never tried
        reported = {*result.imported, *(f.get("module") for f in result.failures)}
        remaining = [m for m in remaining if m not in reported]


def _retry_after_the_others(
    interpreter: Path, site: Path, modules: list[str], extensions: dict[str, str], result: SmokeResult
) -> None:
    """Some modules only import after another one, as their users do it (pywin32's dde after win32ui): a
    second process imports everything that worked, then the failures again, which tells an order dependency
    from a broken module. (Not in the same process: a failed init can leave state a second init trips on.)"""
    retry = [
        f["module"]
        for f in result.failures
        if "module" in f and not f["error"].startswith(("interpreter died", "ModuleNotFoundError"))
    ]
    if not retry or not result.imported:
        return
    again = SmokeResult(wheel=result.wheel, target=result.target, status=FAILED)
    _run_imports(interpreter, site, [*result.imported, *retry], extensions, again)
    now_ok = set(again.imported) & set(retry)
    if now_ok:
        result.failures = [f for f in result.failures if f.get("module") not in now_ok]
        done = {*result.imported, *now_ok}
        result.imported = [m for m in modules if m in done]


def _dependencies(
    wheel: Path,
    spec: Target,
    runtime: Any,
    extra: list[str],
    pinned: list[Path],
    find_links: Path | None,
    constraints: list[str] | None = None,
) -> Any:
    from pipeline.smoke_dependencies import install_set

    return install_set(
        wheel, spec, runtime, extra=extra, pinned=pinned, find_links=find_links, constraints=constraints
    )


def _wheel_id(wheel: Path) -> str:
    name, version, _, _ = parse_wheel_filename(wheel.name)
    return f"{name}=={version}"


def _site_files(site: Path) -> list[str]:
    return [p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()]


def _top_level_names(files: list[str]) -> list[str]:
    """Importable top-level names the files provide (packages, modules, extension modules)."""
    names = set()
    for name in files:
        path = PurePosixPath(name)
        first = path.parts[0]
        if first.endswith((".dist-info", ".data", ".libs")) or first.startswith("."):
            continue
        stem = _module_stem(first) if len(path.parts) == 1 else first
        if stem and stem.isidentifier():
            names.add(stem)
    return sorted(names)


# ---------------------------------------------------------------------------------------------------------
# Verdicts: a failure of the wheel, an optional extra it does not declare, or a limit of the runtime

_MISSING_MODULE = re.compile(r"^ModuleNotFoundError: No module named '([^']+)'")
# Python's own words for a circular import: the module's binary loaded and its init ran (the loader's verdict
# is in), then the package's Python code imported the half-made module back. Real wheels ship such modules that
# nobody can import directly on any machine (scipy 1.16's scipy.linalg._matfuncs_sqrtm_triu), while every import
# a user makes works.
_CIRCULAR_IMPORT = re.compile(
    r"^ImportError: cannot import name .* from partially initialized module '([^']+)'"
)


def runtime_limits(runtime: HostingRuntime) -> list[RuntimeLimit]:
    """What the runtime lacks that the real target has: the runtime's own list, then any optional standard
    library module it was built without (a CPython on the target can have it; a wheel that imports it is not
    at fault)."""
    return [*runtime.limits(), *_STDLIB_LIMITS]


_STDLIB_LIMITS = [
    RuntimeLimit(
        missing=name,
        pattern=rf"^ModuleNotFoundError: No module named '{re.escape(name)}(\.[\w.]+)?'",
        reason=f"this interpreter was built without the standard library module {name}",
    )
    for name in (
        # the standard library modules a CPython build may lack, because each needs an outside library
        "tkinter",
        "_tkinter",
        "turtle",
        "idlelib",
        "sqlite3",
        "_sqlite3",
        "ctypes",
        "_ctypes",
        "ssl",
        "_ssl",
        "_hashlib",
        "lzma",
        "_lzma",
        "bz2",
        "_bz2",
        "zlib",
        "readline",
        "curses",
        "_curses",
        "dbm",
        "_dbm",
        "_gdbm",
        "_uuid",
        "pyexpat",
        "_decimal",
    )
]


def _judge_imports(
    result: SmokeResult,
    runtime: Any,
    own: set[str],
    provided: set[str],
    chosen_here: bool,
    dependency_problem: str | None,
) -> None:
    """Sort the import failures: a runtime limit, an optional extra (only for modules smoke chose itself),
    or a failure of the wheel."""
    limits = runtime_limits(runtime)
    kept = []
    for failure in result.failures:
        module, error = failure.get("module"), failure.get("error", "")
        if module is None:
            kept.append(failure)
            continue
        limit = matching_limit(limits, error)
        if limit is not None:
            result.runtime_limits.append(
                {"module": module, "missing": limit.missing, "reason": limit.reason, "error": error}
            )
            continue
        missing = _MISSING_MODULE.match(error)
        top = missing[1].split(".")[0] if missing else None
        if top and dependency_problem and top not in own and top not in provided:
            # pip would have installed it (or built it): not a verdict on this wheel, nor on the runtime
            result.runtime_limits.append({
                "module": module, "missing": top, "error": error,
                "reason": f"the wheel's dependencies could not be installed here: {dependency_problem}",
            })  # fmt: skip
            continue
        circular = _CIRCULAR_IMPORT.match(error)
        if chosen_here and circular and circular[1] == module:
            result.skipped.append({
                "module": module,
                "reason": "a circular import in the package's own code when imported directly (its binary "
                          "loaded; no user imports it by this name)",
            })  # fmt: skip
            continue
        if chosen_here and top and top not in own and top not in provided:
            result.skipped.append({
                "module": module,
                "reason": f"needs {top}, which is neither in the wheel nor among its dependencies "
                          "(an optional extra)",
            })  # fmt: skip
            continue
        kept.append(failure)
    result.failures = kept


def _judge_command(result: SmokeResult, runtime: Any) -> None:
    run = result.command
    if run.ok is not False:
        return
    limit = matching_limit(runtime_limits(runtime), run.error or "")
    if limit is not None:
        result.failures = [f for f in result.failures if "command" not in f]
        result.runtime_limits.append(
            {
                "command": run.command or "",
                "missing": limit.missing,
                "reason": limit.reason,
                "error": run.error or "",
            }
        )


def _conclude(result: SmokeResult, runtime_name: str) -> None:
    imports = f"imported {len(result.imported)}/{result.attempted}"
    skipped = f", {len(result.skipped)} skipped" if result.skipped else ""
    if result.failures:
        result.status = FAILED
        first = result.failures[0]
        if "module" in first:
            result.message = f"{first['module']}: {first['error']}"
        else:
            result.message = f"{imports}{skipped}; test command failed: {first['error']}"
        return
    if result.runtime_limits:
        result.status = CANNOT_HOST
        first_limit = result.runtime_limits[0]
        where = first_limit.get("module") or "the test command"
        lacks = (
            ""
            if first_limit["reason"].startswith("the wheel's")
            else f"the runtime lacks {first_limit['missing']}: "
        )
        result.message = (
            f"{lacks}{first_limit['reason']} ({where}: {first_limit['error']}; {imports}{skipped})"
        )
        return
    result.status = PASSED
    ran = ""
    if result.command.ran:
        ran = "; test command passed"
    result.message = f"{imports} module(s) on {runtime_name}{skipped}{ran}"


def required_wheels(requires: list[str], spec: Target, python: str | None) -> list[Path]:
    """Wheels for a smoke test's requirements (pinned with --hash), for the target's platform: fetched once
    with pip download (--require-hashes, binary only, no dependencies: the recipe lists each one) and cached
    under <cache>/smoke-requires/."""
    if not requires:
        return []
    key = hashlib.sha256(json.dumps([requires, spec.name, python]).encode()).hexdigest()[:16]
    folder = cache_root() / "smoke-requires" / f"{spec.name}-{python or 'any'}-{key}"
    if (folder / "complete").is_file():
        return sorted(folder.glob("*.whl"))
    log.say(f"smoke: fetching test requirements for {spec.name}: {', '.join(r.split()[0] for r in requires)}")
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rewheel-smoke-requires-", dir=folder.parent) as tmp:
        listing = Path(tmp) / "requirements.txt"
        listing.write_text("\n".join(requires) + "\n", encoding="utf-8")
        download = Path(tmp) / "wheels"
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                   "--only-binary", ":all:", "--require-hashes", "--implementation", "cp", "-d", str(download),
                   "-r", str(listing)]  # fmt: skip
        if python:
            command += ["--python-version", python]
        for platform in spec.compatible_platforms():
            command += ["--platform", platform]
        from pipeline.upstream_index import tool_environment

        # rewheel's index, never a pip.conf (the same one gaps and fetch use).
        completed = subprocess.run(command, capture_output=True, text=True, env=tool_environment())
        if completed.returncode != 0:
            lines = [ln.strip() for ln in completed.stderr.splitlines() if ln.strip()]
            raise RewheelError(
                f"smoke requirements for {spec.name} could not be fetched: {lines[-1] if lines else 'pip failed'}"
            )
        shutil.rmtree(folder, ignore_errors=True)
        download.rename(folder)
    (folder / "complete").write_text("\n".join(requires) + "\n", encoding="utf-8")
    return sorted(folder.glob("*.whl"))


def _clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    # The host's Python settings must not leak into the target's interpreter.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "_PYTHON"))}
    env.update(extra or {})
    return env


SANDBOX_MEMORY = 4 << 30  # address space for the imports (wine and qemu-user start within it too)
SANDBOX_FILE_SIZE = 256 << 20  # the largest file an import or test command may write
# wine exits (status 231) when a write reaches RLIMIT_FSIZE, where Linux programs get EFBIG (measured with wine
# 8.0): above the sandbox's 512 MiB /tmp, so a full /tmp (an error wine reports) comes first.
WINE_FILE_SIZE = 1 << 30
# Inside the sandbox home and scratch space are its private /tmp; PYTHONDONTWRITEBYTECODE: the site is read-only.
_SANDBOX_ENV = {"HOME": "/tmp", "TMPDIR": "/tmp", "PYTHONDONTWRITEBYTECODE": "1"}


def _runtime_of(interpreter: Path) -> Any | None:
    """The cached runtime `interpreter` belongs to, if any (a host CPython's lies outside the cache)."""
    from pipeline.paths import runtimes_root
    from pipeline.runtimes import all_runtimes

    root = runtimes_root()
    if root not in interpreter.parents:
        return None
    name = interpreter.relative_to(root).parts[0]
    return all_runtimes().get(name)


def _sandbox_access(interpreter: Path, work: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """(readable, writable, scratch) folders the interpreter needs in the sandbox beyond the read-only host: the
    runtime's root, a wrapper script's own interpreter (its #! line), `work` (the site folder's parent), wine's
    prefix. Nothing is writable: an import needs no writes, and the one writable place, the sandbox's private
    /tmp, is bounded in size; scratch is what the runtime writes on the real target (a Windows user's Temp),
    fresh for each run."""
    readable = [interpreter.parent.parent, interpreter.resolve().parent.parent, work]
    writable: list[Path] = []
    scratch: list[Path] = []
    runtime = _runtime_of(interpreter)
    if runtime is not None:
        readable += runtime.sandbox_readable()
        scratch += runtime.sandbox_scratch()
    try:
        with open(interpreter, "rb") as handle:
            first = handle.readline(4096)
    except OSError:
        first = b""
    if first.startswith(b"#!"):
        shebang = first[2:].decode(errors="replace").split()
        if shebang and shebang[0].startswith("/"):
            relay = Path(shebang[0])
            readable += [relay.parent.parent, relay.resolve().parent.parent]
    return readable, writable, scratch


# qemu-user reserves a 32-bit guest's whole 4 GiB address space up front (virtual, never committed), beyond the
# guest's own use: on top of SANDBOX_MEMORY, or qemu-arm cannot start ("Unable to reserve 0xfffff000 bytes of
# virtual address space"). qemu 7.2 cannot reserve less for Arm (-R below its 0xffff0000 commpage asserts).
QEMU_32BIT_GUEST_SPACE = 4 << 30
EMULATED_32BIT_ARCHES = ("armv7l",)


def _memory_limit(interpreter: Path) -> int:
    runtime = _runtime_of(interpreter)
    if getattr(runtime, "arch", None) in EMULATED_32BIT_ARCHES:
        return SANDBOX_MEMORY + QEMU_32BIT_GUEST_SPACE
    return SANDBOX_MEMORY


def _file_size_limit(interpreter: Path) -> int:
    runtime = _runtime_of(interpreter)
    return WINE_FILE_SIZE if type(runtime).__name__ == "WindowsEmbedCPython" else SANDBOX_FILE_SIZE


def _run_imports(
    interpreter: Path, site: Path, modules: list[str], extensions: dict[str, str], result: SmokeResult
) -> None:
    # The wheel's code runs here: in the sandbox (pipeline/sandbox.py).
    readable, writable, scratch = _sandbox_access(interpreter, site.parent)
    importer = site.parent / IMPORTER_COPY
    shutil.copyfile(IMPORTER, importer)
    try:
        completed = run_sandboxed(
            # -S: the runtime's own site-packages (a host CPython's are full of packages) must not stand in for
            # a dependency the wheel did not get; the importer adds the smoke site itself.
            [str(interpreter), "-S", "-s", str(importer), str(site), json.dumps(extensions), *modules],
            cwd=site.parent,
            readable=readable,
            writable=writable,
            scratch=scratch,
            env={**_clean_env(), **_SANDBOX_ENV},
            timeout=IMPORT_TIMEOUT,
            memory_bytes=_memory_limit(interpreter),
            file_size=_file_size_limit(interpreter),
        )
    except subprocess.TimeoutExpired:
        result.failures.append({"module": modules[0], "error": f"timed out after {IMPORT_TIMEOUT} s"})
        return
    reported = set()
    for line in completed.stdout.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if not isinstance(item, dict) or "module" not in item:
            continue
        reported.add(item["module"])
        if item.get("ok"):
            result.imported.append(item["module"])
        else:
            result.failures.append({"module": item["module"], "error": item.get("error", "")})
    unreported = [m for m in modules if m not in reported]
    if unreported:
        # The interpreter died mid-import (a crash in an extension's init): its stderr is the message.
        stderr = " ".join(completed.stderr.split())[-2000:] or f"exit status {completed.returncode}"
        result.failures.append({"module": unreported[0], "error": f"interpreter died: {stderr}"})


OUTPUT_TAIL_CHARS = 4000


def _run_command(interpreter: Path, site: Path, tmp: Path, command: str, result: SmokeResult) -> None:
    shims = tmp / "bin"
    shims.mkdir()
    for alias in ("python", "python3"):
        (shims / alias).symlink_to(interpreter)
    env = _clean_env({"PYTHONPATH": str(site), "PATH": f"{shims}{os.pathsep}{os.environ.get('PATH', '')}"})
    readable, writable, scratch = _sandbox_access(interpreter, tmp)
    try:
        # A recipe's test command runs the wheel's code too: the same sandbox as the imports.
        completed = run_sandboxed(
            ["/bin/sh", "-c", command],
            cwd=tmp,
            readable=readable,
            writable=writable,
            scratch=scratch,
            env={**env, **_SANDBOX_ENV},
            timeout=IMPORT_TIMEOUT,
            memory_bytes=_memory_limit(interpreter),
            file_size=_file_size_limit(interpreter),
        )
    except subprocess.TimeoutExpired:
        error = f"timed out after {IMPORT_TIMEOUT} s"
        result.command = CommandRun(command, ran=True, ok=False, error=error)
        result.failures.append({"command": command, "error": error})
        return
    result.output = (completed.stdout + completed.stderr)[-OUTPUT_TAIL_CHARS:]
    if completed.returncode != 0:
        lines = [ln for ln in completed.stderr.strip().splitlines() if ln.strip()]
        error = lines[-1] if lines else f"exit status {completed.returncode}"
        result.command = CommandRun(command, ran=True, ok=False, error=error)
        result.failures.append({"command": command, "error": error})
        return
    result.command = CommandRun(command, ran=True, ok=True)
