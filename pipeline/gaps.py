"""Which distributions of a requirements file lack a wheel for a target: the `gaps` stage.

Resolution is uv's (`uv pip compile --python-platform ... --python-version ... --format pylock.toml`): a real
resolver that evaluates environment markers for the target (platform_machine, sys_platform, python_version of
T and V, not the host's, which pip's `--platform` cannot do). Its PEP 751 lock lists, for every resolved
distribution, the sdist and the wheels with their URLs and sha256 as the index serves them, so one call gives
both the resolved set and the file lists, hash-pinned.

Nothing from outside steers it: the requirements file is read and checked by requirements.py (pip's parser,
pip's hash-checking mode, no index options, bounded includes) and uv gets a file rewheel writes; the index is
rewheel's own (upstream_index.py), with pip and uv config files off. uv never builds (--no-build): a
distribution with no wheel at all is resolved from static metadata (see `resolve`), so no package's code runs
on this host. Each fitting upstream wheel is verified for the target as build -r verifies it, so gaps never
proposes a wheel build -r would then refuse.

Status per distribution, judged with packaging.tags against the target's own ordered tag list (so a wheel
uv's platform name also accepts, e.g. a newer musllinux policy, is not taken for granted):
- upstream-wheel: a binary wheel on the index fits the target (the best one, as pip would rank it);
- pure: the best fitting wheel is py*-none-any;
- needs-build: no wheel fits, an sdist exists;
- unavailable: neither (nothing rewheel can do without another source).
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename

from pipeline import toml
from pipeline.errors import RewheelError
from pipeline.requirements import RequirementsSet, read_requirements
from pipeline.targets import Target, get_target
from pipeline.upstream_index import index_settings, tool_environment, uv_index_options
from pipeline.util import atomic_path

UPSTREAM_WHEEL = "upstream-wheel"
PURE = "pure"
NEEDS_BUILD = "needs-build"
UNAVAILABLE = "unavailable"
STATUSES = (UPSTREAM_WHEEL, PURE, NEEDS_BUILD, UNAVAILABLE)

_PYTHON_VERSION = re.compile(r"^3\.\d{1,2}$")
_WINDOWS_UV_PLATFORMS = {
    "win_amd64": "x86_64-pc-windows-msvc",
    "win_arm64": "aarch64-pc-windows-msvc",
    "win32": "i686-pc-windows-msvc",
}


@dataclass(frozen=True)
class IndexFile:
    """One file of a resolved distribution, as the index lists it."""

    filename: str
    url: str
    sha256: str

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")


@dataclass
class Gap:
    """One distribution of the resolved set and what the target needs for it."""

    name: str  # canonical (normalised) name
    version: str
    status: str
    file: IndexFile | None  # the wheel pip would pick, or the sdist for needs-build
    recipe: Path | None = None  # recipes/<name>.toml when one exists
    recipe_has_version: bool = False  # the recipe already lists this version as a [[source]]
    sdist: IndexFile | None = None
    rejected: list[tuple[str, str]] = field(default_factory=list)  # fitting wheels that failed verify

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "status": self.status,
            "recipe": str(self.recipe) if self.recipe else None,
            "recipe_has_version": self.recipe_has_version,
            "file": self.file.filename if self.file else None,
            "sha256": self.file.sha256 if self.file else None,
            "url": self.file.url if self.file else None,
            "rejected": [{"file": name, "finding": finding} for name, finding in self.rejected],
        }


@dataclass
class GapsReport:
    target: str
    python: str
    requirements: list[Gap] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(g.status == status for g in self.requirements)

    def to_json(self) -> dict[str, object]:
        return {
            "target": self.target,
            "python": self.python,
            "counts": {s: self.count(s) for s in STATUSES},
            "requirements": [g.to_json() for g in self.requirements],
        }


# ------------------------------------------------------------------------------------------- target tags


def target_platforms(target: Target) -> list[str]:
    if target.is_linux and target.policy_platform is None:
        raise RewheelError(
            f"target {target.name}: policy {target.policy!r} is not a manylinux/musllinux policy"
        )
    if not (target.is_linux or target.is_windows):
        raise RewheelError(f"target {target.name}: gaps needs an operating-system target (linux or windows)")
    return target.compatible_platforms()


def target_tags(target: Target, python: str) -> list[Tag]:
    """Every tag a CPython `python` on `target` accepts, best first (pip's preference order)."""
    major, _, minor = python.partition(".")
    version = (int(major), int(minor))
    platforms = target_platforms(target)
    interpreter = f"cp{major}{minor}"
    return [
        *cpython_tags(version, abis=[interpreter], platforms=platforms),
        *compatible_tags(version, interpreter=interpreter, platforms=platforms),
    ]


# uv knows no 32-bit Arm platform (its --python-platform list has no armv7): an armv7l target resolves as the
# x86_64 platform of the same libc and policy. The marker environment then differs in platform_machine only,
# and which wheel fits the target is decided by rewheel's own tag list (target_tags), not by uv.
_UV_ARCH_STAND_IN = {"armv7l": "x86_64"}


def uv_platform(target: Target) -> str:
    """uv's --python-platform for the target (it sets the marker environment: machine, sys_platform, ...)."""
    if target.is_linux:
        arch = _UV_ARCH_STAND_IN.get(target.arch, target.arch)
        if target.libc == "musl":
            return f"{arch}-unknown-linux-musl"
        return f"{arch}-{target.policy}"  # e.g. aarch64-manylinux_2_17
    if target.is_windows and target.platform_tag in _WINDOWS_UV_PLATFORMS:
        return _WINDOWS_UV_PLATFORMS[target.platform_tag]
    raise RewheelError(f"target {target.name}: no uv platform for it; gaps handles Linux and Windows targets")


def best_wheel(files: list[IndexFile], tags: list[Tag]) -> IndexFile | None:
    """The wheel pip would install: the one whose best tag ranks highest in the target's list."""
    ranked = ranked_wheels(files, tags)
    return ranked[0] if ranked else None


def is_pure(filename: str) -> bool:
    _, _, _, tags = parse_wheel_filename(filename)
    return all(t.abi == "none" and t.platform == "any" for t in tags)


# ------------------------------------------------------------------------------------------- resolving

# uv names each package it would have to build in this hint when --no-build is on.
_WHEELS_REQUIRED = re.compile(r"Wheels are required for `([^`]+)`")
_SDIST_ONLY_ROUNDS = 64
_MAX_METADATA_BYTES = 1 << 20
NEVER = 'python_version < "0"'  # an override with this marker takes a package out of uv's resolution


@dataclass
class SdistOnly:
    """A distribution with no wheel for the target, resolved by rewheel from metadata read without a build."""

    name: str
    version: str
    sdist: IndexFile
    requires_dist: list[str]

    def lock_entry(self) -> dict[str, object]:
        sdist = {"name": self.sdist.filename, "url": self.sdist.url, "hashes": {"sha256": self.sdist.sha256}}
        return {"name": self.name, "version": self.version, "sdist": sdist, "wheels": []}


def _uv() -> str:
    from uv import find_uv_bin  # a dependency of rewheel: the resolver

    return str(find_uv_bin())


def _run_uv(
    requirements: RequirementsSet,
    static: dict[str, SdistOnly],
    target: Target,
    python: str,
    *,
    no_deps: bool,
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, object]]]:
    extra = [r for entry in static.values() for r in entry.requires_dist]
    with tempfile.TemporaryDirectory(prefix="rewheel-gaps-") as tmp:
        folder = Path(tmp)
        listing, constraints = requirements.write(folder, extra)
        overrides = folder / "overrides.txt"
        overrides.write_text("".join(f"{name} ; {NEVER}\n" for name in static), encoding="utf-8")
        lock = folder / "pylock.toml"
        # --no-build: the resolver never runs an sdist's build (setup.py egg_info and the like) on this
        # host; a distribution with no wheel is resolved from its static metadata (sdist_only below).
        command = [
            _uv(), "pip", "compile", str(listing), "--constraint", str(constraints), "--overrides",
            str(overrides), "--no-build", "--format", "pylock.toml", "-o", str(lock),
            "--python-platform", uv_platform(target), "--python-version", python,
            "--no-header", "--quiet", *(["--no-deps"] if no_deps else []), *uv_index_options(),
        ]  # fmt: skip
        completed = subprocess.run(command, capture_output=True, text=True, env=tool_environment(), cwd=tmp)
        packages: list[dict[str, object]] = []
        if completed.returncode == 0:
            packages = toml.loads(lock.read_text(encoding="utf-8")).get("packages", [])
    return completed, packages


def resolve(
    requirements: Path | RequirementsSet, target: Target, python: str, *, no_deps: bool = False
) -> list[dict[str, object]]:
    """The resolved set as PEP 751 lock entries (name, version, sdist, wheels) for `target` and `python`.

    uv resolves a requirements file rewheel writes from the validated lines (never the user's file), with
    config files off and rewheel's index only (upstream_index.py), and never builds. uv then rejects a
    distribution with no wheel for the target: it is taken out of uv's resolution by an override and resolved
    here (the highest version with an sdist the file allows); its dependencies come from a wheel of the same
    version for another platform (PEP 658 metadata, else its METADATA), else the sdist's PKG-INFO when that is
    Metadata 2.2+ and does not mark Requires-Dist dynamic, else a metadata build inside the sandbox, and are
    handed to uv as requirements; with no sandbox here it is refused."""
    if not isinstance(requirements, RequirementsSet):
        requirements = read_requirements(requirements)
    static: dict[str, SdistOnly] = {}
    for _ in range(_SDIST_ONLY_ROUNDS):
        completed, packages = _run_uv(requirements, static, target, python, no_deps=no_deps)
        if completed.returncode == 0:
            return [*packages, *(entry.lock_entry() for entry in static.values())]
        wanted = [canonicalize_name(n) for n in _WHEELS_REQUIRED.findall(completed.stderr)]
        new = [name for name in dict.fromkeys(wanted) if name not in static]
        if not new:
            break
        for name in new:
            static[name] = sdist_only(name, requirements, python, need_metadata=not no_deps)
    lines = [ln.strip() for ln in completed.stderr.splitlines() if ln.strip()]
    reason = " ".join(lines[-6:]) if lines else f"uv exited {completed.returncode}"
    raise RewheelError(f"{requirements.source}: cannot resolve for {target.name} / Python {python}: {reason}")


def _index_listing(name: str) -> list[dict[str, object]]:
    """Every file the configured indexes list for project `name` (Simple API, through the fetch layer)."""

    import requests

    from pipeline.fetch import _project_files

    files: list[dict[str, object]] = []
    with requests.Session() as session:
        session.headers["User-Agent"] = "rewheel-gaps"
        if os.environ.get("PIP_CERT"):
            session.verify = os.environ["PIP_CERT"]
        for index in index_settings().urls:
            try:
                files += _project_files(session, index, name)
            except (requests.RequestException, ValueError) as exc:
                raise RewheelError(f"{name}: reading the index's file list failed: {exc}") from None
    return files


def _sha256_of_entry(file: dict[str, object]) -> str:
    hashes = file.get("hashes")
    return str(hashes.get("sha256", "")) if isinstance(hashes, dict) else ""


def index_sdist(name: str, version: str) -> IndexFile | None:
    """The sdist of NAME==VERSION as the index lists it. uv leaves sdists out of its lock under --no-build,
    so they are looked up here, only for the distributions that need one."""
    from packaging.utils import InvalidSdistFilename, parse_sdist_filename
    from packaging.version import Version

    found = []
    for file in _index_listing(name):
        filename = str(file.get("filename") or "")
        try:
            _, listed = parse_sdist_filename(filename)
        except InvalidSdistFilename:
            continue
        if listed == Version(version) and len(_sha256_of_entry(file)) == 64:
            found.append(IndexFile(filename, str(file["url"]), _sha256_of_entry(file)))
    found.sort(key=lambda f: not f.filename.endswith(".tar.gz"))  # pip's order: .tar.gz before .zip
    return found[0] if found else None


def sdist_only(name: str, requirements: RequirementsSet, python: str, *, need_metadata: bool) -> SdistOnly:
    """Version, sdist and dependencies of a distribution that has no wheel, without building it."""
    from packaging.specifiers import SpecifierSet
    from packaging.utils import InvalidSdistFilename, parse_sdist_filename

    specifier = SpecifierSet()
    for line in requirements.lines_for(name):
        specifier &= line.requirement.specifier
    allowed = requirements.allowed_hashes(name)
    candidates = []
    listing = _index_listing(name)
    for file in listing:
        filename = str(file.get("filename") or "")
        try:
            _, version = parse_sdist_filename(filename)
        except InvalidSdistFilename:
            continue
        sha256 = _sha256_of_entry(file)
        if file.get("yanked") or len(sha256) != 64 or not specifier.contains(version):
            continue
        if allowed is not None and sha256 not in allowed[0]:
            continue  # pip's hash-checking mode considers only the files the hashes allow
        candidates.append((version, file))
    if not candidates:
        raise RewheelError(f"{name}: no wheel of it fits and the index has no sdist the requirements allow")
    version, file = max(candidates, key=lambda c: c[0])
    sdist = IndexFile(str(file["filename"]), str(file["url"]), _sha256_of_entry(file))
    wheels = []
    for entry in listing:
        try:
            wheel_version = parse_wheel_filename(str(entry.get("filename") or ""))[1]
        except ValueError:
            continue
        if wheel_version == version and len(_sha256_of_entry(entry)) == 64:
            wheels.append(entry)
    requires: list[str] = []
    if need_metadata:
        requires = static_requirements(name, str(version), sdist, file, wheels, requirements, python)
    return SdistOnly(name, str(version), sdist, requires)


def _core_metadata(sdist: IndexFile, file: dict[str, object]) -> str | None:
    """The index's own copy of the file's metadata (PEP 658 / PEP 714), hash-checked, when it serves one."""
    import hashlib

    import requests

    declared = file.get("core-metadata", file.get("data-dist-info-metadata"))
    if not declared or not sdist.url.startswith(("http://", "https://")):
        return None
    expected = declared.get("sha256") if isinstance(declared, dict) else None
    try:
        with requests.get(sdist.url + ".metadata", timeout=60, stream=True) as response:
            response.raise_for_status()
            data = response.raw.read(_MAX_METADATA_BYTES + 1, decode_content=True)
    except requests.RequestException:
        return None
    if len(data) > _MAX_METADATA_BYTES or (expected and hashlib.sha256(data).hexdigest() != expected):
        return None
    return data.decode("utf-8", errors="replace")


def _pkg_info(path: Path) -> str | None:
    """PKG-INFO at the top of an sdist (the archive's single top folder), read bounded; never extracted."""
    import tarfile

    if path.name.endswith(".zip"):
        return _zip_metadata(path, "/PKG-INFO")
    with tarfile.open(path) as archive:
        for member in archive:
            parts = member.name.strip("/").split("/")
            if len(parts) == 2 and parts[1] == "PKG-INFO" and member.isreg():
                if member.size > _MAX_METADATA_BYTES:
                    return None
                stream = archive.extractfile(member)
                return stream.read().decode("utf-8", errors="replace") if stream else None
    return None


def _wheel_metadata(entries: list[dict[str, object]]) -> str | None:
    """METADATA of a wheel of the version (for another platform: uv and pip too take one wheel's metadata as
    the version's): the index's PEP 658 copy, else read from the smallest wheel, fetched by its sha256."""

    from pipeline.fetch import Pin, fetch

    files = [(IndexFile(str(e["filename"]), str(e["url"]), _sha256_of_entry(e)), e) for e in entries]
    for wheel, entry in files:
        text = _core_metadata(wheel, entry)
        if text is not None:
            return text
    if not files:
        return None
    wheel = min(files, key=lambda pair: int(str(pair[1].get("size") or 1 << 40)))[0]
    path = fetch(Pin(filename=wheel.filename, sha256=wheel.sha256, url=wheel.url))
    return _zip_metadata(path, ".dist-info/METADATA")


def _zip_metadata(path: Path, suffix: str) -> str | None:
    """The text of the member one folder deep whose name ends with `suffix` (an sdist's PKG-INFO, a wheel's
    METADATA), read bounded and never extracted; None when there is none or it is too large."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.filename.count("/") == 1 and info.filename.endswith(suffix):
                if info.file_size > _MAX_METADATA_BYTES:
                    return None
                return archive.read(info).decode("utf-8", errors="replace")
    return None


def _sandboxed_metadata(name: str, version: str, sdist: IndexFile, python: str) -> str:
    """The sdist's METADATA from its own build backend, run inside the sandbox (pipeline.sandbox), with
    the zig backend's build venvs, never on the host; refused in one line when this machine has no sandbox
    or no CPython `python` to run it with."""
    import shutil
    import sys

    from pipeline.builders.backends.zig import build_metadata_sandboxed
    from pipeline.fetch import Pin, fetch
    from pipeline.sandbox import SandboxUnavailable, sandbox_available

    needs = f"{name}=={version}: needs a build to know its dependencies (no wheel, and its sdist's metadata does not state them statically)"
    missing = sandbox_available()
    if missing:
        raise RewheelError(f"{needs}, and there is no sandbox to build it in: {missing}")
    same = f"{sys.version_info[0]}.{sys.version_info[1]}" == python
    interpreter = sys.executable if same else shutil.which(f"python{python}")
    if interpreter is None:
        raise RewheelError(f"{needs}, and there is no CPython {python} here to build its metadata with")
    path = fetch(Pin(filename=sdist.filename, sha256=sdist.sha256, url=sdist.url))
    try:
        return build_metadata_sandboxed(path, Path(interpreter))
    except SandboxUnavailable as exc:
        raise RewheelError(f"{needs}, and there is no sandbox to build it in: {exc}") from None


def static_requirements(
    name: str,
    version: str,
    sdist: IndexFile,
    file: dict[str, object],
    wheels: list[dict[str, object]],
    requirements: RequirementsSet,
    python: str,
) -> list[str]:
    """The Requires-Dist of a distribution with no fitting wheel, without running its build on this host:
    from a wheel of the same version for another platform, else from the sdist's own static metadata, else
    from a metadata build inside the sandbox."""
    from packaging.metadata import parse_email
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    from pipeline.fetch import Pin, fetch

    text = _wheel_metadata(wheels)
    from_wheel = text is not None
    if text is None:
        text = _core_metadata(sdist, file)
    if text is None:
        text = _pkg_info(fetch(Pin(filename=sdist.filename, sha256=sdist.sha256, url=sdist.url)))
    raw, _ = parse_email(text or "")
    try:
        metadata_version = Version(str(raw.get("metadata_version", "1.0")))
    except InvalidVersion:
        metadata_version = Version("1.0")
    dynamic = {d.lower() for d in raw.get("dynamic", [])}
    if text is None or (not from_wheel and (metadata_version < Version("2.2") or "requires-dist" in dynamic)):
        text = _sandboxed_metadata(name, version, sdist, python)
        raw, _ = parse_email(text)
    requires_python = raw.get("requires_python")
    if requires_python and not SpecifierSet(requires_python).contains(f"{python}.0"):
        raise RewheelError(f"{name}=={version}: requires Python {requires_python}, not {python}")
    extras = {e for line in requirements.lines_for(name) for e in line.requirement.extras}
    kept = []
    for entry in raw.get("requires_dist", []):
        requirement = Requirement(entry)
        if requirement.marker is not None and "extra" in str(requirement.marker):
            if extras:
                raise RewheelError(
                    f"{name}=={version}: extras of a distribution with no wheel are not supported"
                )
            continue
        kept.append(str(requirement))
    return kept


def _index_file(entry: dict[str, object]) -> IndexFile:
    url = str(entry.get("url") or entry.get("path") or "")
    hashes = entry.get("hashes") or {}
    sha256 = str(hashes.get("sha256", "")) if isinstance(hashes, dict) else ""
    name = str(entry.get("name") or url.rsplit("/", 1)[-1].split("#", 1)[0])
    return IndexFile(filename=name, url=url, sha256=sha256)


def ranked_wheels(files: list[IndexFile], tags: list[Tag]) -> list[IndexFile]:
    """The wheels that fit the target, best first (pip's preference: the rank of each wheel's best tag)."""
    rank = {tag: number for number, tag in enumerate(tags)}
    fitting = []
    for file in files:
        if not file.is_wheel:
            continue
        try:
            _, _, _, wheel_tags = parse_wheel_filename(file.filename)
        except ValueError:
            continue
        position = min((rank[t] for t in wheel_tags if t in rank), default=None)
        if position is not None:
            fitting.append((position, file))
    return [file for _, file in sorted(fitting, key=lambda pair: pair[0])]


Verifier = Callable[[IndexFile], tuple[bool, str]]


def classify(
    package: dict[str, object],
    tags: list[Tag],
    *,
    allowed: frozenset[str] | None = None,
    verifier: Verifier | None = None,
    sdist_for: Callable[[str, str], IndexFile | None] | None = None,
) -> Gap:
    """The gap of one resolved distribution. `allowed`: the sha256 digests a hash-checking file allows (only
    those files count, as in pip). `verifier`: the check build -r runs on an upstream wheel; a fitting wheel
    that fails it is recorded with its finding and the next fitting wheel, else the sdist, is taken."""
    name = canonicalize_name(str(package["name"]))
    version = str(package.get("version", ""))
    wheels = [_index_file(w) for w in package.get("wheels", []) or []]  # type: ignore[attr-defined]
    sdist = _index_file(package["sdist"]) if package.get("sdist") else None  # type: ignore[arg-type]
    if allowed is not None:
        wheels = [w for w in wheels if w.sha256 in allowed]
        sdist = sdist if sdist is not None and sdist.sha256 in allowed else None
    rejected: list[tuple[str, str]] = []
    for wheel in ranked_wheels(wheels, tags):
        if verifier is not None:
            ok, finding = verifier(wheel)
            if not ok:
                rejected.append((wheel.filename, finding))
                continue
        status = PURE if is_pure(wheel.filename) else UPSTREAM_WHEEL
        return Gap(name, version, status, wheel, sdist=sdist, rejected=rejected)
    if sdist is None and sdist_for is not None:
        sdist = sdist_for(name, version)
        if sdist is not None and allowed is not None and sdist.sha256 not in allowed:
            sdist = None
    if sdist is not None:
        return Gap(name, version, NEEDS_BUILD, sdist, sdist=sdist, rejected=rejected)
    return Gap(name, version, UNAVAILABLE, None, rejected=rejected)


@functools.cache
def _verifier_fingerprint() -> str:
    """A digest of the symbol checker's code and profile data: a cached verdict holds only while they do."""
    import hashlib

    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for folder in ("verify", "profiles", "targets"):
        for path in sorted((package / folder).rglob("*")) if (package / folder).is_dir() else []:
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    targets = package / "targets.py"
    if targets.is_file():
        digest.update(targets.read_bytes())
    return digest.hexdigest()[:16]


def verify_upstream(file: IndexFile, target: str) -> tuple[bool, str]:
    """The check build -r runs on an upstream wheel (pipeline.index.gate.check_verified for the target),
    the wheel fetched by the sha256 the index listed; verdicts cached by sha256 under the cache root."""
    import json

    from pipeline.fetch import Pin, fetch
    from pipeline.index.gate import check_verified
    from pipeline.paths import cache_root

    if len(file.sha256) != 64:
        return False, "the index lists no sha256 for it"
    cached = cache_root() / "upstream-verdicts" / _verifier_fingerprint() / target / f"{file.sha256}.json"
    if cached.is_file():
        try:
            verdict = json.loads(cached.read_text(encoding="utf-8"))
            return bool(verdict["ok"]), str(verdict["finding"])
        except (ValueError, KeyError, TypeError):
            pass
    path = fetch(Pin(filename=file.filename, sha256=file.sha256, url=file.url or None))
    ok, finding = check_verified(path, target)
    with atomic_path(cached) as staging:
        staging.write_text(
            json.dumps({"ok": ok, "finding": finding, "file": file.filename}), encoding="utf-8"
        )
    return ok, finding


def recipes_by_name(recipes_dir: Path) -> dict[str, Path]:
    """Normalised project name -> recipe file, for every recipe in `recipes_dir`."""
    from pipeline.recipe import load_recipe

    found: dict[str, Path] = {}
    if recipes_dir.is_dir():
        for path in sorted(recipes_dir.glob("*.toml")):
            recipe = load_recipe(path)
            for project in {recipe.name, *(s.project for s in recipe.source if s.project)}:
                found[canonicalize_name(project)] = path
    return found


def check_python(python: str) -> str:
    if not _PYTHON_VERSION.match(python):
        raise RewheelError(f"--python must be a CPython version such as 3.11, got {python!r}")
    return python


def find_gaps(
    requirements: Path | RequirementsSet,
    target_name: str,
    python: str,
    *,
    recipes_dir: Path | None = None,
    verify: bool = True,
) -> GapsReport:
    """Resolve `requirements` for the target and say, per distribution, what the target needs.

    Every check on the file (includes, options, hashes) runs before anything is fetched; a hash-checking
    file whose hashes match no file the index lists for a distribution is refused (exit 2), as pip refuses
    it. With `verify`, each fitting upstream wheel is put through the same check build -r runs."""
    from pipeline.paths import project_root
    from pipeline.recipe import load_recipe

    check_python(python)
    target = get_target(target_name)
    if not isinstance(requirements, RequirementsSet):
        requirements = read_requirements(requirements)
    tags = target_tags(target, python)
    report = GapsReport(target=target.name, python=python)
    recipes = recipes_by_name(recipes_dir or project_root() / "recipes")
    packages = resolve(requirements, target, python)
    allowed_by_name: dict[str, frozenset[str] | None] = {}
    for package in packages:
        name = canonicalize_name(str(package["name"]))
        allowed_by_name[name] = None
        if requirements.hash_checking:
            allowed = requirements.allowed_hashes(name)
            if allowed is None:
                raise RewheelError(
                    f"{requirements.source}: {name}=={package.get('version')} is in the resolved set but no line "
                    "of the file pins it with a --hash; hash-checking mode needs every distribution, as in pip"
                )
            listed = package.get("wheels") or []
            files = [*listed, *([package["sdist"]] if package.get("sdist") else [])]  # type: ignore[misc]
            if not any(_index_file(f).sha256 in allowed[0] for f in files):
                sdist = None if package.get("sdist") else index_sdist(name, str(package.get("version")))
                if sdist is not None and sdist.sha256 in allowed[0]:
                    allowed_by_name[name] = allowed[0]
                    continue
                raise RewheelError(
                    f"{allowed[1]}: {name}=={package.get('version')}: no file the index lists for it matches "
                    "the --hash values given (hash-checking mode, as in pip)"
                )
            allowed_by_name[name] = allowed[0]
    verifier = (lambda file: verify_upstream(file, target.name)) if verify else None
    for package in packages:
        gap = classify(
            package,
            tags,
            allowed=allowed_by_name[canonicalize_name(str(package["name"]))],
            verifier=verifier,
            sdist_for=index_sdist,
        )
        recipe_path = recipes.get(gap.name)
        if recipe_path is not None:
            gap.recipe = recipe_path
            gap.recipe_has_version = any(s.version == gap.version for s in load_recipe(recipe_path).source)
        report.requirements.append(gap)
    report.requirements.sort(key=lambda g: g.name)
    return report
