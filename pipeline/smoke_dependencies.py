"""The wheels smoke installs beside the wheel under test: its declared dependencies, as pip would install them
on the target, and the extra requirements a caller asks for.

pip reads the wheel's METADATA `Requires-Dist` and evaluates each marker against the interpreter it installs
for. smoke does the same for the TARGET (sys_platform, platform_machine, implementation and Python version of
the runtime that imports the wheel; never the host's): a `sys_platform == "win32"` dependency is installed for
a Windows target and not for a musl one, and a dependency that only an extra asks for is not installed at all.
The resulting requirements are resolved by uv (the resolver `gaps` uses) for the target's platform and
Python, binary wheels only, with the caller's wheelhouse as an extra source of files (`--find-links`), so
what rewheel built is found beside what the index has. Each file is taken by the sha256 the resolution
reports, through pipeline.fetch (cached); a wheel in the wheelhouse is used where it lies, after its hash is
checked.
"""

from __future__ import annotations

import subprocess
import tempfile
import zipfile
from dataclasses import dataclass, field
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from pipeline import toml
from pipeline.errors import RewheelError
from pipeline.targets import Target, get_target


@dataclass
class Dependencies:
    """What a smoke run installed beside the wheel, and what it could not."""

    wheels: list[Path] = field(default_factory=list)
    declared: list[str] = field(default_factory=list)  # the wheel's requirements that apply on the target
    problem: str | None = None  # why some could not be installed (then `wheels` may be incomplete)

    def names(self) -> list[str]:
        return [f"{n}=={v}" for n, v in (_name_version(w) for w in self.wheels)]


def _name_version(wheel: Path) -> tuple[str, str]:
    name, version, _, _ = parse_wheel_filename(wheel.name)
    return str(canonicalize_name(name)), str(version)


def wheel_requirements(wheel: Path) -> tuple[str, list[Requirement]]:
    """The wheel's project name and its METADATA Requires-Dist entries, parsed."""
    with zipfile.ZipFile(wheel) as archive:
        metadata = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
        if not metadata:
            raise RewheelError(f"{wheel.name}: no .dist-info/METADATA in the wheel")
        message = BytesParser().parsebytes(archive.read(metadata[0]), headersonly=True)
    requirements = []
    for line in message.get_all("Requires-Dist") or []:
        try:
            requirements.append(Requirement(str(line)))
        except InvalidRequirement as exc:
            raise RewheelError(f"{wheel.name}: unreadable Requires-Dist {line!r}: {exc}") from None
    return str(message.get("Name") or _name_version(wheel)[0]), requirements


def marker_environment(
    target: Target, python_version: str, full_version: str | None = None
) -> dict[str, str]:
    """PEP 508 marker variables of a CPython `python_version` on `target` (what that interpreter would report)."""
    if target.is_windows:
        system = {"os_name": "nt", "sys_platform": "win32", "platform_system": "Windows"}
        # platform.machine() on Windows: AMD64, ARM64, x86 (Target.arch already uses Windows' spelling)
        machine = {"AMD64": "AMD64", "ARM64": "ARM64"}.get(target.arch, "x86")
    elif target.is_linux:
        system = {"os_name": "posix", "sys_platform": "linux", "platform_system": "Linux"}
        machine = target.arch
    else:
        raise RewheelError(f"target {target.name}: no marker environment for a non-OS target")
    full = full_version or f"{python_version}.0"
    environment = {key: "" for key in default_environment()}
    environment.update(system)
    environment.update({
        "platform_machine": machine,
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "implementation_version": full,
        "python_version": python_version,
        "python_full_version": full,
        "extra": "",  # extras are not installed
    })  # fmt: skip
    return environment


def applicable(requirements: list[Requirement], environment: dict[str, str]) -> list[Requirement]:
    """The requirements pip would install on that environment without extras."""
    return [r for r in requirements if r.marker is None or r.marker.evaluate(environment)]


def resolution_target(target: Target, runtime: Any) -> Target:
    """The OS target whose platform the dependencies are resolved for: the smoke target itself, or for a pure
    wheel ("any") the newest platform its runtime hosts."""
    if target.is_linux or target.is_windows:
        return target
    hosted = [get_target(name) for name in getattr(runtime, "targets", ())]
    hosted = [t for t in hosted if t.is_linux or t.is_windows]
    if not hosted:
        raise RewheelError(f"runtime {runtime.name} hosts no operating-system target to resolve for")
    return hosted[-1]


def install_set(
    wheel: Path,
    target: Target,
    runtime: Any,
    *,
    extra: list[str] | None = None,
    pinned: list[Path] | None = None,
    find_links: Path | None = None,
    constraints: list[str] | None = None,
) -> Dependencies:
    """The dependency wheels to install beside `wheel` for `runtime` on `target`.

    `extra`: more requirement lines (unpinned; resolved together with the wheel's own); `pinned`: wheels
    already fetched by hash (a recipe's `[test] requires`): they take part in the resolution as exact pins and
    are not fetched again; `constraints`: name==version pins the dependencies must take when they appear (a
    `build -r` wheelhouse's resolved set: smoke imports what the user's install gets). A resolution that fails is reported in `problem`, not raised: the imports still
    run, and smoke says which missing module the failure explains."""
    python = str(runtime.python_version)
    os_target = resolution_target(target, runtime)
    environment = marker_environment(os_target, python, getattr(runtime, "full_version", None))
    own_name, requirements = wheel_requirements(wheel)
    own = canonicalize_name(own_name)
    declared = [r for r in applicable(requirements, environment) if canonicalize_name(r.name) != own]
    result = Dependencies(declared=[_without_marker(r) for r in declared])
    lines = [*result.declared, *(extra or [])]
    if not lines:
        return result
    already = {_name_version(w)[0]: _name_version(w)[1] for w in pinned or []}
    lines += [f"{name}=={version}" for name, version in already.items()]
    try:
        packages = _resolve(lines, os_target, python, find_links, constraints or [])
    except RewheelError as exc:
        result.problem = str(exc)
        return result
    from pipeline.gaps import best_wheel, target_tags

    tags = target_tags(os_target, python)
    for package in packages:
        name = canonicalize_name(str(package["name"]))
        if name == own or name in already:
            continue
        files = [_file(w) for w in package.get("wheels", []) or []]
        chosen = best_wheel([f for f, _ in files], tags)
        if chosen is None:
            result.problem = f"{name} {package.get('version')}: no wheel of it fits {os_target.name}"
            continue
        try:
            result.wheels.append(
                _local_copy(chosen, dict((f.filename, p) for f, p in files)[chosen.filename])
            )
        except RewheelError as exc:
            result.problem = str(exc)
    return result


def _without_marker(requirement: Requirement) -> str:
    stripped = Requirement(str(requirement))
    stripped.marker = None
    return str(stripped)


def _resolve(
    lines: list[str], target: Target, python: str, find_links: Path | None, constraints: list[str]
) -> list[dict[str, Any]]:
    from pipeline.gaps import _uv, uv_platform
    from pipeline.upstream_index import tool_environment, uv_index_options

    with tempfile.TemporaryDirectory(prefix="rewheel-smoke-deps-") as tmp:
        requirements = Path(tmp) / "requirements.in"
        requirements.write_text("\n".join(lines) + "\n", encoding="utf-8")
        lock = Path(tmp) / "pylock.toml"
        # rewheel's index settings, never a pip.conf or uv.toml (the same index gaps and fetch use)
        sources = uv_index_options()
        if constraints:
            pins = Path(tmp) / "constraints.txt"
            pins.write_text("\n".join(constraints) + "\n", encoding="utf-8")
            sources += ["--constraint", str(pins)]
        if find_links is not None and find_links.is_dir():
            sources += ["--find-links", str(find_links)]
            if "--index-strategy" not in sources:
                sources += ["--index-strategy", "unsafe-best-match"]
        command = [
            _uv(), "pip", "compile", str(requirements), "--format", "pylock.toml", "-o", str(lock),
            "--python-platform", uv_platform(target), "--python-version", python,
            "--only-binary", ":all:", "--no-header", "--quiet", *sources,
        ]  # fmt: skip
        completed = subprocess.run(command, capture_output=True, text=True, env=tool_environment(), cwd=tmp)
        if completed.returncode != 0:
            lines_out = [ln.strip() for ln in completed.stderr.splitlines() if ln.strip()]
            reason = " ".join(lines_out[-4:]) if lines_out else f"uv exited {completed.returncode}"
            raise RewheelError(
                f"the dependencies cannot be resolved for {target.name} / Python {python}: {reason}"
            )
        data = toml.loads(lock.read_text(encoding="utf-8"))
    packages: list[dict[str, Any]] = data.get("packages", [])
    return packages


def _file(entry: dict[str, Any]) -> tuple[Any, str | None]:
    """(IndexFile, local path or None) of one lock file entry (a find-links folder gives a path)."""
    from pipeline.gaps import _index_file

    index_file = _index_file(entry)
    path = entry.get("path")
    if not path and index_file.url.startswith("file:"):
        from urllib.parse import urlparse
        from urllib.request import url2pathname

        path = url2pathname(urlparse(index_file.url).path)
    return index_file, str(path) if path else None


def _local_copy(file: Any, path: str | None) -> Path:
    """The verified local file for a resolved wheel: fetched by its sha256 (cached), or the wheelhouse's own
    file after its hash is checked."""
    from pipeline.fetch import Pin, fetch
    from pipeline.util import sha256_file

    if path:
        local = Path(path)
        if file.sha256 and sha256_file(local) != file.sha256:
            raise RewheelError(f"{local}: its sha256 changed while smoke was resolving")
        return local
    if not file.sha256:
        raise RewheelError(f"{file.filename}: the resolution reports no sha256 for it; refusing to fetch")
    return fetch(Pin(filename=file.filename, sha256=file.sha256, url=file.url or None))
