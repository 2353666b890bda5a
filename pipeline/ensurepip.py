"""Give a CPython a pip that works there: find the pip wheel its ensurepip installs, say whether that pip
crashes on static interpreters, and swap in a patched wheel (keeping a backup).

The crash: pip up to 24.1.2 calls ctypes.CDLL(None) unguarded in pip/_internal/utils/glibc.py when
os.confstr("CS_GNU_LIBC_VERSION") fails (musl), and a statically linked interpreter cannot dlopen(), so
`python -m venv` fails inside ensurepip with "OSError: Dynamic loading not supported".

The Python is read from its files, never run: the interpreter may be for another architecture or be the
very one that cannot run pip. What ensurepip does is derived from its own source:
- 3.10-3.12 open `_bundled/pip-{_PIP_VERSION}-py3-none-any.whl` by exact name, unless the build-time
  WHEEL_PKG_DIR holds a wheel for every name in _PACKAGE_NAMES (setuptools and pip; 3.12: pip only);
- 3.13+ take the last `pip-*.whl` in WHEEL_PKG_DIR if any, else the same `_bundled` name.
So the patched wheel keeps the upstream file name and the same version; anything else is refused.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import RewheelError
from pipeline.util import sha256_file

GLIBC_MODULE = "pip/_internal/utils/glibc.py"
BACKUP_SUFFIX = ".rewheel-orig"  # not ".whl", so neither ensurepip's name lookup nor its glob sees it
_WHEEL_PKG_DIR_RE = re.compile(r"""['"]WHEEL_PKG_DIR['"]\s*:\s*['"]([^'"]*)['"]""")
_STDLIB_GLOBS = ("lib/python3.*/ensurepip/__init__.py", "Lib/ensurepip/__init__.py")
_CATCHES_OSERROR = {"OSError", "EnvironmentError", "IOError", "Exception", "BaseException"}


class EnsurepipError(RewheelError):
    """The Python or the wheel does not fit; the message says why."""


@dataclass(frozen=True)
class PythonInstall:
    prefix: Path
    stdlib: Path  # the folder holding ensurepip/ (lib/python3.11)
    version: str  # "3.11", from the stdlib folder name ("" on Windows layouts)
    pip_version: str  # ensurepip's _PIP_VERSION
    package_names: tuple[str, ...]  # ensurepip's _PACKAGE_NAMES; () when it only looks for pip (3.13+)
    wheel_pkg_dir: Path | None  # the build-time WHEEL_PKG_DIR, when set

    @property
    def bundled_dir(self) -> Path:
        return self.stdlib / "ensurepip" / "_bundled"

    def to_json(self) -> dict[str, object]:
        return {
            "prefix": str(self.prefix),
            "stdlib": str(self.stdlib),
            "version": self.version,
            "ensurepip_pip_version": self.pip_version,
            "wheel_pkg_dir": str(self.wheel_pkg_dir) if self.wheel_pkg_dir else None,
        }


@dataclass(frozen=True)
class PipWheelCheck:
    python: PythonInstall
    wheel: Path  # the file ensurepip would install
    origin: str  # "bundled" | "WHEEL_PKG_DIR"
    version: str
    affected: bool
    reason: str
    sha256: str
    backup: Path | None

    def to_json(self) -> dict[str, object]:
        return {
            "python": self.python.to_json(),
            "pip_wheel": str(self.wheel),
            "origin": self.origin,
            "pip_version": self.version,
            "affected": self.affected,
            "reason": self.reason,
            "sha256": self.sha256,
            "backup": str(self.backup) if self.backup else None,
        }


@dataclass(frozen=True)
class InstallOutcome:
    target: Path
    backup: Path | None
    changed: bool  # False when the same bytes were already there
    check: PipWheelCheck  # the state after installing

    def to_json(self) -> dict[str, object]:
        return {
            "installed": str(self.target),
            "backup": str(self.backup) if self.backup else None,
            "changed": self.changed,
            "after": self.check.to_json(),
        }


def _constants(source: str) -> dict[str, object]:
    """Top-level constant assignments of a module (strings and tuples of strings)."""
    found: dict[str, object] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                found[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return found


def _stdlib_candidates(path: Path) -> tuple[list[Path], str | None]:
    """Folders that may hold ensurepip/, and the interpreter's file name when `path` is an executable."""
    if path.is_file():
        exe = Path(os.path.realpath(path))
        roots = [exe.parent.parent, exe.parent]  # bin/python3.11 (POSIX) or python.exe (Windows)
        name: str | None = exe.name
    else:
        roots = [path, path / "install", path / "python" / "install"]  # python-build-standalone layouts
        name = None
    found: list[Path] = []
    for root in roots:
        if (root / "ensurepip" / "__init__.py").is_file():  # given the stdlib folder itself
            found.append(root)
        for pattern in _STDLIB_GLOBS:
            found.extend(p.parent.parent for p in sorted(root.glob(pattern)))
        if found:
            break
    return found, name


def locate_python(path: Path) -> PythonInstall:
    """Read a CPython installation (prefix, stdlib folder or interpreter path) without running it."""
    path = Path(path)
    if not path.exists():
        raise EnsurepipError(f"{path}: no such Python prefix or executable")
    candidates, exe_name = _stdlib_candidates(path)
    if exe_name and len(candidates) > 1:
        wanted = re.sub(r"^python(3\.\d+t?).*$", r"python\1", exe_name)
        candidates = [c for c in candidates if c.name == wanted] or candidates
    if not candidates:
        raise EnsurepipError(
            f"{path}: no ensurepip found (looked for lib/python3.*/ensurepip and Lib/ensurepip)"
        )
    if len(candidates) > 1:
        names = ", ".join(c.name for c in candidates)
        raise EnsurepipError(f"{path}: holds several Pythons ({names}); name the interpreter instead")
    stdlib = candidates[0]
    constants = _constants((stdlib / "ensurepip" / "__init__.py").read_text(encoding="utf-8"))
    pip_version = constants.get("_PIP_VERSION")
    if not isinstance(pip_version, str):
        raise EnsurepipError(
            f"{stdlib}/ensurepip/__init__.py: no _PIP_VERSION; this ensurepip is not understood"
        )
    package_names = constants.get("_PACKAGE_NAMES", ())
    version_match = re.match(r"^python(3\.\d+)", stdlib.name)
    return PythonInstall(
        prefix=stdlib.parent.parent if version_match else stdlib.parent,
        stdlib=stdlib,
        version=version_match.group(1) if version_match else "",
        pip_version=pip_version,
        package_names=tuple(package_names) if isinstance(package_names, tuple) else (),
        wheel_pkg_dir=_wheel_pkg_dir(stdlib),
    )


def _wheel_pkg_dir(stdlib: Path) -> Path | None:
    for data in sorted(stdlib.glob("_sysconfigdata_*.py")):
        match = _WHEEL_PKG_DIR_RE.search(data.read_text(encoding="utf-8", errors="replace"))
        if match and match.group(1):
            return Path(match.group(1))
    return None


def _wheels_in(folder: Path, name: str) -> list[Path]:
    try:
        return sorted(
            p for p in folder.iterdir() if p.name.startswith(f"{name}-") and p.name.endswith(".whl")
        )
    except OSError:
        return []


def ensurepip_pip_wheel(python: PythonInstall) -> tuple[Path, str]:
    """The pip wheel this ensurepip installs, and where it comes from ("bundled" or "WHEEL_PKG_DIR")."""
    if python.wheel_pkg_dir:
        pips = _wheels_in(python.wheel_pkg_dir, "pip")
        if python.package_names:
            # 3.10-3.12: the folder is used only when it has every package ensurepip installs.
            if pips and all(_wheels_in(python.wheel_pkg_dir, n) for n in python.package_names):
                return pips[-1], "WHEEL_PKG_DIR"
        elif pips:
            return pips[-1], "WHEEL_PKG_DIR"
    bundled = python.bundled_dir / f"pip-{python.pip_version}-py3-none-any.whl"
    if not bundled.is_file():
        raise EnsurepipError(
            f"{python.stdlib}: ensurepip expects {bundled.name} in {bundled.parent}, which is missing"
        )
    return bundled, "bundled"


def _catches_oserror(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    for kind in types:
        name = kind.attr if isinstance(kind, ast.Attribute) else getattr(kind, "id", "")
        if name in _CATCHES_OSERROR:
            return True
    return False


def unguarded_cdll_none(source: str) -> list[int]:
    """Line numbers of `ctypes.CDLL(None)` calls not inside a try that catches OSError."""
    tree = ast.parse(source)
    guarded: set[int] = set()  # ids of nodes inside a guarding try body
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(_catches_oserror(h) for h in node.handlers):
            for statement in node.body:
                guarded.update(id(inner) for inner in ast.walk(statement))
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or id(node) in guarded:
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if (
            name == "CDLL"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value is None
        ):
            lines.append(node.lineno)
    return lines


def pip_wheel_affected(wheel: Path) -> tuple[bool, str]:
    """Whether this pip wheel crashes where dlopen() is unavailable, and why (one line)."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            try:
                source = archive.read(GLIBC_MODULE).decode("utf-8")
            except KeyError:
                return False, f"{GLIBC_MODULE} is absent: no glibc probe to crash"
    except (zipfile.BadZipFile, OSError) as exc:
        raise EnsurepipError(f"{wheel.name}: not a readable wheel: {exc}") from None
    lines = unguarded_cdll_none(source)
    if lines:
        where = ", ".join(str(n) for n in lines)
        return True, f"{GLIBC_MODULE} line {where}: ctypes.CDLL(None) is not guarded against OSError"
    return False, f"{GLIBC_MODULE}: every ctypes.CDLL(None) is guarded against OSError"


def check_python(path: Path) -> PipWheelCheck:
    python = locate_python(path)
    wheel, origin = ensurepip_pip_wheel(python)
    affected, reason = pip_wheel_affected(wheel)
    version = wheel.name.removeprefix("pip-").partition("-")[0]
    backup = wheel.with_name(wheel.name + BACKUP_SUFFIX)
    return PipWheelCheck(
        python=python,
        wheel=wheel,
        origin=origin,
        version=version,
        affected=affected,
        reason=reason,
        sha256=sha256_file(wheel),
        backup=backup if backup.is_file() else None,
    )


def _check_replacement(wheel: Path, current: PipWheelCheck) -> None:
    """Refuse a wheel that ensurepip would not pick up, or that would not fix anything."""
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    from pipeline.wheelfile import check_wheel_name, record_problems

    if not wheel.is_file():
        raise EnsurepipError(f"{wheel}: no such wheel")
    try:
        name, version, build, tags = parse_wheel_filename(wheel.name)
    except InvalidWheelFilename as exc:
        raise EnsurepipError(f"{wheel.name}: not a wheel file name: {exc}") from None
    expected_name = current.wheel.name
    if name != "pip" or build or {str(t) for t in tags} != {"py3-none-any"}:
        raise EnsurepipError(
            f"{wheel.name}: ensurepip opens {expected_name} by name; use the patched wheel with exactly that "
            "name (wheelhouse/ensurepip/), not the build-tagged one made for the index"
        )
    if str(version) != current.version:
        raise EnsurepipError(
            f"{wheel.name}: this Python's ensurepip installs pip {current.version} ({current.wheel}); "
            f"the wheel is pip {version}"
        )
    check_wheel_name(wheel)
    problems = record_problems(wheel)
    if problems:
        raise EnsurepipError(f"{wheel.name}: RECORD is wrong ({problems[0]}); re-pack it with rewheel")
    affected, reason = pip_wheel_affected(wheel)
    if affected:
        raise EnsurepipError(f"{wheel.name}: still crashes on static interpreters: {reason}")


def install_pip_wheel(path: Path, wheel: Path) -> InstallOutcome:
    """Put `wheel` where this Python's ensurepip takes pip from, keeping the original as *.rewheel-orig."""
    current = check_python(path)
    _check_replacement(wheel, current)
    target = current.wheel
    backup = target.with_name(target.name + BACKUP_SUFFIX)
    if sha256_file(wheel) == current.sha256:
        return InstallOutcome(target, current.backup, False, current)
    try:
        if not backup.exists():
            # Only the first original is kept: re-installing must never overwrite it with a patched file.
            shutil.copy2(target, backup)
        staging = target.with_name(f".{target.name}.rewheel-new")
        shutil.copyfile(wheel, staging)
        os.chmod(staging, 0o644)
        os.replace(staging, target)
    except OSError as exc:
        raise EnsurepipError(f"{target}: cannot replace: {exc.strerror or exc}") from None
    return InstallOutcome(target, backup, True, check_python(path))


def restore_pip_wheel(path: Path) -> PipWheelCheck:
    """Put the original wheel back from its backup."""
    current = check_python(path)
    if current.backup is None:
        raise EnsurepipError(f"{current.wheel}: no {BACKUP_SUFFIX} backup to restore")
    try:
        os.replace(current.backup, current.wheel)
    except OSError as exc:
        raise EnsurepipError(f"{current.wheel}: cannot restore: {exc.strerror or exc}") from None
    return check_python(path)


@dataclass(frozen=True)
class PatchedPip:
    version: str
    index_wheel: Path  # build-tagged, for the private index
    ensurepip_wheel: Path  # upstream file name, for ensurepip/_bundled


def make_patched_wheels(
    recipe_path: Path, out_dir: Path, versions: list[str] | None = None
) -> list[PatchedPip]:
    """Fetch, patch and re-pack the recipe's wheel sources (both names) into out_dir."""
    import tempfile

    from pipeline.builders.backends import BuildRequest
    from pipeline.builders.backends.wheel_source import ENSUREPIP_FOLDER, WheelSourceBackend
    from pipeline.fetch import fetch, pin_for_source
    from pipeline.plan import plan
    from pipeline.recipe import load_recipe

    recipe = load_recipe(recipe_path)
    jobs = [j for j in plan([recipe]) if j.kind == "wheel"]
    known = [j.version for j in jobs]
    for wanted in versions or ():
        if wanted not in known:
            raise EnsurepipError(
                f"{recipe_path}: no wheel source for version {wanted}; it has {', '.join(known)}"
            )
    backend = WheelSourceBackend()
    made = []
    with tempfile.TemporaryDirectory(prefix="rewheel-wheel-source-") as scratch:
        for job in jobs:
            if versions and job.version not in versions:
                continue
            source = fetch(pin_for_source(recipe.source_for(job.version), recipe.name))
            work = Path(scratch) / job.id
            work.mkdir()
            result = backend.build(
                BuildRequest(
                    job=job,
                    source_tree=None,
                    source_file=source,
                    out_dir=out_dir,
                    work_dir=work,
                )
            )
            index_wheel = result.wheels[0]
            ensurepip_wheel = out_dir / ENSUREPIP_FOLDER / source.name
            if not ensurepip_wheel.is_file():
                raise EnsurepipError(f"{job.id}: the backend did not write {ensurepip_wheel}")
            made.append(PatchedPip(job.version, index_wheel, ensurepip_wheel))
    return made
