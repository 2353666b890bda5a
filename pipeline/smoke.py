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
from pipeline.output import progress as say
from pipeline.paths import cache_root
from pipeline.sandbox import run_sandboxed
from pipeline.targets import Target

PASSED = "passed"
FAILED = "failed"
CANNOT_HOST = "cannot-host"

IMPORT_TIMEOUT = 600  # seconds; an import under qemu is ~5x slower than native, and a hang is a failure

# Run inside the target's interpreter: import each module, report each outcome as one JSON line.
# It must run on any CPython 3.6+, so it stays plain.
_IMPORTER = r"""
import importlib, importlib.machinery, importlib.util, json, os, sys, traceback
site = sys.argv[1]
extension_files = json.loads(sys.argv[2])
sys.path.insert(0, site)

def load(name):
    path = extension_files.get(name)
    stem = name.rpartition(".")[2]
    names = {stem + suffix for suffix in importlib.machinery.EXTENSION_SUFFIXES}
    if path and os.path.basename(path) not in names:
        # A suffix this interpreter does not look for (a linux-gnu .so on musl): hand the file to the
        # dynamic loader anyway, so the report carries the loader's verdict, not just "no module".
        parent = name.rpartition(".")[0]
        if parent:
            try:
                importlib.import_module(parent)
            except ImportError:
                pass  # its __init__ imports this very extension by suffix; the loader's verdict still matters
        loader = importlib.machinery.ExtensionFileLoader(name, os.path.join(site, path))
        spec = importlib.util.spec_from_file_location(name, loader.path, loader=loader)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        loader.exec_module(module)
        return
    importlib.import_module(name)

for name in sys.argv[3:]:
    try:
        load(name)
        print(json.dumps({"module": name, "ok": True}), flush=True)
    except BaseException as exc:
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        print(json.dumps({"module": name, "ok": False, "error": detail}), flush=True)
"""


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

    @property
    def ok(self) -> bool:
        return self.status == PASSED

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
    return min(versions, key=lambda v: tuple(int(x) for x in v[0].split(".")))


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split("."))


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
        return _version_key(runtime.python_version) >= _version_key(python)

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
        key=lambda r: (not r.exists(), r.unavailable_reason() is not None, _version_key(r.python_version))
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


def modules_to_import(files: list[str]) -> list[str]:
    """Top-level modules and packages, then every extension module (by dotted name), in a stable order."""
    top: set[str] = set()
    extensions: set[str] = set()
    for name in files:
        path = PurePosixPath(name)
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
    # A namespace package (no __init__) still imports by its folder name when it holds extensions.
    for ext in extensions:
        head = ext.split(".")[0]
        if head not in top:
            top.add(head)
    return sorted(top) + sorted(extensions - top)


def extension_files(files: list[str]) -> dict[str, str]:
    """Dotted module name -> path (relative to the site folder) of each extension module in the wheel."""
    found = {}
    for name in files:
        path = PurePosixPath(name)
        if path.parts[0].endswith((".dist-info", ".data", ".libs")) or not _is_extension(path.name):
            continue
        stem = _module_stem(path.name)
        if stem and all(part.isidentifier() for part in path.parts[:-1]):
            found[".".join([*path.parts[:-1], stem])] = name
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
    progress: bool = True,
) -> SmokeResult:
    """Install `wheel` into a throwaway folder on `target`'s runtime and import its modules there.

    `imports`: modules to import (default: every top-level and extension module in the wheel);
    `command`: a shell command run afterwards with the wheel on PYTHONPATH and the runtime's interpreter
    first on PATH as `python` (a recipe's test command); `requires`: pip requirement lines pinned with
    `--hash` (what the imports need, e.g. numpy), fetched for the target's platform and unpacked beside the
    wheel. Raises RewheelError for an unusable wheel or a requirement that cannot be had."""
    wheel = Path(wheel)
    if not wheel.is_file():
        raise RewheelError(f"{wheel}: no such wheel file")
    tags = wheel_tags(wheel)
    from pipeline.targets import get_target, target_for_tags

    target = target or target_for_tags(tags).name  # the one rule verify and the index use

    spec = get_target(target)
    platforms = {t.platform for t in tags}
    fits = spec.accepts_any(platforms)
    if progress and "any" not in platforms and target != "any" and not fits:
        # A glibc wheel on a musl target is exactly what smoke must expose, so run it anyway; only warn.
        say(f"smoke: {wheel.name} is tagged {', '.join(sorted(platforms))}, not {spec.platform_tag}")
    python, exact = required_python(tags)
    runtime, why_not = choose_runtime(target, python, exact)
    if runtime is None:
        return SmokeResult(wheel=wheel.name, target=target, status=CANNOT_HOST, message=why_not)
    if not runtime.exists():
        if progress:
            say(f"smoke: building runtime {runtime.name} (first use; cached afterwards)")
        runtime.build(progress=progress)
    interpreter = Path(runtime.python())
    result = SmokeResult(
        wheel=wheel.name, target=target, status=FAILED, runtime=runtime.name, python=str(interpreter)
    )
    with tempfile.TemporaryDirectory(prefix="rewheel-smoke-") as tmp:
        site = Path(tmp) / "site"
        site.mkdir()
        files = install_into(wheel, site)
        for needed in required_wheels(requires or [], spec, python, progress=progress):
            install_into(needed, site)
        runtime.prepare_site(site)  # e.g. Nano Server: cut the wheel's imports to what the edition exports
        modules = imports if imports else modules_to_import(files)
        if not modules:
            raise RewheelError(f"{wheel.name}: no importable module found; pass --import")
        if progress:
            say(f"smoke: {wheel.name} on {runtime.name}: importing {', '.join(modules)}")
        _run_imports(interpreter, site, modules, extension_files(files), result)
        if command and not result.failures:
            _run_command(interpreter, site, Path(tmp), command, result)
    if result.failures:
        first = result.failures[0]
        where = first.get("module") or first.get("command")
        result.message = f"{where}: {first['error']}"
    else:
        result.status = PASSED
        result.message = f"imported {len(result.imported)} module(s) on {runtime.name}"
    return result


def required_wheels(
    requires: list[str], spec: Target, python: str | None, *, progress: bool = True
) -> list[Path]:
    """Wheels for a smoke test's requirements (pinned with --hash), for the target's platform: fetched once
    with pip download (--require-hashes, binary only, no dependencies: the recipe lists each one) and cached
    under <cache>/smoke-requires/."""
    if not requires:
        return []
    key = hashlib.sha256(json.dumps([requires, spec.name, python]).encode()).hexdigest()[:16]
    folder = cache_root() / "smoke-requires" / f"{spec.name}-{python or 'any'}-{key}"
    if (folder / "complete").is_file():
        return sorted(folder.glob("*.whl"))
    if progress:
        say(f"smoke: fetching test requirements for {spec.name}: {', '.join(r.split()[0] for r in requires)}")
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


def _sandbox_access(interpreter: Path, work: Path) -> tuple[list[Path], list[Path]]:
    """(readable, writable) folders the interpreter needs in the sandbox beyond the read-only host: the runtime's
    root, a wrapper script's own interpreter (its #! line), `work` (the site folder's parent), wine's prefix.
    Nothing is writable: an import needs no writes, and the one writable place, the sandbox's private /tmp, is
    bounded in size."""
    readable = [interpreter.parent.parent, interpreter.resolve().parent.parent, work]
    writable: list[Path] = []
    runtime = _runtime_of(interpreter)
    if runtime is not None:
        readable.append(runtime.root())
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
    if runtime is not None and type(runtime).__name__ == "WindowsEmbedCPython":
        from pipeline.runtimes.windows_embed import wine_prefix_dir

        # Read-only: wine runs from a prefix it cannot write (measured, wine 8.0), so the Windows code a wheel
        # brings cannot leave anything in the prefix every Windows runtime shares, and a sandboxed run's own
        # wineserver never races another's over its registry files.
        readable.append(wine_prefix_dir())
    return readable, writable


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
    readable, writable = _sandbox_access(interpreter, site.parent)
    try:
        completed = run_sandboxed(
            [str(interpreter), "-s", "-c", _IMPORTER, str(site), json.dumps(extensions), *modules],
            cwd=site.parent,
            readable=readable,
            writable=writable,
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


def _run_command(interpreter: Path, site: Path, tmp: Path, command: str, result: SmokeResult) -> None:
    shims = tmp / "bin"
    shims.mkdir()
    for alias in ("python", "python3"):
        (shims / alias).symlink_to(interpreter)
    env = _clean_env({"PYTHONPATH": str(site), "PATH": f"{shims}{os.pathsep}{os.environ.get('PATH', '')}"})
    readable, writable = _sandbox_access(interpreter, tmp)
    try:
        # A recipe's test command runs the wheel's code too: the same sandbox as the imports.
        completed = run_sandboxed(
            ["/bin/sh", "-c", command],
            cwd=tmp,
            readable=readable,
            writable=writable,
            env={**env, **_SANDBOX_ENV},
            timeout=IMPORT_TIMEOUT,
            memory_bytes=_memory_limit(interpreter),
            file_size=_file_size_limit(interpreter),
        )
    except subprocess.TimeoutExpired:
        result.failures.append({"command": command, "error": f"timed out after {IMPORT_TIMEOUT} s"})
        return
    if completed.returncode != 0:
        lines = [ln for ln in completed.stderr.strip().splitlines() if ln.strip()]
        error = lines[-1] if lines else f"exit status {completed.returncode}"
        result.failures.append({"command": command, "error": error})
